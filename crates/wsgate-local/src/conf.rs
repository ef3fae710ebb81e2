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

/// A duration the way nginx writes it: whole seconds as `240s`, else `1500ms`.
fn nginx_time(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The whole nginx.conf for `model`.
pub fn write(ctx: &RenderContext, model: &Model) -> String {
    let c = &ctx.config;
    let pre = &ctx.prefix;
    let listen = match ctx.listen {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    // HTTP/2 on TLS as the controller has it (`use-http2`): `http2 on;` in each server where
    // nginx has that directive (1.25.1), else the `http2` flag on every TLS listen of the port.
    let h2_directive = c.use_http2 && ctx.nginx_version.has_http2_directive();
    let h2_flag = if c.use_http2 && !h2_directive {
        " http2"
    } else {
        ""
    };
    let mut o = Conf::default();
    o.line("# Rendered by wsgate-local after ingress-nginx controller-v1.15.1 nginx.tmpl.");
    o.line(format_args!("pid {};", q(&pre.join("nginx.pid"))));
    // info: nginx logs proxy timeouts ("upstream timed out") at info level, and the suite reads them.
    o.line(format_args!(
        "error_log {} info;",
        q(&pre.join("error.log"))
    ));
    // As the controller: one worker per CPU it may run on, each with its own listening socket
    // (reuseport).
    o.line(format_args!("worker_processes {};", ctx.workers));
    o.line(format_args!("worker_rlimit_nofile {};", ctx.nofile));
    o.line(format_args!(
        "worker_shutdown_timeout {};",
        nginx_time(c.worker_shutdown_timeout)
    ));
    o.block("events", |o| {
        o.line("worker_connections 16384;")
            .line("multi_accept on;")
            .line("use epoll;");
    });
    o.block("http", |o| {
        o.line(format_args!("access_log {} ;", q(&pre.join("access.log"))));
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            o.line(format_args!("{t}_temp_path {};", q(&pre.join("tmp").join(t))));
        }
        o.line("default_type text/plain;").line("server_tokens off;");
        o.line(format_args!("keepalive_timeout {}s;", c.keep_alive))
            .line("keepalive_requests 1000;")
            .line("client_header_timeout 60s;")
            .line("client_body_timeout 60s;")
            .line("reset_timedout_connection on;")
            .line("client_max_body_size 1m;");
        o.line("ssl_protocols TLSv1.2 TLSv1.3;")
            .line("ssl_early_data off;")
            .line("ssl_session_cache shared:SSL:10m;")
            .line("ssl_session_timeout 10m;")
            .line("ssl_session_tickets off;")
            .line("ssl_buffer_size 4k;")
            .line(format_args!("ssl_ciphers '{}';", crate::fidelity::SSL_CIPHERS))
            .line("ssl_prefer_server_ciphers on;")
            .line("ssl_ecdh_curve auto;");
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
        o.block("map $http_host $best_http_host", |o| {
            o.line("default $http_host;").line("'' $host;");
        });
        o.block("map $http_x_request_id $req_id", |o| {
            o.line("default $http_x_request_id;")
                .line("'' $request_id;");
        });
        // The controller's header filter adds HSTS to https responses.
        o.block("map $scheme $hsts_header", |o| {
            o.line("https \"max-age=31536000; includeSubDomains\";")
                .line("default '';");
        });
        for (name, addr) in &model.upstreams {
            o.block(format_args!("upstream {name}"), |o| {
                o.line(format_args!("server {addr};"))
                    .line("keepalive 320;")
                    .line("keepalive_time 1h;")
                    .line("keepalive_timeout 60s;")
                    .line("keepalive_requests 10000;");
            });
        }
        // The default server: unknown hosts get 404 and the fake certificate, as with the controller.
        o.block("server", |o| {
            o.line(format_args!(
                "listen {listen}:{} default_server reuseport backlog=511;",
                ctx.http_port
            ));
            o.line(format_args!(
                "listen {listen}:{} default_server reuseport backlog=511 ssl{h2_flag};",
                ctx.https_port
            ));
            o.line("server_name _;");
            if h2_directive {
                o.line("http2 on;");
            }
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
                o.line(format_args!("listen {listen}:{} ssl{h2_flag};", ctx.https_port));
                if h2_directive {
                    o.line("http2 on;");
                }
                let cert = server.tls.as_ref().unwrap_or(&ctx.default_cert);
                o.line(format_args!("ssl_certificate {};", q(&cert.cert)));
                o.line(format_args!("ssl_certificate_key {};", q(&cert.key)));
                o.line("add_header Strict-Transport-Security $hsts_header always;");
                for loc in &server.locations {
                    let t = loc.timeouts;
                    o.line(format_args!("# Ingress {} path {}", loc.ingress, loc.ingress_path));
                    let head = match loc.matching {
                        Match::Exact => format!("location = {}", quoted(&loc.path)),
                        Match::Prefix => format!("location {}", quoted(&loc.path)),
                    };
                    o.block(head, |o| {
                        o.line("set $pass_access_scheme $scheme;")
                            .line("set $pass_port $server_port;");
                        if server.has_tls() && c.ssl_redirect {
                            o.line(
                                "if ($scheme = http) { return 308 https://$host$redirect_uri; }",
                            );
                        }
                        o.line("proxy_set_header Host $best_http_host;")
                            .line("proxy_set_header Upgrade $http_upgrade;")
                            .line("proxy_set_header Connection $connection_upgrade;")
                            .line("proxy_set_header X-Request-ID $req_id;")
                            .line("proxy_set_header X-Real-IP $remote_addr;")
                            .line("proxy_set_header X-Forwarded-For $remote_addr;")
                            .line("proxy_set_header X-Forwarded-Host $best_http_host;")
                            .line("proxy_set_header X-Forwarded-Port $pass_port;")
                            .line("proxy_set_header X-Forwarded-Proto $pass_access_scheme;")
                            .line("proxy_set_header X-Forwarded-Scheme $pass_access_scheme;")
                            .line("proxy_set_header X-Scheme $pass_access_scheme;")
                            .line("proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;")
                            .line("proxy_set_header X-Original-Forwarded-Host $http_x_forwarded_host;")
                            .line("proxy_set_header Proxy \"\";");
                        o.line(format_args!("proxy_connect_timeout {}s;", t.connect.seconds))
                            .line(format_args!("proxy_send_timeout {}s;", t.send.seconds))
                            .line(format_args!("proxy_read_timeout {}s;", t.read.seconds));
                        o.line("proxy_buffering off;")
                            .line("proxy_request_buffering on;")
                            .line("proxy_buffer_size 4k;")
                            .line("proxy_buffers 4 4k;")
                            .line("proxy_max_temp_file_size 1024m;")
                            .line("proxy_http_version 1.1;")
                            .line("proxy_cookie_domain off;")
                            .line("proxy_cookie_path off;")
                            .line("proxy_next_upstream error timeout;")
                            .line("proxy_next_upstream_timeout 0;")
                            .line("proxy_next_upstream_tries 3;")
                            .line("proxy_redirect off;")
                            .line(format_args!("proxy_pass http://{};", loc.upstream));
                    });
                }
            });
        }
    });
    o.out
}
