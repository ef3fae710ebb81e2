//! HTTP/2 on TLS, as the controller renders it (`use-http2`, on by default): what a client
//! offering `h2` in ALPN gets, and what then happens to its HTTP/1.1 upgrade. nginx has no
//! WebSocket over HTTP/2 (RFC 8441), so such a client must open an HTTP/1.1 connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Expect, Observed, Phase, Target};
use wsgate_manifests::{ControllerConfig, DOCUMENTED_HOST, Variant};
use wsgate_probe::Scheme;

const DEADLINE: Duration = Duration::from_secs(5);

/// A TLS connection to the target's wss port offering `alpn`, verified against the target's
/// certificates; returns the stream and the protocol the server chose.
async fn tls(target: &Target, alpn: &[&str]) -> (TlsStream<TcpStream>, String) {
    let ep = target.endpoint(Scheme::Wss, &Variant::documented());
    let mut roots = rustls::RootCertStore::empty();
    for c in target.trusted() {
        roots.add(c.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = TcpStream::connect(&ep.connect_to).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(DOCUMENTED_HOST.to_owned()).unwrap();
    let stream = tokio::time::timeout(
        DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("TLS handshake in time")
    .unwrap();
    let chosen = stream
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "none".into());
    (stream, chosen)
}

const UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: test.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Sends an HTTP/1.1 upgrade and reads what comes back until the head ends, the connection
/// closes or the deadline passes.
async fn upgrade(stream: &mut TlsStream<TcpStream>) -> (Vec<u8>, bool, Duration) {
    let start = Instant::now();
    stream.write_all(UPGRADE).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(
            DEADLINE.saturating_sub(start.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break false;
                }
            }
        }
    };
    (got, closed, start.elapsed())
}

/// HTTP/2 frames in `bytes` by name (`SETTINGS`, `GOAWAY (PROTOCOL_ERROR)`, ...).
fn h2_frames(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        let kind = bytes[at + 3];
        let payload = &bytes[at + 9..(at + 9 + len).min(bytes.len())];
        out.push(match kind {
            0x4 => "SETTINGS".to_owned(),
            0x8 => "WINDOW_UPDATE".to_owned(),
            0x7 if payload.len() >= 8 => {
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                format!(
                    "GOAWAY ({})",
                    match code {
                        0x1 => "PROTOCOL_ERROR".to_owned(),
                        0x0 => "NO_ERROR".to_owned(),
                        c => format!("error {c}"),
                    }
                )
            }
            other => format!("frame type {other}"),
        });
        at += 9 + len;
    }
    out
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn target(config: ControllerConfig) -> Target {
    let mut options = LocalOptions::new(Phase::Tls);
    options.variants = vec![Variant::documented()];
    options.config = config;
    Target::local(options)
        .await
        .unwrap_or_else(|e| panic!("{}", wsgate_probe::chain(&e)))
}

fn row(t: &Target, case: &str, config: &str) -> wsgate_report::RowBuilder {
    t.row(
        format!("http2::{case}"),
        format!("ws (documented, TLS; {config})"),
        Scheme::Wss,
    )
}

/// After a 101, a text message must come back from the echo server.
async fn echo_after_101(stream: TlsStream<TcpStream>) -> bool {
    let mut ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    ws.send(Message::text("over http/1.1")).await.is_ok()
        && matches!(
            tokio::time::timeout(DEADLINE, ws.next()).await,
            Ok(Some(Ok(m))) if m == Message::text("over http/1.1")
        )
}

/// A client offering `offer` in ALPN must get `http/1.1`, a 101 and an echo.
async fn gets_http11_upgrades_and_echoes(t: &Target, case: &str, config: &str, offer: &[&str]) {
    let (mut stream, alpn) = tls(t, offer).await;
    let (head, _, _) = upgrade(&mut stream).await;
    let status = first_line(&head);
    let echoed = status.starts_with("HTTP/1.1 101") && echo_after_101(stream).await;
    row(t, case, config)
        .client(format!(
            "ALPN {}, then an HTTP/1.1 upgrade and a message",
            offer.join(", ")
        ))
        .judge(
            Expect::holds("ALPN http/1.1, 101, echo"),
            Observed::check(
                alpn == "http/1.1" && echoed,
                format!(
                    "ALPN {alpn}; {status}; echo {}",
                    if echoed { "ok" } else { "failed" }
                ),
            ),
        )
        .assert(&t.diagnostics());
}

#[tokio::test]
async fn a_client_offering_only_http11_upgrades_and_echoes() {
    let t = target(ControllerConfig::default()).await;
    gets_http11_upgrades_and_echoes(
        &t,
        "a_client_offering_only_http11_upgrades_and_echoes",
        "use-http2 true, the default",
        &["http/1.1"],
    )
    .await;
}

#[tokio::test]
async fn a_client_offering_h2_gets_h2_and_its_http11_upgrade_is_refused() {
    let t = target(ControllerConfig::default()).await;
    let (mut stream, alpn) = tls(&t, &["h2", "http/1.1"]).await;
    let (reply, closed, took) = upgrade(&mut stream).await;
    let frames = h2_frames(&reply);
    let upgraded = first_line(&reply).starts_with("HTTP/1.1 101");
    row(
        &t,
        "a_client_offering_h2_gets_h2_and_its_http11_upgrade_is_refused",
        "use-http2 true, the default",
    )
    .client("ALPN h2, http/1.1, then an HTTP/1.1 upgrade on that connection")
    .judge(
        Expect::holds(
            "ALPN h2; no 101: nginx speaks HTTP/2 there and has no WebSocket over HTTP/2",
        ),
        Observed::check(
            alpn == "h2" && !upgraded,
            format!(
                "ALPN {alpn}; the upgrade got {} and the connection was {} after {} ms",
                if frames.is_empty() {
                    first_line(&reply)
                } else {
                    frames.join(", ")
                },
                if closed { "closed" } else { "still open" },
                took.as_millis()
            ),
        ),
    )
    .assert(&t.diagnostics());
}

#[tokio::test]
async fn with_use_http2_false_a_client_offering_h2_gets_http11_and_upgrades() {
    let config = ControllerConfig::default()
        .with_configmap(&[("use-http2".to_owned(), "false".to_owned())].into())
        .unwrap();
    let t = target(config).await;
    gets_http11_upgrades_and_echoes(
        &t,
        "with_use_http2_false_a_client_offering_h2_gets_http11_and_upgrades",
        "ConfigMap use-http2 \"false\"",
        &["h2", "http/1.1"],
    )
    .await;
}
