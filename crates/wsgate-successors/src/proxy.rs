//! A successor's proxy as a child process in its own process group (`wsgate-proc`), listening
//! on two free loopback ports (ws and wss), its output in a log file, stopped on drop with every
//! process of its group.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsgate_wait::{Check, Wait};

use crate::SuccessorError;

/// How long a proxy may take to accept on both ports.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A free loopback port (another process may take it before the proxy binds it; a start that
/// fails on it says so).
pub fn free_port() -> Result<u16, SuccessorError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(wsgate_fs::at(
        "bind a probe port on",
        Path::new("127.0.0.1"),
    ))?;
    Ok(l.local_addr()
        .map_err(wsgate_fs::at("read the address of", Path::new("127.0.0.1")))?
        .port())
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A running proxy.
pub struct Proxy {
    pub name: String,
    child: Child,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub log: PathBuf,
    // Its configuration and keys live as long as it does (kept when it fails to start).
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("name", &self.name)
            .field("http", &self.http)
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Starts `cmd` (output to `log`) and waits until it accepts on `http` and `https` (only
    /// on `http` when `tls` is false: a configuration without TLS listeners opens no such port).
    pub fn start(
        name: &str,
        mut cmd: Command,
        (http, https): (u16, u16),
        tls: bool,
        log: PathBuf,
        dir: tempfile::TempDir,
    ) -> Result<Self, SuccessorError> {
        let out = std::fs::File::create(&log).map_err(wsgate_fs::at("create", &log))?;
        let err = out.try_clone().map_err(wsgate_fs::at("open", &log))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let shown = format!("{cmd:?}");
        let child =
            wsgate_proc::in_group(&mut cmd, 0)
                .spawn()
                .map_err(|e| SuccessorError::Command {
                    command: shown,
                    detail: e.to_string(),
                })?;
        let localhost = |p| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
        let mut proxy = Self {
            name: name.to_owned(),
            child,
            http: localhost(http),
            https: localhost(https),
            log,
            dir: Some(dir),
        };
        if let Err(e) = proxy.wait_ready(tls) {
            // Its configuration stays for a person to read (the error names the log in it).
            if let Some(d) = proxy.dir.take() {
                let _ = d.keep();
            }
            return Err(e);
        }
        Ok(proxy)
    }

    fn wait_ready(&mut self, tls: bool) -> Result<(), SuccessorError> {
        let addrs: Vec<SocketAddr> = if tls {
            vec![self.http, self.https]
        } else {
            vec![self.http]
        };
        let child = &mut self.child;
        let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let waited = Wait::new(
            format!("{} accepting on {}", self.name, shown.join(" and ")),
            READY_DEADLINE,
        )
        .every(Duration::from_millis(50))
        .until_blocking(|| {
            if let Some(status) = wsgate_proc::exited(child) {
                return Check::Done(Err(format!("exited ({status})")));
            }
            let refused: Vec<String> = addrs
                .iter()
                .filter(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err())
                .map(ToString::to_string)
                .collect();
            if refused.is_empty() {
                Check::Done(Ok(()))
            } else {
                Check::Pending(format!("refused on {}", refused.join(", ")))
            }
        });
        let problem = match waited {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(p)) => p,
            Err(timed_out) => timed_out.to_string(),
        };
        Err(SuccessorError::NotReady {
            name: self.name.clone(),
            problem,
            log: self.log.clone(),
            tail: tail(&self.log, 20),
        })
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        wsgate_proc::exited(&mut self.child)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        wsgate_proc::stop(&mut self.child);
    }
}

/// A plain HTTP GET (for a proxy's own API and readiness pages): the status and the body.
/// HTTP/1.0, so that the body comes whole, never chunked.
pub fn http_get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {:.60}", text)))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((status, body.to_owned()))
}
