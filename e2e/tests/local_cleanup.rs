//! Nothing is left behind when a test fails: no nginx process, no temp dir, no open port.

use std::net::SocketAddr;
use std::time::Duration;

use wsgate_e2e::target::LocalOptions;
use wsgate_e2e::{Phase, Target};
use wsgate_local::group_members;
use wsgate_wait::{Check, Wait};

/// Whether `addr` refuses connections within `limit` (a listener closes asynchronously).
async fn refused_within(addr: SocketAddr, limit: Duration) -> bool {
    Wait::new(format!("{addr} to refuse connections"), limit)
        .every(Duration::from_millis(20))
        .until(|| async move {
            match tokio::net::TcpStream::connect(addr).await {
                Err(_) => Check::Done(()),
                Ok(_) => Check::Pending("accepting"),
            }
        })
        .await
        .is_ok()
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
    assert_eq!(
        group_members(pid),
        Vec::<u32>::new(),
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
