//! Any bytes as a manifest file: loading never panics, and every Ingress that loads renders
//! (or fails with an error) without panicking.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use wsgate_local::{CertFiles, RenderContext, ServiceRef, render};
use wsgate_manifests::{ControllerConfig, Documented, load_documents};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Documented::from_sources(("app.yaml", text), ("ingress.yaml", text));
    let Ok(objects) = load_documents("fuzz.yaml", text) else { return };
    let ingresses: Vec<_> = objects
        .into_iter()
        .filter_map(|o| match o {
            wsgate_manifests::Object::Ingress(i) => Some(*i),
            _ => None,
        })
        .collect();
    let ctx = RenderContext {
        config: ControllerConfig::default(),
        listen: "127.0.0.1".parse().unwrap(),
        http_port: 8080,
        https_port: 8443,
        backends: BTreeMap::from([(ServiceRef::new("default", "websocket-server", 3000), "127.0.0.1:3000".parse().unwrap())]),
        secrets: BTreeMap::new(),
        default_cert: CertFiles { cert: "/c".into(), key: "/k".into() },
        prefix: "/p".into(),
        nofile: 1024,
        workers: 2,
        nginx_version: wsgate_local::NginxVersion(1, 22, 1),
    };
    let _ = render(&ingresses, &ctx);
});
