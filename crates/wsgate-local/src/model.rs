//! From Ingress objects to what nginx serves: servers by host, their locations (path, backend,
//! timeouts), upstreams, and the annotation values the controller would ignore.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use k8s_openapi::api::networking::v1::Ingress;
use wsgate_manifests::{AnnotationWarning, ControllerConfig, ProxyTimeouts};

/// A Service port, as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: i32,
}

impl ServiceRef {
    pub fn new(namespace: &str, name: &str, port: i32) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            port,
        }
    }

    /// The controller's upstream name: `<namespace>-<service>-<port>`.
    pub fn upstream_name(&self) -> String {
        format!("{}-{}-{}", self.namespace, self.name, self.port)
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// Certificate and key files of a TLS Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the renderer needs besides the Ingresses.
#[derive(Debug, Clone)]
pub struct RenderContext {
    pub config: ControllerConfig,
    pub listen: IpAddr,
    pub http_port: u16,
    pub https_port: u16,
    /// Where each backend Service port is actually served.
    pub backends: BTreeMap<ServiceRef, SocketAddr>,
    /// `(namespace, secretName)` to files.
    pub secrets: BTreeMap<(String, String), CertFiles>,
    /// The default server's certificate (the controller's "fake certificate").
    pub default_cert: CertFiles,
    /// nginx's prefix: pid, logs and temp paths live under it.
    pub prefix: PathBuf,
    /// `worker_rlimit_nofile` (at most the hard limit nginx can raise itself to).
    pub nofile: u64,
    /// `worker_processes`: the controller renders `runtime.NumCPU()` (the CPUs this process
    /// may run on), not `auto`; a known count is also what `start` waits for.
    pub workers: usize,
    /// The nginx that will run it: HTTP/2 is `listen ... http2` before 1.25.1, `http2 on`
    /// from then on (the controller's nginx is 1.27 and renders `http2 on;`).
    pub nginx_version: NginxVersion,
}

/// An nginx version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NginxVersion(pub u32, pub u32, pub u32);

impl NginxVersion {
    /// From `nginx -v` output: `nginx version: nginx/1.22.1`.
    pub fn parse(text: &str) -> Option<Self> {
        let v = text.split("nginx/").nth(1)?.split_whitespace().next()?;
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        Some(Self(
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }

    /// Whether it has the `http2` directive (nginx 1.25.1).
    pub fn has_http2_directive(self) -> bool {
        self >= Self(1, 25, 1)
    }
}

impl std::fmt::Display for NginxVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl RenderContext {
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.http_port)
    }

    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.https_port)
    }
}

/// Why an Ingress cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error(
        "Ingress {ingress}: backend Service {service} has no local address; give the local ingress a backend for it"
    )]
    NoBackend {
        ingress: String,
        service: ServiceRef,
    },
    #[error(
        "Ingress {ingress}: TLS Secret {secret:?} for hosts {hosts:?} was not given to the local ingress"
    )]
    NoSecret {
        ingress: String,
        secret: String,
        hosts: Vec<String>,
    },
    #[error("Ingress {ingress}: {problem}")]
    Unsupported { ingress: String, problem: String },
}

/// How a location matches, as the controller renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// `location = "/p"`.
    Exact,
    /// `location "/p"`: nginx's longest-prefix match.
    Prefix,
}

/// One `location` block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub matching: Match,
    pub path: String,
    /// The Ingress path it came from (a Prefix path `/chat` yields `/chat/` and `= /chat`).
    pub ingress_path: String,
    #[serde(skip)]
    pub upstream: String,
    pub backend: String,
    pub timeouts: ProxyTimeouts,
    /// `namespace/name` of the Ingress.
    pub ingress: String,
}

/// One `server` block: a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Server {
    pub host: String,
    #[serde(skip)]
    pub tls: Option<CertFiles>,
    pub locations: Vec<Location>,
}

impl Server {
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Everything nginx will serve for a set of Ingresses.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub servers: Vec<Server>,
    pub upstreams: BTreeMap<String, SocketAddr>,
    pub warnings: Vec<AnnotationWarning>,
    /// Ingresses not rendered, with why (regular-expression paths).
    pub skipped: Vec<String>,
}

/// The locations the controller makes of one Ingress path (`location.go`,
/// `updateServerLocations`): Prefix `/p` becomes prefix `/p/` plus exact `/p`.
fn locations_for(path: &str, path_type: &str) -> Vec<(Match, String)> {
    match path_type {
        "Exact" => vec![(Match::Exact, path.to_owned())],
        "Prefix" if path != "/" => {
            let dir = if path.ends_with('/') {
                path.to_owned()
            } else {
                format!("{path}/")
            };
            let mut v = vec![(Match::Prefix, dir)];
            let exact = path.trim_end_matches('/');
            if !exact.is_empty() {
                v.push((Match::Exact, exact.to_owned()));
            }
            v
        }
        // ImplementationSpecific (and Prefix `/`): a plain nginx prefix location.
        _ => vec![(Match::Prefix, path.to_owned())],
    }
}

impl Model {
    pub fn build(ingresses: &[Ingress], ctx: &RenderContext) -> Result<Self, RenderError> {
        let mut servers: BTreeMap<String, Server> = BTreeMap::new();
        let mut model = Self::default();
        for ing in ingresses {
            let id = wsgate_manifests::object_id(&ing.metadata);
            let ns = &wsgate_manifests::namespace_of(&ing.metadata);
            if wsgate_manifests::uses_regex(ing) {
                model.skipped.push(format!(
                    "Ingress {id}: regular-expression paths (use-regex/rewrite-target) are not supported by the local tier"
                ));
                continue;
            }
            let (timeouts, w) = ProxyTimeouts::for_ingress(ing, &ctx.config);
            model.warnings.extend(w);
            let Some(spec) = ing.spec.as_ref() else {
                continue;
            };
            // As the controller assigns certificates: the first Ingress to give a host one
            // wins; an entry without a secretName, and any rule host of an Ingress with a tls
            // section that no entry lists, get the default (fake) certificate.
            for tls in spec.tls.iter().flatten() {
                let secret = tls.secret_name.clone().unwrap_or_default();
                let hosts = tls.hosts.clone().unwrap_or_default();
                let files = if secret.is_empty() {
                    &ctx.default_cert
                } else {
                    ctx.secrets
                        .get(&(ns.to_owned(), secret.clone()))
                        .ok_or_else(|| RenderError::NoSecret {
                            ingress: id.clone(),
                            secret: secret.clone(),
                            hosts: hosts.clone(),
                        })?
                };
                for host in hosts {
                    servers
                        .entry(host)
                        .or_default()
                        .tls
                        .get_or_insert_with(|| files.clone());
                }
            }
            let has_tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.clone().unwrap_or_else(|| "_".into());
                let server = servers.entry(host).or_default();
                if has_tls && server.tls.is_none() {
                    server.tls = Some(ctx.default_cert.clone());
                }
                for path in rule.http.iter().flat_map(|h| &h.paths) {
                    let unsupported = |problem: String| RenderError::Unsupported {
                        ingress: id.clone(),
                        problem,
                    };
                    let svc =
                        path.backend.service.as_ref().ok_or_else(|| {
                            unsupported("only Service backends are supported".into())
                        })?;
                    let port = svc.port.as_ref().and_then(|p| p.number).ok_or_else(|| {
                        unsupported(format!(
                            "backend {} uses a named port; use port.number",
                            svc.name
                        ))
                    })?;
                    let sref = ServiceRef::new(ns, &svc.name, port);
                    let addr = ctx
                        .backends
                        .get(&sref)
                        .ok_or_else(|| RenderError::NoBackend {
                            ingress: id.clone(),
                            service: sref.clone(),
                        })?;
                    model.upstreams.insert(sref.upstream_name(), *addr);
                    let ingress_path = path.path.clone().unwrap_or_else(|| "/".into());
                    for (matching, p) in locations_for(&ingress_path, &path.path_type) {
                        // The controller keeps the first (oldest) Ingress's location for a path.
                        if server
                            .locations
                            .iter()
                            .any(|l| l.path == p && l.matching == matching)
                        {
                            continue;
                        }
                        server.locations.push(Location {
                            matching,
                            path: p,
                            ingress_path: ingress_path.clone(),
                            upstream: sref.upstream_name(),
                            backend: sref.to_string(),
                            timeouts,
                            ingress: id.clone(),
                        });
                    }
                }
            }
        }
        model.servers = servers
            .into_iter()
            .map(|(host, mut s)| {
                s.host = host;
                s
            })
            .collect();
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_versions_parse_and_order() {
        let v = NginxVersion::parse("nginx version: nginx/1.22.1\n").unwrap();
        assert_eq!(v, NginxVersion(1, 22, 1));
        assert!(!v.has_http2_directive());
        assert!(
            NginxVersion::parse("nginx version: openresty/1.27.1.1 nginx/1.27.1")
                .unwrap()
                .has_http2_directive()
        );
        assert_eq!(NginxVersion::parse("garbage"), None);
    }

    #[test]
    fn prefix_paths_get_a_directory_location_and_an_exact_one() {
        assert_eq!(
            locations_for("/chat", "Prefix"),
            [
                (Match::Prefix, "/chat/".into()),
                (Match::Exact, "/chat".into())
            ]
        );
        assert_eq!(
            locations_for("/chat/", "Prefix"),
            [
                (Match::Prefix, "/chat/".into()),
                (Match::Exact, "/chat".into())
            ]
        );
        assert_eq!(locations_for("/", "Prefix"), [(Match::Prefix, "/".into())]);
        assert_eq!(
            locations_for("/chat", "ImplementationSpecific"),
            [(Match::Prefix, "/chat".into())]
        );
        assert_eq!(
            locations_for("/chat", "Exact"),
            [(Match::Exact, "/chat".into())]
        );
    }
}
