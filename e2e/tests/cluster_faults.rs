//! Cluster faults (kind tier, run by `cargo xtask e2e` after phase 2, alone): the echo pod
//! deleted under an open connection. Excluded from the default nextest profile.

use std::time::{Duration, Instant};

use wsgate_e2e::cases::reconnects;
use wsgate_e2e::{Expect, Observed};
use wsgate_manifests::{DOCUMENTED_SERVICE, Variant};
use wsgate_probe::{Message, Scheme};

mod support;

/// How long a closed connection may take to be noticed after the pod is deleted (the pod's
/// termination grace plus the echo server's 1001 close).
const CLOSE_DEADLINE: Duration = Duration::from_secs(40);
/// The replacement pod scheduled, started and Ready.
const READY_AGAIN: Duration = Duration::from_secs(180);

#[tokio::test]
async fn deleting_the_echo_pod_closes_its_connection_and_a_new_one_succeeds() {
    let support::AfterTls {
        budget,
        target,
        client,
        env,
    } = support::after_tls().await;
    let v = Variant::documented();
    let probe = target.probe(Scheme::Wss, &v);
    let mut s = probe.connect().await.unwrap();
    s.echo(Message::text("before the fault")).await.unwrap();
    let deleted_at = Instant::now();
    let pods = wsgate_cluster::delete_pods(&client, &env.namespace, "app=ws")
        .await
        .unwrap();
    let outcome = s
        .ending_since(deleted_at, budget.left(CLOSE_DEADLINE))
        .await;
    // Ready again, and a fresh connection through the ingress works.
    let recovered = async {
        wsgate_cluster::wait_deployment_available(
            &client,
            &env.namespace,
            DOCUMENTED_SERVICE,
            budget.left(READY_AGAIN),
        )
        .await
        .map_err(|e| e.to_string())?;
        reconnects(&probe, budget.left(support::RECONNECT), "after the fault").await
    }
    .await;
    target
        .row(
            "deleting_the_echo_pod_closes_its_connection_and_a_new_one_succeeds",
            "ws (documented, TLS)",
            Scheme::Wss,
        )
        .client(format!(
            "delete pod(s) {} under an open wss connection",
            pods.join(", ")
        ))
        .also(
            "a new connection echoes once Ready",
            recovered.is_ok(),
            match &recovered {
                Ok(d) => format!("new connection echoed {} ms after Ready", d.as_millis()),
                Err(e) => format!("new connection failed: {e}"),
            },
        )
        .judge(
            Expect::ends_within(CLOSE_DEADLINE, "of the deletion"),
            Observed::Hold(outcome),
        )
        .assert("");
}
