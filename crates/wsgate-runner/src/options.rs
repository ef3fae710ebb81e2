//! The runner's options, as clap arguments that a front end (`cargo xtask`) flattens into its
//! command line: the e2e run (tier, cluster, your workload) and `local-up`. Nothing here runs
//! anything.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    /// Run against the local tier (nginx rendered from the manifests) instead of a cluster.
    #[arg(long)]
    pub local: bool,
    /// nextest profile (`ci` writes JUnit XML).
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Print every step instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Flags for testing a team's own workload instead of the document's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorkloadArgs {
    /// Your workload: a YAML file or a folder of manifests (repeatable): Deployments,
    /// Services, Ingresses, TLS Secrets, the ingress-nginx-controller ConfigMap. They are
    /// tested instead of the document's.
    #[arg(long = "workload", visible_alias = "manifests", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Local tier: a running server for a Service port, NAMESPACE/SERVICE:PORT=HOST:PORT
    /// (repeatable). Service ports without one are served by the echo server.
    #[arg(long = "backend", value_name = "SPEC", value_parser = parse_backend)]
    pub backends: Vec<(wsgate_local::ServiceRef, std::net::SocketAddr)>,
    /// Your backends echo what they get: run echo checks against them too.
    #[arg(long)]
    pub echo: bool,
    /// The longest a connection is held idle, in seconds; longer read timeouts are checked by
    /// surviving this long.
    #[arg(long, default_value_t = 90)]
    pub max_idle: u64,
    /// A PEM certificate your TLS hosts present (repeatable), when the manifests' Secrets hold
    /// no certificate.
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,
    /// kind: an image built on this machine to load into the cluster first (repeatable).
    #[arg(long = "load-image", value_name = "IMAGE")]
    pub load_images: Vec<String>,
}

/// `NAMESPACE/SERVICE:PORT=HOST:PORT`.
pub fn parse_backend(s: &str) -> Result<(wsgate_local::ServiceRef, std::net::SocketAddr), String> {
    let usage = || {
        format!(
            "{s:?}: expected NAMESPACE/SERVICE:PORT=HOST:PORT, e.g. default/chat:8080=127.0.0.1:9000"
        )
    };
    let (service, addr) = s.split_once('=').ok_or_else(usage)?;
    let (ns, rest) = service.split_once('/').ok_or_else(usage)?;
    let (name, port) = rest.rsplit_once(':').ok_or_else(usage)?;
    let port: i32 = port.parse().map_err(|_| usage())?;
    use std::net::ToSocketAddrs;
    let addr = addr
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", usage()))?
        .next()
        .ok_or_else(usage)?;
    if ns.is_empty() || name.is_empty() {
        return Err(usage());
    }
    Ok((wsgate_local::ServiceRef::new(ns, name, port), addr))
}

/// Which echo image the Deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EchoImage {
    /// The workspace's echo server, built FROM scratch and loaded into kind.
    Built,
    /// The document's image reference, unchanged (pulled by the cluster).
    Documented,
}

/// Flags of `cargo xtask e2e` for the cluster tiers.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// kind cluster name.
    #[arg(long, default_value = "wsgate")]
    pub name: String,
    /// Use an existing kind cluster of that name (it is kept afterwards).
    #[arg(long)]
    pub reuse: bool,
    /// Keep the cluster (or namespace) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Host port mapped to the ingress's port 80 (80 is often taken on a laptop).
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// Host port mapped to the ingress's port 443.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Echo image: `built` (this workspace's, default on kind) or `documented` (the document's).
    #[arg(long, value_enum)]
    pub echo_image: Option<EchoImage>,
    /// Existing cluster: kubeconfig file (skips kind).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Existing cluster: kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Existing cluster: the ingress controller's address, HOST[:PORT] (port 80 by default).
    #[arg(long)]
    pub ingress_address: Option<String>,
    /// Existing cluster: the ingress controller's TLS port.
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Namespace for the suite's objects (default: `default` on kind as documented,
    /// `wsgate-e2e` on an existing cluster).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Fail on annotation values that ingress-nginx would silently ignore.
    #[arg(long)]
    pub strict: bool,
}

#[derive(clap::Args, Debug)]
pub struct LocalUpArgs {
    /// Where the certificate to trust is written.
    #[arg(long, default_value = "target/wsgate/local-up")]
    pub out: PathBuf,
    /// Serve your workload instead of the document's (repeatable; a file or a folder).
    #[arg(long = "workload", visible_alias = "manifests", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A running server for a Service port, NAMESPACE/SERVICE:PORT=HOST:PORT (repeatable).
    #[arg(long = "backend", value_name = "SPEC", value_parser = parse_backend)]
    pub backends: Vec<(wsgate_local::ServiceRef, std::net::SocketAddr)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_names_a_service_port_and_an_address() {
        let (svc, addr) = parse_backend("default/chat:8080=127.0.0.1:9000").unwrap();
        assert_eq!(svc, wsgate_local::ServiceRef::new("default", "chat", 8080));
        assert_eq!(addr.to_string(), "127.0.0.1:9000");
        for bad in [
            "chat:8080=127.0.0.1:9000",
            "default/chat=127.0.0.1:9",
            "default/chat:x=1.2.3.4:5",
            "default/chat:80",
        ] {
            let e = parse_backend(bad).unwrap_err();
            assert!(e.contains("NAMESPACE/SERVICE:PORT=HOST:PORT"), "{e}");
        }
    }
}
