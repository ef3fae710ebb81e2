//! Kubernetes API calls and waits as plan values.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use wsgate_cluster::ObjectRef;
use wsgate_probe::Scheme;

/// What an API call does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVerb {
    /// Server-side apply, forced, field manager `wsgate`.
    ServerSideApply,
    /// A JSON merge patch (what `kubectl patch -p` sends).
    MergePatch,
    /// DELETE; an object that is not there is fine.
    Delete,
}

/// The body of an API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiBody {
    Json(serde_json::Value),
    /// A `kubernetes.io/tls` Secret built from certificate and key files when the call runs
    /// (the key is never printed).
    TlsSecret {
        cert: PathBuf,
        key: PathBuf,
    },
    /// A Deployment whose pod template carries [`IMAGE_ID_ANNOTATION`]: the ID `inspect`
    /// prints when the call runs. A changed image (a dirty tree keeps its tag, and
    /// `IfNotPresent` keeps the old pods' binary) changes the template, so the pods roll; the
    /// same image changes nothing.
    WithImageId {
        body: serde_json::Value,
        inspect: crate::action::Cmd,
    },
    /// No body (a DELETE).
    None,
}

/// The pod-template annotation holding the loaded echo image's ID.
pub const IMAGE_ID_ANNOTATION: &str = "wsgate.dev/image-id";

/// A Kubernetes API call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub verb: ApiVerb,
    pub target: ObjectRef,
    pub body: ApiBody,
    /// Retried while the admission webhook does not answer, up to this long.
    pub webhook_retry: Option<Duration>,
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.verb {
            ApiVerb::ServerSideApply => format!(
                "server-side apply (fieldManager={}, force)",
                wsgate_cluster::FIELD_MANAGER
            ),
            ApiVerb::MergePatch => format!(
                "merge patch (fieldManager={})",
                wsgate_cluster::FIELD_MANAGER
            ),
            ApiVerb::Delete => {
                return write!(f, "DELETE {} (absent is fine)", self.target.path());
            }
        };
        write!(f, "PATCH {} {kind}", self.target.path())?;
        match &self.body {
            ApiBody::WithImageId { body, inspect } => write!(
                f,
                "; {}; template annotation {IMAGE_ID_ANNOTATION} = the image ID `{inspect}` prints (a new image rolls the pods)",
                summarize(body)
            )?,
            ApiBody::None => {}
            ApiBody::Json(v) if self.verb == ApiVerb::MergePatch => write!(f, " {v}")?,
            ApiBody::Json(v) => {
                let summary = summarize(v);
                if !summary.is_empty() {
                    write!(f, "; {summary}")?;
                }
            }
            ApiBody::TlsSecret { cert, key } => write!(
                f,
                "; type kubernetes.io/tls, tls.crt from {}, tls.key from {}",
                cert.display(),
                key.display()
            )?,
        }
        if let Some(limit) = self.webhook_retry {
            write!(
                f,
                "; retried while the admission webhook does not answer, up to {} s",
                limit.as_secs()
            )?;
        }
        Ok(())
    }
}

/// What a reader wants to know of an applied object: images, hosts, annotations.
fn summarize(v: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(containers) = v
        .pointer("/spec/template/spec/containers")
        .and_then(|c| c.as_array())
    {
        for c in containers {
            if let Some(image) = c.get("image").and_then(|i| i.as_str()) {
                parts.push(format!("image {image}"));
            }
        }
    }
    if let Some(rules) = v.pointer("/spec/rules").and_then(|r| r.as_array()) {
        let hosts: Vec<&str> = rules
            .iter()
            .filter_map(|r| r.get("host").and_then(|h| h.as_str()))
            .collect();
        parts.push(format!("host {}", hosts.join(",")));
        let annotations = v
            .pointer("/metadata/annotations")
            .and_then(|a| a.as_object())
            .map(|a| {
                a.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        parts.push(if annotations.is_empty() {
            "no annotations".into()
        } else {
            annotations
        });
    }
    parts.join("; ")
}

/// What a wait waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// A Job `Complete` (or already removed by its TTL).
    JobDone { namespace: String, name: String },
    /// Every pod matching a selector Running and Ready (at least one).
    PodsReady { namespace: String, selector: String },
    /// A WebSocket echo (or, for a backend that may not echo, a handshake) through the
    /// ingress works for a host.
    Route(Route),
    /// A Deployment `Available`.
    DeploymentAvailable { namespace: String, name: String },
    /// The rollout of a Deployment's generation as it is when the wait starts complete (old
    /// pods gone, new ones available), as `kubectl rollout status` decides it.
    RolloutComplete { namespace: String, name: String },
    /// At least one Node, and every Node `Ready`.
    NodesReady,
    /// An object exists (what a Job was to write).
    Exists(ObjectRef),
}

/// A host reached through the ingress address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub scheme: Scheme,
    pub addr: String,
    pub host: String,
    pub path: String,
    /// Certificates (PEM files) a `wss` route must verify against.
    pub trust: Vec<PathBuf>,
    /// An echo must come back (the backend echoes); else the handshake is enough.
    pub echo: bool,
    /// What answer shows the route works.
    pub answer: RouteAnswer,
}

/// What answer to the upgrade shows a route works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAnswer {
    /// Only a 101: the port says it speaks WebSocket.
    Upgrade,
    /// A 101, or the backend's own refusal of the upgrade; never the controller's redirect,
    /// 404, 5xx, nor one of `proxy_statuses`, which this rule's annotations let the controller
    /// answer itself (see [`wsgate_probe::ProbeError::refused_by_backend`]).
    UpgradeOrRefusal { proxy_statuses: Vec<u16> },
}

impl Route {
    /// Whether a failed attempt still shows the route works.
    pub fn accepts(&self, e: &wsgate_probe::ProbeError) -> bool {
        match &self.answer {
            RouteAnswer::Upgrade => false,
            RouteAnswer::UpgradeOrRefusal { proxy_statuses } => {
                e.refused_by_backend(proxy_statuses)
            }
        }
    }
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JobDone { namespace, name } => {
                write!(f, "Job {namespace}/{name} Complete (or removed by its TTL)")
            }
            Self::PodsReady {
                namespace,
                selector,
            } => write!(f, "pods {selector} in {namespace} Running and Ready"),
            Self::DeploymentAvailable { namespace, name } => {
                write!(f, "Deployment {namespace}/{name} Available")
            }
            Self::RolloutComplete { namespace, name } => write!(
                f,
                "Deployment {namespace}/{name} rolled out (its current generation updated and available, no old pod left)"
            ),
            Self::NodesReady => write!(f, "every Node Ready"),
            Self::Exists(target) => write!(f, "{target} exists"),
            Self::Route(r) => {
                write!(
                    f,
                    "{} {}://{}{} via {}",
                    match (r.echo, &r.answer) {
                        (true, _) => "an echo over",
                        (false, RouteAnswer::Upgrade) => "a WebSocket handshake with",
                        (false, RouteAnswer::UpgradeOrRefusal { .. }) =>
                            "a WebSocket handshake, or the backend's own refusal of it, with",
                    },
                    r.scheme,
                    r.host,
                    r.path,
                    r.addr
                )?;
                if r.scheme == Scheme::Wss {
                    write!(
                        f,
                        ", certificate verified against {} (the controller's fake certificate fails)",
                        r.trust
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_secret_call_never_prints_key_material() {
        let call = ApiCall {
            verb: ApiVerb::ServerSideApply,
            target: ObjectRef::of::<k8s_openapi::api::core::v1::Secret>(Some("default"), "s"),
            body: ApiBody::TlsSecret {
                cert: "/t/c.crt".into(),
                key: "/t/c.key".into(),
            },
            webhook_retry: None,
        };
        let line = call.to_string();
        assert!(line.contains("tls.key from /t/c.key"), "{line}");
        assert!(!line.contains("PRIVATE KEY"));
    }

    #[test]
    fn only_a_backend_s_own_refusal_shows_an_unmarked_route_works() {
        let mut r = Route {
            scheme: Scheme::Ws,
            addr: "127.0.0.1:80".into(),
            host: "api.example".into(),
            path: "/".into(),
            trust: Vec::new(),
            echo: false,
            answer: RouteAnswer::UpgradeOrRefusal {
                proxy_statuses: vec![401, 403],
            },
        };
        let answered = |status| wsgate_probe::ProbeError::Rejected {
            url: "ws://api.example/".into(),
            status,
            location: None,
        };
        for ok in [200, 400, 405, 426] {
            assert!(r.accepts(&answered(ok)), "{ok}");
        }
        // 401/403: this rule's annotations let the controller answer them itself.
        for pending in [301, 308, 401, 403, 404, 500, 502, 503, 504] {
            assert!(!r.accepts(&answered(pending)), "{pending}");
        }
        r.answer = RouteAnswer::Upgrade;
        assert!(
            !r.accepts(&answered(400)),
            "a WebSocket port must answer 101"
        );
    }
}
