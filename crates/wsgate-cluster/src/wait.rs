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

/// How a Deployment looks, for a timeout message.
pub fn describe_deployment(d: Option<&Deployment>) -> String {
    let Some(d) = d else {
        return "not found".into();
    };
    let s = d.status.clone().unwrap_or_default();
    format!(
        "{}/{} available, {} updated",
        s.available_replicas.unwrap_or(0),
        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        s.updated_replicas.unwrap_or(0)
    )
}

/// Waits until the Deployment is available.
pub async fn wait_deployment_available(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<Deployment, ClusterError> {
    let got = wait_for(
        client,
        namespace,
        name,
        "Deployment available",
        limit,
        deployment_available,
        describe_deployment,
    )
    .await?;
    Ok(got.expect("the condition needs the object"))
}

/// Whether a Deployment's rollout to at least `generation` is complete, as `kubectl rollout
/// status` decides it: the controller has observed that generation, every replica is updated,
/// no old one is left, and the updated ones are available.
pub fn rollout_complete(d: Option<&Deployment>, generation: i64) -> bool {
    let Some(d) = d else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    let updated = s.updated_replicas.unwrap_or(0);
    s.observed_generation.unwrap_or(0) >= generation
        && updated == want
        && s.replicas.unwrap_or(0) == updated
        && s.available_replicas.unwrap_or(0) >= updated
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
    let got = wait_for(
        client,
        namespace,
        name,
        "Deployment rollout complete",
        limit,
        move |d: Option<&Deployment>| rollout_complete(d, generation),
        describe_deployment,
    )
    .await?;
    Ok(got.expect("the condition needs the object"))
}

fn describe_job(j: Option<&Job>) -> String {
    match j.and_then(|j| j.status.as_ref()) {
        None if j.is_none() => "gone".into(),
        None => "no status yet".into(),
        Some(s) => format!(
            "active {}, succeeded {}, failed {}",
            s.active.unwrap_or(0),
            s.succeeded.unwrap_or(0),
            s.failed.unwrap_or(0)
        ),
    }
}

/// Waits for a Job to complete. A Job that is gone counts as done: it existed when this was
/// called (the manifest was just applied), so only a `ttlSecondsAfterFinished` cleanup removes it.
pub async fn wait_job_done(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<(), ClusterError> {
    let done = conditions::is_job_completed().or(|j: Option<&Job>| j.is_none());
    wait_for(
        client,
        namespace,
        name,
        "Job complete",
        limit,
        done,
        describe_job,
    )
    .await?;
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
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };

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

    #[test]
    fn a_rollout_is_complete_only_once_its_generation_is_observed_and_available() {
        let d = |observed: i64, updated: i32, replicas: i32, available: i32| {
            serde_json::from_value::<Deployment>(serde_json::json!({
                "metadata": {"name": "c", "generation": 2},
                "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": {"observedGeneration": observed, "updatedReplicas": updated,
                           "replicas": replicas, "availableReplicas": available}
            }))
            .unwrap()
        };
        // The old status, before the controller saw the restart: looks fine, is not.
        assert!(!rollout_complete(Some(&d(1, 1, 1, 1)), 2));
        assert!(
            !rollout_complete(Some(&d(2, 1, 2, 1)), 2),
            "the old pod is still there"
        );
        assert!(
            !rollout_complete(Some(&d(2, 1, 1, 0)), 2),
            "not available yet"
        );
        assert!(rollout_complete(Some(&d(2, 1, 1, 1)), 2));
        assert!(!rollout_complete(None, 2));
    }

    #[test]
    fn a_job_removed_by_its_ttl_counts_as_done() {
        let done = conditions::is_job_completed().or(|j: Option<&Job>| j.is_none());
        assert!(done.matches_object(None));
        assert!(!done.matches_object(Some(&Job::default())));
        assert_eq!(describe_job(None), "gone");
    }

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
