//! Waiting on the cluster: each wait has a named deadline and says what it saw last.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::runtime::conditions;
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use wsgate_wait::{Check, TimedOut, Wait};

use crate::conditions::{
    LbAddress, deployment_available, describe_deployment, describe_job, job_failure, node_ready,
    pod_ready, rollout_complete,
};
use crate::error::ClusterError;

/// Watches the named object until `cond` holds, within `limit`. The timeout names `what` and
/// the object, and shows how the object last looked (`describe`).
pub async fn wait_for<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    limit: Duration,
    cond: impl Condition<K>,
    describe: fn(Option<&K>) -> String,
) -> Result<Option<K>, ClusterError>
where
    K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let last = Arc::new(Mutex::new(None::<String>));
    let cond = Arc::new(cond);
    let timed_out = |last: Option<String>| TimedOut {
        what: format!("{what} ({namespace}/{name})"),
        limit,
        last,
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (seen, cond) = (Arc::clone(&last), Arc::clone(&cond));
        // Record every state the watch shows, so that a timeout can say where it got stuck.
        let watched = move |obj: Option<&K>| {
            *seen.lock().expect("not poisoned") = Some(describe(obj));
            cond.matches_object(obj)
        };
        match tokio::time::timeout_at(deadline, await_condition(api.clone(), name, watched)).await {
            Ok(Ok(obj)) => return Ok(obj),
            // A watch ends on its first error (kube-runtime has no backoff there): a passing
            // API hiccup must not end the wait, so watch again while time is left.
            Ok(Err(e)) => {
                *last.lock().expect("not poisoned") = Some(format!("watch failed: {e}"));
                let again = tokio::time::Instant::now() + Duration::from_secs(1);
                if again >= deadline {
                    return Err(timed_out(last.lock().expect("not poisoned").take()).into());
                }
                tokio::time::sleep_until(again).await;
            }
            Err(_) => return Err(timed_out(last.lock().expect("not poisoned").take()).into()),
        }
    }
}

/// Waits until the Deployment is available.
pub async fn wait_deployment_available(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<Deployment, ClusterError> {
    let at = (namespace, name, limit);
    wait_deployment(client, at, "Deployment available", deployment_available).await
}

/// Waits until the rollout of `generation` (the Deployment's `metadata.generation` after the
/// change that started it) is complete.
pub async fn wait_rollout_complete(
    client: &Client,
    namespace: &str,
    name: &str,
    generation: i64,
    limit: Duration,
) -> Result<Deployment, ClusterError> {
    let done = move |d: Option<&Deployment>| rollout_complete(d, generation);
    let at = (namespace, name, limit);
    wait_deployment(client, at, "Deployment rollout complete", done).await
}

/// [`wait_for`] a Deployment (namespace, name, deadline), which the condition needs to exist.
async fn wait_deployment(
    client: &Client,
    (namespace, name, limit): (&str, &str, Duration),
    what: &str,
    done: impl Condition<Deployment>,
) -> Result<Deployment, ClusterError> {
    let got = wait_for(
        client,
        namespace,
        name,
        what,
        limit,
        done,
        describe_deployment,
    )
    .await?;
    Ok(got.expect("the condition needs the object"))
}

/// Waits for a Job to complete; a Job that failed ends the wait at once with its reason. A
/// Job that is gone counts as done: it existed when this was called (the manifest was just
/// applied), so only a `ttlSecondsAfterFinished` cleanup removes it, after success or failure,
/// which is why what the Job makes must be checked as well (see [`wait_exists`]).
pub async fn wait_job_done(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<(), ClusterError> {
    let done = conditions::is_job_completed()
        .or(|j: Option<&Job>| j.is_none_or(|j| job_failure(j).is_some()));
    let job = wait_for(
        client,
        namespace,
        name,
        "Job complete",
        limit,
        done,
        describe_job,
    )
    .await?;
    match job.as_ref().and_then(job_failure) {
        Some(why) => Err(ClusterError::Failed {
            object: format!("Job {namespace}/{name}"),
            why,
        }),
        None => Ok(()),
    }
}

/// Waits until a namespaced object exists (a Secret a Job was to write, say).
pub async fn wait_exists(
    client: &Client,
    target: &crate::ObjectRef,
    limit: Duration,
) -> Result<(), ClusterError> {
    let api = target.api(client);
    let name = target.name.as_str();
    Wait::new(format!("{target} to exist"), limit)
        .every(Duration::from_secs(1))
        .until(|| async {
            match api.get_opt(name).await {
                Ok(Some(_)) => Check::Done(()),
                Ok(None) => Check::Pending("not found".to_owned()),
                Err(e) => Check::Pending(format!("get failed: {e}")),
            }
        })
        .await?;
    Ok(())
}

/// Waits until the cluster has at least one Node and every Node is Ready. `kind create
/// cluster --wait` only warns when its wait expires and exits 0, so this is the real wait.
pub async fn wait_nodes_ready(client: &Client, limit: Duration) -> Result<usize, ClusterError> {
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let api = &api;
    Ok(Wait::new("every Node Ready", limit)
        .every(Duration::from_secs(1))
        .until(move || async move {
            let nodes = match api.list(&ListParams::default()).await {
                Ok(l) => l.items,
                Err(e) => return Check::Pending(format!("list failed: {e}")),
            };
            let ready = nodes.iter().filter(|n| node_ready(n)).count();
            if !nodes.is_empty() && ready == nodes.len() {
                Check::Done(ready)
            } else {
                Check::Pending(format!("{ready} of {} Ready", nodes.len()))
            }
        })
        .await?)
}

/// Waits until the Deployment's current rollout (its generation now) is complete: after an
/// apply that may or may not have changed the pod template.
pub async fn wait_rollout_of_current(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<Deployment, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let generation = api
        .get(name)
        .await
        .map_err(crate::error::api_err(
            "get",
            format!("Deployment {namespace}/{name}"),
        ))?
        .metadata
        .generation
        .unwrap_or(0);
    wait_rollout_complete(client, namespace, name, generation, limit).await
}

/// Waits until at least one pod matches `selector` and all matching pods (not being deleted)
/// are Running and Ready.
pub async fn wait_pods_ready(
    client: &Client,
    namespace: &str,
    selector: &str,
    limit: Duration,
) -> Result<Vec<Pod>, ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    let (api, params) = (&api, &params);
    let wait = Wait::new(
        format!("pods {selector} in {namespace} Running and Ready"),
        limit,
    )
    .every(Duration::from_secs(1));
    Ok(wait
        .until(move || async move {
            let pods: Vec<Pod> = match api.list(params).await {
                Ok(list) => list.items,
                Err(e) => return Check::Pending(format!("list failed: {e}")),
            };
            let pods: Vec<Pod> = pods
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if !pods.is_empty() && pods.iter().all(pod_ready) {
                return Check::Done(pods);
            }
            let states: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}{}",
                        p.metadata.name.as_deref().unwrap_or("?"),
                        p.status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .unwrap_or("no phase"),
                        if pod_ready(p) { ", Ready" } else { "" }
                    )
                })
                .collect();
            Check::Pending(if states.is_empty() {
                "no pods".into()
            } else {
                states.join(", ")
            })
        })
        .await?)
}

/// Waits until the Ingress has an address in `status.loadBalancer.ingress[0]`.
pub async fn wait_ingress_address(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<LbAddress, ClusterError> {
    let ing = wait_for(
        client,
        namespace,
        name,
        "Ingress endpoint assignment",
        limit,
        |i: Option<&Ingress>| i.and_then(LbAddress::of).is_some(),
        |i: Option<&Ingress>| match i {
            None => "not found".into(),
            Some(i) => format!(
                "status.loadBalancer: {}",
                serde_json::to_string(&i.status).unwrap_or_default()
            ),
        },
    )
    .await?
    .expect("the condition needs the object");
    Ok(LbAddress::of(&ing).expect("the condition checked it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_error_is_retried_within_the_deadline() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let mut paths = Vec::new();
            // First the API server fails, then it lists a completed Job.
            for reply in [
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503, "reason": "ServiceUnavailable"}),
                serde_json::json!({"kind": "JobList", "apiVersion": "batch/v1", "metadata": {"resourceVersion": "1"}, "items": [
                    {"metadata": {"name": "j", "namespace": "ns", "resourceVersion": "1"},
                     "status": {"conditions": [{"type": "Complete", "status": "True"}]}}]}),
            ] {
                let (request, send) = handle.next_request().await.expect("a request");
                paths.push(request.uri().path().to_owned());
                let status = reply["code"].as_u64().unwrap_or(200) as u16;
                send.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
            paths
        });
        wait_job_done(&client, "ns", "j", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            server.await.unwrap(),
            ["/apis/batch/v1/namespaces/ns/jobs"; 2]
        );
    }
}
