//! The echo server under bad input, each case a row of the report: it refuses what it must
//! with the right close code or status, and keeps serving a well-behaved client meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsgate_echo::{EchoConfig, EchoServer};
use wsgate_probe::{CloseKind, Endpoint, Message, Probe, Scheme, Trust};
use wsgate_report::{Expect, Observed, Row};

const DEADLINE: Duration = Duration::from_secs(5);

/// A raw upgraded connection, for frames a well-behaved client library will not send.
async fn raw_upgraded(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(DEADLINE, s.read_exact(&mut byte))
            .await
            .expect("handshake reply")
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A client frame with the given opcode, masked unless `masked` is false.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if masked {
        let mask = [7u8, 1, 9, 3];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// What came back on a raw connection within the deadline.
#[derive(Debug)]
enum Reply {
    /// A close frame (unmasked, from the server) with its code and reason.
    Close(u16, String),
    /// The first line of an HTTP response.
    Http(String),
    /// The connection closed without a close frame.
    Closed,
    /// Nothing within the deadline.
    Nothing,
}

async fn reply(s: &mut TcpStream) -> Reply {
    let mut buf = vec![0u8; 256];
    match tokio::time::timeout(DEADLINE, s.read(&mut buf)).await {
        Err(_) => Reply::Nothing,
        Ok(Ok(0)) | Ok(Err(_)) => Reply::Closed,
        Ok(Ok(n)) if buf[0] == 0x88 && n >= 4 => {
            let len = (buf[1] & 0x7f) as usize;
            let reason = String::from_utf8_lossy(&buf[4..(2 + len).min(n)]).into_owned();
            Reply::Close(u16::from_be_bytes([buf[2], buf[3]]), reason)
        }
        Ok(Ok(n)) => Reply::Http(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
    }
}

/// How a raw connection ended, as the report types it.
fn ended(r: Reply) -> Observed {
    match r {
        Reply::Close(code, reason) => Observed::Ended {
            how: Some(CloseKind::CloseFrame { code, reason }),
        },
        Reply::Closed => Observed::Ended {
            how: Some(CloseKind::NoCloseFrame),
        },
        Reply::Nothing => Observed::Ended { how: None },
        Reply::Http(line) => Observed::check(false, format!("answered {line:?}")),
    }
}

fn row(case: &str, input: &str) -> wsgate_report::RowBuilder {
    Row::builder(format!("bad_input::{case}"))
        .ingress("echo server (no proxy)")
        .client(input)
}

#[tokio::test]
async fn echo_server_refuses_bad_input_and_keeps_serving_everyone_else() {
    let srv = EchoServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        EchoConfig {
            max_message_bytes: 1024,
            handshake_timeout: Duration::from_millis(300),
            ..EchoConfig::default()
        },
    )
    .await
    .unwrap()
    .spawn();
    let addr = srv.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let probe = Probe::new(
                Endpoint::new(Scheme::Ws, addr.to_string(), "test.example.com"),
                Trust::Certificates(vec![]),
            );
            let mut s = probe.connect().await.unwrap();
            let (mut ok, mut failed) = (0u32, 0u32);
            // Paced traffic for as long as the bad input goes on, not a wait.
            while !stop.load(Ordering::SeqCst) {
                match s.echo(Message::text("bystander")).await {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };
    let mut rows = Vec::new();

    let mut s = raw_upgraded(addr).await;
    s.write_all(&frame(0x2, &[0u8; 4096], true)).await.unwrap();
    rows.push(
        row("oversized_message", "4 KiB binary message, limit 1 KiB").judge(
            Expect::CloseFrame { code: 1009 },
            ended(reply(&mut s).await),
        ),
    );

    let mut s = raw_upgraded(addr).await;
    s.write_all(&frame(0x1, &[0xff, 0xfe, 0xfd], true))
        .await
        .unwrap();
    rows.push(row("invalid_utf8", "text frame with invalid UTF-8").judge(
        Expect::CloseFrame { code: 1007 },
        ended(reply(&mut s).await),
    ));

    let mut s = raw_upgraded(addr).await;
    s.write_all(&frame(0x1, b"hi", false)).await.unwrap();
    rows.push(
        row("unmasked_client_frame", "unmasked text frame from a client").judge(
            Expect::CloseFrame { code: 1002 },
            ended(reply(&mut s).await),
        ),
    );

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    let got = reply(&mut s).await;
    rows.push(
        row("garbage_instead_of_a_handshake", "bytes that are not HTTP").judge(
            Expect::holds("HTTP/1.1 400"),
            Observed::check(
                matches!(&got, Reply::Http(l) if l.starts_with("HTTP/1.1 400")),
                format!("{got:?}"),
            ),
        ),
    );

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let got = reply(&mut s).await;
    let took = started.elapsed();
    // Dropped at the 300 ms handshake deadline (tolerance -50 ms / +700 ms).
    let in_time = took >= Duration::from_millis(250) && took <= Duration::from_secs(1);
    rows.push(
        row(
            "half_handshake_then_stall",
            "half an HTTP head, then nothing",
        )
        .judge(
            Expect::holds("connection closed within 250-1000 ms (300 ms handshake deadline)"),
            Observed::check(
                matches!(got, Reply::Closed) && in_time,
                format!("{got:?} after {} ms", took.as_millis()),
            ),
        ),
    );

    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = bystander.await.unwrap();
    rows.push(
        row(
            "others_are_served_throughout",
            "an echo every 20 ms on another connection meanwhile",
        )
        .judge(
            Expect::holds("0 failed, some echoes"),
            Observed::check(
                failed == 0 && ok > 0,
                format!("{failed} failed, {ok} echoes"),
            ),
        ),
    );
    wsgate_report::assert_rows(&rows, "bad-input cases");
}
