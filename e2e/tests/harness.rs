//! The suite's own parts under stress: cleanup after a panic, and 1,000 connections under load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Phase, Row, Target};
use wsgate_manifests::Variant;
use wsgate_probe::{HoldOutcome, Message, ProbeError, Scheme};

fn process_group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence; no process is affected.
    unsafe { libc::kill(-(pgid as libc::pid_t), 0) == 0 }
}

async fn refused_within(addr: SocketAddr, deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn nothing_is_left_behind_after_a_test_panics() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let t = Target::local(LocalOptions::new(Phase::Tls)).await.unwrap();
        let n = t.local_ingress().unwrap();
        tx.send((
            n.pid(),
            n.prefix().to_owned(),
            n.http_addr(),
            t.echo_addr().unwrap(),
        ))
        .unwrap();
        panic!("a deliberate test failure");
    });
    assert!(task.await.unwrap_err().is_panic());
    let (pid, prefix, nginx_addr, echo_addr) = rx.await.unwrap();
    assert!(
        !process_group_alive(pid),
        "nginx (process group {pid}) still running after the panic"
    );
    assert!(
        !prefix.exists(),
        "temp dir {} left behind",
        prefix.display()
    );
    assert!(
        refused_within(nginx_addr, Duration::from_secs(2)).await,
        "nginx port {nginx_addr} still open"
    );
    assert!(
        refused_within(echo_addr, Duration::from_secs(2)).await,
        "echo server {echo_addr} still open"
    );
}

/// Raises this process's open-file limit to its hard limit (1,000 clients and their server ends
/// live in this process).
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        r.rlim_cur
    }
}

const CONNECTIONS: usize = 1000;
const MESSAGES: usize = 100;
/// Mixed sizes, text and binary; each payload is unique to its connection and index.
const SIZES: [usize; 4] = [8, 64, 512, 4096];

fn payload(conn: usize, i: usize) -> Message {
    let size = SIZES[i % SIZES.len()];
    let seed = format!("{conn}:{i}:");
    let body: String = seed.chars().cycle().take(size.max(seed.len())).collect();
    if i.is_multiple_of(2) {
        Message::text(body)
    } else {
        Message::binary(body.into_bytes())
    }
}

/// Load cases: nextest runs each alone (`threads-required`), so they do not disturb timing cases.
mod load {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_connections_echo_every_byte_through_the_ingress() {
        let limit = raise_nofile();
        assert!(
            limit >= 4 * CONNECTIONS as u64,
            "open-file limit {limit} is too low for {CONNECTIONS} connections; raise `ulimit -n`"
        );
        let t = Arc::new(
            Target::local(LocalOptions::new(Phase::Plain))
                .await
                .unwrap(),
        );
        let variant = Variant::documented();
        // Connects a few hundred at a time: nginx's listen backlog is 511.
        let gate = Arc::new(tokio::sync::Semaphore::new(200));
        let start = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let (t, v, gate) = (Arc::clone(&t), variant.clone(), Arc::clone(&gate));
                tokio::spawn(async move {
                    let permit = gate.acquire_owned().await.unwrap();
                    let mut s = t.probe(Scheme::Ws, &v).connect().await?;
                    drop(permit);
                    let mut rtts = Vec::with_capacity(MESSAGES);
                    for i in 0..MESSAGES {
                        rtts.push(s.echo(payload(c, i)).await?);
                    }
                    s.close().await;
                    Ok::<_, ProbeError>(rtts)
                })
            })
            .collect();
        let (mut rtts, mut lost, mut corrupted, mut closed, mut other) =
            (Vec::new(), 0, 0, 0, Vec::new());
        for task in tasks {
            match task.await.unwrap() {
                Ok(r) => rtts.extend(r),
                Err(ProbeError::Echo { problem, .. }) if problem.starts_with("no reply") => {
                    lost += 1
                }
                Err(ProbeError::Echo { .. }) => corrupted += 1,
                Err(ProbeError::Closed { .. }) => closed += 1,
                Err(e) => other.push(e.to_string()),
            }
        }
        let wall = start.elapsed();
        rtts.sort();
        let pct = |p: f64| {
            rtts.get(((rtts.len() as f64 * p) as usize).min(rtts.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let ok = rtts.len() == CONNECTIONS * MESSAGES
            && lost + corrupted + closed == 0
            && other.is_empty();
        let observed = format!(
            "{} echoes ok; lost {lost}, corrupted {corrupted}, closed {closed}, other {}; p50 {:.2} ms, p99 {:.2} ms; wall {:.1} s",
            rtts.len(),
            other.len(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            wall.as_secs_f64()
        );
        Row::check(
            "load::a_thousand_connections_echo_every_byte_through_the_ingress",
            t.tier(),
            "ws (documented)",
            "1,000 connections x 100 messages (8 B-4 KiB, text and binary)",
            "every payload back byte for byte; nothing lost or closed",
            observed,
            ok,
        )
        .assert(&format!("{:?}\n{}", other.first(), t.diagnostics()));
    }

    /// Resident memory of a process and, with `children`, of its direct children (nginx workers), in KiB.
    fn rss_kib(pid: u32, children: bool) -> u64 {
        let rss = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                })
                .unwrap_or(0u64)
        };
        let mut total = rss(pid);
        if children {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Some(child) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let stat =
                    std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                // Field 4 (after the parenthesised name) is the parent pid.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
                if ppid == Some(pid) {
                    total += rss(child);
                }
            }
        }
        total
    }

    /// The echo server binary next to this test binary (cargo builds it for the echo crate's tests).
    fn echo_binary() -> std::path::PathBuf {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target/<profile>/deps");
        dir.join("wsgate-echo")
    }

    const IDLE_CONNECTIONS: usize = 10_000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_idle_connections_outlive_a_short_default_with_the_annotation_raised() {
        let limit = raise_nofile();
        assert!(
            limit >= IDLE_CONNECTIONS as u64 + 1000,
            "open-file limit {limit} is too low for {IDLE_CONNECTIONS} connections; raise `ulimit -n`"
        );
        // The echo server in its own process, so that its memory can be measured apart.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = echo_binary();
        assert!(
            bin.is_file(),
            "{} missing: build the workspace (`cargo build --workspace`)",
            bin.display()
        );
        let mut echo = tokio::process::Command::new(&bin)
            .env("BIND_ADDR", "127.0.0.1")
            .env("BIND_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let echo_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let start = Instant::now();
        while tokio::net::TcpStream::connect(echo_addr).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "echo server not listening within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let documented = wsgate_manifests::Documented::shipped().unwrap();
        let nginx = wsgate_local::LocalIngress::start(&wsgate_local::LocalIngressSpec {
            ingresses: vec![documented.ingress.clone()],
            backends: std::collections::BTreeMap::from([(
                wsgate_local::ServiceRef::new("default", "websocket-server", 3000),
                echo_addr,
            )]),
            // A short default that the documented 3600 must override.
            config: wsgate_manifests::ControllerConfig {
                proxy_read_timeout: 2,
                proxy_send_timeout: 2,
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        let echo_pid = echo.id().unwrap();
        let (nginx_before, echo_before) = (rss_kib(nginx.pid(), true), rss_kib(echo_pid, false));
        let probe = wsgate_probe::Probe::new(
            wsgate_probe::Endpoint::new(
                Scheme::Ws,
                nginx.http_addr().to_string(),
                wsgate_manifests::DOCUMENTED_HOST,
            ),
            wsgate_probe::Trust::Certificates(vec![]),
        )
        .with_connect_timeout(Duration::from_secs(30));
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let connect_start = Instant::now();
        let opened: Vec<_> = (0..IDLE_CONNECTIONS)
            .map(|_| {
                let (probe, gate) = (probe.clone(), Arc::clone(&gate));
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    let mut s = probe.connect().await?;
                    s.echo(Message::text("hello")).await?;
                    Ok::<_, ProbeError>(s)
                })
            })
            .collect();
        let mut sessions = Vec::with_capacity(IDLE_CONNECTIONS);
        let mut failed = Vec::new();
        for t in opened {
            match t.await.unwrap() {
                Ok(s) => sessions.push(s),
                Err(e) => failed.push(e.to_string()),
            }
        }
        let connect_time = connect_start.elapsed();
        let (nginx_after, echo_after) = (rss_kib(nginx.pid(), true), rss_kib(echo_pid, false));
        // Idle past the 2 s default, all at once; each ends with an echo check.
        let held: Vec<_> = sessions
            .into_iter()
            .map(|mut s| tokio::spawn(async move { s.hold_idle(Duration::from_secs(4)).await }))
            .collect();
        let mut survived = 0;
        let mut cut = Vec::new();
        for h in held {
            match h.await.unwrap() {
                HoldOutcome::Survived { .. } => survived += 1,
                other => cut.push(other.to_string()),
            }
        }
        let per =
            |before: u64, after: u64| after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64;
        let observed = format!(
            "{survived}/{IDLE_CONNECTIONS} survived ({} failed to open, {} cut); opened in {:.1} s; memory per connection: nginx {:.1} KiB, echo server {:.1} KiB",
            failed.len(),
            cut.len(),
            connect_time.as_secs_f64(),
            per(nginx_before, nginx_after),
            per(echo_before, echo_after)
        );
        let _ = echo.start_kill();
        Row::check(
        "load::ten_thousand_idle_connections_outlive_a_short_default_with_the_annotation_raised",
        "local",
        "ws (3600) over ConfigMap default read/send 2",
        "10,000 connections, idle 4 s, then echo",
        "all survive",
        observed,
        survived == IDLE_CONNECTIONS,
    )
    .assert(&format!("first failure: {:?}; first cut: {:?}\n{}", failed.first(), cut.first(), nginx.error_log().lines().rev().take(20).collect::<Vec<_>>().join("\n")));
    }
}

/// The echo server under bad input, each case a row; a well-behaved client echoes throughout.
mod bad_input {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use wsgate_echo::{EchoConfig, EchoServer};

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

    /// What came back: a close code, an HTTP status line, or the connection closing.
    async fn reply(s: &mut TcpStream) -> String {
        let mut buf = vec![0u8; 256];
        match tokio::time::timeout(DEADLINE, s.read(&mut buf)).await {
            Err(_) => "nothing within 5 s".into(),
            Ok(Ok(0)) => "connection closed".into(),
            Ok(Ok(n)) if buf[0] == 0x88 && n >= 4 => {
                format!("close {}", u16::from_be_bytes([buf[2], buf[3]]))
            }
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            Ok(Err(e)) => format!("error: {e}"),
        }
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
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bystander = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let probe = wsgate_probe::Probe::new(
                    wsgate_probe::Endpoint::new(Scheme::Ws, addr.to_string(), "test.example.com"),
                    wsgate_probe::Trust::Certificates(vec![]),
                );
                let mut s = probe.connect().await.unwrap();
                let (mut ok, mut failed) = (0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
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
        let case = |name: &str, input: &str, expected: &str, observed: String| {
            let pass = observed.starts_with(expected);
            Row::check(
                name,
                "local",
                "echo server (no proxy)",
                input,
                expected,
                observed,
                pass,
            )
        };

        let mut s = raw_upgraded(addr).await;
        s.write_all(&frame(0x2, &[0u8; 4096], true)).await.unwrap();
        rows.push(case(
            "bad_input::oversized_message",
            "4 KiB binary message, limit 1 KiB",
            "close 1009",
            reply(&mut s).await,
        ));

        let mut s = raw_upgraded(addr).await;
        s.write_all(&frame(0x1, &[0xff, 0xfe, 0xfd], true))
            .await
            .unwrap();
        rows.push(case(
            "bad_input::invalid_utf8",
            "text frame with invalid UTF-8",
            "close 1007",
            reply(&mut s).await,
        ));

        let mut s = raw_upgraded(addr).await;
        s.write_all(&frame(0x1, b"hi", false)).await.unwrap();
        rows.push(case(
            "bad_input::unmasked_client_frame",
            "unmasked text frame from a client",
            "close 1002",
            reply(&mut s).await,
        ));

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            .await
            .unwrap();
        rows.push(case(
            "bad_input::garbage_instead_of_a_handshake",
            "bytes that are not HTTP",
            "HTTP/1.1 400",
            reply(&mut s).await,
        ));

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = Instant::now();
        let got = reply(&mut s).await;
        let took = started.elapsed();
        // Dropped at the 300 ms handshake deadline (tolerance -50 ms / +700 ms).
        let in_time = took >= Duration::from_millis(250) && took <= Duration::from_secs(1);
        rows.push(case(
            "bad_input::half_handshake_then_stall",
            "half an HTTP head, then nothing",
            "connection closed",
            format!(
                "{got} after {} ms{}",
                took.as_millis(),
                if in_time {
                    ""
                } else {
                    " (outside 250-1000 ms)"
                }
            ),
        ));
        if !in_time {
            rows.last_mut().expect("just pushed").pass = false;
        }

        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (ok, failed) = bystander.await.unwrap();
        rows.push(case(
            "bad_input::others_are_served_throughout",
            "an echo every 20 ms on another connection meanwhile",
            "0 failed",
            format!(
                "0 failed{}, {ok} echoes",
                if failed > 0 {
                    format!(" -- NOT: {failed} failed")
                } else {
                    String::new()
                }
            ),
        ));
        if failed > 0 || ok == 0 {
            rows.last_mut().expect("just pushed").pass = false;
        }
        let failures: Vec<String> = rows
            .iter()
            .filter(|r| !r.pass)
            .map(|r| format!("{}: {}", r.case, r.observed))
            .collect();
        for r in &rows {
            r.record();
        }
        assert!(
            failures.is_empty(),
            "bad-input cases failed:\n{}",
            failures.join("\n")
        );
    }
}
