//! Rendering: Ingresses in, nginx.conf and a summary of what it serves out.

use k8s_openapi::api::networking::v1::Ingress;
use wsgate_manifests::AnnotationWarning;

use crate::model::{Model, RenderContext, RenderError, Server};

/// A rendered configuration, what it serves, and the annotation warnings met on the way.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub conf: String,
    /// Every server (host) with its locations and their effective timeouts and sources.
    pub servers: Vec<Server>,
    pub warnings: Vec<AnnotationWarning>,
    /// Ingresses not rendered, with why.
    pub skipped: Vec<String>,
}

/// Renders `ingresses` into one nginx.conf.
pub fn render(ingresses: &[Ingress], ctx: &RenderContext) -> Result<Rendered, RenderError> {
    let model = Model::build(ingresses, ctx)?;
    Ok(Rendered {
        conf: crate::conf::write(ctx, &model),
        servers: model.servers,
        warnings: model.warnings,
        skipped: model.skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CertFiles, Match, ServiceRef};
    use std::collections::BTreeMap;
    use std::time::Duration;
    use wsgate_manifests::{
        ControllerConfig, Documented, PROXY_READ_TIMEOUT, Source, TLS_SECRET_NAME, Variant,
        apply_tls,
    };

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
            workers: 2,
            nginx_version: crate::NginxVersion(1, 22, 1),
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
            "location \"/\" {",
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
        assert!(r.conf.contains("worker_shutdown_timeout 240s;"));
    }

    #[test]
    fn the_summary_says_what_each_host_serves_and_where_its_timeouts_come_from() {
        let d = Documented::shipped().unwrap();
        let ings: Vec<_> = [Variant::documented(), Variant::without_annotations()]
            .iter()
            .map(|v| v.ingress(&d.ingress))
            .collect();
        let r = render(&ings, &ctx()).unwrap();
        let hosts: Vec<&str> = r.servers.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(
            hosts,
            ["no-annotations.test.example.com", "test.example.com"]
        );
        let loc = |i: usize| &r.servers[i].locations[0];
        assert_eq!(
            (loc(1).timeouts.read.seconds, loc(1).timeouts.read.source),
            (3600, Source::Annotation)
        );
        assert_eq!(
            (loc(0).timeouts.read.seconds, loc(0).timeouts.read.source),
            (60, Source::Default)
        );
        assert_eq!(loc(0).backend, "default/websocket-server:3000");
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
        assert!(r.conf.contains("worker_shutdown_timeout 2s;"));
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
        assert!(r.servers[0].has_tls());
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
    fn hosts_the_tls_section_names_no_secret_for_get_the_default_certificate_and_the_redirect() {
        let mut ing = Documented::shipped().unwrap().ingress;
        // An entry without a secretName, as the controller reads it: the default certificate.
        apply_tls(&mut ing, &["test.example.com"], "");
        let r = render(&[ing.clone()], &ctx()).unwrap();
        let fake = Some(ctx().default_cert);
        assert_eq!(r.servers[0].tls, fake);
        assert!(server_block(&r.conf, "test.example.com").contains("return 308"));
        // A tls section that does not list the host at all: the same.
        apply_tls(&mut ing, &["other.example.com"], TLS_SECRET_NAME);
        let r = render(&[ing], &ctx()).unwrap();
        let server = r
            .servers
            .iter()
            .find(|s| s.host == "test.example.com")
            .unwrap();
        assert_eq!(server.tls, fake);
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
                service: ServiceRef::new("default", "websocket-server", 3000),
            }
        );
        assert!(
            e.to_string().contains("default/websocket-server:3000"),
            "{e}"
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

    #[test]
    fn every_directive_marked_the_same_as_the_controller_is_rendered() {
        let mut ing = Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        let r = render(&[ing], &ctx()).unwrap();
        for d in crate::fidelity::DIRECTIVES {
            if let crate::fidelity::Fidelity::Same { text } = d.local {
                assert!(
                    r.conf.contains(text),
                    "{}: {text:?} missing from\n{}",
                    d.directive,
                    r.conf
                );
            }
        }
    }

    #[test]
    fn http2_is_a_listen_flag_before_nginx_1_25_1_a_directive_after_and_off_on_request() {
        let d = Documented::shipped().unwrap();
        let old = render(std::slice::from_ref(&d.ingress), &ctx())
            .unwrap()
            .conf;
        assert!(
            old.contains(":18443 ssl http2;") && !old.contains("http2 on;"),
            "{old}"
        );
        let mut c = ctx();
        c.nginx_version = crate::NginxVersion(1, 27, 1);
        let new = render(std::slice::from_ref(&d.ingress), &c).unwrap().conf;
        assert!(
            new.contains("http2 on;") && !new.contains("ssl http2;"),
            "{new}"
        );
        c.config.use_http2 = false;
        let off = render(&[d.ingress], &c).unwrap().conf;
        assert!(!off.contains("http2"), "{off}");
    }

    #[test]
    fn the_fidelity_document_carries_the_table_generated_from_the_code() {
        let doc = include_str!("../../../docs/fidelity.md");
        let table = crate::fidelity::markdown_table();
        assert!(
            doc.contains(&table),
            "docs/fidelity.md's table is out of date; replace it with:\n{table}"
        );
    }

    #[test]
    fn a_prefix_path_renders_as_the_controller_does() {
        let mut ing = Documented::shipped().unwrap().ingress;
        let path = &mut ing.spec.as_mut().unwrap().rules.as_mut().unwrap()[0]
            .http
            .as_mut()
            .unwrap()
            .paths[0];
        path.path = Some("/chat".into());
        path.path_type = "Prefix".into();
        let r = render(&[ing], &ctx()).unwrap();
        let s = server_block(&r.conf, "test.example.com");
        assert!(
            s.contains("location \"/chat/\" {") && s.contains("location = \"/chat\" {"),
            "{s}"
        );
        let m: Vec<Match> = r.servers[0].locations.iter().map(|l| l.matching).collect();
        assert_eq!(m, [Match::Prefix, Match::Exact]);
    }
}
