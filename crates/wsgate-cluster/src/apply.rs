//! Changing the cluster: server-side apply, the document's merge patch, deleting pods.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde::Serialize;

use crate::error::{ClusterError, api_err, api_status};

/// The field manager for server-side apply.
pub const FIELD_MANAGER: &str = "wsgate";

/// One object on the API server: its resource type, namespace (none when cluster-scoped), name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The object of type `K` named `name` in `namespace` (`None` for a cluster-scoped kind).
    pub fn of<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> Self {
        Self {
            resource: ApiResource::erase::<K>(&()),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The object's URL path on the API server.
    pub fn path(&self) -> String {
        let r = &self.resource;
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        match &self.namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{}/{}", r.plural, self.name),
            None => format!("{base}/{}/{}", r.plural, self.name),
        }
    }

    pub(crate) fn api(&self, client: &Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.resource.kind, self.name),
            None => write!(f, "{} {}", self.resource.kind, self.name),
        }
    }
}

/// A typed object as the body of a server-side apply: apiVersion and kind set, server-set
/// fields dropped, the namespace set to `namespace`.
pub fn apply_body<K>(obj: &K, namespace: Option<&str>) -> serde_json::Value
where
    K: Resource<DynamicType = ()> + Serialize + Clone,
{
    let mut obj = obj.clone();
    obj.meta_mut().managed_fields = None;
    obj.meta_mut().resource_version = None;
    obj.meta_mut().uid = None;
    obj.meta_mut().creation_timestamp = None;
    obj.meta_mut().namespace = namespace.map(str::to_owned);
    let mut value = serde_json::to_value(&obj).expect("k8s objects serialize");
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    if let Some(status) = value.as_object_mut() {
        status.remove("status");
    }
    value
}

/// Server-side apply (forced: the suite owns what it applies).
pub async fn server_side_apply(
    client: &Client,
    target: &ObjectRef,
    body: &serde_json::Value,
) -> Result<DynamicObject, ClusterError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    patch(
        client,
        target,
        &params,
        &Patch::Apply(body),
        "server-side apply of",
    )
    .await
}

/// One PATCH of `target`; a refusal names `verb` and the object.
async fn patch(
    client: &Client,
    target: &ObjectRef,
    params: &PatchParams,
    body: &Patch<&serde_json::Value>,
    verb: &'static str,
) -> Result<DynamicObject, ClusterError> {
    target
        .api(client)
        .patch(&target.name, params, body)
        .await
        .map_err(api_err(verb, target))
}

/// Whether the API server refused a request because an admission webhook could not be called
/// (the controller is not answering yet): it reports that as 500 `InternalError`.
pub fn is_webhook_unavailable(e: &ClusterError) -> bool {
    match e {
        ClusterError::Api { source, .. } => {
            api_status(source).is_some_and(|s| s.code == 500 && s.reason == "InternalError")
        }
        _ => false,
    }
}

/// Server-side apply, retried while the admission webhook is not answering, until `limit`.
pub async fn apply_when_webhook_answers(
    client: &Client,
    target: &ObjectRef,
    body: &serde_json::Value,
    limit: Duration,
) -> Result<DynamicObject, ClusterError> {
    let wait = wsgate_wait::Wait::new(
        format!("server-side apply of {target} (admission webhook not answering)"),
        limit,
    )
    .every(Duration::from_secs(2));
    let refused = std::sync::Mutex::new(None);
    let refused_ref = &refused;
    let result = wait
        .until(move || async move {
            match server_side_apply(client, target, body).await {
                Err(e) if is_webhook_unavailable(&e) => {
                    let seen = e.status().map(|c| format!("HTTP {c}")).unwrap_or_default();
                    *refused_ref.lock().expect("not poisoned") = Some(e);
                    wsgate_wait::Check::Pending(seen)
                }
                done => wsgate_wait::Check::Done(done),
            }
        })
        .await;
    match result {
        Ok(done) => done,
        // The last refusal says more than the timeout alone.
        Err(timed_out) => Err(refused
            .into_inner()
            .expect("not poisoned")
            .unwrap_or(ClusterError::TimedOut(timed_out))),
    }
}

/// The document's `kubectl patch ... -p BODY` (a JSON merge patch).
pub async fn merge_patch(
    client: &Client,
    target: &ObjectRef,
    body: &serde_json::Value,
) -> Result<DynamicObject, ClusterError> {
    // Named, so the object's managedFields say wsgate changed it (see `ownership`).
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    patch(
        client,
        target,
        &params,
        &Patch::Merge(body),
        "merge patch of",
    )
    .await
}

/// What `kubectl rollout restart deployment/NAME` does: a new `restartedAt` annotation on the
/// pod template, so the Deployment rolls its pods. Returns the Deployment's generation after
/// the change, for [`crate::wait_rollout_complete`].
pub async fn restart_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<i64, ClusterError> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": now
    }}}}});
    let patched = merge_patch(
        client,
        &ObjectRef::of::<k8s_openapi::api::apps::v1::Deployment>(Some(namespace), name),
        &body,
    )
    .await?;
    Ok(patched.metadata.generation.unwrap_or(0))
}

/// Deletes an object; one that is not there is fine. Returns whether it was there.
pub async fn delete_object(client: &Client, target: &ObjectRef) -> Result<bool, ClusterError> {
    match target
        .api(client)
        .delete(&target.name, &Default::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if api_status(&e).is_some_and(|s| s.code == 404) => Ok(false),
        Err(e) => Err(api_err("delete", target)(e)),
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
        .map_err(api_err("list pods", format!("{namespace} {selector}")))?;
    let mut deleted = Vec::new();
    for p in list.items {
        let name = p.metadata.name.unwrap_or_default();
        api.delete(&name, &Default::default())
            .await
            .map_err(api_err("delete pod", format!("{namespace}/{name}")))?;
        deleted.push(name);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::client::Body;

    #[test]
    fn paths_of_core_grouped_and_cluster_scoped_objects() {
        assert_eq!(
            ObjectRef::of::<Ingress>(Some("default"), "ws").path(),
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses/ws"
        );
        assert_eq!(
            ObjectRef::of::<Pod>(Some("ns"), "p").path(),
            "/api/v1/namespaces/ns/pods/p"
        );
        assert_eq!(
            ObjectRef::of::<Namespace>(None, "wsgate-e2e").path(),
            "/api/v1/namespaces/wsgate-e2e"
        );
    }

    /// Serves one request with `reply`, returning what was asked.
    async fn one_request(
        status: u16,
        reply: serde_json::Value,
        call: impl AsyncFnOnce(Client),
    ) -> (http::Method, String, String, String) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("one request");
            let method = request.method().clone();
            let uri = request.uri().to_string();
            let ctype = request.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
            (
                method,
                uri,
                ctype,
                String::from_utf8(body.to_vec()).unwrap(),
            )
        });
        call(client).await;
        server.await.unwrap()
    }

    fn ingress_reply() -> serde_json::Value {
        serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ws"}})
    }

    #[tokio::test]
    async fn tls_patch_is_a_merge_patch_on_the_ingress_path_with_the_documented_body() {
        let body: serde_json::Value = serde_json::from_str(wsgate_manifests::DOCUMENTED_TLS_PATCH)
            .expect("the documented patch is JSON");
        let target = ObjectRef::of::<Ingress>(Some("default"), "ws");
        let (method, uri, ctype, sent) = one_request(200, ingress_reply(), async |c| {
            merge_patch(&c, &target, &body).await.unwrap();
        })
        .await;
        assert_patch(&method, &ctype, "application/merge-patch+json");
        assert!(uri.starts_with(&target.path()), "{uri}");
        assert!(uri.contains("fieldManager=wsgate"), "{uri}");
        assert_eq!(sent, wsgate_manifests::DOCUMENTED_TLS_PATCH);
    }

    /// The request was a PATCH of this content type (which says the kind of patch).
    fn assert_patch(method: &http::Method, content_type: &str, want: &str) {
        assert_eq!((method, content_type), (&http::Method::PATCH, want));
    }

    #[tokio::test]
    async fn apply_is_a_forced_server_side_apply_with_kind_and_api_version() {
        let mut ing = Ingress::default();
        ing.metadata.name = Some("ws".into());
        let body = apply_body(&ing, Some("suite"));
        let target = ObjectRef::of::<Ingress>(Some("suite"), "ws");
        let (method, uri, ctype, sent) = one_request(200, ingress_reply(), async |c| {
            server_side_apply(&c, &target, &body).await.unwrap();
        })
        .await;
        assert_patch(&method, &ctype, "application/apply-patch+yaml");
        assert!(
            uri.contains("fieldManager=wsgate") && uri.contains("force=true"),
            "{uri}"
        );
        let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(sent["kind"], "Ingress");
        assert_eq!(sent["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(sent["metadata"]["namespace"], "suite");
    }

    #[tokio::test]
    async fn a_webhook_that_does_not_answer_is_recognised_by_its_status_not_its_text() {
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
            "reason": "InternalError",
            "message": "Internal error occurred: failed calling webhook \"validate.nginx.ingress.kubernetes.io\""
        });
        let mut err = None;
        one_request(500, status, async |c| {
            err = server_side_apply(
                &c,
                &ObjectRef::of::<Ingress>(Some("default"), "ws"),
                &ingress_reply(),
            )
            .await
            .err();
        })
        .await;
        let err = err.expect("a 500 is an error");
        assert_eq!(err.status(), Some(500));
        assert!(is_webhook_unavailable(&err));
        assert_eq!(
            err.to_string(),
            "server-side apply of Ingress default/ws failed"
        );
    }
}
