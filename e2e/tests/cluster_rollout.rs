//! The controller restarted under an open wss connection (kind tier, run by `cargo xtask e2e`
//! after the faults step, alone): `kubectl rollout restart` of ingress-nginx-controller, whose
//! kind manifest sets `terminationGracePeriodSeconds: 0`, so nginx gets no drain. How and when
//! the connection ends is measured, and a new connection must work once the new pod is Ready.
//! Excluded from the default nextest profile.

use std::time::{Duration, Instant};

use wsgate_cluster::{CONTROLLER_DEPLOYMENT, INGRESS_NGINX_NAMESPACE};
use wsgate_e2e::cases::reconnects;
use wsgate_e2e::{Expect, Observed};
use wsgate_manifests::Variant;
use wsgate_probe::{Message, Scheme, chain};

mod support;

/// The old controller pod killed (grace 0) after the restart is requested.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);
/// The new controller pod pulled (already on the node), started and Ready.
const ROLLOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn restarting_the_controller_ends_open_websockets_and_new_ones_work_once_ready() {
    let support::AfterTls {
        budget,
        target,
        client,
        ..
    } = support::after_tls().await;
    let probe = target.probe(Scheme::Wss, &Variant::documented());
    let mut s = probe
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    s.echo(Message::text("before the restart")).await.unwrap();
    let restarted = Instant::now();
    let generation =
        wsgate_cluster::restart_deployment(&client, INGRESS_NGINX_NAMESPACE, CONTROLLER_DEPLOYMENT)
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let outcome = s.ending_since(restarted, budget.left(CLOSE_DEADLINE)).await;
    let recovered = async {
        wsgate_cluster::wait_rollout_complete(
            &client,
            INGRESS_NGINX_NAMESPACE,
            CONTROLLER_DEPLOYMENT,
            generation,
            budget.left(ROLLOUT),
        )
        .await
        .map_err(|e| chain(&e))?;
        let ready = restarted.elapsed();
        reconnects(&probe, budget.left(support::RECONNECT), "after the restart").await?;
        Ok::<_, String>((ready, restarted.elapsed()))
    }
    .await;
    target.row("rollout::restarting_the_controller_ends_open_websockets_and_new_ones_work_once_ready", "ws (documented, TLS)", Scheme::Wss)
        .client("kubectl rollout restart deployment/ingress-nginx-controller under an open connection (time from the restart)")
        .also(
            "a new connection echoes once the new controller is Ready",
            recovered.is_ok(),
            match &recovered {
                Ok((ready, echoed)) => format!(
                    "new controller Ready {} ms after the restart, a new connection echoed at {} ms",
                    ready.as_millis(),
                    echoed.as_millis()
                ),
                Err(e) => format!("no new connection: {e}"),
            },
        )
        .judge(
            Expect::ends_within(CLOSE_DEADLINE, "of the restart (grace 0: no drain)"),
            Observed::Hold(outcome),
        )
        .assert("");
}
