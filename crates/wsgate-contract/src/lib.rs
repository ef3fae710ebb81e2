//! The contract between the runner and the e2e tests, as `nextest-metadata` is for nextest:
//! the environment variables a cluster run sets, the phases, where report rows go, and which
//! test binaries each step of a run selects. Both sides use this crate; it depends on nothing.
//!
//! Unset, the tests build their own local target, so `cargo nextest run` needs none of them.

pub mod selection;

use std::path::PathBuf;

/// Names the target: `local` (default) or `cluster`.
pub const ENV_TARGET: &str = "WSGATE_TARGET";
/// For `cluster`: the address dialled for `ws` (the ingress's HTTP port), e.g. `127.0.0.1:80`.
pub const ENV_HTTP_ADDR: &str = "WSGATE_HTTP_ADDR";
/// For `cluster`: the address dialled for `wss`, e.g. `127.0.0.1:443`.
pub const ENV_HTTPS_ADDR: &str = "WSGATE_HTTPS_ADDR";
/// For `cluster`: PEM certificate files to trust, separated by `:`.
pub const ENV_TRUST: &str = "WSGATE_TRUST";
/// For `cluster`: the kubeconfig file the cluster-only tests use.
pub const ENV_KUBECONFIG: &str = "WSGATE_KUBECONFIG";
/// For `cluster`: the kubeconfig context (optional; else the file's current context).
pub const ENV_CONTEXT: &str = "WSGATE_CONTEXT";
/// For `cluster`: the namespace holding the suite's objects.
pub const ENV_NAMESPACE: &str = "WSGATE_NAMESPACE";
/// For `cluster`: which phase the cluster is in (`plain` before the TLS patch, `tls` after).
pub const ENV_PHASE: &str = "WSGATE_PHASE";
/// For `cluster`: what report rows name as their tier (`kind`, or an existing cluster's context).
pub const ENV_TIER: &str = "WSGATE_TIER";
/// Directory each test writes its report rows into (set by the runner), one JSON file per row.
pub const ENV_REPORT_DIR: &str = "WSGATE_REPORT_DIR";

/// The namespace the document's objects live in (it names none, so the API server's default).
pub const DOCUMENTED_NAMESPACE: &str = "default";

/// The report directory, when the runner set one.
pub fn report_dir() -> Option<PathBuf> {
    std::env::var_os(ENV_REPORT_DIR).map(PathBuf::from)
}

/// Before or after the document's TLS step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Steps 1-3 ws: no `spec.tls` yet.
    Plain,
    /// After the Secret and the patch.
    Tls,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Tls => "tls",
        }
    }
}

/// A variable the cluster target needs is missing or unusable.
#[derive(Debug, thiserror::Error)]
#[error("{ENV_TARGET}=cluster needs {var}: {why}. `cargo xtask e2e` sets it")]
pub struct EnvError {
    pub var: &'static str,
    pub why: String,
}

/// Reads a variable that a cluster run must have.
pub fn required(var: &'static str) -> Result<String, EnvError> {
    std::env::var(var).map_err(|e| EnvError {
        var,
        why: e.to_string(),
    })
}

/// How the cluster-only tests reach the API server.
#[derive(Debug, Clone)]
pub struct ClusterEnv {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    pub namespace: String,
    /// What report rows name as their tier.
    pub tier: String,
}

impl ClusterEnv {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            kubeconfig: required(ENV_KUBECONFIG)?.into(),
            context: std::env::var(ENV_CONTEXT).ok().filter(|c| !c.is_empty()),
            namespace: std::env::var(ENV_NAMESPACE).unwrap_or_else(|_| DOCUMENTED_NAMESPACE.into()),
            tier: tier_label(),
        })
    }
}

/// The tier name rows carry on a cluster: `WSGATE_TIER`, else `cluster`.
pub fn tier_label() -> String {
    std::env::var(ENV_TIER)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "cluster".into())
}
