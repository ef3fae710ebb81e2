//! A team's own manifests (`--manifests`): Deployments, Services, Ingresses, TLS Secrets and the
//! controller's ConfigMap, loaded, with their rules ([`rules`]) and notices ([`notices`]).

pub mod notices;
pub mod rules;

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;

use crate::load::{ManifestError, Object, load_documents};
use crate::{ControllerConfig, ControllerConfigError};

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

/// An object's namespace as the API server reads it: `default` when unset.
pub fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// `namespace/name`, how messages and reports name an object.
pub fn object_id(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        namespace_of(meta),
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

    /// The Secret `namespace/name`, if the manifests have it.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name) && namespace_of(&s.metadata) == namespace
        })
    }

    /// The Service `namespace/name`, if the manifests have it.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name) && namespace_of(&s.metadata) == namespace
        })
    }

    /// The objects a cluster needs, in apply order: Namespaces, ConfigMaps, Secrets, Services,
    /// Deployments, Ingresses (the controller's ConfigMap apart).
    pub fn apply_order(&self) -> Vec<Object> {
        fn each<T: Clone>(v: &[T], wrap: fn(Box<T>) -> Object) -> impl Iterator<Item = Object> {
            v.iter().cloned().map(move |o| wrap(Box::new(o)))
        }
        each(&self.namespaces, Object::Namespace)
            .chain(each(&self.configmaps, Object::ConfigMap))
            .chain(each(&self.secrets, Object::Secret))
            .chain(each(&self.services, Object::Service))
            .chain(each(&self.deployments, Object::Deployment))
            .chain(each(&self.ingresses, Object::Ingress))
            .collect()
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

/// The certificate and key of a TLS Secret, when it carries both.
pub fn tls_pair(s: &Secret) -> Option<(&[u8], &[u8])> {
    let d = s.data.as_ref()?;
    Some((&d.get("tls.crt")?.0, &d.get("tls.key")?.0))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::Workload;

    pub(crate) const CHAT: &str = r#"
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

    pub(crate) fn chat() -> Workload {
        Workload::from_sources(&[("chat.yaml".into(), CHAT.into())]).unwrap()
    }

    /// Asserts that an error message names each of `parts`.
    pub(crate) fn says(msg: &str, parts: &[&str]) {
        for part in parts {
            assert!(msg.contains(part), "{part:?} is not in: {msg}");
        }
    }

    /// The chat example with `from` replaced by `to` (which must apply).
    pub(crate) fn chat_with(from: &str, to: &str) -> Workload {
        let text = CHAT.replace(from, to);
        assert_ne!(text, CHAT, "the replacement must apply");
        Workload::from_sources(&[("chat.yaml".into(), text)]).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{CHAT, says};
    use super::*;

    /// Why `from_sources` refuses this one file.
    fn refused(text: &str) -> String {
        Workload::from_sources(&[("s.yaml".into(), text.into())])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn manifests_without_an_ingress_are_refused() {
        let e = refused("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n");
        says(&e, &["at least one Ingress"]);
    }

    #[test]
    fn unsupported_kinds_say_what_to_do() {
        let e = refused("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n");
        says(&e, &["ServiceAccount", "apply other kinds yourself"]);
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
}
