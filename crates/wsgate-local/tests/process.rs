//! nginx never outlives its owner: not the master, not a worker, not an orphan whose master
//! was killed.

use std::collections::BTreeMap;
use std::time::Duration;

use wsgate_local::{LocalIngress, LocalIngressSpec, ServiceRef, group_members};
use wsgate_manifests::Documented;
use wsgate_wait::{Check, Wait};

fn start() -> LocalIngress {
    LocalIngress::start(&LocalIngressSpec {
        ingresses: vec![Documented::shipped().unwrap().ingress],
        // Nothing is proxied in these tests; nginx connects to a backend only per request.
        backends: BTreeMap::from([(
            ServiceRef::new("default", "websocket-server", 3000),
            "127.0.0.1:9".parse().unwrap(),
        )]),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn a_master_killed_with_sigkill_leaves_no_worker_behind_once_stopped() {
    let mut nginx = start();
    let pgid = nginx.pid();
    let port = nginx.http_addr();
    assert!(
        group_members(pgid).len() >= 2,
        "a master and at least one worker: {:?}",
        group_members(pgid)
    );
    // SAFETY: kill(2) on the nginx master this test started.
    unsafe { libc::kill(pgid as libc::pid_t, libc::SIGKILL) };
    Wait::new("the killed master to exit", Duration::from_secs(5))
        .every(Duration::from_millis(10))
        .until_blocking(|| match nginx.exited() {
            Some(_) => Check::Done(()),
            None => Check::Pending("running"),
        })
        .unwrap();
    // The hazard: its workers live on, serving the port, in the dead master's group.
    let orphans = group_members(pgid);
    assert!(
        !orphans.is_empty(),
        "expected orphaned workers after SIGKILL of the master"
    );
    nginx.stop();
    assert_eq!(
        group_members(pgid),
        Vec::<u32>::new(),
        "processes of group {pgid} left after stop (orphans were {orphans:?})"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&port, Duration::from_millis(200)).is_err(),
        "{port} still accepts connections"
    );
}

#[test]
fn dropping_the_ingress_stops_the_whole_group() {
    let nginx = start();
    let pgid = nginx.pid();
    drop(nginx);
    assert_eq!(group_members(pgid), Vec::<u32>::new());
}
