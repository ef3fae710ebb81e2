//! The echo server seen from a client: echo, ping, HTTP, and shutdown with 1001 (bad input is
//! in `tests/bad_input.rs`, as rows of the report).

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsgate_echo::{EchoConfig, EchoServer, RunningEcho};

const DEADLINE: Duration = Duration::from_secs(5);

async fn start(config: EchoConfig) -> RunningEcho {
    EchoServer::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
        .spawn()
}

async fn client(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await
    .expect("connect deadline")
    .unwrap();
    ws
}

async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Message {
    tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("reply deadline")
        .expect("stream open")
        .expect("no error")
}

async fn http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, s.read_to_string(&mut out))
        .await
        .expect("reply deadline")
        .unwrap();
    out
}

#[tokio::test]
async fn echoes_text_and_binary_in_order() {
    let srv = start(EchoConfig::default()).await;
    let mut ws = client(srv.addr()).await;
    let msgs = vec![
        Message::text("a"),
        Message::binary(vec![1u8, 2, 3]),
        Message::text("ü✓"),
    ];
    for m in &msgs {
        ws.feed(m.clone()).await.unwrap();
    }
    ws.flush().await.unwrap();
    for m in msgs {
        assert_eq!(next(&mut ws).await, m);
    }
}

#[tokio::test]
async fn answers_ping_with_pong() {
    let srv = start(EchoConfig::default()).await;
    let mut ws = client(srv.addr()).await;
    ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Pong(b"p1".to_vec().into()));
}

#[tokio::test]
async fn plain_get_without_upgrade_gets_200() {
    let srv = start(EchoConfig::default()).await;
    let reply = http(srv.addr(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}

#[tokio::test]
async fn shutdown_closes_open_connections_with_1001() {
    let srv = start(EchoConfig::default()).await;
    let mut ws = client(srv.addr()).await;
    ws.send(Message::text("x")).await.unwrap();
    next(&mut ws).await;
    let start = Instant::now();
    let stopping = tokio::spawn(srv.shutdown());
    match next(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    drop(ws);
    tokio::time::timeout(Duration::from_secs(2), stopping)
        .await
        .expect("server stopped within 2 s")
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "stopped after {:?} (limit 2 s)",
        start.elapsed()
    );
}

/// The binary honours BIND_PORT and, on SIGTERM, says 1001 and exits within 2 s.
#[tokio::test]
async fn binary_exits_within_2s_of_sigterm_after_sending_1001() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsgate-echo"))
        .env("BIND_PORT", port.to_string())
        .env("BIND_ADDR", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut ws = wsgate_wait::Wait::new(
        format!("echo binary listening on BIND_PORT={port}"),
        DEADLINE,
    )
    .every(Duration::from_millis(20))
    .until(|| async move {
        match tokio_tungstenite::connect_async(format!("ws://{addr}/")).await {
            Ok((ws, _)) => wsgate_wait::Check::Done(ws),
            Err(e) => wsgate_wait::Check::Pending(e.to_string()),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hi"));
    let start = Instant::now();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    match next(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    let status = tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .expect("exited within 2 s")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "exited {:?} after SIGTERM (limit 2 s)",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_heartbeat_sends_pings_or_text_unasked() {
    use wsgate_echo::{Heartbeat, HeartbeatKind};
    for kind in [HeartbeatKind::Ping, HeartbeatKind::Text] {
        let srv = start(EchoConfig {
            heartbeat: Some(Heartbeat {
                every: Duration::from_millis(50),
                kind,
            }),
            ..EchoConfig::default()
        })
        .await;
        let mut ws = client(srv.addr()).await;
        let got = next(&mut ws).await;
        match kind {
            HeartbeatKind::Ping => assert!(matches!(got, Message::Ping(_)), "{got:?}"),
            HeartbeatKind::Text => assert_eq!(got, Message::text("heartbeat 1")),
        }
    }
}

async fn client_at(
    addr: std::net::SocketAddr,
    target: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async(format!("ws://{addr}{target}")),
    )
    .await
    .expect("connect deadline")
    .unwrap();
    ws
}

#[tokio::test]
async fn a_query_holds_the_upgrade_back_for_that_connection_only() {
    let srv = start(EchoConfig::default()).await;
    let t = Instant::now();
    let mut slow = client_at(srv.addr(), "/chat?upgrade-delay=1").await;
    let took = t.elapsed();
    // Tolerance: the delay is a timer; 1 s late would be another bug.
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(2),
        "upgrade after {took:?}, asked for 1 s"
    );
    slow.send(Message::text("late")).await.unwrap();
    assert_eq!(next(&mut slow).await, Message::text("late"));
    let t = Instant::now();
    let _fast = client(srv.addr()).await;
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn sink_mode_reads_everything_and_answers_only_pings() {
    let srv = start(EchoConfig::default()).await;
    let mut ws = client_at(srv.addr(), "/?mode=sink").await;
    ws.send(Message::text("into the sink")).await.unwrap();
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    // The pong is the first thing back: the text was read and not echoed.
    assert_eq!(next(&mut ws).await, Message::Pong(b"p".to_vec().into()));
    let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(quiet.is_err(), "sink answered: {quiet:?}");
}
