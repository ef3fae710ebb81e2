//! Parsing manifest files into k8s-openapi objects, with errors that name the file and the field.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::de::DeserializeOwned;

/// A manifest that cannot be used, with the file and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error(
        "{file}: document {index} has no `kind`; every manifest document needs apiVersion and kind"
    )]
    NoKind { file: String, index: usize },
    #[error("{file}: {kind} {name:?}: field `{field}`: {message}")]
    Field {
        file: String,
        kind: String,
        name: String,
        field: String,
        message: String,
    },
    #[error("{file}: {kind} {name:?} is missing `{field}`, which the suite needs ({why})")]
    Missing {
        file: String,
        kind: String,
        name: String,
        field: String,
        why: &'static str,
    },
    #[error("{file}: expected {expected}, found {found}")]
    Unexpected {
        file: String,
        expected: &'static str,
        found: String,
    },
}

/// One parsed document of a manifest file.
#[derive(Debug, Clone)]
pub enum Object {
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    Ingress(Box<Ingress>),
    Secret(Box<Secret>),
    ConfigMap(Box<ConfigMap>),
    Namespace(Box<Namespace>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deployment(_) => "Deployment",
            Self::Service(_) => "Service",
            Self::Ingress(_) => "Ingress",
            Self::Secret(_) => "Secret",
            Self::ConfigMap(_) => "ConfigMap",
            Self::Namespace(_) => "Namespace",
        }
    }
}

/// Parses every document of a YAML stream into the kinds the suite knows.
pub fn load_documents(file: &str, text: &str) -> Result<Vec<Object>, ManifestError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
    docs.into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(index, value)| {
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .ok_or_else(|| ManifestError::NoKind {
                    file: file.to_owned(),
                    index,
                })?
                .to_owned();
            match kind.as_str() {
                "Deployment" => typed(file, &kind, value).map(|d| Object::Deployment(Box::new(d))),
                "Service" => typed(file, &kind, value).map(|s| Object::Service(Box::new(s))),
                "Ingress" => typed(file, &kind, value).map(|i| Object::Ingress(Box::new(i))),
                "Secret" => typed(file, &kind, value).map(|i| Object::Secret(Box::new(i))),
                "ConfigMap" => typed(file, &kind, value).map(|i| Object::ConfigMap(Box::new(i))),
                "Namespace" => typed(file, &kind, value).map(|i| Object::Namespace(Box::new(i))),
                other => Err(ManifestError::Unexpected {
                    file: file.to_owned(),
                    expected: "a Deployment, Service, Ingress, Secret, ConfigMap or Namespace (apply other kinds yourself first)",
                    found: format!("kind {other:?} (document {index})"),
                }),
            }
        })
        .collect()
}

fn typed<T: DeserializeOwned>(
    file: &str,
    kind: &str,
    value: serde_json::Value,
) -> Result<T, ManifestError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>")
        .to_owned();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let mut message = e.into_inner().to_string();
        if field.starts_with("metadata.annotations") {
            message.push_str("; annotation values are strings: quote them, e.g. \"3600\"");
        }
        ManifestError::Field {
            file: file.to_owned(),
            kind: kind.to_owned(),
            name,
            field,
            message,
        }
    })
}
