//! WebSocket echo server: echoes every message, answers plain HTTP with 200, closes with 1001 on shutdown.

mod rewind;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use rewind::Rewind;

/// Largest message the server accepts by default (16 MiB); larger ones get close code 1009.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// Largest HTTP request head read before the handshake.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// What the server does with an upgraded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Echo every text and binary message, in order.
    #[default]
    Echo,
    /// Never read after the handshake: a backend that stops reading, so that the proxy's send
    /// timeout can be observed.
    Stall,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "echo" => Ok(Self::Echo),
            "stall" => Ok(Self::Stall),
            other => Err(format!("unknown mode {other:?}; use `echo` or `stall`")),
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
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE,
            mode: Mode::Echo,
            handshake_timeout: Duration::from_secs(10),
            close_grace: Duration::from_millis(500),
        }
    }
}

/// Errors of the echo server's own lifecycle (per-connection errors are logged, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler: {source}")]
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

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: EchoConfig,
    shutdown: CancellationToken,
) {
    let head = match tokio::time::timeout(config.handshake_timeout, read_head(&mut stream)).await {
        Err(_) => {
            info!(%peer, timeout_ms = config.handshake_timeout.as_millis(), "dropped: no complete HTTP request head in time");
            return;
        }
        Ok(Err(e)) => {
            info!(%peer, error = %e, "dropped before the handshake");
            return;
        }
        Ok(Ok(head)) => head,
    };
    match classify_head(&head) {
        Head::Upgrade => {}
        Head::Plain => {
            // What a kubelet HTTP probe or a load balancer health check sees.
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
                .await;
            let _ = stream.shutdown().await;
            return;
        }
        Head::Invalid(why) => {
            info!(%peer, why, "answered 400 to a request that is not HTTP");
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            let _ = stream.shutdown().await;
            return;
        }
    }
    // A 16 KiB read buffer (tungstenite's default is 128 KiB) keeps idle connections cheap; it
    // grows for large messages.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let accept =
        tokio_tungstenite::accept_async_with_config(Rewind::new(head, stream), Some(ws_config));
    let mut ws = match tokio::time::timeout(config.handshake_timeout, accept).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            info!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            info!(%peer, "handshake timed out");
            return;
        }
    };
    info!(%peer, mode = ?config.mode, "connected");
    let reason = match config.mode {
        Mode::Echo => echo_loop(&mut ws, &shutdown).await,
        Mode::Stall => {
            // Never poll the socket: the kernel buffers fill and the peer's writes block.
            shutdown.cancelled().await;
            Ending::Shutdown
        }
    };
    let close = match reason {
        Ending::PeerGone(why) => {
            info!(%peer, why, "disconnected");
            return;
        }
        Ending::Shutdown => (CloseCode::Away, "server shutting down"),
        Ending::Refuse(code, why) => {
            info!(%peer, code = u16::from(code), why, "closing: bad input");
            (code, why)
        }
    };
    let frame = CloseFrame {
        code: close.0,
        reason: close.1.into(),
    };
    // Send the close, then wait briefly for the peer's reply so that it sees a clean closing
    // handshake rather than a reset.
    let _ = tokio::time::timeout(config.close_grace, async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
    info!(%peer, code = u16::from(close.0), "disconnected");
}

enum Ending {
    PeerGone(String),
    Shutdown,
    Refuse(CloseCode, &'static str),
}

async fn echo_loop<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    shutdown: &CancellationToken,
) -> Ending
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ending::Shutdown,
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if let Err(e) = ws.send(m).await {
                    return Ending::PeerGone(format!("echo failed: {e}"));
                }
            }
            // tungstenite queues the pong itself; flush so that it leaves now.
            Some(Ok(Message::Ping(_))) => {
                if let Err(e) = ws.flush().await {
                    return Ending::PeerGone(format!("pong failed: {e}"));
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                return Ending::PeerGone(format!("client closed with {code:?}"));
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            Some(Err(WsError::Capacity(_))) => {
                return Ending::Refuse(CloseCode::Size, "message too big");
            }
            Some(Err(WsError::Utf8(_))) => {
                return Ending::Refuse(CloseCode::Invalid, "invalid UTF-8 in a text message");
            }
            Some(Err(WsError::Protocol(p))) => {
                return match p {
                    tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake => {
                        Ending::PeerGone("closed without a close frame".into())
                    }
                    _ => Ending::Refuse(CloseCode::Protocol, "protocol error"),
                };
            }
            Some(Err(e)) => return Ending::PeerGone(e.to_string()),
            None => return Ending::PeerGone("stream ended".into()),
        }
    }
}

/// Reads until the end of the HTTP head (`\r\n\r\n`) and returns everything read so far.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the HTTP head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_HEAD_BYTES {
            return Ok(buf);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    Upgrade,
    Plain,
    Invalid(&'static str),
}

fn classify_head(head: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Head::Invalid("HTTP head too long"),
        Err(_) => return Head::Invalid("not an HTTP request"),
    }
    let upgrade = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    });
    if upgrade { Head::Upgrade } else { Head::Plain }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_without_upgrade_is_plain() {
        assert_eq!(
            classify_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Head::Plain
        );
    }

    #[test]
    fn an_upgrade_request_is_recognised_case_insensitively() {
        let head =
            b"GET / HTTP/1.1\r\nHost: x\r\nUPGRADE: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(classify_head(head), Head::Upgrade);
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            classify_head(b"\x16\x03\x01garbage\r\n\r\n"),
            Head::Invalid(_)
        ));
    }

    #[test]
    fn modes_parse_and_unknown_mode_names_the_choices() {
        assert_eq!("stall".parse::<Mode>().unwrap(), Mode::Stall);
        assert!("loud".parse::<Mode>().unwrap_err().contains("echo"));
    }
}
