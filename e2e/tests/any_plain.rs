//! Phase 1 (before the TLS step): WS echo and long-idle survival over ws through the ingress.

use std::time::Duration;

use wsgate_e2e::cases::{Pace, idle, idle_case, open, traffic_case};
use wsgate_e2e::{Expect, Phase, Target};
use wsgate_manifests::Variant;
use wsgate_probe::{Message, Scheme, Traffic};

async fn target() -> Target {
    match Target::for_phase(Phase::Plain).await {
        Ok(t) => t,
        Err(e) => panic!("cannot set up the target: {}", wsgate_probe::chain(&e)),
    }
}

#[tokio::test]
async fn ws_echoes_text_and_binary_unchanged() {
    let t = target().await;
    let mut s = open(&t, Scheme::Ws, &Variant::documented()).await;
    s.echo(Message::text("hello, test.example.com"))
        .await
        .unwrap();
    s.echo(Message::binary(vec![0u8, 1, 2, 255, 254]))
        .await
        .unwrap();
    s.echo(Message::text("ünïcødé ✓")).await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn ws_echoes_a_1_mib_message() {
    let t = target().await;
    let mut s = open(&t, Scheme::Ws, &Variant::documented()).await;
    let payload: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    s.echo(Message::binary(payload)).await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn ws_echoes_100_messages_in_order() {
    let t = target().await;
    let mut s = open(&t, Scheme::Ws, &Variant::documented()).await;
    // All 100 in flight before the first reply is read: order is the server's and proxy's doing.
    let sent: Vec<String> = (0..100).map(|i| format!("message {i:03}")).collect();
    let got = s
        .pipeline(sent.iter().map(|m| Message::text(m.as_str())).collect())
        .await
        .unwrap();
    let got: Vec<String> = got
        .into_iter()
        .map(|m| m.into_text().unwrap().to_string())
        .collect();
    assert_eq!(got, sent);
    s.close().await;
}

#[tokio::test]
async fn plain_http_get_reaches_the_backend_with_200() {
    let t = target().await;
    let reply = t
        .probe(Scheme::Ws, &Variant::documented())
        .http_get()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}\n{}", t.diagnostics());
}

#[tokio::test]
async fn unknown_host_gets_404_from_the_default_server() {
    let t = target().await;
    let mut v = Variant::documented();
    v.host = "not-configured.example.com".into();
    let reply = t.probe(Scheme::Ws, &v).http_get().await.unwrap();
    assert_eq!(reply.status, 404, "{reply:?}");
}

#[tokio::test]
async fn ws_idle_connection_is_cut_at_short_read_timeout() {
    let t = target().await;
    idle::cut_at_short_read_timeout(&t, Scheme::Ws).await;
}

#[tokio::test]
async fn ws_idle_shorter_than_the_read_timeout_survives() {
    let t = target().await;
    idle::shorter_than_the_timeout_survives(&t, Scheme::Ws).await;
}

#[tokio::test]
async fn ws_a_message_every_second_outlives_the_read_timeout() {
    let t = target().await;
    // 8 s of traffic against a 3 s timeout: the timeout is between reads/writes, not a total.
    traffic_case(
        &t,
        "ws_a_message_every_second_outlives_the_read_timeout",
        Scheme::Ws,
        &Variant::short(3),
        Pace {
            traffic: Traffic::Echo,
            every: Duration::from_secs(1),
            total: Duration::from_secs(8),
        },
        Expect::Survive,
    )
    .await;
}

#[tokio::test]
async fn ws_read_timeout_not_send_timeout_cuts_an_idle_connection() {
    let t = target().await;
    let tol = Duration::from_millis(500);
    let read = Variant::short_read_only();
    let send = Variant::short_send_only();
    let cut = idle_case(
        &t,
        "ws_read_timeout_not_send_timeout_cuts_an_idle_connection",
        Scheme::Ws,
        &read,
        Duration::from_secs(6),
        Expect::cut_at(Duration::from_secs(3), tol, tol),
    );
    let kept = idle_case(
        &t,
        "ws_send_timeout_alone_does_not_cut_an_idle_connection",
        Scheme::Ws,
        &send,
        Duration::from_secs(6),
        Expect::Survive,
    );
    tokio::join!(cut, kept);
}

/// The real-time cases (75 s); nextest runs them in their own group, in parallel.
mod long_idle {
    use super::*;

    #[tokio::test]
    async fn ws_documented_annotations_keep_an_idle_connection_past_75s() {
        let t = target().await;
        idle::documented_keeps_idle_past_75s(&t, Scheme::Ws).await;
    }

    #[tokio::test]
    async fn ws_client_pings_keep_a_connection_past_the_default_timeout() {
        let t = target().await;
        traffic_case(
            &t,
            "long_idle::ws_client_pings_keep_a_connection_past_the_default_timeout",
            Scheme::Ws,
            &Variant::without_annotations(),
            Pace {
                traffic: Traffic::Ping,
                every: Duration::from_secs(20),
                total: Duration::from_secs(75),
            },
            Expect::Survive,
        )
        .await;
    }

    #[tokio::test]
    async fn ws_idle_connection_is_cut_at_default_read_timeout() {
        let t = target().await;
        idle::cut_at_default_read_timeout(&t, Scheme::Ws).await;
    }
}
