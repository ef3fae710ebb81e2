//! The document's three objects (Deployment, Service, Ingress `ws`), checked for the fields the
//! suite relies on.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;

use crate::load::{ManifestError, Object, load_documents};

/// The document's `websocket.yaml`, as shipped in `manifests/`.
pub const WEBSOCKET_YAML: &str = include_str!("../../../manifests/websocket.yaml");
/// The document's `websocket-ingress.yaml`, as shipped in `manifests/`.
pub const WEBSOCKET_INGRESS_YAML: &str = include_str!("../../../manifests/websocket-ingress.yaml");

/// The document's three objects, checked for the fields the suite relies on.
#[derive(Debug, Clone)]
pub struct Documented {
    pub deployment: Deployment,
    pub service: Service,
    pub ingress: Ingress,
    /// The echo container's `BIND_PORT`.
    pub bind_port: u16,
}

impl Documented {
    /// The manifests shipped in the repository (compiled in, so tests need no path).
    pub fn shipped() -> Result<Self, ManifestError> {
        Self::from_sources(
            ("manifests/websocket.yaml", WEBSOCKET_YAML),
            ("manifests/websocket-ingress.yaml", WEBSOCKET_INGRESS_YAML),
        )
    }

    /// `websocket.yaml` and `websocket-ingress.yaml` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|source| ManifestError::Read { path, source })
        };
        let (app_file, app) = read("websocket.yaml")?;
        let (ing_file, ing) = read("websocket-ingress.yaml")?;
        Self::from_sources((&app_file, &app), (&ing_file, &ing))
    }

    /// Parses and checks the two files given as `(name, text)`.
    pub fn from_sources(app: (&str, &str), ingress: (&str, &str)) -> Result<Self, ManifestError> {
        let (app_file, ing_file) = (app.0, ingress.0);
        let mut deployment = None;
        let mut service = None;
        for obj in load_documents(app_file, app.1)? {
            match obj {
                Object::Deployment(d) if deployment.is_none() => deployment = Some(*d),
                Object::Service(s) if service.is_none() => service = Some(*s),
                other => {
                    return Err(ManifestError::Unexpected {
                        file: app_file.to_owned(),
                        expected: "one Deployment and one Service",
                        found: format!("another {}", other.kind()),
                    });
                }
            }
        }
        let missing_kind = |what| ManifestError::Unexpected {
            file: app_file.to_owned(),
            expected: "one Deployment and one Service",
            found: format!("no {what}"),
        };
        let deployment = deployment.ok_or_else(|| missing_kind("Deployment"))?;
        let service = service.ok_or_else(|| missing_kind("Service"))?;
        let mut ingresses = load_documents(ing_file, ingress.1)?.into_iter();
        let ingress = match (ingresses.next(), ingresses.next()) {
            (Some(Object::Ingress(i)), None) => *i,
            (first, _) => {
                return Err(ManifestError::Unexpected {
                    file: ing_file.to_owned(),
                    expected: "exactly one Ingress",
                    found: first.map_or("nothing".into(), |o| {
                        format!("a {} (or more than one document)", o.kind())
                    }),
                });
            }
        };
        let bind_port = check_deployment(app_file, &deployment)?;
        check_service(app_file, &service)?;
        check_ingress(ing_file, &ingress)?;
        Ok(Self {
            deployment,
            service,
            ingress,
            bind_port,
        })
    }
}

fn missing(
    file: &str,
    kind: &str,
    name: &Option<String>,
    field: &str,
    why: &'static str,
) -> ManifestError {
    ManifestError::Missing {
        file: file.to_owned(),
        kind: kind.to_owned(),
        name: name.clone().unwrap_or_else(|| "<unnamed>".into()),
        field: field.to_owned(),
        why,
    }
}

fn check_deployment(file: &str, d: &Deployment) -> Result<u16, ManifestError> {
    let name = &d.metadata.name;
    let m = |field, why| missing(file, "Deployment", name, field, why);
    name.as_ref().ok_or_else(|| {
        m(
            "metadata.name",
            "objects are applied and waited for by name",
        )
    })?;
    let containers = &d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or_else(|| m("spec.template.spec", "the echo container is defined there"))?
        .containers;
    let c = containers
        .first()
        .ok_or_else(|| m("spec.template.spec.containers[0]", "the echo container"))?;
    c.image
        .as_ref()
        .ok_or_else(|| m("spec.template.spec.containers[0].image", "the image to run"))?;
    let port = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "BIND_PORT")
        .and_then(|e| e.value.as_ref())
        .ok_or_else(|| {
            m(
                "spec.template.spec.containers[0].env[BIND_PORT].value",
                "the port the echo server listens on",
            )
        })?;
    port.parse::<u16>().map_err(|e| ManifestError::Field {
        file: file.to_owned(),
        kind: "Deployment".into(),
        name: name.clone().unwrap_or_default(),
        field: "spec.template.spec.containers[0].env[BIND_PORT].value".into(),
        message: format!("{port:?} is not a port number: {e}"),
    })
}

fn check_service(file: &str, s: &Service) -> Result<(), ManifestError> {
    let name = &s.metadata.name;
    let m = |field, why| missing(file, "Service", name, field, why);
    name.as_ref()
        .ok_or_else(|| m("metadata.name", "the Ingress backend refers to it by name"))?;
    s.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .ok_or_else(|| m("spec.ports[0]", "the port the Ingress backend uses"))?;
    Ok(())
}

fn check_ingress(file: &str, i: &Ingress) -> Result<(), ManifestError> {
    let name = &i.metadata.name;
    let m = |field: String, why| missing(file, "Ingress", name, &field, why);
    name.as_ref()
        .ok_or_else(|| m("metadata.name".into(), "tests wait for its status by name"))?;
    let rules = i
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| m("spec.rules".into(), "the host and path routing"))?;
    for (r, rule) in rules.iter().enumerate() {
        rule.host.as_ref().ok_or_else(|| {
            m(
                format!("spec.rules[{r}].host"),
                "the probe presents this host",
            )
        })?;
        let paths = &rule
            .http
            .as_ref()
            .ok_or_else(|| m(format!("spec.rules[{r}].http"), "the paths to route"))?
            .paths;
        for (p, path) in paths.iter().enumerate() {
            let svc = path.backend.service.as_ref().ok_or_else(|| {
                m(
                    format!("spec.rules[{r}].http.paths[{p}].backend.service"),
                    "the backend Service",
                )
            })?;
            svc.port
                .as_ref()
                .and_then(|port| port.number)
                .ok_or_else(|| {
                    m(
                        format!("spec.rules[{r}].http.paths[{p}].backend.service.port.number"),
                        "the backend port (named ports are not supported by the suite)",
                    )
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why `from_sources` refuses the documented app as `app.yaml`, with `from` replaced by
    /// `to`, beside the documented Ingress.
    fn app_refusal(from: &str, to: &str) -> String {
        let app = WEBSOCKET_YAML.replace(from, to);
        assert_ne!(app, WEBSOCKET_YAML, "the replacement must apply");
        refusal(
            ("app.yaml", &app),
            ("websocket-ingress.yaml", WEBSOCKET_INGRESS_YAML),
        )
    }

    /// Asserts that a refusal names each of `parts`.
    fn says(msg: &str, parts: &[&str]) {
        for part in parts {
            assert!(msg.contains(part), "{part:?} is not in: {msg}");
        }
    }

    /// Why `from_sources` refuses the two files (name, text).
    fn refusal(app: (&str, &str), ingress: (&str, &str)) -> String {
        Documented::from_sources(app, ingress)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn shipped_manifests_carry_the_documented_values() {
        let d = Documented::shipped().unwrap();
        assert_eq!(d.bind_port, 3000);
        assert_eq!(
            d.deployment.metadata.name.as_deref(),
            Some("websocket-server")
        );
        assert_eq!(d.deployment.metadata.namespace.as_deref(), Some("default"));
        let c = &d
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("registry-cn-hangzhou.ack.aliyuncs.com/ack-demo/websocket-echo-server:latest")
        );
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let res = c.resources.as_ref().unwrap();
        assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "1000Mi");
        assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "100m");
        let port = &d.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("ws"), 3000));
        let ing = &d.ingress;
        assert_eq!(ing.metadata.name.as_deref(), Some("ws"));
        let ann = ing.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann["nginx.ingress.kubernetes.io/proxy-read-timeout"],
            "3600"
        );
        assert_eq!(
            ann["nginx.ingress.kubernetes.io/proxy-send-timeout"],
            "3600"
        );
        let spec = ing.spec.as_ref().unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rule = &spec.rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("test.example.com"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(path.path.as_deref(), Some("/"));
        assert_eq!(path.path_type, "ImplementationSpecific");
        let svc = path.backend.service.as_ref().unwrap();
        assert_eq!(
            (svc.name.as_str(), svc.port.as_ref().unwrap().number),
            ("websocket-server", Some(3000))
        );
    }

    #[test]
    fn shipped_files_on_disk_match_the_compiled_in_copies() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests");
        let d = Documented::load(&dir).unwrap();
        assert_eq!(d.ingress, Documented::shipped().unwrap().ingress);
    }

    #[test]
    fn unquoted_annotation_value_names_the_field_and_the_fix() {
        let bad = WEBSOCKET_INGRESS_YAML
            .replace("proxy-read-timeout: \"3600\"", "proxy-read-timeout: 3600");
        let msg = refusal(
            ("websocket.yaml", WEBSOCKET_YAML),
            ("bad-ingress.yaml", &bad),
        );
        assert!(msg.contains("bad-ingress.yaml"), "{msg}");
        assert!(msg.contains("metadata.annotations"), "{msg}");
        assert!(msg.contains("quote them"), "{msg}");
    }

    #[test]
    fn missing_host_names_the_file_and_field() {
        let bad = WEBSOCKET_INGRESS_YAML.replace(
            "- host: test.example.com # Access domain name of the Service\n    http:",
            "- http:",
        );
        assert_ne!(bad, WEBSOCKET_INGRESS_YAML, "the replacement must apply");
        let msg = refusal(("websocket.yaml", WEBSOCKET_YAML), ("ing.yaml", &bad));
        says(&msg, &["ing.yaml", "spec.rules[0].host"]);
    }

    #[test]
    fn missing_bind_port_is_reported() {
        says(
            &app_refusal("BIND_PORT", "OTHER_PORT"),
            &["app.yaml", "BIND_PORT"],
        );
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        says(
            &app_refusal("replicas: 1", "replicas: one"),
            &["spec.replicas"],
        );
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let msg = refusal(
            ("app.yaml", "kind: [unclosed"),
            ("i.yaml", WEBSOCKET_INGRESS_YAML),
        );
        assert!(msg.starts_with("app.yaml: not valid YAML"), "{msg}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let msg = Documented::load(Path::new("/nonexistent-wsgate"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/nonexistent-wsgate/websocket.yaml"), "{msg}");
    }
}
