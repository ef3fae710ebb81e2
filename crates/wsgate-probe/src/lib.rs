//! WebSocket client probe: reach an ingress address as a named host, echo, hold, and classify endings.
//!
//! Presenting the host in the `Host` header and TLS SNI while connecting to a chosen address is
//! what the document's hosts-file step achieves; here it needs no root and touches no system file.

mod error;
mod http;
mod outcome;
mod session;
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::either::Either;

pub use error::{ProbeError, chain};
pub use http::HttpReply;
pub use outcome::{CloseKind, HoldOutcome};
pub use session::{Confirm, ECHO_DEADLINE, PONG_DEADLINE, Session, Traffic};
pub use tls::{Trust, pem_certificates, pem_file_certificates};
/// The message type sessions send and receive.
pub use tokio_tungstenite::tungstenite::Message;

/// `ws` or `wss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// The same endpoint for another URL path (`/chat`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The URL a user would type once the host resolves to the ingress (`ws://test.example.com/`).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
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

pub(crate) type Transport = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

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

    pub(crate) async fn transport(&self) -> Result<Transport, ProbeError> {
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
                let tls_err =
                    |source: Box<dyn std::error::Error + Send + Sync>| ProbeError::TlsConfig {
                        host: ep.host.clone(),
                        source,
                    };
                let config = tls::client_config(&self.trust).map_err(|e| tls_err(e.into()))?;
                let name = ServerName::try_from(ep.host.clone()).map_err(|e| tls_err(e.into()))?;
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

    /// `fut` within the connect deadline; its expiry is a [`ProbeError::Timeout`] for `what`.
    pub(crate) async fn within<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        let deadline = self.connect_timeout;
        tokio::time::timeout(deadline, fut)
            .await
            .map_err(|_| ProbeError::Timeout {
                what,
                url: self.endpoint.url(),
                deadline,
            })?
    }

    /// Opens a WebSocket session (TCP, TLS when `wss`, HTTP upgrade), all within the connect deadline.
    pub async fn connect(&self) -> Result<Session, ProbeError> {
        self.within("connect and handshake", self.connect_inner())
            .await
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
                confirm: Confirm::default(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_what_a_user_types_after_the_hosts_file_step() {
        let ep = Endpoint::new(Scheme::Wss, "127.0.0.1:8443", "test.example.com");
        assert_eq!(ep.url(), "wss://test.example.com/");
    }
}
