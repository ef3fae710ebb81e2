//! A team's own manifests (`--manifests`): Deployments, Services, Ingresses, TLS Secrets and the
//! controller's ConfigMap, and every Ingress rule (host x path) with what the controller makes
//! of it: the URL path to dial, the backend port, TLS, effective timeouts and their sources.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;

use crate::annotations::TIMEOUT_ANNOTATIONS;
use crate::load::{ManifestError, Object, load_documents};
use crate::{ControllerConfig, ControllerConfigError, ProxyTimeouts};

/// The name of the ingress-nginx controller's ConfigMap (in its namespace, `ingress-nginx`).
pub const CONTROLLER_CONFIGMAP: &str = "ingress-nginx-controller";
/// The annotation prefix ingress-nginx reads.
pub const ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// Service `appProtocol` values that say a port speaks WebSocket (Gateway API's convention).
pub const WEBSOCKET_APP_PROTOCOLS: [&str; 2] = ["kubernetes.io/ws", "kubernetes.io/wss"];

/// Everything loaded from `--manifests`.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// The files read, in order.
    pub files: Vec<String>,
    pub namespaces: Vec<Namespace>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub ingresses: Vec<Ingress>,
    pub secrets: Vec<Secret>,
    /// ConfigMaps of the application (the controller's is [`Workload::controller`]).
    pub configmaps: Vec<ConfigMap>,
    /// The controller's ConfigMap, when the manifests have one.
    pub controller: Option<ConfigMap>,
}

/// One Ingress rule's path, as the suite checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    pub namespace: String,
    pub host: String,
    /// The path as the Ingress writes it, and the URL path dialled for it.
    pub path: String,
    pub path_type: String,
    pub url_path: String,
    pub service: String,
    pub port: i32,
    /// The Service port says it speaks WebSocket (`appProtocol: kubernetes.io/ws`).
    pub marked_websocket: bool,
    /// The TLS Secret covering the host, when the Ingress has one.
    pub tls_secret: Option<String>,
    pub timeouts: ProxyTimeouts,
    /// A regular-expression path (`use-regex` or `rewrite-target`): no single URL to dial.
    pub regex: bool,
}

impl Rule {
    /// `chat.example.org/chat`.
    pub fn target(&self) -> String {
        format!("{}{}", self.host, self.path)
    }
}

/// Something the controller or the local tier ignores, named with its consequence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    pub ingress: String,
    pub annotation: String,
    pub value: String,
    pub consequence: String,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ingress {}: {}={:?}: {}",
            self.ingress, self.annotation, self.value, self.consequence
        )
    }
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn id(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        ns_of(meta),
        meta.name.as_deref().unwrap_or("<unnamed>")
    )
}

impl Workload {
    /// Loads every `.yaml`/`.yml` file of `paths` (files, or folders read in name order).
    pub fn load(paths: &[PathBuf]) -> Result<Self, ManifestError> {
        let mut sources = Vec::new();
        for p in paths {
            let read = |path: &Path| {
                std::fs::read_to_string(path)
                    .map(|t| (path.display().to_string(), t))
                    .map_err(|source| ManifestError::Read {
                        path: path.to_owned(),
                        source,
                    })
            };
            if p.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|source| ManifestError::Read {
                        path: p.clone(),
                        source,
                    })?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect();
                files.sort();
                for f in files {
                    sources.push(read(&f)?);
                }
            } else {
                sources.push(read(p)?);
            }
        }
        Self::from_sources(&sources)
    }

    /// Parses `(file name, text)` pairs.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, ManifestError> {
        let mut w = Self::default();
        for (file, text) in sources {
            w.files.push(file.clone());
            for obj in load_documents(file, text)? {
                match obj {
                    Object::Deployment(d) => w.deployments.push(*d),
                    Object::Service(s) => w.services.push(*s),
                    Object::Ingress(i) => w.ingresses.push(*i),
                    Object::Secret(s) => w.secrets.push(with_string_data_merged(*s)),
                    Object::Namespace(n) => w.namespaces.push(*n),
                    Object::ConfigMap(c)
                        if c.metadata.name.as_deref() == Some(CONTROLLER_CONFIGMAP) =>
                    {
                        w.controller = Some(*c)
                    }
                    Object::ConfigMap(c) => w.configmaps.push(*c),
                }
            }
        }
        if w.ingresses.is_empty() {
            return Err(ManifestError::Unexpected {
                file: w.files.join(", "),
                expected: "at least one Ingress",
                found: "none".into(),
            });
        }
        Ok(w)
    }

    /// The controller's settings: its defaults, with the ConfigMap's keys when there is one.
    pub fn controller_config(&self) -> Result<ControllerConfig, ControllerConfigError> {
        let base = ControllerConfig::default();
        match self.controller.as_ref().and_then(|c| c.data.as_ref()) {
            Some(data) => base.with_configmap(data),
            None => Ok(base),
        }
    }

    /// The Service `namespace/name`, if the manifests have it.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name) && ns_of(&s.metadata) == namespace)
    }

    /// Every rule of every Ingress, with what the controller makes of it under `config`.
    pub fn rules(&self, config: &ControllerConfig) -> Result<Vec<Rule>, ManifestError> {
        let mut out = Vec::new();
        for ing in &self.ingresses {
            let ingress = id(&ing.metadata);
            let namespace = ns_of(&ing.metadata);
            let annotations = ing.metadata.annotations.clone().unwrap_or_default();
            let flag = |k: &str| annotations.get(&format!("{ANNOTATION_PREFIX}{k}"));
            let regex =
                flag("use-regex").is_some_and(|v| v == "true") || flag("rewrite-target").is_some();
            let (timeouts, _) = ProxyTimeouts::for_ingress(ing, config);
            let spec = ing.spec.clone().unwrap_or_default();
            for (r, rule) in spec.rules.iter().flatten().enumerate() {
                let host = rule.host.clone().unwrap_or_else(|| "_".into());
                let tls_secret = spec
                    .tls
                    .iter()
                    .flatten()
                    .find(|t| t.hosts.iter().flatten().any(|h| *h == host))
                    .and_then(|t| t.secret_name.clone());
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
                        url_path: written.clone(),
                        path: written,
                        path_type: path.path_type.clone(),
                        service: svc.name.clone(),
                        port,
                        marked_websocket,
                        tls_secret: tls_secret.clone(),
                        timeouts,
                        regex,
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
            let namespace = ns_of(&ing.metadata);
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

    /// Every value the controller ignores and every annotation the local tier does not model,
    /// each with its consequence.
    pub fn notices(&self, config: &ControllerConfig) -> Vec<Notice> {
        let mut out = Vec::new();
        for ing in &self.ingresses {
            let ingress = id(&ing.metadata);
            let (_, ignored) = ProxyTimeouts::for_ingress(ing, config);
            out.extend(ignored.into_iter().map(|w| Notice {
                ingress: w.ingress.clone(),
                annotation: w.annotation.clone(),
                value: w.value.clone(),
                consequence: format!(
                    "{}; ingress-nginx ignores it and uses {} s",
                    w.reason, w.fallback
                ),
            }));
            out.extend(uncovered_tls_hosts(ing).into_iter().map(|host| Notice {
                ingress: ingress.clone(),
                annotation: "spec.tls".into(),
                value: host,
                consequence: "the Ingress has a tls section but no entry lists this host with a secretName: ingress-nginx serves it its default (self-signed) certificate, unless one of the Ingress's TLS Secrets covers the host, and redirects http to it with 308; list the host under spec.tls[].hosts with a secretName".into(),
            }));
            for (key, value) in ing.metadata.annotations.iter().flatten() {
                if !key.starts_with(ANNOTATION_PREFIX)
                    || TIMEOUT_ANNOTATIONS.contains(&key.as_str())
                {
                    continue;
                }
                out.push(Notice {
                    ingress: ingress.clone(),
                    annotation: key.clone(),
                    value: value.clone(),
                    consequence: unmodeled(key.trim_start_matches(ANNOTATION_PREFIX)),
                });
            }
        }
        out
    }

    /// The objects a cluster needs, in apply order: Namespaces, ConfigMaps, Secrets, Services,
    /// Deployments, Ingresses (the controller's ConfigMap apart).
    pub fn apply_order(&self) -> Vec<Object> {
        let mut v: Vec<Object> = Vec::new();
        v.extend(
            self.namespaces
                .iter()
                .cloned()
                .map(|o| Object::Namespace(Box::new(o))),
        );
        v.extend(
            self.configmaps
                .iter()
                .cloned()
                .map(|o| Object::ConfigMap(Box::new(o))),
        );
        v.extend(
            self.secrets
                .iter()
                .cloned()
                .map(|o| Object::Secret(Box::new(o))),
        );
        v.extend(
            self.services
                .iter()
                .cloned()
                .map(|o| Object::Service(Box::new(o))),
        );
        v.extend(
            self.deployments
                .iter()
                .cloned()
                .map(|o| Object::Deployment(Box::new(o))),
        );
        v.extend(
            self.ingresses
                .iter()
                .cloned()
                .map(|o| Object::Ingress(Box::new(o))),
        );
        v
    }
}

/// The Secret as the API server stores it: `stringData` merged into `data` (its keys win), so
/// a certificate written either way is found in `data`.
fn with_string_data_merged(mut s: Secret) -> Secret {
    if let Some(strings) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in strings {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    s
}

/// The rule hosts of an Ingress with a tls section that no tls entry with a secretName lists.
fn uncovered_tls_hosts(ing: &Ingress) -> Vec<String> {
    let Some(spec) = ing
        .spec
        .as_ref()
        .filter(|s| s.tls.as_ref().is_some_and(|t| !t.is_empty()))
    else {
        return Vec::new();
    };
    let covered = |h: &str| {
        spec.tls.iter().flatten().any(|t| {
            t.secret_name.as_deref().is_some_and(|n| !n.is_empty())
                && t.hosts.iter().flatten().any(|x| x == h)
        })
    };
    let mut out: Vec<String> = Vec::new();
    for rule in spec.rules.iter().flatten() {
        if let Some(h) = rule.host.as_deref()
            && !covered(h)
            && !out.iter().any(|o| o == h)
        {
            out.push(h.to_owned());
        }
    }
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

/// The certificate and key of a TLS Secret, when it carries both.
pub fn tls_pair(s: &Secret) -> Option<(&[u8], &[u8])> {
    let d = s.data.as_ref()?;
    Some((&d.get("tls.crt")?.0, &d.get("tls.key")?.0))
}

/// Whether the controller renders this Ingress's paths as regular expressions (`use-regex`, or
/// `rewrite-target`, which implies it): there is no single URL to dial for them.
pub fn uses_regex(ing: &Ingress) -> bool {
    let a = ing.metadata.annotations.as_ref();
    let get = |k: &str| a.and_then(|a| a.get(&format!("{ANNOTATION_PREFIX}{k}")));
    get("use-regex").is_some_and(|v| v == "true") || get("rewrite-target").is_some()
}

/// What an annotation the local tier does not model means for the results.
fn unmodeled(key: &str) -> String {
    let what = match key {
        k if k.starts_with("affinity") || k.starts_with("session-cookie") => "sticky sessions",
        "use-regex" | "rewrite-target" => "a regular-expression path",
        k if k.starts_with("auth-") => "authentication",
        k if k.starts_with("limit-") => "rate limits",
        k if k.contains("ssl") || k.contains("tls") => "TLS handling",
        _ => "this setting",
    };
    format!(
        "the local tier does not model {what}: the local nginx runs without it, so its results may differ from the controller's (on a cluster the controller applies it)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    const CHAT: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: chat
spec:
  selector: {app: chat}
  ports:
  - name: ws
    port: 8080
    appProtocol: kubernetes.io/ws
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: chat
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "4"
    nginx.ingress.kubernetes.io/affinity: cookie
spec:
  ingressClassName: nginx
  tls:
  - hosts: [chat.example.org]
    secretName: chat-tls
  rules:
  - host: chat.example.org
    http:
      paths:
      - path: /chat
        pathType: Prefix
        backend:
          service:
            name: chat
            port:
              name: ws
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ingress-nginx-controller
  namespace: ingress-nginx
data:
  proxy-read-timeout: "20"
  proxy-send-timeout: "30"
"#;

    fn chat() -> Workload {
        Workload::from_sources(&[("chat.yaml".into(), CHAT.into())]).unwrap()
    }

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
        assert_eq!(r.url_path, "/chat");
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
    fn unmodeled_annotations_are_named_with_their_consequence() {
        let w = chat();
        let notices = w.notices(&w.controller_config().unwrap());
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(
            notices[0].annotation,
            "nginx.ingress.kubernetes.io/affinity"
        );
        assert!(
            notices[0].consequence.contains("sticky sessions"),
            "{}",
            notices[0]
        );
    }

    #[test]
    fn ignored_values_are_notices_too() {
        let text = CHAT.replace("proxy-read-timeout: \"4\"", "proxy-read-timeout: \"4s\"");
        let w = Workload::from_sources(&[("c.yaml".into(), text)]).unwrap();
        let notices = w.notices(&w.controller_config().unwrap());
        assert!(
            notices
                .iter()
                .any(|n| n.value == "4s" && n.consequence.contains("uses 20 s")),
            "{notices:?}"
        );
    }

    #[test]
    fn a_named_port_the_service_lacks_is_an_error_naming_it() {
        let text = CHAT.replace("name: ws\n    port: 8080", "name: http\n    port: 8080");
        let w = Workload::from_sources(&[("c.yaml".into(), text)]).unwrap();
        let e = w
            .rules(&w.controller_config().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("named port \"ws\"") && e.contains("default/chat"),
            "{e}"
        );
    }

    #[test]
    fn manifests_without_an_ingress_are_refused() {
        let e = Workload::from_sources(&[(
            "s.yaml".into(),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n".into(),
        )])
        .unwrap_err()
        .to_string();
        assert!(e.contains("at least one Ingress"), "{e}");
    }

    #[test]
    fn unsupported_kinds_say_what_to_do() {
        let e = Workload::from_sources(&[(
            "s.yaml".into(),
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n".into(),
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ServiceAccount") && e.contains("apply other kinds yourself"),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_written_as_string_data_is_found_like_the_api_server_stores_it() {
        let secret = |body: &str| {
            let text = format!(
                "{CHAT}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: chat-tls}}\ntype: kubernetes.io/tls\n{body}\n"
            );
            let w = Workload::from_sources(&[("c.yaml".into(), text)]).unwrap();
            let s = w.secrets[0].clone();
            (tls_pair(&s).map(|(c, k)| (c.to_vec(), k.to_vec())), s)
        };
        let (pair, s) = secret("stringData: {tls.crt: CRT, tls.key: KEY}");
        assert_eq!(pair, Some((b"CRT".to_vec(), b"KEY".to_vec())));
        assert!(s.string_data.is_none(), "merged into data");
        // stringData wins over data for the same key, as on the API server.
        let (pair, _) = secret("data: {tls.crt: T0xE, tls.key: S0VZ}\nstringData: {tls.crt: NEW}");
        assert_eq!(pair, Some((b"NEW".to_vec(), b"KEY".to_vec())));
        let (pair, _) = secret("stringData: {tls.crt: CRT}");
        assert_eq!(pair, None, "no key: not a usable TLS pair");
    }

    #[test]
    fn a_host_the_tls_section_leaves_out_is_named_with_what_the_controller_does() {
        let text = CHAT.replace(
            "  - host: chat.example.org\n",
            "  - host: chat.example.org\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: chat, port: {number: 8080}}}}]}\n  - host: other.example.org\n",
        );
        let w = Workload::from_sources(&[("c.yaml".into(), text)]).unwrap();
        let notices = w.notices(&w.controller_config().unwrap());
        let tls: Vec<&Notice> = notices
            .iter()
            .filter(|n| n.annotation == "spec.tls")
            .collect();
        assert_eq!(tls.len(), 1, "{notices:#?}");
        assert_eq!(tls[0].value, "other.example.org");
        assert!(tls[0].consequence.contains("308"), "{}", tls[0]);
    }
}
