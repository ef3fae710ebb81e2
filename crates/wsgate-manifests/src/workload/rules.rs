//! Every Ingress rule (host x path) with what the controller makes of it: the URL path to dial,
//! the backend port, TLS, effective timeouts and their sources.

use k8s_openapi::api::networking::v1::Ingress;

use super::{ANNOTATION_PREFIX, WEBSOCKET_APP_PROTOCOLS, Workload, namespace_of, object_id};
use crate::load::ManifestError;
use crate::{ControllerConfig, ProxyTimeouts};

/// One Ingress rule's path, as the suite checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    pub namespace: String,
    pub host: String,
    /// The path as the Ingress writes it (Prefix, Exact or ImplementationSpecific), which is
    /// also the URL path dialled for it.
    pub path: String,
    pub service: String,
    pub port: i32,
    /// The Service port says it speaks WebSocket (`appProtocol: kubernetes.io/ws`).
    pub marked_websocket: bool,
    /// The TLS Secret covering the host, when the Ingress has one.
    pub tls_secret: Option<String>,
    pub timeouts: ProxyTimeouts,
    /// A regular-expression path (`use-regex` or `rewrite-target`): no single URL to dial.
    pub regex: bool,
    /// HTTP statuses the controller itself may answer on this rule because of its annotations
    /// (authentication, source ranges, rate limits, ModSecurity): never a backend's own answer.
    pub proxy_statuses: Vec<u16>,
}

impl Rule {
    /// `chat.example.org/chat`.
    pub fn target(&self) -> String {
        format!("{}{}", self.host, self.path)
    }
}

impl Workload {
    /// Every rule of every Ingress, with what the controller makes of it under `config`.
    pub fn rules(&self, config: &ControllerConfig) -> Result<Vec<Rule>, ManifestError> {
        let mut out = Vec::new();
        for ing in &self.ingresses {
            let ingress = object_id(&ing.metadata);
            let namespace = namespace_of(&ing.metadata);
            let annotations = ing.metadata.annotations.clone().unwrap_or_default();
            let regex = uses_regex(ing);
            let (timeouts, _) = ProxyTimeouts::for_ingress(ing, config);
            let proxy_statuses = proxy_statuses(annotations.keys());
            let spec = ing.spec.clone().unwrap_or_default();
            for (r, rule) in spec.rules.iter().flatten().enumerate() {
                let host = rule.host.clone().unwrap_or_else(|| "_".into());
                // An entry with an empty secretName gives the host the default certificate.
                let tls_secret = spec
                    .tls
                    .iter()
                    .flatten()
                    .filter(|t| t.hosts.iter().flatten().any(|h| *h == host))
                    .find_map(|t| t.secret_name.clone().filter(|n| !n.is_empty()));
                for (p, path) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
                    let field = format!("spec.rules[{r}].http.paths[{p}].backend.service");
                    let err = |message: String| ManifestError::Field {
                        file: self.files.join(", "),
                        kind: "Ingress".into(),
                        name: ingress.clone(),
                        field: field.clone(),
                        message,
                    };
                    let svc = path
                        .backend
                        .service
                        .as_ref()
                        .ok_or_else(|| err("only Service backends are supported".into()))?;
                    let backing = self.service(&namespace, &svc.name);
                    let port_spec = svc.port.clone().unwrap_or_default();
                    let port = match (port_spec.number, port_spec.name.as_deref()) {
                        (Some(n), _) => n,
                        (None, Some(name)) => backing
                            .and_then(|s| s.spec.as_ref()?.ports.as_ref())
                            .and_then(|ports| {
                                ports.iter().find(|p| p.name.as_deref() == Some(name))
                            })
                            .map(|p| p.port)
                            .ok_or_else(|| {
                                err(format!(
                                    "named port {name:?} is not a port of Service {namespace}/{} in the manifests",
                                    svc.name
                                ))
                            })?,
                        (None, None) => return Err(err("the backend names no port".into())),
                    };
                    let marked_websocket = backing
                        .and_then(|s| s.spec.as_ref()?.ports.as_ref())
                        .and_then(|ports| ports.iter().find(|p| p.port == port))
                        .and_then(|p| p.app_protocol.as_deref())
                        .is_some_and(|a| WEBSOCKET_APP_PROTOCOLS.contains(&a));
                    let written = path.path.clone().unwrap_or_else(|| "/".into());
                    out.push(Rule {
                        ingress: ingress.clone(),
                        namespace: namespace.clone(),
                        host: host.clone(),
                        path: written,
                        service: svc.name.clone(),
                        port,
                        marked_websocket,
                        tls_secret: tls_secret.clone(),
                        timeouts,
                        regex,
                        proxy_statuses: proxy_statuses.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The Ingresses with named backend ports replaced by the Service's port numbers (what the
    /// controller resolves through the Service; the local tier needs the numbers).
    pub fn resolved_ingresses(&self) -> Vec<Ingress> {
        let mut out = self.ingresses.clone();
        for ing in &mut out {
            let namespace = namespace_of(&ing.metadata);
            let paths = ing
                .spec
                .iter_mut()
                .flat_map(|s| s.rules.iter_mut().flatten())
                .flat_map(|r| r.http.iter_mut().flat_map(|h| h.paths.iter_mut()));
            for path in paths {
                let Some(svc) = path.backend.service.as_mut() else {
                    continue;
                };
                let Some(port) = svc.port.as_mut() else {
                    continue;
                };
                let (Some(name), None) = (port.name.clone(), port.number) else {
                    continue;
                };
                let number = self
                    .service(&namespace, &svc.name)
                    .and_then(|s| s.spec.as_ref()?.ports.as_ref())
                    .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(&*name)))
                    .map(|p| p.port);
                if let Some(n) = number {
                    port.number = Some(n);
                    port.name = None;
                }
            }
        }
        out
    }
}

/// The statuses ingress-nginx answers itself, before any backend, given an Ingress's
/// annotation keys: 401/403/400/500 for `auth-*` (basic, external, client certificates),
/// 403 for source ranges, a denylist or ModSecurity, 429 for rate limits.
fn proxy_statuses<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<u16> {
    let mut out = Vec::new();
    for key in keys.filter_map(|k| k.strip_prefix(ANNOTATION_PREFIX)) {
        let statuses: &[u16] = match key {
            k if k.starts_with("auth-") => &[400, 401, 403, 500],
            k if k.ends_with("source-range") || k.starts_with("denylist") => &[403],
            k if k.contains("modsecurity") => &[403],
            k if k.starts_with("limit-") => &[429],
            _ => &[],
        };
        for s in statuses {
            if !out.contains(s) {
                out.push(*s);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The TLS Secrets the rules name, as `(namespace, name)`, with the hosts each covers.
pub fn tls_secret_hosts(
    rules: &[Rule],
) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    let mut out: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for r in rules {
        if let Some(secret) = &r.tls_secret {
            let hosts = out
                .entry((r.namespace.clone(), secret.clone()))
                .or_default();
            if !hosts.contains(&r.host) {
                hosts.push(r.host.clone());
            }
        }
    }
    out
}

/// Whether the controller renders this Ingress's paths as regular expressions (`use-regex`, or
/// `rewrite-target`, which implies it): there is no single URL to dial for them.
pub fn uses_regex(ing: &Ingress) -> bool {
    let a = ing.metadata.annotations.as_ref();
    let get = |k: &str| a.and_then(|a| a.get(&format!("{ANNOTATION_PREFIX}{k}")));
    get("use-regex").is_some_and(|v| v == "true") || get("rewrite-target").is_some()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{chat, chat_with, says};
    use crate::Source;

    #[test]
    fn a_rule_resolves_its_named_port_tls_and_timeouts_with_their_sources() {
        let w = chat();
        let config = w.controller_config().unwrap();
        let rules = w.rules(&config).unwrap();
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(
            (r.ingress.as_str(), r.target().as_str(), r.port),
            ("default/chat", "chat.example.org/chat", 8080)
        );
        assert_eq!(r.path, "/chat");
        assert!(r.marked_websocket);
        assert_eq!(r.tls_secret.as_deref(), Some("chat-tls"));
        assert_eq!(
            (r.timeouts.read.seconds, r.timeouts.read.source),
            (4, Source::Annotation)
        );
        assert_eq!(
            (r.timeouts.send.seconds, r.timeouts.send.source),
            (30, Source::ConfigMap)
        );
        assert!(!r.regex);
    }

    #[test]
    fn a_named_port_the_service_lacks_is_an_error_naming_it() {
        let w = chat_with("name: ws\n    port: 8080", "name: http\n    port: 8080");
        let e = w.rules(&w.controller_config().unwrap()).unwrap_err();
        says(&e.to_string(), &["named port \"ws\"", "default/chat"]);
    }

    #[test]
    fn statuses_the_controller_answers_itself_come_from_the_annotations() {
        let with = |annotations: &str| {
            let w = chat_with(
                "    nginx.ingress.kubernetes.io/affinity: cookie\n",
                annotations,
            );
            w.rules(&w.controller_config().unwrap()).unwrap()[0]
                .proxy_statuses
                .clone()
        };
        assert_eq!(with(""), Vec::<u16>::new());
        assert_eq!(
            with(
                "    nginx.ingress.kubernetes.io/auth-url: http://auth\n    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8\n"
            ),
            [400, 401, 403, 500]
        );
        assert_eq!(
            with("    nginx.ingress.kubernetes.io/limit-rps: \"5\"\n"),
            [429]
        );
    }
}
