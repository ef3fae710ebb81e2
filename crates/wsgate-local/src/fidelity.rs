//! How the local tier's nginx.conf compares with what ingress-nginx controller-v1.15.1 renders
//! (`rootfs/etc/nginx/template/nginx.tmpl`, `internal/ingress/controller/config/config.go`),
//! directive by directive along a WebSocket request's path. docs/fidelity.md's table is
//! generated from this list, and a test checks every directive marked the same is in the rendered file.

/// How the local tier renders a directive compared with the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fidelity {
    /// Rendered the same; the text is in the local nginx.conf.
    Same { text: &'static str },
    /// Rendered differently, and why.
    Different { why: &'static str },
    /// Not rendered, and why that does not matter for WebSockets here.
    NotRendered { why: &'static str },
}

/// One directive on a WebSocket request's path.
#[derive(Debug, Clone, Copy)]
pub struct Directive {
    pub directive: &'static str,
    /// What the controller renders with its defaults.
    pub controller: &'static str,
    pub local: Fidelity,
}

use Fidelity::{Different, NotRendered, Same};

/// The controller's default `ssl-ciphers`.
pub const SSL_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256";

pub const DIRECTIVES: &[Directive] = &[
    Directive {
        directive: "listen (Ingress hosts)",
        controller: "`listen 80 ;` and `listen 443 ssl;`",
        local: Different {
            why: "loopback and two free ports instead of 80/443, so tests never collide; the flags are the same",
        },
    },
    Directive {
        directive: "listen (default server)",
        controller: "`default_server reuseport backlog=N`",
        local: Same {
            text: "default_server reuseport backlog=511",
        },
    },
    Directive {
        directive: "http2 (`use-http2`, default true)",
        controller: "`http2 on;` in every server",
        local: Different {
            why: "`http2 on;` on nginx 1.25.1 and later; Debian's nginx 1.22 predates that directive, so there it is the `http2` flag of the TLS `listen`, with the same effect",
        },
    },
    Directive {
        directive: "map $http_upgrade $connection_upgrade",
        controller: "`default upgrade; '' '';` (upstream keepalive is on)",
        local: Same {
            text: "map $http_upgrade $connection_upgrade {\n        default upgrade;\n        '' '';",
        },
    },
    Directive {
        directive: "proxy_set_header Upgrade",
        controller: "`$http_upgrade`",
        local: Same {
            text: "proxy_set_header Upgrade $http_upgrade;",
        },
    },
    Directive {
        directive: "proxy_set_header Connection",
        controller: "`$connection_upgrade`",
        local: Same {
            text: "proxy_set_header Connection $connection_upgrade;",
        },
    },
    Directive {
        directive: "proxy_set_header Host",
        controller: "`$best_http_host` (`$http_host`, else `$host`)",
        local: Same {
            text: "proxy_set_header Host $best_http_host;",
        },
    },
    Directive {
        directive: "proxy_set_header X-Request-ID, X-Real-IP, X-Forwarded-For/-Host/-Proto/-Scheme, X-Scheme, X-Original-Forwarded-For/-Host, Proxy",
        controller: "`$req_id`, `$remote_addr`, `$best_http_host`, `$pass_access_scheme`, `\"\"`",
        local: Same {
            text: "proxy_set_header X-Forwarded-Proto $pass_access_scheme;",
        },
    },
    Directive {
        directive: "proxy_set_header X-Forwarded-Port",
        controller: "`$pass_port` (443 on the TLS port)",
        local: Different {
            why: "`$server_port`: the local ports are free ports, not 80/443",
        },
    },
    Directive {
        directive: "proxy_http_version",
        controller: "`1.1`",
        local: Same {
            text: "proxy_http_version 1.1;",
        },
    },
    Directive {
        directive: "proxy_read_timeout / proxy_send_timeout / proxy_connect_timeout",
        controller: "annotation, else ConfigMap, else 60s / 60s / 5s",
        local: Same {
            text: "proxy_connect_timeout 5s;",
        },
    },
    Directive {
        directive: "proxy_buffering / proxy_request_buffering",
        controller: "`off` / `on`",
        local: Same {
            text: "proxy_buffering off;\n            proxy_request_buffering on;",
        },
    },
    Directive {
        directive: "proxy_buffer_size / proxy_buffers / proxy_max_temp_file_size",
        controller: "`4k` / `4 4k` / `1024m`",
        local: Same {
            text: "proxy_buffers 4 4k;",
        },
    },
    Directive {
        directive: "proxy_next_upstream (+ _timeout, _tries)",
        controller: "`error timeout`, `0`, `3`",
        local: Same {
            text: "proxy_next_upstream error timeout;",
        },
    },
    Directive {
        directive: "proxy_redirect / proxy_cookie_domain / proxy_cookie_path / client_max_body_size",
        controller: "`off` / `off` / `off` / `1m`",
        local: Same {
            text: "proxy_redirect off;",
        },
    },
    Directive {
        directive: "upstream keepalive (connections, time, timeout, requests)",
        controller: "`upstream_balancer` (Lua) with `keepalive 320; keepalive_time 1h; keepalive_timeout 60s; keepalive_requests 10000;`",
        local: Different {
            why: "a plain upstream per Service port (no Lua in a stock nginx), with the same keepalive settings",
        },
    },
    Directive {
        directive: "keepalive_timeout / keepalive_requests (clients)",
        controller: "`75s` / `1000`",
        local: Same {
            text: "keepalive_timeout 75s;",
        },
    },
    Directive {
        directive: "client_header_timeout / client_body_timeout / reset_timedout_connection",
        controller: "`60s` / `60s` / `on`",
        local: Same {
            text: "reset_timedout_connection on;",
        },
    },
    Directive {
        directive: "worker_shutdown_timeout",
        controller: "`240s` (ConfigMap `worker-shutdown-timeout`)",
        local: Same {
            text: "worker_shutdown_timeout 240s;",
        },
    },
    Directive {
        directive: "worker_processes / worker_connections / multi_accept",
        controller: "the CPUs the controller may run on (`runtime.NumCPU()`) / `16384` / `on`",
        local: Same {
            text: "worker_connections 16384;",
        },
    },
    Directive {
        directive: "ssl_protocols",
        controller: "`TLSv1.2 TLSv1.3`",
        local: Same {
            text: "ssl_protocols TLSv1.2 TLSv1.3;",
        },
    },
    Directive {
        directive: "ssl_ciphers / ssl_prefer_server_ciphers",
        controller: "the controller's ECDHE/DHE GCM and CHACHA20 list / `on`",
        local: Same {
            text: "ssl_prefer_server_ciphers on;",
        },
    },
    Directive {
        directive: "ssl_session_cache / _timeout / _tickets, ssl_buffer_size, ssl_ecdh_curve, ssl_early_data",
        controller: "`shared:SSL:10m`, `10m`, `off`, `4k`, `auto`, `off`",
        local: Same {
            text: "ssl_session_tickets off;",
        },
    },
    Directive {
        directive: "certificates",
        controller: "`ssl_certificate_by_lua`: the Secret's certificate by SNI, else the fake certificate",
        local: Different {
            why: "`ssl_certificate` per server (no Lua); the default server and hosts without TLS present a generated fake certificate",
        },
    },
    Directive {
        directive: "ssl-redirect (308)",
        controller: "Lua rewrite: plain http to a TLS host gets 308 to `https://host` + the URI without one trailing `/`",
        local: Different {
            why: "`if ($scheme = http) { return 308 https://$host$redirect_uri; }` with the same Location (tested)",
        },
    },
    Directive {
        directive: "HSTS",
        controller: "Lua header filter: `Strict-Transport-Security: max-age=31536000; includeSubDomains` on https responses",
        local: Different {
            why: "`add_header ... always` from a map on `$scheme`: the same header on https responses",
        },
    },
    Directive {
        directive: "default server",
        controller: "`server_name _` proxies to the default backend, which answers 404",
        local: Different {
            why: "`return 404;` directly: the same answer to an unknown host",
        },
    },
    Directive {
        directive: "access log format, Lua phases, real IP, geoip, gzip, proxy_protocol, ModSecurity, OpenTelemetry",
        controller: "off or not on a WebSocket's path by default",
        local: NotRendered {
            why: "off by default or unrelated to holding an upgraded connection open",
        },
    },
];

/// The table of [`DIRECTIVES`] as Markdown, for docs/fidelity.md.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| directive | controller-v1.15.1 renders | local tier |\n|---|---|---|\n");
    for d in DIRECTIVES {
        let local = match d.local {
            Same { .. } => "rendered the same".to_owned(),
            Different { why } => format!("rendered differently: {why}"),
            NotRendered { why } => format!("not rendered: {why}"),
        };
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            d.directive.replace('|', "\\|"),
            d.controller.replace('|', "\\|"),
            local.replace('|', "\\|")
        ));
    }
    out
}
