//! `cargo xtask local-up` as a person runs it: what it prints is what it serves, and when a
//! child dies or it is stopped, nothing of its own is left running.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wsgate_local::group_members;
use wsgate_probe::{Endpoint, Message, Probe, Scheme, Trust};

/// The running command, killed if the test ends early.
struct LocalUp {
    child: Child,
    banner: Vec<String>,
    pids: [u32; 2],
    ws: String,
    _out: tempfile::TempDir,
}

impl Drop for LocalUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> LocalUp {
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["local-up", "--out"])
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining after the test stops listening: a closed pipe would make local-up's
        // next line fail.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no complete banner within 20 s: {banner:#?}"));
        let done = line.starts_with("Ctrl-C stops everything");
        banner.push(line);
        if done {
            break;
        }
    }
    let first = &banner[0];
    let field = |after: &str| -> String {
        first
            .split(after)
            .nth(1)
            .and_then(|r| r.split([',', ';', ' ']).find(|w| !w.is_empty()))
            .unwrap_or_else(|| panic!("no {after:?} in {first:?}"))
            .to_owned()
    };
    let pids: Vec<u32> = first
        .split("nginx pids ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    LocalUp {
        ws: field("ws on "),
        pids: [pids[0], pids[1]],
        child,
        banner,
        _out: out,
    }
}

fn wait_exit(up: &mut LocalUp, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = up.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "local-up still running after {} ms (tolerance {} ms)",
            start.elapsed().as_millis(),
            limit.as_millis()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_banner_states_the_timeouts_it_rendered_and_the_hosts_echo() {
    let up = start();
    let text = up.banner.join("\n");
    for want in [
        "test.example.com/",
        "3600 s (annotation)",
        "no-annotations.test.example.com/",
        "60 s (controller default)",
        "websocat --ws-c-uri=ws://no-annotations.test.example.com/",
        "curl --cacert",
    ] {
        assert!(
            text.contains(want),
            "{want:?} missing from the banner:\n{text}"
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for host in ["test.example.com", "no-annotations.test.example.com"] {
        rt.block_on(async {
            let probe = Probe::new(
                Endpoint::new(Scheme::Ws, up.ws.clone(), host),
                Trust::Certificates(vec![]),
            );
            let mut s = probe
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{host}: {}", wsgate_probe::chain(&e)));
            s.echo(Message::text("through local-up"))
                .await
                .unwrap_or_else(|e| panic!("{host}: {}", wsgate_probe::chain(&e)));
        });
    }
}

#[test]
fn a_killed_nginx_stops_local_up_with_an_error_and_leaves_nothing() {
    let mut up = start();
    let [ws, wss] = up.pids;
    // SAFETY: kill(2) on the nginx master local-up reported.
    unsafe { libc::kill(ws as libc::pid_t, libc::SIGKILL) };
    let status = wait_exit(&mut up, Duration::from_secs(5));
    assert!(!status.success(), "local-up must fail when nginx dies");
    let mut stderr = String::new();
    std::io::Read::read_to_string(up.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("nginx (ws), pid {ws}, exited")),
        "{stderr}"
    );
    for pgid in [ws, wss] {
        assert_eq!(
            group_members(pgid),
            Vec::<u32>::new(),
            "nginx group {pgid} left behind"
        );
    }
}

#[test]
fn sigterm_stops_local_up_cleanly_and_leaves_nothing() {
    let mut up = start();
    // SAFETY: kill(2) on the local-up process this test started.
    unsafe { libc::kill(up.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = wait_exit(&mut up, Duration::from_secs(5));
    assert!(status.success(), "{status}");
    for pgid in up.pids {
        assert_eq!(group_members(pgid), Vec::<u32>::new());
    }
}
