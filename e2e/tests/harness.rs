//! The suite's own parts under stress: cleanup after a panic, and 1,000 connections under load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Phase, Row, Target};
use wsgate_manifests::Variant;
use wsgate_probe::{Message, ProbeError, Scheme};

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
            Err(ProbeError::Echo { problem, .. }) if problem.starts_with("no reply") => lost += 1,
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
    let ok =
        rtts.len() == CONNECTIONS * MESSAGES && lost + corrupted + closed == 0 && other.is_empty();
    let observed = format!(
        "{} echoes ok; lost {lost}, corrupted {corrupted}, closed {closed}, other {}; p50 {:.2} ms, p99 {:.2} ms; wall {:.1} s",
        rtts.len(),
        other.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        wall.as_secs_f64()
    );
    Row::check(
        "a_thousand_connections_echo_every_byte_through_the_ingress",
        t.tier(),
        "ws (documented)",
        "1,000 connections x 100 messages (8 B-4 KiB, text and binary)",
        "every payload back byte for byte; nothing lost or closed",
        observed,
        ok,
    )
    .assert(&format!("{:?}\n{}", other.first(), t.diagnostics()));
}
