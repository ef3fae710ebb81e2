//! The ingress and the echo server under load: 1,000 busy connections, 10,000 idle ones.
//! nextest runs each case alone (`threads-required`): they take both cores for seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Expect, Observed, Phase, Row, Target};
use wsgate_manifests::Variant;
use wsgate_probe::{HoldOutcome, Message, ProbeError, Scheme};
use wsgate_wait::{Check, Wait};

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
                Err(ProbeError::NoReply { .. }) => lost += 1,
                Err(ProbeError::Mismatch { .. }) => corrupted += 1,
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
        let held = rtts.len() == CONNECTIONS * MESSAGES
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
        t.row(
            "load::a_thousand_connections_echo_every_byte_through_the_ingress",
            "ws (documented)",
            Scheme::Ws,
        )
        .client("1,000 connections x 100 messages (8 B-4 KiB, text and binary)")
        .judge(
            Expect::holds("every payload back byte for byte; nothing lost or closed"),
            Observed::check(held, observed),
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

    /// The echo server binary the image ships (static, release), built now if stale. A binary
    /// found by path next to the test binary can be stale: cargo rebuilds it only when a
    /// target that needs it is built, and a stale one once reported 136.6 KiB per connection
    /// (tungstenite's default 128 KiB read buffer, from before the 16 KiB setting).
    fn echo_binary() -> std::path::PathBuf {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let host = wsgate_image::Platform::host().expect("a Linux host Docker names");
        wsgate_image::BinaryBuild::for_platform(host)
            .and_then(|target| wsgate_image::build_static_binary(root, &target))
            .unwrap_or_else(|e| panic!("{}", wsgate_probe::chain(&e)))
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
        let mut echo = tokio::process::Command::new(&bin)
            .env("BIND_ADDR", "127.0.0.1")
            .env("BIND_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let echo_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        Wait::new("the echo server to listen", Duration::from_secs(10))
            .every(Duration::from_millis(20))
            .until(|| async move {
                match tokio::net::TcpStream::connect(echo_addr).await {
                    Ok(_) => Check::Done(()),
                    Err(e) => Check::Pending(e.to_string()),
                }
            })
            .await
            .unwrap();
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
        Row::builder(
            "load::ten_thousand_idle_connections_outlive_a_short_default_with_the_annotation_raised",
        )
        .ingress("ws (3600) over ConfigMap default read/send 2")
        .scheme(Scheme::Ws)
        .client("10,000 connections, one 5-byte echo each, idle 4 s, then echo; echo server = the image's static release binary (glibc malloc), in its own process")
        .judge(
            Expect::holds("all survive"),
            Observed::check(survived == IDLE_CONNECTIONS, observed),
        )
        .assert(&format!(
            "first failure: {:?}; first cut: {:?}\n{}",
            failed.first(),
            cut.first(),
            nginx.error_log_tail(20)
        ));
    }
}
