//! The cluster side of the suite: server-side apply, the TLS patch, waits with deadlines, diagnostics.

use std::fmt::Debug;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The client type, re-exported so callers need not depend on kube themselves.
pub use kube::Client;

/// The field manager for server-side apply.
pub const FIELD_MANAGER: &str = "wsgate";
/// The label selector of the ingress-nginx controller pod.
pub const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/component=controller";
/// The namespace of ingress-nginx.
pub const INGRESS_NGINX_NAMESPACE: &str = "ingress-nginx";
/// The admission Jobs of the ingress-nginx manifest.
pub const ADMISSION_JOBS: [&str; 2] = [
    "ingress-nginx-admission-create",
    "ingress-nginx-admission-patch",
];

/// What failed, on which object.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{what} {name}: {source}")]
    Api {
        what: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{what} {name}: not done within {}s{}", deadline.as_secs(), if last.is_empty() { String::new() } else { format!(" (last: {last})") })]
    Deadline {
        what: &'static str,
        name: String,
        deadline: Duration,
        last: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn api_err(what: &'static str, name: &str) -> impl FnOnce(kube::Error) -> ClusterError {
    let name = name.to_owned();
    move |source| ClusterError::Api {
        what,
        name,
        source: Box::new(source),
    }
}

/// A client for `kubeconfig` (and `context`, else its current one).
pub async fn connect(kubeconfig: &Path, context: Option<&str>) -> Result<Client, ClusterError> {
    let err = |message: String| ClusterError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        message,
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.to_string()))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| err(e.to_string()))?;
    Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// Server-side apply of a namespaced object (forced: the suite owns what it applies).
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K, ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut obj = obj.clone();
    // Server-side apply wants apiVersion/kind in the body and no server-set fields.
    obj.meta_mut().managed_fields = None;
    obj.meta_mut().resource_version = None;
    obj.meta_mut().namespace = Some(namespace.to_owned());
    let mut value = serde_json::to_value(&obj).expect("k8s objects serialize");
    value["apiVersion"] = K::api_version(&Default::default()).into();
    value["kind"] = K::kind(&Default::default()).into();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await
    .map_err(api_err(
        "apply",
        &format!("{}/{namespace}/{name}", K::kind(&Default::default())),
    ))
}

/// Applies an Ingress, retrying while the admission webhook is not answering yet
/// ("failed calling webhook"), until `deadline`.
pub async fn apply_ingress(
    client: &Client,
    namespace: &str,
    ing: &Ingress,
    deadline: Duration,
) -> Result<Ingress, ClusterError> {
    let start = Instant::now();
    loop {
        match apply(client, namespace, ing).await {
            Ok(applied) => return Ok(applied),
            Err(ClusterError::Api { source, name, .. }) if is_webhook_not_ready(&source) => {
                if start.elapsed() >= deadline {
                    return Err(ClusterError::Deadline {
                        what: "apply (admission webhook not answering)",
                        name,
                        deadline,
                        last: source.to_string(),
                    });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an API error is the admission webhook not being reachable yet.
pub fn is_webhook_not_ready(e: &kube::Error) -> bool {
    let text = e.to_string();
    text.contains("failed calling webhook") || text.contains("no endpoints available for service")
}

/// The document's `kubectl patch ingress NAME -p BODY` (a JSON merge patch).
pub async fn merge_patch_ingress(
    client: &Client,
    namespace: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<Ingress, ClusterError> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(api_err("patch Ingress", &format!("{namespace}/{name}")))
}

/// Waits until `cond` holds for the named object, with a deadline.
pub async fn wait_for<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &'static str,
    deadline: Duration,
    cond: impl Condition<K>,
) -> Result<K, ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug + Send + 'static,
    K::DynamicType: Default,
{
    await_within(client, namespace, name, what, deadline, cond)
        .await?
        .ok_or_else(|| ClusterError::Deadline {
            what,
            name: format!("{namespace}/{name}"),
            deadline,
            last: "object was deleted".into(),
        })
}

/// `await_condition` under a deadline; `None` when the object is gone (or never existed and
/// the condition accepted that).
async fn await_within<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &'static str,
    deadline: Duration,
    cond: impl Condition<K>,
) -> Result<Option<K>, ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let last = match tokio::time::timeout(deadline, await_condition(api, name, cond)).await {
        Ok(Ok(obj)) => return Ok(obj),
        Ok(Err(e)) => e.to_string(),
        Err(_) => String::new(),
    };
    Err(ClusterError::Deadline {
        what,
        name: format!("{namespace}/{name}"),
        deadline,
        last,
    })
}

/// A Deployment is available: all replicas updated and available (`Available=True`).
pub fn deployment_available(d: Option<&Deployment>) -> bool {
    let Some(d) = d else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.as_ref();
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let condition = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        });
    available >= want && condition
}

/// A Job has completed (`Complete=True`).
pub fn job_complete(j: Option<&Job>) -> bool {
    j.and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// Waits for a Job to complete. A Job that is gone counts as done: it existed when this was
/// called (the manifest was just applied), so only a `ttlSecondsAfterFinished` cleanup removes it.
pub async fn wait_job_done(
    client: &Client,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> Result<(), ClusterError> {
    let done = |j: Option<&Job>| j.is_none() || job_complete(j);
    await_within(client, namespace, name, "Job complete", deadline, done).await?;
    Ok(())
}

/// A pod is Running and its `Ready` condition is true.
pub fn pod_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until at least one pod matches `selector` and all matching pods are Running and Ready.
pub async fn wait_pods_ready(
    client: &Client,
    namespace: &str,
    selector: &str,
    deadline: Duration,
) -> Result<Vec<Pod>, ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let start = Instant::now();
    loop {
        let last = match api.list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                let pods: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                if !pods.is_empty() && pods.iter().all(pod_ready) {
                    return Ok(pods);
                }
                pods.iter()
                    .map(|p| {
                        format!(
                            "{}: {}",
                            p.metadata.name.as_deref().unwrap_or("?"),
                            p.status
                                .as_ref()
                                .and_then(|s| s.phase.clone())
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= deadline {
            return Err(ClusterError::Deadline {
                what: "pods Running and Ready",
                name: format!("{namespace} {selector}"),
                deadline,
                last,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes the pods matching `selector` (a fault: what a node drain or an eviction does).
pub async fn delete_pods(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<String>, ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(api_err("list pods", &format!("{namespace} {selector}")))?;
    let mut deleted = Vec::new();
    for p in list.items {
        let name = p.metadata.name.unwrap_or_default();
        api.delete(&name, &Default::default())
            .await
            .map_err(api_err("delete pod", &format!("{namespace}/{name}")))?;
        deleted.push(name);
    }
    Ok(deleted)
}

/// The address the controller published for an Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbAddress {
    Ip(String),
    Hostname(String),
}

impl LbAddress {
    /// From `status.loadBalancer.ingress[0]`: ip if set, else hostname.
    pub fn of(ing: &Ingress) -> Option<Self> {
        let first = ing
            .status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?
            .clone();
        match (
            first.ip.filter(|s| !s.is_empty()),
            first.hostname.filter(|s| !s.is_empty()),
        ) {
            (Some(ip), _) => Some(Self::Ip(ip)),
            (None, Some(h)) => Some(Self::Hostname(h)),
            (None, None) => None,
        }
    }

    /// What the document's `jsonpath='{.status.loadBalancer.ingress[0].ip}'` prints.
    pub fn documented_jsonpath_output(&self) -> &str {
        match self {
            Self::Ip(ip) => ip,
            Self::Hostname(_) => "",
        }
    }
}

impl std::fmt::Display for LbAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "ip {ip}"),
            Self::Hostname(h) => write!(f, "hostname {h}"),
        }
    }
}

/// Waits until the Ingress has an address in `status.loadBalancer.ingress[0]`.
pub async fn wait_ingress_address(
    client: &Client,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> Result<LbAddress, ClusterError> {
    let ing = wait_for(
        client,
        namespace,
        name,
        "Ingress endpoint assignment",
        deadline,
        |i: Option<&Ingress>| i.and_then(LbAddress::of).is_some(),
    )
    .await?;
    Ok(LbAddress::of(&ing).expect("condition checked it"))
}

/// Writes what a person needs to understand a failed run into `dir`: controller logs, events of
/// both namespaces, the Ingresses as YAML. Best effort: each part that fails is noted in its file.
pub async fn collect_diagnostics(
    client: &Client,
    namespace: &str,
    dir: &Path,
) -> Result<Vec<String>, ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> Result<(), ClusterError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ClusterError::Write {
            path: path.display().to_string(),
            source,
        })?;
        written.push(name.to_owned());
        Ok(())
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), INGRESS_NGINX_NAMESPACE);
    let logs = match pods
        .list(&ListParams::default().labels(CONTROLLER_SELECTOR))
        .await
    {
        Ok(list) => {
            let mut out = String::new();
            for p in list.items {
                let name = p.metadata.name.unwrap_or_default();
                let log = pods
                    .logs(&name, &LogParams::default())
                    .await
                    .unwrap_or_else(|e| format!("(cannot read logs: {e})"));
                out.push_str(&format!("==> {name} <==\n{log}\n"));
            }
            out
        }
        Err(e) => format!("(cannot list controller pods: {e})"),
    };
    write("controller.log", logs)?;
    for ns in [INGRESS_NGINX_NAMESPACE, namespace] {
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        let text = match events.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {}/{}: {} {}",
                        e.last_timestamp
                            .as_ref()
                            .map(|t| t.0.to_string())
                            .unwrap_or_default(),
                        e.type_.as_deref().unwrap_or(""),
                        e.involved_object.kind.as_deref().unwrap_or(""),
                        e.involved_object.name.as_deref().unwrap_or(""),
                        e.reason.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("(cannot list events: {e})"),
        };
        write(&format!("events-{ns}.txt"), text)?;
    }
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let yaml = match ingresses.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(|i| {
                serde_saphyr::to_string(i).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
            })
            .collect::<Vec<_>>()
            .join("---\n"),
        Err(e) => format!("# cannot list Ingresses: {e}\n"),
    };
    write("ingresses.yaml", yaml)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };
    use kube::client::Body;

    fn with_status(ip: Option<&str>, hostname: Option<&str>) -> Ingress {
        Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        ip: ip.map(str::to_owned),
                        hostname: hostname.map(str::to_owned),
                        ..Default::default()
                    }]),
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn kind_status_is_a_hostname_and_the_documented_jsonpath_prints_nothing() {
        let addr = LbAddress::of(&with_status(None, Some("localhost"))).unwrap();
        assert_eq!(addr, LbAddress::Hostname("localhost".into()));
        assert_eq!(addr.documented_jsonpath_output(), "");
    }

    #[test]
    fn cloud_status_is_an_ip() {
        let addr = LbAddress::of(&with_status(Some("47.102.0.1"), None)).unwrap();
        assert_eq!(addr.documented_jsonpath_output(), "47.102.0.1");
        assert_eq!(LbAddress::of(&with_status(None, None)), None);
        assert_eq!(LbAddress::of(&Ingress::default()), None);
    }

    #[tokio::test]
    async fn tls_patch_is_a_merge_patch_on_the_ingress_path_with_the_documented_body() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("one request");
            assert_eq!(request.method(), http::Method::PATCH);
            assert_eq!(
                request.uri().path(),
                "/apis/networking.k8s.io/v1/namespaces/default/ingresses/ws"
            );
            assert_eq!(
                request.headers()["content-type"],
                "application/merge-patch+json"
            );
            let body = request.into_body().collect_bytes().await.unwrap();
            let reply = serde_json::to_vec(&Ingress::default()).unwrap();
            send.send_response(Response::builder().body(Body::from(reply)).unwrap());
            String::from_utf8(body.to_vec()).unwrap()
        });
        let body: serde_json::Value = serde_json::from_str(
            r#"{"spec":{"tls":[{"hosts":["test.example.com"],"secretName":"nginx-ingress-tls"}]}}"#,
        )
        .unwrap();
        merge_patch_ingress(&client, "default", "ws", &body)
            .await
            .unwrap();
        let sent = server.await.unwrap();
        assert_eq!(
            sent,
            r#"{"spec":{"tls":[{"hosts":["test.example.com"],"secretName":"nginx-ingress-tls"}]}}"#
        );
    }

    #[tokio::test]
    async fn apply_is_a_forced_server_side_apply_with_kind_and_api_version() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("one request");
            assert_eq!(request.method(), http::Method::PATCH);
            assert_eq!(
                request.uri().path(),
                "/apis/networking.k8s.io/v1/namespaces/suite/ingresses/ws"
            );
            let query = request.uri().query().unwrap_or_default().to_owned();
            assert_eq!(
                request.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            let body = request.into_body().collect_bytes().await.unwrap();
            let reply = serde_json::to_vec(&Ingress::default()).unwrap();
            send.send_response(Response::builder().body(Body::from(reply)).unwrap());
            (
                query,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        });
        let mut ing = Ingress::default();
        ing.metadata.name = Some("ws".into());
        apply(&client, "suite", &ing).await.unwrap();
        let (query, body) = server.await.unwrap();
        assert!(
            query.contains("fieldManager=wsgate") && query.contains("force=true"),
            "{query}"
        );
        assert_eq!(body["kind"], "Ingress");
        assert_eq!(body["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(body["metadata"]["namespace"], "suite");
    }
}
