//! `cargo xtask bare-up` as a person runs it: the pinned v1.35 server answers `kubectl version`
//! and schedules a Deployment, and when it is stopped (Ctrl-C), or its own process is killed,
//! no process of its group is left, nothing of it listens, and its routes are gone.
//! Needs root and the built components: `cargo xtask test` runs it in its bare step.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsgate_wait::{Check, Wait};

/// The first start may still be warming the API server's caches.
const BANNER: Duration = Duration::from_secs(120);

struct BareUp {
    child: Child,
    banner: Vec<String>,
    pgid: u32,
    port: u16,
    kubeconfig: String,
    kubectl: String,
}

impl Drop for BareUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> BareUp {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bare-up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    let start = Instant::now();
    loop {
        let left = BANNER.saturating_sub(start.elapsed());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("no complete banner within {BANNER:?}: {banner:#?}\n{err}")
        });
        let done = line.starts_with("Ctrl-C stops everything");
        banner.push(line);
        if done {
            break;
        }
    }
    let text = banner.join("\n");
    let word_after = |after: &str| -> String {
        text.split(after)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {after:?} in {text}"))
            .trim_end_matches([';', ')', ','])
            .to_owned()
    };
    let server = word_after(" at ");
    BareUp {
        pgid: word_after("(process group ").parse().unwrap(),
        port: server.rsplit(':').next().unwrap().parse().unwrap(),
        kubeconfig: word_after("export KUBECONFIG="),
        kubectl: text
            .lines()
            .find(|l| l.trim_end().ends_with("kubectl version"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_owned(),
        banner,
        child,
    }
}

fn kubectl(up: &BareUp, args: &[&str]) -> String {
    let out = Command::new(&up.kubectl)
        .args(args)
        .env("KUBECONFIG", &up.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of `up` is left: no process of its group, nobody on its API server's port, none of
/// wsgate's routes of that group.
fn nothing_left(up: &BareUp, limit: Duration) {
    Wait::new("bare-up's processes, port and routes gone", limit)
        .every(Duration::from_millis(50))
        .until_blocking(|| {
            let members = wsgate_proc::group_members(up.pgid);
            let listening = std::net::TcpStream::connect(("127.0.0.1", up.port)).is_ok();
            let routes = String::from_utf8_lossy(
                &Command::new("ip")
                    .args(["route", "show", "proto", "249"])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .lines()
            .filter(|l| {
                l.contains(&format!("metric {} ", up.pgid))
                    || l.ends_with(&format!("metric {}", up.pgid))
            })
            .count();
            if members.is_empty() && !listening && routes == 0 {
                Check::Done(())
            } else {
                Check::Pending(format!(
                    "group {members:?}, port {} {}, {routes} route(s)",
                    up.port,
                    if listening { "answers" } else { "closed" }
                ))
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bare_up_serves_the_pinned_server_and_ctrl_c_leaves_nothing_behind() {
    let mut up = start();
    let version = kubectl(&up, &["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.35.4", "{version}");
    assert!(up.banner.iter().any(|l| l.contains("10.96.0.0/16")));
    kubectl(
        &up,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
        ],
    );
    kubectl(
        &up,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    let pods = kubectl(&up, &["get", "pods", "-o", "wide", "--no-headers"]);
    assert_eq!(
        pods.lines().filter(|l| l.contains(" Running ")).count(),
        2,
        "{pods}"
    );
    // SAFETY: kill(2) on the bare-up process this test started.
    unsafe { libc::kill(up.child.id() as libc::pid_t, libc::SIGINT) };
    let status = up.child.wait().unwrap();
    assert!(status.success(), "{status}");
    nothing_left(&up, Duration::from_secs(5));
}

#[test]
fn a_killed_bare_up_leaves_no_process_and_nothing_listening() {
    let mut up = start();
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    // The components die by their parent-death signal at once; the routes are another run's to
    // sweep, so only the processes and the port are checked here.
    Wait::new(
        "bare-up's group gone and its port closed",
        Duration::from_secs(5),
    )
    .every(Duration::from_millis(50))
    .until_blocking(|| {
        let members = wsgate_proc::group_members(up.pgid);
        let listening = std::net::TcpStream::connect(("127.0.0.1", up.port)).is_ok();
        if members.is_empty() && !listening {
            Check::Done(())
        } else {
            Check::Pending(format!("group {members:?}, listening {listening}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
