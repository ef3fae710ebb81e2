//! WebSocket client probe: reach an ingress address as a named host, echo, hold, and classify endings.
//!
//! Presenting the host in the `Host` header and TLS SNI while connecting to a chosen address is
//! what the document's hosts-file step achieves; here it needs no root and touches no system file.

mod outcome;
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::either::Either;

pub use outcome::{CloseKind, HoldOutcome};
pub use tls::Trust;
/// The message type sessions send and receive.
pub use tokio_tungstenite::tungstenite::Message;

/// `ws` or `wss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Ws,
    Wss,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ws => "ws",
            Self::Wss => "wss",
        })
    }
}

/// Where to connect and who to say we are talking to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The address actually dialled (`127.0.0.1:8080`, `localhost:443`): the ingress address.
    pub connect_to: String,
    /// The host presented in `Host` and SNI (`test.example.com`).
    pub host: String,
    pub scheme: Scheme,
    pub path: String,
}

impl Endpoint {
    pub fn new(scheme: Scheme, connect_to: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            connect_to: connect_to.into(),
            host: host.into(),
            scheme,
            path: "/".into(),
        }
    }

    /// The URL a user would type once the host resolves to the ingress (`ws://test.example.com/`).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }
}

/// What went wrong while probing; each variant names the endpoint involved.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr} (for {url}): {source}")]
    Connect {
        addr: String,
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} for {url} did not finish within {}ms", deadline.as_millis())]
    Timeout {
        what: &'static str,
        url: String,
        deadline: Duration,
    },
    #[error("TLS handshake with {addr} as {host:?} failed: {source}")]
    Tls {
        addr: String,
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TLS setup for {host:?}: {message}")]
    TlsConfig { host: String, message: String },
    #[error("WebSocket handshake for {url} was answered with HTTP {status}{}", location.as_ref().map(|l| format!(" (location: {l})")).unwrap_or_default())]
    Rejected {
        url: String,
        status: u16,
        location: Option<String>,
    },
    #[error("WebSocket handshake for {url} failed: {source}")]
    Handshake {
        url: String,
        #[source]
        source: Box<WsError>,
    },
    #[error("echo on {url} failed: sent {sent}, {problem}")]
    Echo {
        url: String,
        sent: String,
        problem: String,
    },
    #[error("the connection to {url} ended: {how}")]
    Closed { url: String, how: CloseKind },
    #[error("invalid HTTP response from {url}: {message}")]
    Http { url: String, message: String },
}

impl ProbeError {
    /// The HTTP status a handshake was refused with, if that is what happened.
    pub fn rejected_status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Connects to one endpoint with one trust setting.
#[derive(Debug, Clone)]
pub struct Probe {
    endpoint: Endpoint,
    trust: Trust,
    connect_timeout: Duration,
    max_message: usize,
}

/// A plain HTTP reply: status and `Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub location: Option<String>,
}

type Transport = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

impl Probe {
    /// A probe that trusts `trust`; for `ws` the trust is unused.
    pub fn new(endpoint: Endpoint, trust: Trust) -> Self {
        Self {
            endpoint,
            trust,
            connect_timeout: Duration::from_secs(10),
            max_message: 64 << 20,
        }
    }

    pub fn with_connect_timeout(mut self, deadline: Duration) -> Self {
        self.connect_timeout = deadline;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn transport(&self) -> Result<Transport, ProbeError> {
        let ep = &self.endpoint;
        let tcp = TcpStream::connect(ep.connect_to.as_str())
            .await
            .map_err(|source| ProbeError::Connect {
                addr: ep.connect_to.clone(),
                url: ep.url(),
                source,
            })?;
        // Echo round trips are measured; don't let Nagle add 40 ms to small frames.
        let _ = tcp.set_nodelay(true);
        match ep.scheme {
            Scheme::Ws => Ok(Either::Left(tcp)),
            Scheme::Wss => {
                let tls_err = |message: String| ProbeError::TlsConfig {
                    host: ep.host.clone(),
                    message,
                };
                let config = tls::client_config(&self.trust).map_err(|e| tls_err(e.to_string()))?;
                let name =
                    ServerName::try_from(ep.host.clone()).map_err(|e| tls_err(e.to_string()))?;
                let stream = TlsConnector::from(Arc::clone(&config))
                    .connect(name, tcp)
                    .await
                    .map_err(|source| ProbeError::Tls {
                        addr: ep.connect_to.clone(),
                        host: ep.host.clone(),
                        source,
                    })?;
                Ok(Either::Right(stream))
            }
        }
    }

    /// Opens a WebSocket session (TCP, TLS when `wss`, HTTP upgrade), all within the connect deadline.
    pub async fn connect(&self) -> Result<Session, ProbeError> {
        let url = self.endpoint.url();
        let deadline = self.connect_timeout;
        tokio::time::timeout(deadline, self.connect_inner())
            .await
            .map_err(|_| ProbeError::Timeout {
                what: "connect and handshake",
                url,
                deadline,
            })?
    }

    async fn connect_inner(&self) -> Result<Session, ProbeError> {
        let url = self.endpoint.url();
        let stream = self.transport().await?;
        let handshake_err = |source: WsError| ProbeError::Handshake {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut request = url.as_str().into_client_request().map_err(handshake_err)?;
        // Insert, not append: a second Host header makes nginx answer 400.
        let host = HeaderValue::from_str(&self.endpoint.host)
            .map_err(|e| handshake_err(WsError::HttpFormat(e.into())))?;
        request.headers_mut().insert("Host", host);
        let config = WebSocketConfig::default()
            .read_buffer_size(16 << 10)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message));
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((ws, _response)) => Ok(Session {
                ws,
                url,
                last_traffic: Instant::now(),
            }),
            Err(WsError::Http(response)) => Err(ProbeError::Rejected {
                url,
                status: response.status().as_u16(),
                location: response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(e) => Err(handshake_err(e)),
        }
    }

    /// A plain `GET` (no upgrade) to the endpoint's path, over TLS when `wss`.
    pub async fn http_get(&self) -> Result<HttpReply, ProbeError> {
        let url = self.endpoint.url();
        let deadline = self.connect_timeout;
        tokio::time::timeout(deadline, self.http_get_inner())
            .await
            .map_err(|_| ProbeError::Timeout {
                what: "HTTP GET",
                url,
                deadline,
            })?
    }

    async fn http_get_inner(&self) -> Result<HttpReply, ProbeError> {
        let url = self.endpoint.url();
        let mut stream = self.transport().await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.endpoint.path, self.endpoint.host
        );
        let io_err = |e: std::io::Error| ProbeError::Http {
            url: url.clone(),
            message: e.to_string(),
        };
        stream.write_all(request.as_bytes()).await.map_err(io_err)?;
        let head = read_http_head(&mut stream).await.map_err(io_err)?;
        parse_reply(&head).map_err(|message| ProbeError::Http { url, message })
    }
}

async fn read_http_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 << 10 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

fn parse_reply(head: &[u8]) -> Result<HttpReply, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(format!("incomplete head ({} bytes)", head.len()));
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(HttpReply {
        status: resp.code.unwrap_or_default(),
        location: resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("location"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned()),
    })
}

/// How [`Session::hold_with_traffic`] keeps a connection busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// A ping frame each interval (the server's pong comes back through the proxy).
    Ping,
    /// A text message each interval, and its echo awaited.
    Echo,
    /// A text message each interval; nothing is expected back (a server that never answers).
    SendOnly,
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ping => "ping",
            Self::Echo => "echo",
            Self::SendOnly => "text (no reply expected)",
        })
    }
}

/// An open WebSocket session.
pub struct Session {
    ws: WebSocketStream<Transport>,
    url: String,
    last_traffic: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How long one echo may take before the probe calls it lost.
pub const ECHO_DEADLINE: Duration = Duration::from_secs(10);

impl Session {
    /// Sends `msg` and waits for the identical message back; returns the round-trip time.
    pub async fn echo(&mut self, msg: Message) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        let sent = describe(&msg);
        let echo_err = |problem: String| ProbeError::Echo {
            url: self.url.clone(),
            sent: sent.clone(),
            problem,
        };
        let result = tokio::time::timeout(ECHO_DEADLINE, async {
            self.ws
                .send(msg.clone())
                .await
                .map_err(|e| CloseKind::from_error(&e))?;
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Pong(_) | Message::Ping(_) | Message::Frame(_))) => continue,
                    Some(Ok(reply)) if matches!(reply, Message::Close(_)) => {
                        return Err(CloseKind::from_next(Some(Ok(reply)))
                            .expect("a close frame ends the session"));
                    }
                    Some(Ok(reply)) => return Ok(reply),
                    other => {
                        return Err(CloseKind::from_next(other)
                            .expect("errors and end of stream end the session"));
                    }
                }
            }
        })
        .await;
        match result {
            Err(_) => Err(echo_err(format!(
                "no reply within {} ms",
                ECHO_DEADLINE.as_millis()
            ))),
            Ok(Err(how)) => Err(ProbeError::Closed {
                url: self.url.clone(),
                how,
            }),
            Ok(Ok(reply)) if reply == msg => {
                self.last_traffic = Instant::now();
                Ok(start.elapsed())
            }
            Ok(Ok(reply)) => Err(echo_err(format!("got back {}", describe(&reply)))),
        }
    }

    /// Sends all `msgs` before reading any reply, then reads as many replies; returns them in
    /// arrival order (for order checks).
    pub async fn pipeline(&mut self, msgs: Vec<Message>) -> Result<Vec<Message>, ProbeError> {
        let n = msgs.len();
        let url = self.url.clone();
        let closed = |how| ProbeError::Closed {
            url: url.clone(),
            how,
        };
        let fut = async {
            for m in msgs {
                self.ws
                    .feed(m)
                    .await
                    .map_err(|e| closed(CloseKind::from_error(&e)))?;
            }
            self.ws
                .flush()
                .await
                .map_err(|e| closed(CloseKind::from_error(&e)))?;
            let mut got = Vec::with_capacity(n);
            while got.len() < n {
                let next = self.ws.next().await;
                match next {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => got.push(m),
                    other => {
                        if let Some(how) = CloseKind::from_next(other) {
                            return Err(closed(how));
                        }
                    }
                }
            }
            Ok(got)
        };
        let got = tokio::time::timeout(ECHO_DEADLINE, fut)
            .await
            .map_err(|_| ProbeError::Timeout {
                what: "pipelined echo",
                url: self.url.clone(),
                deadline: ECHO_DEADLINE,
            })??;
        self.last_traffic = Instant::now();
        Ok(got)
    }

    /// Sends nothing for `idle`, watching for the other side to close; if the connection is
    /// still open then, an echo must come back for it to count as survived.
    pub async fn hold_idle(&mut self, idle: Duration) -> HoldOutcome {
        let start = Instant::now();
        let until = tokio::time::Instant::now() + idle;
        loop {
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => break,
                Ok(next) => {
                    if let Some(how) = CloseKind::from_next(next) {
                        return HoldOutcome::Closed {
                            after: self.last_traffic.elapsed(),
                            how,
                        };
                    }
                }
            }
        }
        self.after_hold(start).await
    }

    /// Keeps traffic of the given kind flowing every `every` for `total`, watching for a close.
    pub async fn hold_with_traffic(
        &mut self,
        total: Duration,
        every: Duration,
        traffic: Traffic,
    ) -> HoldOutcome {
        let start = Instant::now();
        let until = tokio::time::Instant::now() + total;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = tick.tick() => {
                    n += 1;
                    let sent = match traffic {
                        Traffic::Ping => self.ws.send(Message::Ping(n.to_be_bytes().to_vec().into())).await,
                        Traffic::SendOnly => self.ws.send(Message::text(format!("keepalive {n}"))).await,
                        Traffic::Echo => match self.echo(Message::text(format!("keepalive {n}"))).await {
                            Ok(_) => Ok(()),
                            Err(ProbeError::Closed { how, .. }) => {
                                return HoldOutcome::Closed { after: self.last_traffic.elapsed(), how };
                            }
                            Err(e) => return HoldOutcome::Closed {
                                after: self.last_traffic.elapsed(),
                                how: CloseKind::Error { message: e.to_string() },
                            },
                        },
                    };
                    match sent {
                        Ok(()) => self.last_traffic = Instant::now(),
                        Err(e) => return HoldOutcome::Closed {
                            after: self.last_traffic.elapsed(),
                            how: CloseKind::from_error(&e),
                        },
                    }
                }
                next = self.ws.next() => {
                    if let Some(how) = CloseKind::from_next(next) {
                        return HoldOutcome::Closed { after: self.last_traffic.elapsed(), how };
                    }
                    // A pong or an echo is traffic too: nginx re-arms its timer on either direction.
                    self.last_traffic = Instant::now();
                }
            }
        }
        if traffic == Traffic::SendOnly {
            // The server never answers; an echo check would only wait out its deadline.
            return HoldOutcome::Survived {
                held: start.elapsed(),
            };
        }
        self.after_hold(start).await
    }

    async fn after_hold(&mut self, start: Instant) -> HoldOutcome {
        let held = start.elapsed();
        match self.echo(Message::text("still there?")).await {
            Ok(_) => HoldOutcome::Survived { held },
            Err(ProbeError::Closed { how, .. }) => HoldOutcome::Closed {
                after: self.last_traffic.elapsed(),
                how,
            },
            Err(e) => HoldOutcome::Closed {
                after: self.last_traffic.elapsed(),
                how: CloseKind::Error {
                    message: e.to_string(),
                },
            },
        }
    }

    /// Waits up to `deadline` for the server to end the session, and says how it did.
    pub async fn wait_for_close(&mut self, deadline: Duration) -> Option<CloseKind> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => return None,
                Ok(next) => {
                    if let Some(how) = CloseKind::from_next(next) {
                        return Some(how);
                    }
                }
            }
        }
    }

    /// Sends `msg` without waiting for anything back.
    pub async fn send(&mut self, msg: Message) -> Result<(), CloseKind> {
        self.ws
            .send(msg)
            .await
            .map_err(|e| CloseKind::from_error(&e))?;
        self.last_traffic = Instant::now();
        Ok(())
    }

    /// Closes politely (close frame 1000), waiting briefly for the reply.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if self.ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

fn describe(msg: &Message) -> String {
    match msg {
        Message::Text(t) if t.len() <= 40 => format!("text {:?}", t.as_str()),
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_what_a_user_types_after_the_hosts_file_step() {
        let ep = Endpoint::new(Scheme::Wss, "127.0.0.1:8443", "test.example.com");
        assert_eq!(ep.url(), "wss://test.example.com/");
    }

    #[test]
    fn a_redirect_reply_is_parsed_with_its_location() {
        let head =
            b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://test.example.com/\r\n\r\n";
        assert_eq!(
            parse_reply(head).unwrap(),
            HttpReply {
                status: 308,
                location: Some("https://test.example.com/".into())
            }
        );
    }

    #[test]
    fn a_truncated_reply_is_an_error() {
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
