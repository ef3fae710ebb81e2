//! Cluster-only promises (kind tier, or an existing cluster): pod readiness and endpoint
//! assignment. Run by `cargo xtask e2e`; excluded from the default nextest profile.

use std::time::{Duration, Instant};

use wsgate_cluster::{wait_deployment_available, wait_ingress_address, wait_pods_ready};
use wsgate_e2e::budget::Budget;
use wsgate_e2e::{Expect, Observed, Row};
use wsgate_manifests::{DOCUMENTED_INGRESS, DOCUMENTED_SERVICE};
use wsgate_probe::chain;

/// The document says the endpoint takes "about 10 seconds"; allow for a cold cluster.
mod support;

const ENDPOINT_DEADLINE: Duration = Duration::from_secs(120);
/// Image load and container start on a fresh kind node (within the test's budget).
const READY_DEADLINE: Duration = Duration::from_secs(240);

#[tokio::test]
async fn documented_deployment_becomes_ready() {
    let budget = Budget::cluster_test();
    let (client, env) = support::cluster().await;
    let start = Instant::now();
    let result = async {
        wait_deployment_available(
            &client,
            &env.namespace,
            DOCUMENTED_SERVICE,
            budget.left(READY_DEADLINE),
        )
        .await?;
        wait_pods_ready(
            &client,
            &env.namespace,
            "app=ws",
            budget.left(READY_DEADLINE),
        )
        .await
    }
    .await;
    let observed = match &result {
        Ok(pods) => Observed::check(
            true,
            format!(
                "available after {} ms; Running and Ready: {}",
                start.elapsed().as_millis(),
                pods.iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => Observed::check(false, chain(e)),
    };
    Row::builder("pod_readiness")
        .tier(&env.tier)
        .ingress(format!("Deployment {DOCUMENTED_SERVICE}"))
        .client("wait for Available and pod Ready")
        .judge(
            Expect::holds("Deployment available, pod Running and Ready"),
            observed,
        )
        .assert("");
}

#[tokio::test]
async fn documented_ingress_gets_an_endpoint() {
    let budget = Budget::cluster_test();
    let (client, env) = support::cluster().await;
    let start = Instant::now();
    let result = wait_ingress_address(
        &client,
        &env.namespace,
        DOCUMENTED_INGRESS,
        budget.left(ENDPOINT_DEADLINE),
    )
    .await;
    let observed = match &result {
        Ok(addr) => {
            let note = if addr.documented_jsonpath_output().is_empty() {
                " (the document's `{.status.loadBalancer.ingress[0].ip}` prints nothing here)"
            } else {
                ""
            };
            Observed::check(
                true,
                format!("{addr} after {} ms{note}", start.elapsed().as_millis()),
            )
        }
        Err(e) => Observed::check(false, chain(e)),
    };
    Row::builder("endpoint_assignment")
        .tier(&env.tier)
        .ingress("ws (documented)")
        .client("read status.loadBalancer.ingress[0]")
        .judge(Expect::holds("an ip or a hostname"), observed)
        .assert("");
}
