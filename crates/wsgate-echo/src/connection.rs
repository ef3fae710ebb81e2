//! One client connection: the HTTP head (200 for plain requests, 400 for garbage), the
//! upgrade (held back when the query asks), then echo, sink or stall until the peer leaves or
//! the server shuts down with 1001.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::rewind::Rewind;
use crate::{EchoConfig, Heartbeat, HeartbeatKind, Mode, Overrides};

/// Largest HTTP request head read before the handshake.
const MAX_HEAD_BYTES: usize = 16 << 10;

pub(crate) async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    server: EchoConfig,
    shutdown: CancellationToken,
) {
    let head = match tokio::time::timeout(server.handshake_timeout, read_head(&mut stream)).await {
        Err(_) => {
            info!(%peer, timeout_ms = server.handshake_timeout.as_millis(), "dropped: no complete HTTP request head in time");
            return;
        }
        Ok(Err(e)) => {
            info!(%peer, error = %e, "dropped before the handshake");
            return;
        }
        Ok(Ok(head)) => head,
    };
    let overrides = match classify_head(&head) {
        Head::Upgrade(target) => Overrides::from_target(&target),
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
    };
    let config = overrides.apply(&server);
    if let Some(delay) = overrides.upgrade_delay {
        // A backend slow to answer the upgrade: the proxy waits for the 101 meanwhile.
        info!(%peer, delay_ms = delay.as_millis(), "holding the upgrade back");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
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
        Mode::Echo => echo_loop(&mut ws, &shutdown, config.heartbeat, true).await,
        Mode::Sink => echo_loop(&mut ws, &shutdown, config.heartbeat, false).await,
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

/// A tick every `every` of the heartbeat, or never.
async fn next_beat(beat: &mut Option<tokio::time::Interval>) {
    match beat {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn echo_loop<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    shutdown: &CancellationToken,
    heartbeat: Option<Heartbeat>,
    reply: bool,
) -> Ending
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut beat =
        heartbeat.map(|h| tokio::time::interval_at(tokio::time::Instant::now() + h.every, h.every));
    let mut beats = 0u64;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ending::Shutdown,
            _ = next_beat(&mut beat) => {
                beats += 1;
                let kind = heartbeat.map(|h| h.kind);
                let sent = match kind {
                    Some(HeartbeatKind::Ping) => ws.send(Message::Ping(beats.to_be_bytes().to_vec().into())).await,
                    _ => ws.send(Message::text(format!("heartbeat {beats}"))).await,
                };
                if let Err(e) = sent {
                    return Ending::PeerGone(format!("heartbeat failed: {e}"));
                }
                continue;
            }
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(Message::Text(_) | Message::Binary(_))) if !reply => {}
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
    /// An upgrade request, with its target (path and query).
    Upgrade(String),
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
    if upgrade {
        Head::Upgrade(req.path.unwrap_or("/").to_owned())
    } else {
        Head::Plain
    }
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
        assert_eq!(classify_head(head), Head::Upgrade("/".into()));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            classify_head(b"\x16\x03\x01garbage\r\n\r\n"),
            Head::Invalid(_)
        ));
    }
}
