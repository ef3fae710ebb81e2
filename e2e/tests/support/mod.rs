//! What the cluster-only test binaries share: the environment `cargo xtask e2e` sets for them
//! and a client for its API server.

// Each test binary includes this module and uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use wsgate_e2e::budget::Budget;
use wsgate_e2e::env::ClusterEnv;
use wsgate_e2e::{Phase, Target};
use wsgate_probe::chain;

/// A new connection through the ingress once what a test disturbed is Ready again
/// (endpoints and the controller's configuration propagate).
pub const RECONNECT: Duration = Duration::from_secs(60);

/// A client for the cluster and its environment; what is missing is named in the panic.
pub async fn cluster() -> (wsgate_cluster::Client, ClusterEnv) {
    let env = ClusterEnv::from_env().unwrap_or_else(|e| panic!("{}", chain(&e)));
    let client = wsgate_cluster::connect(&env.kubeconfig, env.context.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    (client, env)
}

/// What a disruptive cluster test starts from, once the TLS step is done.
pub struct AfterTls {
    /// The test's time, shorter than the slow-timeout that would kill it.
    pub budget: Budget,
    pub target: Target,
    pub client: wsgate_cluster::Client,
    pub env: ClusterEnv,
}

/// The TLS phase's target and the cluster, with the test's budget started.
pub async fn after_tls() -> AfterTls {
    let budget = Budget::cluster_test();
    let target = Target::for_phase(Phase::Tls)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let (client, env) = cluster().await;
    AfterTls {
        budget,
        target,
        client,
        env,
    }
}
