//! Which heartbeats keep an idle connection alive, one direction at a time, against a 2 s
//! default read timeout (ConfigMap `proxy-read-timeout: "2"`, no annotations).
//!
//! The reading of nginx's source (`ngx_http_upstream_process_upgraded`, 1.22.1 and later): the
//! handler runs on an event in either direction and re-arms the upstream read timer each time
//! (`ngx_add_timer(upstream->read, u->conf->read_timeout)`), so any frame either way should
//! keep the connection alive. Each row checks that reading; a row that differed would say so.

use std::time::Duration;

use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Expect, Observed, Phase, Target};
use wsgate_echo::{Heartbeat, HeartbeatKind};
use wsgate_manifests::{ControllerConfig, Variant};
use wsgate_probe::{Confirm, Scheme, Traffic};

/// Held for three times the read timeout.
const HOLD: Duration = Duration::from_secs(6);
const EVERY: Duration = Duration::from_secs(1);
const READING: &str = "survives: nginx re-arms its read timer on traffic in either direction";

async fn target(heartbeat: Option<HeartbeatKind>) -> Target {
    let mut options = LocalOptions::new(Phase::Plain);
    options.variants = vec![Variant::without_annotations()];
    options.config = ControllerConfig::default()
        .with_configmap(&[("proxy-read-timeout".to_owned(), "2".to_owned())].into())
        .unwrap();
    options.echo.heartbeat = heartbeat.map(|kind| Heartbeat { every: EVERY, kind });
    Target::local(options)
        .await
        .unwrap_or_else(|e| panic!("{}", wsgate_probe::chain(&e)))
}

async fn case(name: &str, heartbeat: Option<HeartbeatKind>, client: Option<Traffic>, what: &str) {
    let t = target(heartbeat).await;
    let v = Variant::without_annotations();
    // A pong, not an echo, confirms survival: a backend sending on its own would answer an
    // echo check with its own message.
    let mut s = t
        .probe(Scheme::Ws, &v)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}\n{}", wsgate_probe::chain(&e), t.diagnostics()))
        .confirm_with(Confirm::Ping);
    let outcome = match client {
        Some(traffic) => s.hold_with_traffic(HOLD, EVERY, traffic).await,
        None => s.hold_idle(HOLD).await,
    };
    t.row(
        format!("heartbeat::{name}"),
        "ws-no-annotations (ConfigMap read 2 s)",
        Scheme::Ws,
    )
    .client(what)
    .judge(
        Expect::holds(format!("{READING} (held {} s)", HOLD.as_secs())),
        Observed::check(outcome.survived(), outcome.to_string()),
    )
    .assert(&t.diagnostics());
}

#[tokio::test]
async fn pings_from_the_client_alone_keep_it_alive() {
    case(
        "pings_from_the_client_alone_keep_it_alive",
        None,
        Some(Traffic::Ping),
        "client pings every 1 s (the backend's pongs come back)",
    )
    .await;
}

#[tokio::test]
async fn pings_from_the_backend_alone_keep_it_alive() {
    case(
        "pings_from_the_backend_alone_keep_it_alive",
        Some(HeartbeatKind::Ping),
        None,
        "backend pings every 1 s; the client only answers with pongs (RFC 6455)",
    )
    .await;
}

#[tokio::test]
async fn unsolicited_pongs_from_the_client_alone_keep_it_alive() {
    case(
        "unsolicited_pongs_from_the_client_alone_keep_it_alive",
        None,
        Some(Traffic::Pong),
        "client sends an unsolicited pong every 1 s; nothing comes back",
    )
    .await;
}

#[tokio::test]
async fn data_from_the_backend_alone_keeps_it_alive() {
    case(
        "data_from_the_backend_alone_keeps_it_alive",
        Some(HeartbeatKind::Text),
        None,
        "backend sends a text message every 1 s; the client sends nothing",
    )
    .await;
}
