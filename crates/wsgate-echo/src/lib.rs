//! WebSocket echo server: echoes every message, answers plain HTTP with 200, closes with 1001 on shutdown.

mod connection;
mod overrides;
mod rewind;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use connection::handle;
pub use overrides::{MAX_UPGRADE_DELAY, Overrides};

/// Largest message the server accepts by default (16 MiB); larger ones get close code 1009.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// What the server does with an upgraded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Echo every text and binary message, in order.
    #[default]
    Echo,
    /// Never read after the handshake: a backend that stops reading, so that the proxy's send
    /// timeout can be observed.
    Stall,
    /// Read every message and answer none (pings still get their pong): a backend that never
    /// sends, so that which direction's traffic keeps a connection alive can be observed.
    Sink,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "echo" => Ok(Self::Echo),
            "stall" => Ok(Self::Stall),
            "sink" => Ok(Self::Sink),
            other => Err(format!(
                "unknown mode {other:?}; use `echo`, `stall` or `sink`"
            )),
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub max_message_bytes: usize,
    pub mode: Mode,
    /// A client that has not sent a full HTTP head within this time is dropped.
    pub handshake_timeout: Duration,
    /// On shutdown, how long to wait for clients to answer the 1001 close before dropping them.
    pub close_grace: Duration,
    /// Traffic the server sends on its own on every connection, for heartbeat experiments.
    pub heartbeat: Option<Heartbeat>,
}

/// What the server sends on its own, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub every: Duration,
    pub kind: HeartbeatKind,
}

/// A server-sent heartbeat: a ping frame (clients answer with a pong) or a text message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatKind {
    Ping,
    Text,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE,
            mode: Mode::Echo,
            handshake_timeout: Duration::from_secs(10),
            close_grace: Duration::from_millis(500),
            heartbeat: None,
        }
    }
}

/// Errors of the echo server's own lifecycle (per-connection errors are logged, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A bound, not yet serving, echo server.
pub struct EchoServer {
    listener: TcpListener,
    config: EchoConfig,
    shutdown: CancellationToken,
}

impl EchoServer {
    pub async fn bind(addr: SocketAddr, config: EchoConfig) -> Result<Self, EchoError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EchoError::Bind { addr, source })?;
        Ok(Self {
            listener,
            config,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancelling this token makes [`EchoServer::serve`] close every connection with 1001 and return.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then closes open connections with 1001
    /// and returns once they are gone (each is dropped after `close_grace` at the latest).
    pub async fn serve(self) {
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let config = self.config.clone();
                        let shutdown = self.shutdown.clone();
                        tracker.spawn(handle(stream, peer, config, shutdown));
                    }
                    // Out of file descriptors and the like: keep serving the others.
                    Err(e) => warn!(error = %e, "accept failed"),
                },
            }
        }
        drop(self.listener);
        tracker.close();
        tracker.wait().await;
    }

    /// Serves on a background task; the handle stops it.
    pub fn spawn(self) -> RunningEcho {
        let addr = self.local_addr();
        let token = self.shutdown_token();
        let task = tokio::spawn(self.serve());
        RunningEcho {
            addr,
            token,
            task: Some(task),
        }
    }
}

/// An echo server serving on a background task.
pub struct RunningEcho {
    addr: SocketAddr,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEcho {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server has stopped serving (shut down, or its task ended).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Closes every connection with 1001 and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEcho {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The binary's entry point: serve on `addr` until SIGTERM or SIGINT, then close connections
/// with 1001 and return within [`SHUTDOWN_DEADLINE`].
pub async fn run(addr: SocketAddr, config: EchoConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|source| EchoError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| EchoError::Signal {
        signal: "SIGINT",
        source,
    })?;
    let server = EchoServer::bind(addr, config).await?;
    let token = server.shutdown_token();
    info!(addr = %server.local_addr(), "listening");
    let serving = tokio::spawn(server.serve());
    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(signal, "shutting down: closing connections with 1001");
    token.cancel();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, serving)
        .await
        .is_err()
    {
        warn!(
            deadline_ms = SHUTDOWN_DEADLINE.as_millis(),
            "connections still open at the shutdown deadline; exiting anyway"
        );
    }
    Ok(())
}

/// How long the binary waits for connections to close after a signal (the issue asks for an exit
/// within 2 s; this leaves room for process teardown).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(1500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_unknown_mode_names_the_choices() {
        assert_eq!("stall".parse::<Mode>().unwrap(), Mode::Stall);
        assert!("loud".parse::<Mode>().unwrap_err().contains("echo"));
    }
}
