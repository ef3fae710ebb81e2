//! Beyond the document (local tier, real nginx, fast time scale): what keeps an idle WebSocket
//! alive behind ingress-nginx and what cuts it. Each case is a row of the report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wsgate_e2e::cases::{HALF_SECOND, Pace, idle_case, open, traffic_case};
use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Expect, Observed, Phase, Target};
use wsgate_echo::Mode;
use wsgate_local::{LocalIngress, LocalIngressSpec, ServiceRef};
use wsgate_manifests::{
    ControllerConfig, Documented, PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT, Variant,
};
use wsgate_probe::{CloseKind, HoldOutcome, Message, Scheme, Session, Traffic};

/// Controller defaults on a fast scale (ConfigMap `proxy-read-timeout`/`-send-timeout` = 2).
fn fast_defaults() -> ControllerConfig {
    ControllerConfig {
        proxy_read_timeout: 2,
        proxy_send_timeout: 2,
        ..ControllerConfig::default()
    }
}

async fn local(variants: Vec<Variant>, config: ControllerConfig) -> Target {
    let mut options = LocalOptions::new(Phase::Plain);
    options.variants = variants;
    options.config = config;
    Target::local(options)
        .await
        .unwrap_or_else(|e| panic!("{}", wsgate_probe::chain(&e)))
}

/// A local target whose backend never reads after the handshake, and a connection to `v`.
async fn with_stalled_backend(v: Variant, config: ControllerConfig) -> (Target, Session) {
    let mut options = LocalOptions::new(Phase::Plain);
    options.variants = vec![v.clone()];
    options.config = config;
    options.echo.mode = Mode::Stall;
    let t = Target::local(options)
        .await
        .unwrap_or_else(|e| panic!("{}", wsgate_probe::chain(&e)));
    let s = t
        .probe(Scheme::Ws, &v)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}\n{}", wsgate_probe::chain(&e), t.diagnostics()));
    (t, s)
}

#[tokio::test]
async fn client_pings_keep_a_connection_alive_without_annotations() {
    let v = Variant::without_annotations();
    let t = local(vec![v.clone()], fast_defaults()).await;
    traffic_case(
        &t,
        "client_pings_keep_a_connection_alive_without_annotations",
        Scheme::Ws,
        &v,
        Pace {
            traffic: Traffic::Ping,
            every: Duration::from_secs(1),
            total: Duration::from_secs(6),
        },
        Expect::Survive,
    )
    .await;
}

#[tokio::test]
async fn stopping_the_pings_lets_the_connection_be_cut_on_time() {
    let v = Variant::without_annotations();
    let t = local(vec![v.clone()], fast_defaults()).await;
    let mut s = open(&t, Scheme::Ws, &v).await;
    let pinged = s
        .hold_with_traffic(
            Duration::from_secs(4),
            Duration::from_secs(1),
            Traffic::Ping,
        )
        .await;
    assert!(
        pinged.survived(),
        "pings did not keep it alive: {pinged}\n{}",
        t.diagnostics()
    );
    let outcome = s.hold_idle(Duration::from_secs(5)).await;
    t.row(
        "stopping_the_pings_lets_the_connection_be_cut_on_time",
        "ws-no-annotations (ConfigMap read/send 2)",
        Scheme::Ws,
    )
    .client("ping every 1 s for 4 s, then idle")
    .judge(
        Expect::cut_at(Duration::from_secs(2), HALF_SECOND, HALF_SECOND),
        Observed::Hold(outcome),
    )
    .assert(&t.diagnostics());
}

#[tokio::test]
async fn traffic_in_one_direction_only_keeps_the_connection_alive() {
    // The backend never reads or answers; only client-to-server frames flow.
    let (t, mut s) = with_stalled_backend(Variant::without_annotations(), fast_defaults()).await;
    let outcome = s
        .hold_with_traffic(
            Duration::from_secs(6),
            Duration::from_secs(1),
            Traffic::SendOnly,
        )
        .await;
    t.row(
        "traffic_in_one_direction_only_keeps_the_connection_alive",
        "ws-no-annotations (ConfigMap read/send 2), backend never answers",
        Scheme::Ws,
    )
    .client("text every 1 s for 6 s, nothing back")
    .judge(Expect::Survive, Observed::Hold(outcome))
    .assert(&t.diagnostics());
}

/// A local ingress with the documented Ingress and the given `worker-shutdown-timeout`, a
/// connection open on it, and then a reload that adds an Ingress: what the controller does on
/// every Ingress change. Returns the moment of the reload.
async fn open_then_reload(worker_shutdown_timeout: Duration) -> (Target, Session, Instant) {
    let v = Variant::documented();
    let config = ControllerConfig {
        worker_shutdown_timeout,
        ..ControllerConfig::default()
    };
    let mut t = local(vec![v.clone()], config.clone()).await;
    let s = open(&t, Scheme::Ws, &v).await;
    let documented = Documented::shipped().unwrap();
    let changed = vec![
        v.ingress(&documented.ingress),
        Variant::short(3).ingress(&documented.ingress),
    ];
    let reloaded_at = Instant::now();
    t.local_ingress_mut()
        .expect("local target")
        .reload(&changed, &config)
        .unwrap();
    (t, s, reloaded_at)
}

#[tokio::test]
async fn reload_keeps_open_websockets_until_worker_shutdown_timeout() {
    let v = Variant::documented();
    let (t, mut s, reloaded_at) = open_then_reload(Duration::from_secs(2)).await;
    // Not cut at once: still echoes right after the reload.
    s.echo(Message::text("after reload"))
        .await
        .unwrap_or_else(|e| panic!("cut at once by the reload: {e}"));
    let outcome = s.ending_since(reloaded_at, Duration::from_secs(6)).await;
    t.row(
        "reload_keeps_open_websockets_until_worker_shutdown_timeout",
        "ws (worker-shutdown-timeout 2s)",
        Scheme::Ws,
    )
    .client("nginx reload, then idle (time from the reload)")
    .judge(
        Expect::cut_at(Duration::from_secs(2), HALF_SECOND, Duration::from_secs(1)),
        Observed::Hold(outcome),
    )
    .assert(&t.diagnostics());
    // A connection made after the reload works, on the new configuration too.
    let mut fresh = open(&t, Scheme::Ws, &v).await;
    fresh.echo(Message::text("new worker")).await.unwrap();
    let mut new_host = open(&t, Scheme::Ws, &Variant::short(3)).await;
    new_host
        .echo(Message::text("added by the reload"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_outer_proxy_cuts_at_its_own_timeout_despite_3600_on_the_ingress() {
    // The ingress as documented (3600), behind a second proxy layer with a 2 s idle timeout,
    // standing in for a cloud load balancer.
    let inner = local(vec![Variant::documented()], ControllerConfig::default()).await;
    let inner_nginx = inner.local_ingress().expect("local target");
    let documented = Documented::shipped().unwrap();
    let mut lb = Variant::with_timeouts("lb", "2", "2").ingress(&documented.ingress);
    lb.spec.as_mut().unwrap().rules.as_mut().unwrap()[0].host =
        Some(wsgate_manifests::DOCUMENTED_HOST.into());
    let outer = LocalIngress::start(&LocalIngressSpec {
        ingresses: vec![lb],
        backends: BTreeMap::from([(
            ServiceRef::new("default", "websocket-server", 3000),
            inner_nginx.http_addr(),
        )]),
        ..Default::default()
    })
    .unwrap();
    let probe = wsgate_probe::Probe::new(
        wsgate_probe::Endpoint::new(
            Scheme::Ws,
            outer.http_addr().to_string(),
            wsgate_manifests::DOCUMENTED_HOST,
        ),
        wsgate_probe::Trust::Certificates(vec![]),
    );
    let mut s = probe.connect().await.unwrap();
    s.echo(Message::text("through two proxies")).await.unwrap();
    let outcome = s.hold_idle(Duration::from_secs(6)).await;
    // Which layer logged the timeout tells who cut it.
    let timed_out = |log: String| log.contains("upstream timed out");
    let layer = match (
        timed_out(outer.error_log()),
        timed_out(inner_nginx.error_log()),
    ) {
        (true, false) => "outer proxy (2 s)",
        (false, true) => "ingress (3600 s)",
        (true, true) => "both",
        (false, false) => "unknown",
    };
    let row = inner
        .row(
            "an_outer_proxy_cuts_at_its_own_timeout_despite_3600_on_the_ingress",
            "ws (3600) behind a proxy with a 2 s idle timeout",
            Scheme::Ws,
        )
        .client("idle 6 s")
        .also(
            "the outer proxy's log names the cut",
            layer == "outer proxy (2 s)",
            format!("cut by: {layer}"),
        )
        .judge(
            Expect::cut_at(Duration::from_secs(2), HALF_SECOND, HALF_SECOND),
            Observed::Hold(outcome),
        );
    row.assert(&format!(
        "--- outer ---\n{}\n{}",
        outer.error_log(),
        inner.diagnostics()
    ));
}

#[tokio::test]
async fn invalid_annotation_values_fall_back_to_the_default_and_are_reported() {
    let bad = ["3600s", "1h", "abc", "-1", ""];
    let variants: Vec<Variant> = bad
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Variant::derived(
                &format!("invalid-{i}"),
                &format!("read {v:?}"),
                &[(PROXY_READ_TIMEOUT, Some(v)), (PROXY_SEND_TIMEOUT, None)],
            )
        })
        .collect();
    let t = local(variants.clone(), fast_defaults()).await;
    let warnings = t.local_ingress().expect("local target").warnings();
    for (v, value) in variants.iter().zip(bad) {
        let w = warnings
            .iter()
            .find(|w| w.ingress == format!("default/{}", v.name));
        let w =
            w.unwrap_or_else(|| panic!("no warning for {} = {value:?}; got {warnings:?}", v.name));
        assert_eq!(
            (w.annotation.as_str(), w.value.as_str(), w.fallback),
            (PROXY_READ_TIMEOUT, value, 2)
        );
    }
    // And for real: each is cut at the (fast) default, as if the annotation were absent.
    let cases = variants.iter().map(|v| {
        idle_case(
            &t,
            "invalid_annotation_value_falls_back_to_the_default",
            Scheme::Ws,
            v,
            Duration::from_secs(5),
            Expect::cut_at(Duration::from_secs(2), HALF_SECOND, HALF_SECOND),
        )
    });
    futures_util::future::join_all(cases).await;
}

#[tokio::test]
async fn send_timeout_cuts_when_the_backend_stops_reading() {
    // Read timeout high, send timeout 2 s, a backend that never reads: the client keeps writing
    // until every buffer on the way is full, then nginx's write to the backend times out.
    let (t, mut s) = with_stalled_backend(
        Variant::with_timeouts("stalled-backend", "3600", "2"),
        ControllerConfig::default(),
    )
    .await;
    let chunk = vec![0x5au8; 256 << 10];
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let deadline = Duration::from_secs(30);
    let how = loop {
        if start.elapsed() > deadline {
            break None;
        }
        // A send that cannot finish is the buffers being full; watch for the close meanwhile.
        match tokio::time::timeout(
            Duration::from_millis(200),
            s.send(Message::binary(chunk.clone())),
        )
        .await
        {
            Ok(Ok(())) => last_progress = Instant::now(),
            Ok(Err(how)) => break Some(how),
            Err(_) => {
                if let Some(how) = s.wait_for_close(Duration::from_millis(200)).await {
                    break Some(how);
                }
            }
        }
    };
    let after = last_progress.elapsed();
    let outcome = match how {
        Some(how) => HoldOutcome::Closed { after, how },
        None => HoldOutcome::Survived {
            held: start.elapsed(),
        },
    };
    // Time runs from the last send that completed: the proxy's send timer starts when its
    // own write to the backend blocks, a little after that; 4 s is the 2 s timeout plus that.
    let cut_in_time = matches!(
        &outcome,
        HoldOutcome::Closed {
            how: CloseKind::NoCloseFrame | CloseKind::Reset,
            after,
        } if *after <= Duration::from_secs(4)
    );
    let log = t.local_ingress().expect("local").error_log();
    t.row(
        "send_timeout_cuts_when_the_backend_stops_reading",
        "read 3600 / send 2, backend never reads",
        Scheme::Ws,
    )
    .client("send 256 KiB messages until blocked")
    .also(
        "nginx logged `upstream timed out`",
        log.contains("upstream timed out"),
        if log.contains("upstream timed out") {
            "nginx: upstream timed out"
        } else {
            "no timeout in nginx's log"
        },
    )
    .judge(
        Expect::holds("cut by nginx (no close frame) within 4 s of the last completed send"),
        Observed::check(cut_in_time, outcome.to_string()),
    )
    .assert(&t.diagnostics());
}

/// The controller's real default: a reload cuts upgraded connections 240 s later. Too long for
/// the default profile; the `ci` profile runs it (`.config/nextest.toml`).
mod long_reload {
    use super::*;

    #[tokio::test]
    async fn reload_cuts_open_websockets_after_the_default_240s() {
        let (t, mut s, reloaded_at) =
            open_then_reload(ControllerConfig::default().worker_shutdown_timeout).await;
        // Keep the connection busy so that only the reload, not a proxy timeout, can end it.
        let outcome = s
            .hold_with_traffic(
                Duration::from_secs(250),
                Duration::from_secs(10),
                Traffic::Echo,
            )
            .await;
        let outcome = match outcome {
            HoldOutcome::Closed { how, .. } => HoldOutcome::Closed {
                after: reloaded_at.elapsed(),
                how,
            },
            survived => survived,
        };
        t.row(
            "long_reload::reload_cuts_open_websockets_after_the_default_240s",
            "ws (worker-shutdown-timeout 240s, the default)",
            Scheme::Ws,
        )
        .client("nginx reload, then an echo every 10 s (time from the reload)")
        .judge(
            Expect::cut_at(
                Duration::from_secs(240),
                Duration::from_secs(1),
                Duration::from_secs(11),
            ),
            Observed::Hold(outcome),
        )
        .assert(&t.diagnostics());
    }
}
