//! Cluster faults (kind tier, run by `cargo xtask e2e` after phase 2): the echo pod deleted under
//! an open connection. Excluded from the default nextest profile.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use wsgate_e2e::target::ClusterEnv;
use wsgate_e2e::{Phase, Row, Target};
use wsgate_manifests::{DOCUMENTED_SERVICE, Variant};
use wsgate_probe::{HoldOutcome, Message, Scheme};

/// How long a closed connection may take to be noticed after the pod is deleted (the pod's
/// termination grace plus the echo server's 1001 close).
const CLOSE_DEADLINE: Duration = Duration::from_secs(40);
const READY_AGAIN: Duration = Duration::from_secs(180);

#[tokio::test]
async fn deleting_the_echo_pod_closes_its_connection_and_a_new_one_succeeds() {
    let target = Target::for_phase(Phase::Tls)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let env = ClusterEnv::from_env().unwrap_or_else(|e| panic!("{e}"));
    let client = wsgate_cluster::connect(&env.kubeconfig, env.context.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v = Variant::documented();
    let mut s = target.probe(Scheme::Wss, &v).connect().await.unwrap();
    s.echo(Message::text("before the fault")).await.unwrap();
    let deleted_at = Instant::now();
    let pods = wsgate_cluster::delete_pods(&client, &env.namespace, "app=ws")
        .await
        .unwrap();
    let how = s.wait_for_close(CLOSE_DEADLINE).await;
    let after = deleted_at.elapsed();
    let outcome = match how {
        Some(how) => HoldOutcome::Closed { after, how },
        None => HoldOutcome::Survived { held: after },
    };
    // Ready again, and a fresh connection through the ingress works.
    wsgate_cluster::wait_for::<Deployment>(
        &client,
        &env.namespace,
        DOCUMENTED_SERVICE,
        "Deployment available again",
        READY_AGAIN,
        wsgate_cluster::deployment_available,
    )
    .await
    .unwrap();
    wsgate_cluster::wait_pods_ready(&client, &env.namespace, "app=ws", READY_AGAIN)
        .await
        .unwrap();
    let recovered = async {
        let start = Instant::now();
        loop {
            let attempt = async {
                let mut s = target.probe(Scheme::Wss, &v).connect().await?;
                s.echo(Message::text("after the fault")).await
            };
            match attempt.await {
                Ok(_) => return Ok(start.elapsed()),
                Err(e) if start.elapsed() > Duration::from_secs(60) => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
    .await;
    let pass = outcome.closed_after().is_some() && recovered.is_ok();
    Row::check(
        "deleting_the_echo_pod_closes_its_connection_and_a_new_one_succeeds",
        target.tier(),
        "ws (documented, TLS)",
        &format!(
            "delete pod(s) {} under an open wss connection",
            pods.join(", ")
        ),
        "closed promptly; a new connection works once Ready",
        format!("{outcome}; new connection: {recovered:?}"),
        pass,
    )
    .assert("");
}
