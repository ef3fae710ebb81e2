//! How a held connection ended: survived, or closed after some time and in which way.

use std::fmt;
use std::time::Duration;

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How the server side ended a connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CloseKind {
    /// A WebSocket close frame arrived (1005 when it carried no code).
    CloseFrame { code: u16, reason: String },
    /// The TCP connection (or TLS session) ended without a close frame: abnormal closure, 1006.
    /// This is what nginx does when a proxy timeout fires on an upgraded connection.
    NoCloseFrame,
    /// The connection was reset (TCP RST).
    Reset,
    /// Anything else, with the error text.
    Error { message: String },
}

impl fmt::Display for CloseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CloseFrame { code, reason } if reason.is_empty() => {
                write!(f, "close frame {code}")
            }
            Self::CloseFrame { code, reason } => write!(f, "close frame {code} ({reason})"),
            Self::NoCloseFrame => f.write_str("no close frame (1006)"),
            Self::Reset => f.write_str("reset"),
            Self::Error { message } => write!(f, "error: {message}"),
        }
    }
}

impl CloseKind {
    /// Classifies what `WebSocketStream::next()` returned when it ended a session.
    ///
    /// An abrupt close looks different per transport: plain ws reports
    /// `ResetWithoutClosingHandshake`, wss an `UnexpectedEof` ("peer closed connection without
    /// sending TLS close_notify"), a stream may also simply end. All three are one thing to a user.
    pub fn from_next(next: Option<Result<Message, WsError>>) -> Option<Self> {
        match next {
            None => Some(Self::NoCloseFrame),
            Some(Ok(Message::Close(Some(frame)))) => Some(Self::CloseFrame {
                code: frame.code.into(),
                reason: frame.reason.to_string(),
            }),
            Some(Ok(Message::Close(None))) => Some(Self::CloseFrame {
                code: 1005,
                reason: String::new(),
            }),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(Self::from_error(&e)),
        }
    }

    pub fn from_error(e: &WsError) -> Self {
        use std::io::ErrorKind;
        match e {
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Self::NoCloseFrame,
            WsError::ConnectionClosed | WsError::AlreadyClosed => Self::NoCloseFrame,
            WsError::Io(io) => match io.kind() {
                ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => Self::NoCloseFrame,
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Self::Reset,
                _ => Self::Error {
                    message: io.to_string(),
                },
            },
            other => Self::Error {
                message: other.to_string(),
            },
        }
    }
}

/// The result of holding a connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HoldOutcome {
    /// Open for the whole hold, and it still answered afterwards (an echo, or a pong).
    Survived {
        #[serde(with = "millis")]
        held: Duration,
    },
    /// Closed by the other side `after` the last traffic (monotonic clock).
    Closed {
        #[serde(with = "millis")]
        after: Duration,
        how: CloseKind,
    },
}

impl HoldOutcome {
    pub fn survived(&self) -> bool {
        matches!(self, Self::Survived { .. })
    }
}

impl fmt::Display for HoldOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Survived { held } => {
                write!(f, "survived {} ms, still answering after", held.as_millis())
            }
            Self::Closed { after, how } => write!(f, "cut after {} ms, {how}", after.as_millis()),
        }
    }
}

/// Durations as whole milliseconds in reports.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn plain_ws_drop_without_close_frame_is_abnormal_closure() {
        let e = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(CloseKind::from_error(&e), CloseKind::NoCloseFrame);
    }

    #[test]
    fn tls_eof_without_close_notify_is_abnormal_closure() {
        let e = WsError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify",
        ));
        assert_eq!(CloseKind::from_error(&e), CloseKind::NoCloseFrame);
    }

    #[test]
    fn tcp_reset_is_reset() {
        let e = WsError::Io(io::ErrorKind::ConnectionReset.into());
        assert_eq!(CloseKind::from_error(&e), CloseKind::Reset);
    }

    #[test]
    fn close_frame_keeps_code_and_reason() {
        let next = Some(Ok(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        }))));
        assert_eq!(
            CloseKind::from_next(next),
            Some(CloseKind::CloseFrame {
                code: 1001,
                reason: "bye".into()
            })
        );
    }

    #[test]
    fn close_without_code_is_1005_and_end_of_stream_is_abnormal() {
        assert_eq!(
            CloseKind::from_next(Some(Ok(Message::Close(None)))),
            Some(CloseKind::CloseFrame {
                code: 1005,
                reason: String::new()
            })
        );
        assert_eq!(CloseKind::from_next(None), Some(CloseKind::NoCloseFrame));
    }

    #[test]
    fn data_messages_do_not_end_a_session() {
        assert_eq!(CloseKind::from_next(Some(Ok(Message::text("x")))), None);
    }

    #[test]
    fn outcome_serializes_in_milliseconds() {
        let o = HoldOutcome::Closed {
            after: Duration::from_millis(60_012),
            how: CloseKind::NoCloseFrame,
        };
        assert_eq!(o.to_string(), "cut after 60012 ms, no close frame (1006)");
    }
}
