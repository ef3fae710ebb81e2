//! The target a test runs against: a local nginx it starts itself, or a cluster set up by xtask.
//!
//! Tests ask for an endpoint (scheme + Ingress variant) and a trust; only how the target comes to
//! exist differs between tiers, so the kind tier runs this very test code.

use rustls_pki_types::CertificateDer;
use wsgate_contract::{
    ENV_HTTP_ADDR, ENV_HTTPS_ADDR, ENV_PHASE, ENV_TARGET, ENV_TRUST, EnvError, Phase, required,
    tier_label,
};
use wsgate_echo::{EchoConfig, EchoServer, RunningEcho};
use wsgate_local::LocalIngress;
use wsgate_manifests::{ControllerConfig, Variant};
use wsgate_probe::{Endpoint, Probe, Scheme, Trust};

/// Why a target could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("cannot read trusted certificate {path}: {message}")]
    Trust { path: String, message: String },
    #[error(
        "the cluster is in phase {actual:?}, this test needs {wanted:?}; run it through `cargo xtask e2e`"
    )]
    WrongPhase {
        wanted: &'static str,
        actual: String,
    },
    #[error(transparent)]
    Manifest(#[from] wsgate_manifests::ManifestError),
    #[error(transparent)]
    Echo(#[from] wsgate_echo::EchoError),
    #[error(transparent)]
    Local(#[from] wsgate_local::LocalError),
    #[error(transparent)]
    Tls(#[from] wsgate_tls::TlsError),
    #[error(transparent)]
    Workload(#[from] wsgate_workload::WorkloadError),
}

/// Where the ingress is and what to trust. Dropping a local target stops what it started.
pub struct Target {
    http: String,
    https: String,
    trust: Vec<CertificateDer<'static>>,
    tier: String,
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
            variants: Variant::suite(),
            config: ControllerConfig::default(),
            echo: EchoConfig::default(),
        }
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
        let actual = required(ENV_PHASE)?;
        if actual != phase.as_str() {
            return Err(TargetError::WrongPhase {
                wanted: phase.as_str(),
                actual,
            });
        }
        let mut trust = Vec::new();
        if let Ok(paths) = std::env::var(ENV_TRUST) {
            for p in paths.split(':').filter(|p| !p.is_empty()) {
                trust.extend(
                    wsgate_probe::pem_file_certificates(p.as_ref()).map_err(|e| {
                        TargetError::Trust {
                            path: p.to_owned(),
                            message: e.to_string(),
                        }
                    })?,
                );
            }
        }
        Ok(Self {
            http: required(ENV_HTTP_ADDR)?,
            https: required(ENV_HTTPS_ADDR)?,
            trust,
            tier: tier_label(),
            local: None,
        })
    }

    /// Starts an echo server and nginx rendered from the documented manifests and `options`.
    pub async fn local(options: LocalOptions) -> Result<Self, TargetError> {
        let echo = EchoServer::bind(
            "127.0.0.1:0".parse().expect("loopback"),
            options.echo.clone(),
        )
        .await?
        .spawn();
        let documented = wsgate_workload::documented::spec(
            options.phase,
            &options.variants,
            &options.config,
            echo.addr(),
        )?;
        let trust = documented
            .tls
            .as_ref()
            .map(wsgate_workload::TlsSetup::certs)
            .unwrap_or_default();
        // Synchronous (fork, `nginx -t`, readiness poll; ~100 ms), and deliberately on this
        // thread: nginx's parent-death signal is tied to the thread that forks it, and a
        // spawn_blocking thread exits when idle, which would take nginx down with it.
        let nginx = LocalIngress::start(&documented.spec)?;
        Ok(Self {
            http: nginx.http_addr().to_string(),
            https: nginx.https_addr().to_string(),
            trust,
            tier: "local".into(),
            local: Some((nginx, echo)),
        })
    }

    /// `local`, `kind`, or an existing cluster's context.
    pub fn tier(&self) -> &str {
        &self.tier
    }

    /// A report row for `case` on this target: its tier, the Ingress as the row names it, and
    /// the scheme.
    pub fn row(
        &self,
        case: impl Into<String>,
        ingress: impl Into<String>,
        scheme: Scheme,
    ) -> wsgate_report::RowBuilder {
        wsgate_report::Row::builder(case)
            .tier(self.tier())
            .ingress(ingress)
            .scheme(scheme)
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

    /// The certificates a client of this target trusts.
    pub fn trusted(&self) -> &[CertificateDer<'static>] {
        &self.trust
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
