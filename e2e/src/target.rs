//! The target a test runs against: a local nginx it starts itself, or a cluster set up by xtask.
//!
//! Tests ask for an endpoint (scheme + Ingress variant) and a trust; only how the target comes to
//! exist differs between tiers, so the kind tier runs this very test code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use wsgate_echo::{EchoConfig, EchoServer, RunningEcho};
use wsgate_local::{LocalIngress, LocalIngressSpec, ServiceRef};
use wsgate_manifests::{
    ControllerConfig, DOCUMENTED_HOST, Documented, TLS_SECRET_NAME, Variant, apply_tls, tls_secret,
};
use wsgate_probe::{Endpoint, Probe, Scheme, Trust};
use wsgate_tls::TlsMaterial;

/// Environment variable naming the target: `local` (default) or `cluster`.
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

/// The Secret the suite uses for the derived variants' hosts (the documented one covers only
/// `test.example.com`).
pub const VARIANTS_TLS_SECRET: &str = "wsgate-variants-tls";

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

/// The Ingress variants the suite deploys on every tier, each on its own host.
pub fn suite_variants() -> Vec<Variant> {
    vec![
        Variant::documented(),
        Variant::without_annotations(),
        Variant::short(3),
        short_read_only(),
        short_send_only(),
    ]
}

/// Read timeout 3 s, send timeout 3600 s: shows which of the two cuts an idle connection.
pub fn short_read_only() -> Variant {
    Variant::derived(
        "short-read",
        "read 3 / send 3600",
        &[
            (wsgate_manifests::PROXY_READ_TIMEOUT, Some("3")),
            (wsgate_manifests::PROXY_SEND_TIMEOUT, Some("3600")),
        ],
    )
}

/// Read timeout 3600 s, send timeout 3 s.
pub fn short_send_only() -> Variant {
    Variant::derived(
        "short-send",
        "read 3600 / send 3",
        &[
            (wsgate_manifests::PROXY_READ_TIMEOUT, Some("3600")),
            (wsgate_manifests::PROXY_SEND_TIMEOUT, Some("3")),
        ],
    )
}

/// Why a target could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{ENV_TARGET}=cluster needs {var}: {why}. `cargo xtask e2e` sets it")]
    Env { var: &'static str, why: String },
    #[error("cannot read trusted certificate {path}: {message}")]
    Trust { path: String, message: String },
    #[error(
        "the cluster is in phase {actual:?}, this test needs {wanted:?}; run it through `cargo xtask e2e`"
    )]
    WrongPhase {
        wanted: &'static str,
        actual: String,
    },
    #[error("{0}")]
    Manifest(#[from] wsgate_manifests::ManifestError),
    #[error("{0}")]
    Echo(#[from] wsgate_echo::EchoError),
    #[error("{0}")]
    Local(#[from] wsgate_local::LocalError),
    #[error("{0}")]
    Tls(#[from] wsgate_tls::TlsError),
}

/// Where the ingress is and what to trust. Dropping a local target stops what it started.
pub struct Target {
    http: String,
    https: String,
    trust: Vec<CertificateDer<'static>>,
    tier: &'static str,
    // Kept alive for the target's lifetime; dropped in reverse order (nginx first).
    local: Option<(LocalIngress, RunningEcho)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("tier", &self.tier)
            .field("http", &self.http)
            .field("https", &self.https)
            .finish()
    }
}

/// What a local target is built from; the defaults give the suite's standard setup.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub phase: Phase,
    pub variants: Vec<Variant>,
    pub config: ControllerConfig,
    pub echo: EchoConfig,
}

impl LocalOptions {
    pub fn new(phase: Phase) -> Self {
        Self {
            phase,
            variants: suite_variants(),
            config: ControllerConfig::default(),
            echo: EchoConfig::default(),
        }
    }
}

/// The TLS material and Secrets of the TLS phase: the documented Secret for `test.example.com`
/// and one more for the derived variants' hosts.
pub struct TlsSetup {
    pub documented: TlsMaterial,
    pub variants: Option<TlsMaterial>,
}

impl TlsSetup {
    pub fn generate(variants: &[Variant]) -> Result<Self, wsgate_tls::TlsError> {
        let hosts: Vec<&str> = variants
            .iter()
            .filter(|v| v.host != DOCUMENTED_HOST)
            .map(|v| v.host.as_str())
            .collect();
        Ok(Self {
            documented: TlsMaterial::self_signed(&[DOCUMENTED_HOST])?,
            variants: if hosts.is_empty() {
                None
            } else {
                Some(TlsMaterial::self_signed(&hosts)?)
            },
        })
    }

    pub fn secret_for(variant: &Variant) -> &'static str {
        if variant.host == DOCUMENTED_HOST {
            TLS_SECRET_NAME
        } else {
            VARIANTS_TLS_SECRET
        }
    }

    pub fn secrets(&self, namespace: &str) -> Vec<k8s_openapi::api::core::v1::Secret> {
        let mut out = vec![tls_secret(
            TLS_SECRET_NAME,
            namespace,
            self.documented.cert_pem(),
            self.documented.key_pem(),
        )];
        if let Some(v) = &self.variants {
            out.push(tls_secret(
                VARIANTS_TLS_SECRET,
                namespace,
                v.cert_pem(),
                v.key_pem(),
            ));
        }
        out
    }

    pub fn certs(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(&self.documented)
            .chain(&self.variants)
            .map(|m| m.cert_der().clone())
            .collect()
    }
}

impl Target {
    /// The target for `phase`: from the environment when `WSGATE_TARGET=cluster`, else a local
    /// nginx + echo server with the suite's standard variants.
    pub async fn for_phase(phase: Phase) -> Result<Self, TargetError> {
        match std::env::var(ENV_TARGET).as_deref() {
            Ok("cluster") => Self::cluster(phase),
            _ => Self::local(LocalOptions::new(phase)).await,
        }
    }

    /// A cluster prepared by `cargo xtask e2e`, described by environment variables.
    pub fn cluster(phase: Phase) -> Result<Self, TargetError> {
        let var = |name: &'static str| {
            std::env::var(name).map_err(|e| TargetError::Env {
                var: name,
                why: e.to_string(),
            })
        };
        let actual = var(ENV_PHASE)?;
        if actual != phase.as_str() {
            return Err(TargetError::WrongPhase {
                wanted: phase.as_str(),
                actual,
            });
        }
        let mut trust = Vec::new();
        if let Ok(paths) = std::env::var(ENV_TRUST) {
            for p in paths.split(':').filter(|p| !p.is_empty()) {
                trust.push(
                    CertificateDer::from_pem_file(p).map_err(|e| TargetError::Trust {
                        path: p.to_owned(),
                        message: e.to_string(),
                    })?,
                );
            }
        }
        Ok(Self {
            http: var(ENV_HTTP_ADDR)?,
            https: var(ENV_HTTPS_ADDR)?,
            trust,
            tier: "cluster",
            local: None,
        })
    }

    /// Starts an echo server and nginx rendered from the documented manifests and `options`.
    pub async fn local(options: LocalOptions) -> Result<Self, TargetError> {
        let documented = Documented::shipped()?;
        let echo = EchoServer::bind(
            "127.0.0.1:0".parse().expect("loopback"),
            options.echo.clone(),
        )
        .await?
        .spawn();
        let mut ingresses: Vec<_> = options
            .variants
            .iter()
            .map(|v| v.ingress(&documented.ingress))
            .collect();
        let mut spec = LocalIngressSpec {
            config: options.config.clone(),
            backends: BTreeMap::from([(
                ServiceRef::new(
                    wsgate_manifests::DOCUMENTED_NAMESPACE,
                    wsgate_manifests::DOCUMENTED_SERVICE,
                    wsgate_manifests::DOCUMENTED_PORT.into(),
                ),
                echo.addr(),
            )]),
            ..Default::default()
        };
        let mut trust = Vec::new();
        if options.phase == Phase::Tls {
            let tls = TlsSetup::generate(&options.variants)?;
            for (ing, v) in ingresses.iter_mut().zip(&options.variants) {
                apply_tls(ing, &[&v.host], TlsSetup::secret_for(v));
            }
            spec.secrets = tls.secrets(wsgate_manifests::DOCUMENTED_NAMESPACE);
            trust = tls.certs();
        }
        spec.ingresses = ingresses;
        // Synchronous (fork, `nginx -t`, readiness poll; ~100 ms), and deliberately on this
        // thread: nginx's parent-death signal is tied to the thread that forks it, and a
        // spawn_blocking thread exits when idle, which would take nginx down with it.
        let nginx = LocalIngress::start(&spec)?;
        Ok(Self {
            http: nginx.http_addr().to_string(),
            https: nginx.https_addr().to_string(),
            trust,
            tier: "local",
            local: Some((nginx, echo)),
        })
    }

    /// `local` or `kind`.
    pub fn tier(&self) -> &'static str {
        self.tier
    }

    /// The endpoint for `variant` over `scheme`, dialling the ingress address.
    pub fn endpoint(&self, scheme: Scheme, variant: &Variant) -> Endpoint {
        let addr = match scheme {
            Scheme::Ws => &self.http,
            Scheme::Wss => &self.https,
        };
        Endpoint::new(scheme, addr.clone(), variant.host.clone())
    }

    /// A probe that trusts exactly the suite's generated certificates.
    pub fn probe(&self, scheme: Scheme, variant: &Variant) -> Probe {
        Probe::new(
            self.endpoint(scheme, variant),
            Trust::Certificates(self.trust.clone()),
        )
    }

    /// The in-process echo server's address, when this is a local target.
    pub fn echo_addr(&self) -> Option<std::net::SocketAddr> {
        self.local.as_ref().map(|(_, e)| e.addr())
    }

    /// The local nginx, when this is a local target.
    pub fn local_ingress(&self) -> Option<&LocalIngress> {
        self.local.as_ref().map(|(n, _)| n)
    }

    pub fn local_ingress_mut(&mut self) -> Option<&mut LocalIngress> {
        self.local.as_mut().map(|(n, _)| n)
    }

    /// nginx's error log for failure messages (empty for a cluster: xtask collects its logs).
    pub fn diagnostics(&self) -> String {
        self.local_ingress()
            .map(|n| {
                format!(
                    "--- local nginx error log ({}) ---\n{}",
                    n.prefix().display(),
                    n.error_log()
                )
            })
            .unwrap_or_default()
    }
}

/// How the cluster-only tests reach the API server.
#[derive(Debug, Clone)]
pub struct ClusterEnv {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    pub namespace: String,
}

impl ClusterEnv {
    pub fn from_env() -> Result<Self, TargetError> {
        let kubeconfig = std::env::var_os(ENV_KUBECONFIG)
            .map(PathBuf::from)
            .ok_or_else(|| TargetError::Env {
                var: ENV_KUBECONFIG,
                why: "not set; the cluster-only tests need a cluster".into(),
            })?;
        Ok(Self {
            kubeconfig,
            context: std::env::var(ENV_CONTEXT).ok().filter(|c| !c.is_empty()),
            namespace: std::env::var(ENV_NAMESPACE)
                .unwrap_or_else(|_| wsgate_manifests::DOCUMENTED_NAMESPACE.into()),
        })
    }
}

/// Reads the suite's report directory, if one is set.
pub fn report_dir() -> Option<PathBuf> {
    std::env::var_os(crate::report::ENV_REPORT_DIR).map(PathBuf::from)
}
