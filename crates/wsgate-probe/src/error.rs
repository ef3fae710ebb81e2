//! What went wrong while probing; each variant names the endpoint involved and keeps its
//! cause as the error's source (print the chain to see it).

use std::time::Duration;

use tokio_tungstenite::tungstenite::Error as WsError;

use crate::CloseKind;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr} (for {url})")]
    Connect {
        addr: String,
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} for {url} did not finish within {} ms", deadline.as_millis())]
    Timeout {
        what: &'static str,
        url: String,
        deadline: Duration,
    },
    #[error("TLS handshake with {addr} as {host:?} failed")]
    Tls {
        addr: String,
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TLS setup for {host:?}")]
    TlsConfig {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("WebSocket handshake for {url} was answered with HTTP {status}{}", location.as_ref().map(|l| format!(" (location: {l})")).unwrap_or_default())]
    Rejected {
        url: String,
        status: u16,
        location: Option<String>,
    },
    #[error("WebSocket handshake for {url} failed")]
    Handshake {
        url: String,
        #[source]
        source: Box<WsError>,
    },
    #[error("no echo of {sent} on {url} within {} ms", deadline.as_millis())]
    NoReply {
        url: String,
        sent: String,
        deadline: Duration,
    },
    #[error("echo on {url}: sent {sent}, got back {got}")]
    Mismatch {
        url: String,
        sent: String,
        got: String,
    },
    #[error("the connection to {url} ended: {how}")]
    Closed { url: String, how: CloseKind },
    #[error("HTTP request to {url} failed")]
    HttpIo {
        url: String,
        #[source]
        source: std::io::Error,
    },
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

    /// Whether an HTTP answer to the upgrade is a backend's own refusal rather than the
    /// proxy's: not a redirect (3xx, e.g. ingress-nginx's `ssl-redirect`), not 404 (its
    /// default server, for a host it does not serve), not 5xx (no reachable backend, or a
    /// failing one), and none of `proxy_statuses`, which the proxy may answer itself on this
    /// route (authentication, allow lists, rate limits).
    pub fn refused_by_backend(&self, proxy_statuses: &[u16]) -> bool {
        self.rejected_status().is_some_and(|s| {
            !matches!(s, 300..=399 | 404 | 500..=599) && !proxy_statuses.contains(&s)
        })
    }

    /// Whether the TLS handshake failed because the server's certificate was not trusted.
    pub fn rejects_certificate(&self) -> bool {
        match self {
            Self::Tls { source, .. } => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_))),
            _ => false,
        }
    }
}

/// An error and its causes on one line: `what failed: why: why`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
