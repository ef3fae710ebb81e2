//! Cluster-only promises (kind tier, or an existing cluster): pod readiness and endpoint
//! assignment. Run by `cargo xtask e2e`; excluded from the default nextest profile.

use std::time::{Duration, Instant};

use wsgate_cluster::{connect, wait_deployment_available, wait_ingress_address, wait_pods_ready};
use wsgate_e2e::Row;
use wsgate_e2e::budget::Budget;
use wsgate_e2e::env::ClusterEnv;
use wsgate_manifests::{DOCUMENTED_INGRESS, DOCUMENTED_SERVICE};

/// The document says the endpoint takes "about 10 seconds"; allow for a cold cluster.
const ENDPOINT_DEADLINE: Duration = Duration::from_secs(120);
/// Image load and container start on a fresh kind node (within the test's budget).
const READY_DEADLINE: Duration = Duration::from_secs(240);

async fn client() -> (wsgate_cluster::Client, ClusterEnv) {
    let env = ClusterEnv::from_env().unwrap_or_else(|e| panic!("{e}"));
    let client = connect(&env.kubeconfig, env.context.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (client, env)
}

#[tokio::test]
async fn documented_deployment_becomes_ready() {
    let budget = Budget::cluster_test();
    let (client, env) = client().await;
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
    let (observed, pass) = match &result {
        Ok(pods) => (
            format!(
                "available after {} ms; Running and Ready: {}",
                start.elapsed().as_millis(),
                pods.iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            true,
        ),
        Err(e) => (e.to_string(), false),
    };
    let row = Row::check(
        "pod_readiness",
        &env.tier,
        &format!("Deployment {DOCUMENTED_SERVICE}"),
        "wait for Available and pod Ready",
        "Deployment available, pod Running and Ready",
        observed,
        pass,
    );
    row.assert("");
}

#[tokio::test]
async fn documented_ingress_gets_an_endpoint() {
    let budget = Budget::cluster_test();
    let (client, env) = client().await;
    let start = Instant::now();
    let result = wait_ingress_address(
        &client,
        &env.namespace,
        DOCUMENTED_INGRESS,
        budget.left(ENDPOINT_DEADLINE),
    )
    .await;
    let (observed, pass) = match &result {
        Ok(addr) => {
            let jsonpath = addr.documented_jsonpath_output();
            let note = if jsonpath.is_empty() {
                " (the document's `{.status.loadBalancer.ingress[0].ip}` prints nothing here)"
                    .to_owned()
            } else {
                String::new()
            };
            (
                format!("{addr} after {} ms{note}", start.elapsed().as_millis()),
                true,
            )
        }
        Err(e) => (e.to_string(), false),
    };
    let row = Row::check(
        "endpoint_assignment",
        &env.tier,
        "ws (documented)",
        "read status.loadBalancer.ingress[0]",
        "an ip or a hostname",
        observed,
        pass,
    );
    row.assert("");
}
