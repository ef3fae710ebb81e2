//! What stopping the controller's nginx does to open WebSockets. A pod deleted with
//! `terminationGracePeriodSeconds: 0` (the kind manifest's controller) amounts to a fast
//! shutdown; a graceful stop (`nginx -s quit`) keeps them until `worker_shutdown_timeout`.

use std::time::{Duration, Instant};

use wsgate_e2e::cases::{HALF_SECOND, open};
use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Expect, Observed, Phase, Target};
use wsgate_local::Shutdown;
use wsgate_manifests::{ControllerConfig, Variant};
use wsgate_probe::{HoldOutcome, Message, Scheme};

async fn target() -> Target {
    let mut options = LocalOptions::new(Phase::Plain);
    options.variants = vec![Variant::documented()];
    options.config = ControllerConfig {
        worker_shutdown_timeout: Duration::from_secs(2),
        ..ControllerConfig::default()
    };
    Target::local(options)
        .await
        .unwrap_or_else(|e| panic!("{}", wsgate_probe::chain(&e)))
}

/// Opens a connection, stops nginx `how`, and returns how the connection ended, timed from
/// the signal, and whether it still echoed right after it.
async fn stop_under_a_connection(t: &Target, how: Shutdown) -> (HoldOutcome, bool) {
    let mut s = open(t, Scheme::Ws, &Variant::documented()).await;
    let nginx = t.local_ingress().expect("a local target");
    let signalled = Instant::now();
    nginx.shut_down(how);
    let echoed_after = match how {
        // Right after a graceful stop the open connection must still work.
        Shutdown::Graceful => s.echo(Message::text("after the signal")).await.is_ok(),
        Shutdown::Fast => false,
    };
    let outcome = s.ending_since(signalled, Duration::from_secs(6)).await;
    (outcome, echoed_after)
}

#[tokio::test]
async fn a_fast_shutdown_cuts_open_websockets_at_once_without_a_close_frame() {
    let t = target().await;
    let (outcome, _) = stop_under_a_connection(&t, Shutdown::Fast).await;
    t.row(
        "shutdown::a_fast_shutdown_cuts_open_websockets_at_once_without_a_close_frame",
        "ws (documented)",
        Scheme::Ws,
    )
    .client("open, then nginx gets SIGTERM (time from the signal)")
    .judge(
        Expect::cut_at(Duration::ZERO, Duration::ZERO, HALF_SECOND),
        Observed::Hold(outcome),
    )
    .assert(&t.diagnostics());
}

#[tokio::test]
async fn a_graceful_shutdown_keeps_open_websockets_until_worker_shutdown_timeout() {
    let t = target().await;
    let (outcome, echoed) = stop_under_a_connection(&t, Shutdown::Graceful).await;
    t.row(
        "shutdown::a_graceful_shutdown_keeps_open_websockets_until_worker_shutdown_timeout",
        "ws (worker-shutdown-timeout 2s)",
        Scheme::Ws,
    )
    .client("open, then nginx gets SIGQUIT (time from the signal)")
    .also(
        "still echoes right after the signal",
        echoed,
        if echoed {
            "echoed after the signal"
        } else {
            "no echo after the signal"
        },
    )
    .judge(
        Expect::cut_at(Duration::from_secs(2), HALF_SECOND, Duration::from_secs(1)),
        Observed::Hold(outcome),
    )
    .assert(&t.diagnostics());
}
