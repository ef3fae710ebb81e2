//! nginx.conf from Ingress objects, following ingress-nginx controller-v1.15.1's nginx.tmpl for
//! what the suite uses: hosts, paths, upgrade headers, proxy timeouts, TLS and the 308 redirect.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

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

/// Certificate and key files of a TLS Secret.
#[derive(Debug, Clone)]
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
}

/// Why an Ingress cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error(
        "Ingress {ingress}: backend Service {service}:{port} has no local address; pass it to the local ingress as a backend"
    )]
    NoBackend {
        ingress: String,
        service: String,
        port: i32,
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

impl RenderContext {
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.http_port)
    }

    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.https_port)
    }
}

/// A rendered configuration and the annotation warnings met on the way.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub conf: String,
    pub warnings: Vec<AnnotationWarning>,
}

struct Location {
    modifier: &'static str,
    path: String,
    upstream: String,
    timeouts: ProxyTimeouts,
    ingress: String,
}

#[derive(Default)]
struct Server {
    tls: Option<CertFiles>,
    locations: Vec<Location>,
}

fn ingress_id(ing: &Ingress) -> String {
    format!(
        "{}/{}",
        ing.metadata.namespace.as_deref().unwrap_or("default"),
        ing.metadata.name.as_deref().unwrap_or("<unnamed>")
    )
}

/// Renders `ingresses` into one nginx.conf.
pub fn render(ingresses: &[Ingress], ctx: &RenderContext) -> Result<Rendered, RenderError> {
    let mut servers: BTreeMap<String, Server> = BTreeMap::new();
    let mut upstreams: BTreeMap<String, SocketAddr> = BTreeMap::new();
    let mut warnings = Vec::new();
    for ing in ingresses {
        let id = ingress_id(ing);
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        let (timeouts, w) = ProxyTimeouts::for_ingress(ing, &ctx.config);
        warnings.extend(w);
        let Some(spec) = ing.spec.as_ref() else {
            continue;
        };
        for tls in spec.tls.iter().flatten() {
            let secret = tls.secret_name.clone().unwrap_or_default();
            let hosts = tls.hosts.clone().unwrap_or_default();
            let files = ctx
                .secrets
                .get(&(ns.to_owned(), secret.clone()))
                .ok_or_else(|| RenderError::NoSecret {
                    ingress: id.clone(),
                    secret: secret.clone(),
                    hosts: hosts.clone(),
                })?;
            for host in hosts {
                servers.entry(host).or_default().tls = Some(files.clone());
            }
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_else(|| "_".into());
            let server = servers.entry(host).or_default();
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                let svc =
                    path.backend
                        .service
                        .as_ref()
                        .ok_or_else(|| RenderError::Unsupported {
                            ingress: id.clone(),
                            problem: "only Service backends are supported".into(),
                        })?;
                let port = svc.port.as_ref().and_then(|p| p.number).ok_or_else(|| {
                    RenderError::Unsupported {
                        ingress: id.clone(),
                        problem: format!("backend {} uses a named port; use port.number", svc.name),
                    }
                })?;
                let sref = ServiceRef::new(ns, &svc.name, port);
                let addr = ctx
                    .backends
                    .get(&sref)
                    .ok_or_else(|| RenderError::NoBackend {
                        ingress: id.clone(),
                        service: format!("{ns}/{}", svc.name),
                        port,
                    })?;
                upstreams.insert(sref.upstream_name(), *addr);
                let p = path.path.clone().unwrap_or_else(|| "/".into());
                let modifier = if path.path_type == "Exact" { "= " } else { "" };
                // The controller keeps the first (oldest) Ingress's location for a duplicate path.
                if server
                    .locations
                    .iter()
                    .any(|l| l.path == p && l.modifier == modifier)
                {
                    continue;
                }
                server.locations.push(Location {
                    modifier,
                    path: p,
                    upstream: sref.upstream_name(),
                    timeouts,
                    ingress: id.clone(),
                });
            }
        }
    }
    Ok(Rendered {
        conf: write_conf(ctx, &servers, &upstreams),
        warnings,
    })
}

fn q(p: &Path) -> String {
    // nginx takes double-quoted strings; temp paths contain no quotes, but be safe.
    format!("\"{}\"", p.display().to_string().replace('"', "\\\""))
}

fn write_conf(
    ctx: &RenderContext,
    servers: &BTreeMap<String, Server>,
    upstreams: &BTreeMap<String, SocketAddr>,
) -> String {
    let c = &ctx.config;
    let pre = &ctx.prefix;
    let listen = match ctx.listen {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Rendered by wsgate-local after ingress-nginx controller-v1.15.1 nginx.tmpl."
    );
    let _ = writeln!(o, "pid {};", q(&pre.join("nginx.pid")));
    // info: nginx logs proxy timeouts ("upstream timed out") at info level, and the suite reads them.
    let _ = writeln!(o, "error_log {} info;", q(&pre.join("error.log")));
    // As the controller: one worker per core, each with its own listening socket (reuseport).
    let _ = writeln!(o, "worker_processes auto;");
    let _ = writeln!(o, "worker_rlimit_nofile {};", ctx.nofile);
    let _ = writeln!(
        o,
        "worker_shutdown_timeout {}ms;",
        c.worker_shutdown_timeout.as_millis()
    );
    let _ = writeln!(
        o,
        "events {{\n    worker_connections 16384;\n    multi_accept on;\n}}"
    );
    let _ = writeln!(o, "http {{");
    let _ = writeln!(o, "    access_log {} ;", q(&pre.join("access.log")));
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(o, "    {t}_temp_path {};", q(&pre.join("tmp").join(t)));
    }
    let _ = writeln!(o, "    default_type text/plain;");
    let _ = writeln!(o, "    server_tokens off;");
    let _ = writeln!(o, "    keepalive_timeout {}s;", c.keep_alive);
    let _ = writeln!(
        o,
        "    client_header_timeout 60s;\n    client_body_timeout 60s;"
    );
    let _ = writeln!(o, "    ssl_protocols TLSv1.2 TLSv1.3;");
    let _ = writeln!(o, "    ssl_prefer_server_ciphers on;");
    // The controller's Lua redirect drops one trailing `/` of the request URI (unless
    // preserve-trailing-slash): `http://h/` goes to `https://h`.
    let _ = writeln!(
        o,
        "    map $request_uri $redirect_uri {{\n        \"~^(?<kept>.*)/$\" $kept;\n        default $request_uri;\n    }}"
    );
    // Upstream keepalive is on by default (320), so an empty Upgrade maps to '' not 'close'.
    let _ = writeln!(
        o,
        "    map $http_upgrade $connection_upgrade {{\n        default upgrade;\n        '' '';\n    }}"
    );
    for (name, addr) in upstreams {
        let _ = writeln!(
            o,
            "    upstream {name} {{\n        server {addr};\n        keepalive 320;\n    }}"
        );
    }
    // The default server: unknown hosts get 404 and the fake certificate, as with the controller.
    let _ = writeln!(o, "    server {{");
    let _ = writeln!(
        o,
        "        listen {listen}:{} default_server;",
        ctx.http_port
    );
    let _ = writeln!(
        o,
        "        listen {listen}:{} ssl default_server;",
        ctx.https_port
    );
    let _ = writeln!(o, "        server_name _;");
    let _ = writeln!(
        o,
        "        ssl_certificate {};\n        ssl_certificate_key {};",
        q(&ctx.default_cert.cert),
        q(&ctx.default_cert.key)
    );
    let _ = writeln!(o, "        location / {{ return 404; }}\n    }}");
    for (host, server) in servers {
        let _ = writeln!(o, "    server {{");
        let _ = writeln!(o, "        server_name {host};");
        let _ = writeln!(o, "        listen {listen}:{};", ctx.http_port);
        let _ = writeln!(o, "        listen {listen}:{} ssl;", ctx.https_port);
        let cert = server.tls.as_ref().unwrap_or(&ctx.default_cert);
        let _ = writeln!(
            o,
            "        ssl_certificate {};\n        ssl_certificate_key {};",
            q(&cert.cert),
            q(&cert.key)
        );
        if server.tls.is_some() {
            let _ = writeln!(
                o,
                "        add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;"
            );
        }
        for loc in &server.locations {
            let t = loc.timeouts;
            let _ = writeln!(o, "        # Ingress {}", loc.ingress);
            let _ = writeln!(o, "        location {}{} {{", loc.modifier, loc.path);
            if server.tls.is_some() && c.ssl_redirect {
                let _ = writeln!(
                    o,
                    "            if ($scheme = http) {{ return 308 https://$host$redirect_uri; }}"
                );
            }
            let _ = writeln!(o, "            proxy_set_header Host $host;");
            let _ = writeln!(o, "            proxy_set_header Upgrade $http_upgrade;");
            let _ = writeln!(
                o,
                "            proxy_set_header Connection $connection_upgrade;"
            );
            let _ = writeln!(o, "            proxy_set_header X-Real-IP $remote_addr;");
            let _ = writeln!(
                o,
                "            proxy_set_header X-Forwarded-For $remote_addr;"
            );
            let _ = writeln!(o, "            proxy_set_header X-Forwarded-Host $host;");
            let _ = writeln!(o, "            proxy_set_header X-Forwarded-Proto $scheme;");
            let _ = writeln!(o, "            proxy_connect_timeout {}s;", t.connect);
            let _ = writeln!(o, "            proxy_send_timeout {}s;", t.send);
            let _ = writeln!(o, "            proxy_read_timeout {}s;", t.read);
            let _ = writeln!(o, "            proxy_buffering off;");
            let _ = writeln!(o, "            proxy_request_buffering on;");
            let _ = writeln!(o, "            proxy_http_version 1.1;");
            let _ = writeln!(o, "            proxy_pass http://{};", loc.upstream);
            let _ = writeln!(o, "        }}");
        }
        let _ = writeln!(o, "    }}");
    }
    let _ = writeln!(o, "}}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wsgate_manifests::{Documented, PROXY_READ_TIMEOUT, TLS_SECRET_NAME, Variant, apply_tls};

    fn ctx() -> RenderContext {
        RenderContext {
            config: ControllerConfig::default(),
            listen: "127.0.0.1".parse().unwrap(),
            http_port: 18080,
            https_port: 18443,
            backends: BTreeMap::from([(
                ServiceRef::new("default", "websocket-server", 3000),
                "127.0.0.1:40000".parse().unwrap(),
            )]),
            secrets: BTreeMap::from([(
                ("default".to_string(), TLS_SECRET_NAME.to_string()),
                CertFiles {
                    cert: "/p/secrets/ws.crt".into(),
                    key: "/p/secrets/ws.key".into(),
                },
            )]),
            default_cert: CertFiles {
                cert: "/p/fake.crt".into(),
                key: "/p/fake.key".into(),
            },
            prefix: "/p".into(),
            nofile: 65536,
        }
    }

    /// The block of the server for `host`.
    fn server_block<'a>(conf: &'a str, host: &str) -> &'a str {
        let start = conf
            .find(&format!("server_name {host};"))
            .expect("server block for host");
        let end = conf[start..].find("\n    }\n").unwrap() + start;
        &conf[start..end]
    }

    #[test]
    fn documented_ingress_renders_upgrade_headers_and_3600_timeouts() {
        let d = Documented::shipped().unwrap();
        let r = render(&[d.ingress], &ctx()).unwrap();
        assert!(r.warnings.is_empty());
        let s = server_block(&r.conf, "test.example.com");
        for line in [
            "location / {",
            "proxy_set_header Upgrade $http_upgrade;",
            "proxy_set_header Connection $connection_upgrade;",
            "proxy_http_version 1.1;",
            "proxy_buffering off;",
            "proxy_connect_timeout 5s;",
            "proxy_send_timeout 3600s;",
            "proxy_read_timeout 3600s;",
            "proxy_pass http://default-websocket-server-3000;",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        assert!(
            !s.contains("return 308"),
            "no TLS yet, so no redirect:\n{s}"
        );
        assert!(r.conf.contains("server 127.0.0.1:40000;"));
        assert!(r.conf.contains(
            "map $http_upgrade $connection_upgrade {\n        default upgrade;\n        '' '';"
        ));
        assert!(r.conf.contains("worker_shutdown_timeout 240000ms;"));
    }

    #[test]
    fn variant_without_annotations_gets_controller_defaults() {
        let d = Documented::shipped().unwrap();
        let ing = Variant::without_annotations().ingress(&d.ingress);
        let r = render(&[ing], &ctx()).unwrap();
        let s = server_block(&r.conf, "no-annotations.test.example.com");
        assert!(
            s.contains("proxy_read_timeout 60s;") && s.contains("proxy_send_timeout 60s;"),
            "{s}"
        );
    }

    #[test]
    fn configmap_defaults_are_used_for_unannotated_ingresses() {
        let d = Documented::shipped().unwrap();
        let ing = Variant::without_annotations().ingress(&d.ingress);
        let mut c = ctx();
        c.config.proxy_read_timeout = 7;
        c.config.worker_shutdown_timeout = Duration::from_secs(2);
        let r = render(&[ing], &c).unwrap();
        assert!(r.conf.contains("proxy_read_timeout 7s;"));
        assert!(r.conf.contains("worker_shutdown_timeout 2000ms;"));
    }

    #[test]
    fn invalid_annotation_falls_back_and_is_reported() {
        let d = Documented::shipped().unwrap();
        let ing = Variant::derived("bad", "bad", &[(PROXY_READ_TIMEOUT, Some("3600s"))])
            .ingress(&d.ingress);
        let r = render(&[ing], &ctx()).unwrap();
        let s = server_block(&r.conf, "bad.test.example.com");
        assert!(s.contains("proxy_read_timeout 60s;"), "{s}");
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].ingress, "default/ws-bad");
        assert_eq!(r.warnings[0].value, "3600s");
    }

    #[test]
    fn tls_patch_adds_certificate_and_308_redirect() {
        let mut ing = Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        let r = render(&[ing], &ctx()).unwrap();
        let s = server_block(&r.conf, "test.example.com");
        assert!(s.contains("ssl_certificate \"/p/secrets/ws.crt\";"), "{s}");
        assert!(
            s.contains("if ($scheme = http) { return 308 https://$host$redirect_uri; }"),
            "{s}"
        );
        assert!(r.conf.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
    }

    #[test]
    fn ssl_redirect_false_keeps_plain_http() {
        let mut ing = Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        let mut c = ctx();
        c.config.ssl_redirect = false;
        let r = render(&[ing], &c).unwrap();
        assert!(!r.conf.contains("return 308"));
    }

    #[test]
    fn missing_secret_names_ingress_and_secret() {
        let mut ing = Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], "other-secret");
        let e = render(&[ing], &ctx()).unwrap_err();
        assert!(
            e.to_string().contains("default/ws") && e.to_string().contains("other-secret"),
            "{e}"
        );
    }

    #[test]
    fn missing_backend_names_the_service() {
        let ing = Documented::shipped().unwrap().ingress;
        let mut c = ctx();
        c.backends.clear();
        let e = render(&[ing], &c).unwrap_err();
        assert_eq!(
            e,
            RenderError::NoBackend {
                ingress: "default/ws".into(),
                service: "default/websocket-server".into(),
                port: 3000
            }
        );
    }

    #[test]
    fn several_variants_share_one_upstream_and_get_their_own_servers() {
        let d = Documented::shipped().unwrap();
        let ings: Vec<_> = [
            Variant::documented(),
            Variant::without_annotations(),
            Variant::short(3),
        ]
        .iter()
        .map(|v| v.ingress(&d.ingress))
        .collect();
        let r = render(&ings, &ctx()).unwrap();
        assert_eq!(
            r.conf
                .matches("upstream default-websocket-server-3000")
                .count(),
            1
        );
        assert!(
            server_block(&r.conf, "short-3.test.example.com").contains("proxy_read_timeout 3s;")
        );
        assert!(server_block(&r.conf, "test.example.com").contains("proxy_read_timeout 3600s;"));
    }
}
