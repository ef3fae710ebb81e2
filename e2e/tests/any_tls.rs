//! Phase 2 (after the Secret and the documented patch): WSS echo, redirects, idle over wss.

use wsgate_e2e::cases::{idle, open};
use wsgate_e2e::{Phase, Target};
use wsgate_manifests::Variant;
use wsgate_probe::{Message, Probe, Scheme, Trust};
use wsgate_tls::TlsMaterial;

async fn target() -> Target {
    match Target::for_phase(Phase::Tls).await {
        Ok(t) => t,
        Err(e) => panic!("cannot set up the target: {}", wsgate_probe::chain(&e)),
    }
}

#[tokio::test]
async fn wss_echoes_with_the_certificate_verified() {
    let t = target().await;
    let mut s = open(&t, Scheme::Wss, &Variant::documented()).await;
    s.echo(Message::text("over TLS")).await.unwrap();
    s.echo(Message::binary(vec![7u8; 64 << 10])).await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn wss_client_trusting_another_certificate_is_refused() {
    let t = target().await;
    let other = TlsMaterial::self_signed(&["test.example.com"]).unwrap();
    let ep = t.endpoint(Scheme::Wss, &Variant::documented());
    let err = Probe::new(ep, Trust::only(other.cert_der().clone()))
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.rejects_certificate(),
        "expected the certificate to be refused, got: {}",
        wsgate_probe::chain(&err)
    );
}

#[tokio::test]
async fn wss_skipping_verification_is_explicit_and_connects() {
    let t = target().await;
    let ep = t.endpoint(Scheme::Wss, &Variant::documented());
    let mut s = Probe::new(ep, Trust::SkipVerification)
        .connect()
        .await
        .unwrap();
    s.echo(Message::text("-k")).await.unwrap();
}

#[tokio::test]
async fn plain_ws_to_the_tls_host_is_redirected_with_308() {
    let t = target().await;
    let err = t
        .probe(Scheme::Ws, &Variant::documented())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(
        err.rejected_status(),
        Some(308),
        "{err}\n{}",
        t.diagnostics()
    );
    // The controller's redirect drops the trailing slash (lua_ingress.lua, preserve-trailing-slash).
    assert!(
        err.to_string()
            .contains("(location: https://test.example.com)"),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_host_is_redirected_with_308() {
    let t = target().await;
    let reply = t
        .probe(Scheme::Ws, &Variant::documented())
        .http_get()
        .await
        .unwrap();
    assert_eq!(reply.status, 308, "{reply:?}");
    assert_eq!(reply.location.as_deref(), Some("https://test.example.com"));
}

#[tokio::test]
async fn wss_idle_connection_is_cut_at_short_read_timeout() {
    let t = target().await;
    idle::cut_at_short_read_timeout(&t, Scheme::Wss).await;
}

#[tokio::test]
async fn wss_idle_shorter_than_the_read_timeout_survives() {
    let t = target().await;
    idle::shorter_than_the_timeout_survives(&t, Scheme::Wss).await;
}

/// The real-time cases (75 s); nextest runs them in their own group, in parallel.
mod long_idle {
    use super::*;

    #[tokio::test]
    async fn wss_documented_annotations_keep_an_idle_connection_past_75s() {
        let t = target().await;
        idle::documented_keeps_idle_past_75s(&t, Scheme::Wss).await;
    }

    #[tokio::test]
    async fn wss_idle_connection_is_cut_at_default_read_timeout() {
        let t = target().await;
        idle::cut_at_default_read_timeout(&t, Scheme::Wss).await;
    }
}
