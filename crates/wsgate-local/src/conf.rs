//! nginx.conf written from the model the way ingress-nginx controller-v1.15.1's `nginx.tmpl`
//! renders what the suite uses. A small block writer keeps this file shaped like its output.

use std::fmt::Display;
use std::net::IpAddr;
use std::path::Path;

use crate::model::{Match, Model, RenderContext};

/// Indented lines and `{ }` blocks.
#[derive(Default)]
struct Conf {
    out: String,
    depth: usize,
}

impl Conf {
    fn line(&mut self, text: impl Display) -> &mut Self {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
        self.out.push_str(&text.to_string());
        self.out.push('\n');
        self
    }

    fn block(&mut self, head: impl Display, body: impl FnOnce(&mut Self)) -> &mut Self {
        self.line(format_args!("{head} {{"));
        self.depth += 1;
        body(self);
        self.depth -= 1;
        self.line("}")
    }
}

/// A path as an nginx string.
fn q(p: &Path) -> String {
    format!("\"{}\"", p.display().to_string().replace('"', "\\\""))
}

/// A location path as the controller quotes it (`sanitizeQuotedRegex`).
fn quoted(path: &str) -> String {
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The whole nginx.conf for `model`.
pub fn write(ctx: &RenderContext, model: &Model) -> String {
    let c = &ctx.config;
    let pre = &ctx.prefix;
    let listen = match ctx.listen {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let mut o = Conf::default();
    o.line("# Rendered by wsgate-local after ingress-nginx controller-v1.15.1 nginx.tmpl.");
    o.line(format_args!("pid {};", q(&pre.join("nginx.pid"))));
    // info: nginx logs proxy timeouts ("upstream timed out") at info level, and the suite reads them.
    o.line(format_args!(
        "error_log {} info;",
        q(&pre.join("error.log"))
    ));
    // As the controller: one worker per core, each with its own listening socket (reuseport).
    o.line("worker_processes auto;");
    o.line(format_args!("worker_rlimit_nofile {};", ctx.nofile));
    o.line(format_args!(
        "worker_shutdown_timeout {}ms;",
        c.worker_shutdown_timeout.as_millis()
    ));
    o.block("events", |o| {
        o.line("worker_connections 16384;").line("multi_accept on;");
    });
    o.block("http", |o| {
        o.line(format_args!("access_log {} ;", q(&pre.join("access.log"))));
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            o.line(format_args!("{t}_temp_path {};", q(&pre.join("tmp").join(t))));
        }
        o.line("default_type text/plain;").line("server_tokens off;");
        o.line(format_args!("keepalive_timeout {}s;", c.keep_alive));
        o.line("client_header_timeout 60s;")
            .line("client_body_timeout 60s;");
        o.line("ssl_protocols TLSv1.2 TLSv1.3;")
            .line("ssl_prefer_server_ciphers on;");
        // The controller's Lua redirect drops one trailing `/` of the request URI (unless
        // preserve-trailing-slash): `http://h/` goes to `https://h`.
        o.block("map $request_uri $redirect_uri", |o| {
            o.line("\"~^(?<kept>.*)/$\" $kept;")
                .line("default $request_uri;");
        });
        // Upstream keepalive is on by default (320), so an empty Upgrade maps to '' not 'close'.
        o.block("map $http_upgrade $connection_upgrade", |o| {
            o.line("default upgrade;").line("'' '';");
        });
        for (name, addr) in &model.upstreams {
            o.block(format_args!("upstream {name}"), |o| {
                o.line(format_args!("server {addr};"))
                    .line("keepalive 320;");
            });
        }
        // The default server: unknown hosts get 404 and the fake certificate, as with the controller.
        o.block("server", |o| {
            o.line(format_args!("listen {listen}:{} default_server;", ctx.http_port));
            o.line(format_args!(
                "listen {listen}:{} ssl default_server;",
                ctx.https_port
            ));
            o.line("server_name _;");
            o.line(format_args!("ssl_certificate {};", q(&ctx.default_cert.cert)));
            o.line(format_args!(
                "ssl_certificate_key {};",
                q(&ctx.default_cert.key)
            ));
            o.line("location / { return 404; }");
        });
        for server in &model.servers {
            o.block("server", |o| {
                o.line(format_args!("server_name {};", server.host));
                o.line(format_args!("listen {listen}:{};", ctx.http_port));
                o.line(format_args!("listen {listen}:{} ssl;", ctx.https_port));
                let cert = server.tls.as_ref().unwrap_or(&ctx.default_cert);
                o.line(format_args!("ssl_certificate {};", q(&cert.cert)));
                o.line(format_args!("ssl_certificate_key {};", q(&cert.key)));
                if server.has_tls() {
                    o.line("add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;");
                }
                for loc in &server.locations {
                    let t = loc.timeouts;
                    o.line(format_args!("# Ingress {} path {}", loc.ingress, loc.ingress_path));
                    let head = match loc.matching {
                        Match::Exact => format!("location = {}", quoted(&loc.path)),
                        Match::Prefix => format!("location {}", quoted(&loc.path)),
                    };
                    o.block(head, |o| {
                        if server.has_tls() && c.ssl_redirect {
                            o.line(
                                "if ($scheme = http) { return 308 https://$host$redirect_uri; }",
                            );
                        }
                        o.line("proxy_set_header Host $host;")
                            .line("proxy_set_header Upgrade $http_upgrade;")
                            .line("proxy_set_header Connection $connection_upgrade;")
                            .line("proxy_set_header X-Real-IP $remote_addr;")
                            .line("proxy_set_header X-Forwarded-For $remote_addr;")
                            .line("proxy_set_header X-Forwarded-Host $host;")
                            .line("proxy_set_header X-Forwarded-Proto $scheme;");
                        o.line(format_args!("proxy_connect_timeout {}s;", t.connect.seconds))
                            .line(format_args!("proxy_send_timeout {}s;", t.send.seconds))
                            .line(format_args!("proxy_read_timeout {}s;", t.read.seconds));
                        o.line("proxy_buffering off;")
                            .line("proxy_request_buffering on;")
                            .line("proxy_http_version 1.1;")
                            .line(format_args!("proxy_pass http://{};", loc.upstream));
                    });
                }
            });
        }
    });
    o.out
}
