//! What the suite waits for, as pure functions of an object's status: a Deployment available
//! or rolled out, a pod ready, a Job's state, an Ingress's published address.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;

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

pub(crate) fn describe_job(j: Option<&Job>) -> String {
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

/// The `Failed=True` condition of a Job, as `reason: message`, if it has one: it will not
/// complete (its backoff limit or deadline was reached).
pub fn job_failure(j: &Job) -> Option<String> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or("Failed"),
                c.message.as_deref().unwrap_or("no message")
            )
        })
}

/// A Node's `Ready` condition is true.
pub fn node_ready(n: &k8s_openapi::api::core::v1::Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod is Running and its `Ready` condition is true.
pub fn pod_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };
    use kube::runtime::conditions;
    use kube::runtime::wait::Condition;

    use super::*;

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
    fn a_failed_job_says_why() {
        let j: Job = serde_json::from_value(serde_json::json!({
            "status": {"failed": 7, "conditions": [
                {"type": "FailureTarget", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}
        }))
        .unwrap();
        assert_eq!(
            job_failure(&j).as_deref(),
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
        );
        assert_eq!(job_failure(&Job::default()), None);
    }

    #[test]
    fn a_job_removed_by_its_ttl_counts_as_done() {
        let done = conditions::is_job_completed().or(|j: Option<&Job>| j.is_none());
        assert!(done.matches_object(None));
        assert!(!done.matches_object(Some(&Job::default())));
        assert_eq!(describe_job(None), "gone");
    }
}
