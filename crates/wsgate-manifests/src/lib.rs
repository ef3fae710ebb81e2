//! The document's manifests as typed objects, the variants the suite derives, and annotation rules.

mod annotations;
mod controller;
mod documented;
mod load;
mod tls;
mod variants;
mod workload;

pub use annotations::{
    AnnotationWarning, Effective, PROXY_CONNECT_TIMEOUT, PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT,
    ProxyTimeouts, Source, TIMEOUT_ANNOTATIONS, parse_seconds,
};
pub use controller::{ControllerConfig, ControllerConfigError};
pub use documented::{Documented, WEBSOCKET_INGRESS_YAML, WEBSOCKET_YAML};
pub use load::{ManifestError, Object, load_documents};
pub use tls::{
    DOCUMENTED_TLS_PATCH, TLS_SECRET_NAME, VARIANTS_TLS_SECRET, apply_tls, derived_hosts,
    secret_for, tls_patch, tls_secret,
};
pub use variants::{Variant, derive_ingress};
pub use workload::notices::Notice;
pub use workload::rules::{Rule, tls_secret_hosts, uses_regex};
pub use workload::{
    ANNOTATION_PREFIX, CONTROLLER_CONFIGMAP, WEBSOCKET_APP_PROTOCOLS, Workload, namespace_of,
    object_id, tls_pair,
};

/// The host of the documented Ingress.
pub const DOCUMENTED_HOST: &str = "test.example.com";
/// The documented Ingress's name.
pub const DOCUMENTED_INGRESS: &str = "ws";
/// The documented Service (and Deployment) name.
pub const DOCUMENTED_SERVICE: &str = "websocket-server";
/// The documented Service port and the container's `BIND_PORT`.
pub const DOCUMENTED_PORT: u16 = 3000;
/// The namespace the document uses.
pub const DOCUMENTED_NAMESPACE: &str = "default";
