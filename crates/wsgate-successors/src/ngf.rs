//! NGINX Gateway Fabric: the Gateway API objects as its v2.6.7 templates render them for
//! nginx (`internal/controller/nginx/config/`: `servers_template.go`, `servers.go`,
//! `base_http_config_template.go`, `upstreams.go`), run by nginx 1.31.3, the version it ships.
//! Its module is not served here, so this is rendered by hand; every departure is in
//! [`FIDELITY`]. What matters for WebSockets is rendered as NGF renders it: HTTP/1.1 to the
//! upstream, `Upgrade`/`Connection` from `$http_upgrade`, upstream keepalive 16, HTTP/2 on TLS,
//! and no proxy timeouts at all (HTTPRoute `timeouts` are an unsupported field there, so
//! nginx's 60 s apply) unless a ProxySettingsPolicy sets them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::SuccessorError;
use crate::gateway_api::Translated;
use crate::proxy::{Proxy, free_port};

/// Where NGF's rendering departs from what this renders, and why it does not change a
/// WebSocket's path.
pub const FIDELITY: [&str; 5] = [
    "listens on two free loopback ports instead of 80/443",
    "no njs (NGF loads httpmatches.js for header and query matches; these routes match paths only)",
    "no stub_status server and no readiness server (the wheel's nginx has no stub_status; neither is on a request's path)",
    "no 421 check of SNI against Host on TLS servers (the probes send the same name in both)",
    "ProxySettingsPolicy rendered from its generator's rule (timeout.read/send/connect to proxy_*_timeout), not by NGF",
];

/// A ProxySettingsPolicy's timeouts, in seconds, for every route (what restores a read timeout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub read: Option<u64>,
    pub send: Option<u64>,
}

/// A backend Service port: namespace, name, port.
pub type ServicePort = (String, String, i64);

fn upstream_name((ns, svc, port): &ServicePort) -> String {
    format!("{ns}_{svc}_{port}")
}

/// The locations NGF makes of a path match (`servers.go`): PathPrefix `/p` is `/p/` and
/// `= /p`, a PathPrefix ending in `/` is itself alone, Exact `/p` is `= /p`.
fn locations(kind: &str, value: &str) -> Vec<String> {
    match (kind, value) {
        ("Exact", v) => vec![format!("= {v}")],
        (_, v) if v.ends_with('/') => vec![v.to_owned()],
        (_, v) => vec![format!("{v}/"), format!("= {v}")],
    }
}

/// The nginx.conf for `t`, its backends served at `backends`, TLS Secrets' files at `certs`
/// (by `namespace/name`), on `ports` (ws, wss), in `prefix`.
pub fn render(
    t: &Translated,
    backends: &BTreeMap<ServicePort, SocketAddr>,
    certs: &BTreeMap<String, (PathBuf, PathBuf)>,
    ports: (u16, u16),
    prefix: &Path,
    policy: ProxySettings,
) -> Result<String, SuccessorError> {
    let p = |f: &str| prefix.join(f).display().to_string();
    let mut c = String::new();
    let w = &mut c;
    let _ = writeln!(
        w,
        "# Rendered by wsgate after NGINX Gateway Fabric v2.6.7's templates; no NGF code runs."
    );
    let _ = writeln!(
        w,
        "worker_processes auto;\npid {};\nerror_log {} info;",
        p("nginx.pid"),
        p("error.log")
    );
    let _ = writeln!(w, "events {{}}\nhttp {{");
    for (k, v) in [
        ("default_type", "application/octet-stream"),
        ("proxy_headers_hash_bucket_size", "512"),
        ("proxy_headers_hash_max_size", "1024"),
        ("server_names_hash_bucket_size", "512"),
        ("server_names_hash_max_size", "1024"),
        ("variables_hash_bucket_size", "512"),
        ("variables_hash_max_size", "1024"),
        ("map_hash_bucket_size", "512"),
        ("map_hash_max_size", "2048"),
        ("sendfile", "on"),
        ("tcp_nopush", "on"),
        ("http2", "on"),
    ] {
        let _ = writeln!(w, "  {k} {v};");
    }
    let _ = writeln!(w, "  access_log {};", p("access.log"));
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(w, "  {t}_temp_path {};", p(&format!("tmp-{t}")));
    }
    let _ = writeln!(
        w,
        "  map $http_host $gw_api_compliant_host {{\n    '' $host;\n    default $http_host;\n  }}"
    );
    let _ = writeln!(
        w,
        "  map $http_upgrade $connection_upgrade {{\n    default upgrade;\n    '' close;\n  }}"
    );
    let _ = writeln!(
        w,
        "  map $http_upgrade $connection_keepalive {{\n    default upgrade;\n    '' '';\n  }}"
    );
    // Upstreams: one per Service port, NGF's default balancing, zone and keepalive.
    let mut refs: Vec<ServicePort> = Vec::new();
    for r in &t.routes {
        let ns = r["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        for rule in r["spec"]["rules"].as_array().into_iter().flatten() {
            for b in rule["backendRefs"].as_array().into_iter().flatten() {
                let key = (
                    ns.clone(),
                    b["name"].as_str().unwrap_or_default().to_owned(),
                    b["port"].as_i64().unwrap_or(80),
                );
                if !refs.contains(&key) {
                    refs.push(key);
                }
            }
        }
    }
    for key in &refs {
        let addr = backends.get(key).ok_or_else(|| SuccessorError::Translate {
            what: format!("Service {}/{} port {}", key.0, key.1, key.2),
            detail: "no backend serves it here (give one with --backend)".into(),
        })?;
        let name = upstream_name(key);
        let _ = writeln!(
            w,
            "  upstream {name} {{\n    random two least_conn;\n    zone {name} 512k;\n    server {addr};\n    keepalive 16;\n  }}"
        );
    }
    let (http, https) = ports;
    let _ = writeln!(
        w,
        "  server {{\n    listen 127.0.0.1:{http} default_server;\n    default_type text/html;\n    return 404;\n  }}"
    );
    let _ = writeln!(
        w,
        "  server {{\n    listen 127.0.0.1:{https} ssl default_server;\n    ssl_reject_handshake on;\n  }}"
    );
    // One server per listener hostname and port, with the routes attached to it.
    let gateways: Vec<&Value> = t.gateways.iter().collect();
    for g in gateways {
        let ns = g["metadata"]["namespace"].as_str().unwrap_or("default");
        for l in g["spec"]["listeners"].as_array().into_iter().flatten() {
            let host = l["hostname"].as_str().unwrap_or("_");
            let listener = l["name"].as_str().unwrap_or_default();
            let tls = l["protocol"] == "HTTPS";
            let _ = writeln!(w, "  server {{");
            if tls {
                let secret = l["tls"]["certificateRefs"][0]["name"]
                    .as_str()
                    .unwrap_or_default();
                let (crt, key) = certs.get(&format!("{ns}/{secret}")).ok_or_else(|| {
                    SuccessorError::Translate {
                        what: format!("listener {listener}"),
                        detail: format!("no Secret {ns}/{secret} with tls.crt and tls.key"),
                    }
                })?;
                let _ = writeln!(
                    w,
                    "    listen 127.0.0.1:{https} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};",
                    crt.display(),
                    key.display()
                );
            } else {
                let _ = writeln!(w, "    listen 127.0.0.1:{http};");
            }
            let _ = writeln!(w, "    server_name {host};");
            let port = if tls { 443 } else { 80 };
            let routes: Vec<&Value> = t
                .routes
                .iter()
                .filter(|r| attached(r, listener, port, host))
                .collect();
            // NGF answers 404 at `/` itself when no rule covers it.
            let covers_root = routes.iter().any(|r| {
                r["spec"]["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|rule| {
                        let m = &rule["matches"][0]["path"];
                        m["value"].as_str().unwrap_or("/") == "/"
                    })
            });
            if !covers_root {
                let _ = writeln!(w, "    location = / {{\n      return 404;\n    }}");
            }
            for r in routes {
                for rule in r["spec"]["rules"].as_array().into_iter().flatten() {
                    let m = &rule["matches"][0]["path"];
                    let (kind, value) = (
                        m["type"].as_str().unwrap_or("PathPrefix"),
                        m["value"].as_str().unwrap_or("/"),
                    );
                    for loc in locations(kind, value) {
                        let _ = writeln!(w, "    location {loc} {{");
                        let redirect = rule["filters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|f| f["type"] == "RequestRedirect");
                        if let Some(f) = redirect {
                            let code = f["requestRedirect"]["statusCode"].as_i64().unwrap_or(302);
                            let _ = writeln!(w, "      return {code} https://$host$request_uri;");
                        } else {
                            let b = &rule["backendRefs"][0];
                            let key = (
                                r["metadata"]["namespace"]
                                    .as_str()
                                    .unwrap_or("default")
                                    .to_owned(),
                                b["name"].as_str().unwrap_or_default().to_owned(),
                                b["port"].as_i64().unwrap_or(80),
                            );
                            let _ = writeln!(w, "      proxy_http_version 1.1;");
                            for (h, v) in [
                                ("Host", "$gw_api_compliant_host"),
                                ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
                                ("X-Real-IP", "$remote_addr"),
                                ("X-Forwarded-Proto", "$scheme"),
                                ("X-Forwarded-Host", "$host"),
                                ("X-Forwarded-Port", "$server_port"),
                                ("Upgrade", "$http_upgrade"),
                                ("Connection", "$connection_keepalive"),
                            ] {
                                let _ = writeln!(w, "      proxy_set_header {h} \"{v}\";");
                            }
                            if let Some(s) = policy.read {
                                let _ = writeln!(w, "      proxy_read_timeout {s}s;");
                            }
                            if let Some(s) = policy.send {
                                let _ = writeln!(w, "      proxy_send_timeout {s}s;");
                            }
                            // `$request_uri` is appended in NGF's internal locations only
                            // (header and query matches); path-only routes pass as is.
                            let _ = writeln!(w, "      proxy_pass http://{};", upstream_name(&key));
                        }
                        let _ = writeln!(w, "    }}");
                    }
                }
            }
            let _ = writeln!(w, "  }}");
        }
    }
    let _ = writeln!(w, "}}");
    Ok(c)
}

/// Whether route `r` attaches to the listener: by section name, else by port, else to every
/// listener whose hostname it matches.
fn attached(r: &Value, listener: &str, port: i64, host: &str) -> bool {
    let hosts_match = r["spec"]["hostnames"]
        .as_array()
        .is_none_or(|hs| hs.iter().any(|h| h == host));
    hosts_match
        && r["spec"]["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| match (p["sectionName"].as_str(), p["port"].as_i64()) {
                (Some(s), _) => s == listener,
                (None, Some(pp)) => pp == port,
                (None, None) => true,
            })
}

/// NGF's nginx serving `t` with `backends`: the TLS Secrets' files written (keys 0600) into a
/// prefix of its own, `nginx -t` checked, then started.
pub fn serve(
    nginx: &Path,
    t: &Translated,
    backends: &BTreeMap<ServicePort, SocketAddr>,
    secrets: &[(String, String, String)],
    policy: ProxySettings,
) -> Result<Proxy, SuccessorError> {
    let dir = tempfile::Builder::new()
        .prefix("wsgate-ngf-")
        .tempdir()
        .map_err(wsgate_fs::at("create a temp dir in", &std::env::temp_dir()))?;
    let prefix = dir.path().to_owned();
    let mut certs = BTreeMap::new();
    for (id, crt, key) in secrets {
        let stem = id.replace('/', "_");
        let (c, k) = (
            prefix.join(format!("{stem}.crt")),
            prefix.join(format!("{stem}.key")),
        );
        wsgate_fs::write_with_mode(&c, crt.as_bytes(), 0o644)?;
        wsgate_fs::write_private(&k, key.as_bytes())?;
        certs.insert(id.clone(), (c, k));
    }
    let ports = (free_port()?, free_port()?);
    let conf = render(t, backends, &certs, ports, &prefix, policy)?;
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(wsgate_fs::at("write", &conf_path))?;
    let check = std::process::Command::new(nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .arg("-t")
        .output()
        .map_err(|e| SuccessorError::Command {
            command: format!("{} -t", nginx.display()),
            detail: e.to_string(),
        })?;
    if !check.status.success() {
        return Err(SuccessorError::Translate {
            what: format!(
                "NGINX Gateway Fabric's nginx.conf ({})",
                conf_path.display()
            ),
            detail: String::from_utf8_lossy(&check.stderr).trim().to_owned(),
        });
    }
    let mut cmd = std::process::Command::new(nginx);
    cmd.arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"]);
    let log = prefix.join("error.log");
    Proxy::start("nginx-gateway-fabric", cmd, ports, true, log, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway_api::translate;
    use wsgate_manifests::Documented;

    #[test]
    fn the_documented_route_renders_as_ngf_does_with_no_proxy_timeout() {
        let t = translate(&[Documented::shipped().unwrap().ingress]);
        let key = ("default".to_owned(), "websocket-server".to_owned(), 3000);
        let backends = BTreeMap::from([(key, "127.0.0.1:9".parse().unwrap())]);
        let conf = render(
            &t,
            &backends,
            &BTreeMap::new(),
            (8080, 8443),
            Path::new("/p"),
            ProxySettings::default(),
        )
        .unwrap();
        for want in [
            "upstream default_websocket-server_3000 {",
            "keepalive 16;",
            "server_name test.example.com;",
            "location / {",
            "proxy_set_header Upgrade \"$http_upgrade\";",
            "proxy_set_header Connection \"$connection_keepalive\";",
            "proxy_pass http://default_websocket-server_3000;",
            "http2 on;",
        ] {
            assert!(conf.contains(want), "{want:?} not in\n{conf}");
        }
        assert!(
            !conf.contains("proxy_read_timeout"),
            "NGF renders none: {conf}"
        );
        let restored = render(
            &t,
            &backends,
            &BTreeMap::new(),
            (8080, 8443),
            Path::new("/p"),
            ProxySettings {
                read: Some(3600),
                send: Some(3600),
            },
        )
        .unwrap();
        assert!(restored.contains("proxy_read_timeout 3600s;"), "{restored}");
    }

    #[test]
    fn a_server_without_a_root_rule_answers_404_at_the_root_itself() {
        let mut ing = Documented::shipped().unwrap().ingress;
        ing.spec.as_mut().unwrap().rules.as_mut().unwrap()[0]
            .http
            .as_mut()
            .unwrap()
            .paths[0]
            .path = Some("/chat".into());
        let t = translate(&[ing]);
        let key = ("default".to_owned(), "websocket-server".to_owned(), 3000);
        let backends = BTreeMap::from([(key, "127.0.0.1:9".parse().unwrap())]);
        let conf = render(
            &t,
            &backends,
            &BTreeMap::new(),
            (1, 2),
            Path::new("/p"),
            ProxySettings::default(),
        )
        .unwrap();
        assert!(conf.contains("location = / {\n      return 404;"), "{conf}");
        assert!(
            conf.contains("location /chat/ {") && conf.contains("location = /chat {"),
            "{conf}"
        );
    }

    #[test]
    fn a_prefix_path_is_a_prefix_location_and_an_exact_one() {
        assert_eq!(locations("PathPrefix", "/chat"), ["/chat/", "= /chat"]);
        assert_eq!(locations("PathPrefix", "/"), ["/"]);
        assert_eq!(locations("PathPrefix", "/ws/"), ["/ws/"]);
        assert_eq!(locations("Exact", "/x"), ["= /x"]);
    }
}
