//! A pod's network for a server that must be reached at a pod address: a network namespace the
//! run creates (`wsgate-<owner pgid>-<n>`), joined to the host by a veth pair with a /30 of the
//! pod range (`10.244.240.0/20`, out of the way of kwok's addresses), so that an EndpointSlice
//! can name it (the API server refuses loopback endpoints) and traffic to it never leaves the
//! machine. Listening sockets are opened inside it from this process: the socket stays in the
//! namespace, the process does not. Deleted on drop; namespaces of owners that are gone are
//! swept by the next one made.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::BareError;

/// The part of the pod range pods' networks use: 1024 blocks of four addresses.
const BASE: Ipv4Addr = Ipv4Addr::new(10, 244, 240, 0);
const BLOCKS: u32 = 1024;
const PREFIX: &str = "wsgate-";

fn ip(args: &[&str]) -> Result<String, BareError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| BareError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: format!("{e} (Debian: apt-get install iproute2)"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BareError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Our namespaces now: (name, owner pgid, block).
fn namespaces() -> Vec<(String, u32, u32)> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let rest = name.strip_prefix(PREFIX)?;
            let (pgid, n) = rest.split_once('-')?;
            Some((name.to_owned(), pgid.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

/// A network namespace with one address, reachable from the host.
#[derive(Debug)]
pub struct PodNet {
    name: String,
    ip: Ipv4Addr,
}

impl PodNet {
    /// Makes one for the owner whose process group is `owner` (a control plane's), after
    /// deleting those of owners that are gone. Needs root.
    pub fn create(owner: u32) -> Result<Self, BareError> {
        let mut taken = Vec::new();
        for (name, pgid, n) in namespaces() {
            if wsgate_proc::group_members(pgid).is_empty() {
                let _ = ip(&["netns", "del", &name]);
            } else {
                taken.push(n);
            }
        }
        let mut last = None;
        for n in (0..BLOCKS).filter(|n| !taken.contains(n)) {
            let name = format!("{PREFIX}{owner}-{n}");
            // Another run may take the same block between the listing and here: next one.
            if let Err(e) = ip(&["netns", "add", &name]) {
                last = Some(e);
                continue;
            }
            let base = u32::from(BASE) + 4 * n;
            let (host, pod) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
            let net = Self { name, ip: pod };
            // On failure the namespace (and the pair with it) goes on drop.
            net.wire(n, host, pod)?;
            return Ok(net);
        }
        Err(last.unwrap_or(BareError::Command {
            command: "ip netns add".into(),
            detail: format!("all {BLOCKS} pod network blocks of {BASE}/20 are in use"),
        }))
    }

    fn wire(&self, n: u32, host: Ipv4Addr, pod: Ipv4Addr) -> Result<(), BareError> {
        let (h, p) = (format!("wsg{n}h"), format!("wsg{n}p"));
        let _ = ip(&["link", "del", &h]);
        ip(&[
            "link", "add", &h, "type", "veth", "peer", "name", &p, "netns", &self.name,
        ])?;
        ip(&["addr", "add", &format!("{host}/30"), "dev", &h])?;
        ip(&["link", "set", &h, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", self.name.as_str()];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{pod}/30"), "dev", &p])?;
        inside(&["link", "set", &p, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(())
    }

    /// The pod's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The namespace's name (`ip netns exec NAME …` enters it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A listening socket on the pod's address, opened inside the namespace by a thread that
    /// enters it and ends (the socket stays there; no other thread moves).
    pub fn listen(&self, port: u16) -> Result<TcpListener, BareError> {
        let path = format!("/run/netns/{}", self.name);
        let addr = SocketAddr::from((self.ip, port));
        let failed = |detail: String| BareError::Command {
            command: format!("listen on {addr} in network namespace {}", self.name),
            detail,
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).map_err(|e| failed(format!("{path}: {e}")))?;
                // SAFETY: setns on this thread only, with a namespace file we hold open.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(failed(format!(
                        "setns: {}",
                        std::io::Error::last_os_error()
                    )));
                }
                let l = TcpListener::bind(addr).map_err(|e| failed(e.to_string()))?;
                l.set_nonblocking(true).map_err(|e| failed(e.to_string()))?;
                Ok(l)
            })
            .join()
            .unwrap_or_else(|_| Err(failed("the thread panicked".into())))
        })
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.name]);
    }
}
