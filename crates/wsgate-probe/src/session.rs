//! An open WebSocket session: echo, pipeline, hold idle or with traffic, and see how it ended.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;

use crate::{CloseKind, HoldOutcome, Message, ProbeError, Transport};

/// How [`Session::hold_with_traffic`] keeps a connection busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// A ping frame each interval (the server's pong comes back through the proxy).
    Ping,
    /// An unsolicited pong frame each interval (RFC 6455 allows it; nothing comes back).
    Pong,
    /// A text message each interval, and its echo awaited.
    Echo,
    /// A text message each interval; nothing is expected back (a server that never answers).
    SendOnly,
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ping => "ping",
            Self::Pong => "unsolicited pong",
            Self::Echo => "echo",
            Self::SendOnly => "text (no reply expected)",
        })
    }
}

/// An open WebSocket session.
pub struct Session {
    pub(crate) ws: WebSocketStream<Transport>,
    pub(crate) url: String,
    pub(crate) last_traffic: Instant,
    pub(crate) confirm: Confirm,
}

/// How a hold confirms that the connection is still alive at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confirm {
    /// An echo must come back (the backend echoes).
    #[default]
    Echo,
    /// A ping must get its pong (any WebSocket backend: RFC 6455 requires the pong).
    Ping,
}

/// How long a confirming ping may wait for its pong.
pub const PONG_DEADLINE: Duration = Duration::from_secs(5);

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
    /// Sends `msg` (if any) and waits until a frame `answers` arrives (other frames are
    /// skipped), within `deadline`. `None`: nothing answered in time.
    async fn exchange(
        &mut self,
        msg: Option<Message>,
        deadline: Duration,
        answers: impl Fn(&Message) -> bool,
    ) -> Result<Option<Message>, ProbeError> {
        let closed = |url: &str, how| ProbeError::Closed {
            url: url.to_owned(),
            how,
        };
        let result = tokio::time::timeout(deadline, async {
            if let Some(msg) = msg {
                self.ws
                    .send(msg)
                    .await
                    .map_err(|e| CloseKind::from_error(&e))?;
            }
            loop {
                match self.ws.next().await {
                    Some(Ok(reply)) if answers(&reply) => return Ok(reply),
                    Some(Ok(Message::Close(f))) => {
                        return Err(CloseKind::from_next(Some(Ok(Message::Close(f))))
                            .expect("a close frame ends the session"));
                    }
                    Some(Ok(_)) => continue,
                    other => {
                        return Err(CloseKind::from_next(other)
                            .expect("errors and end of stream end the session"));
                    }
                }
            }
        })
        .await;
        match result {
            Err(_) => Ok(None),
            Ok(Err(how)) => Err(closed(&self.url, how)),
            Ok(Ok(reply)) => {
                self.last_traffic = Instant::now();
                Ok(Some(reply))
            }
        }
    }

    /// Sends `msg` and waits for the identical message back; returns the round-trip time.
    pub async fn echo(&mut self, msg: Message) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        let sent = describe(&msg);
        let data = |m: &Message| matches!(m, Message::Text(_) | Message::Binary(_));
        match self
            .exchange(Some(msg.clone()), ECHO_DEADLINE, data)
            .await?
        {
            None => Err(ProbeError::NoReply {
                url: self.url.clone(),
                sent,
                deadline: ECHO_DEADLINE,
            }),
            Some(reply) if reply == msg => Ok(start.elapsed()),
            Some(reply) => Err(ProbeError::Mismatch {
                url: self.url.clone(),
                sent,
                got: describe(&reply),
            }),
        }
    }

    /// Sends a ping and waits for its pong (RFC 6455 requires one, so this checks liveness
    /// without an echoing backend); returns the round-trip time.
    pub async fn ping(&mut self, deadline: Duration) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        let payload = b"wsgate liveness".to_vec();
        let ours = |m: &Message| matches!(m, Message::Pong(p) if p.as_ref() == b"wsgate liveness");
        match self
            .exchange(Some(Message::Ping(payload.into())), deadline, ours)
            .await?
        {
            None => Err(ProbeError::NoReply {
                url: self.url.clone(),
                sent: "a ping".into(),
                deadline,
            }),
            Some(_) => Ok(start.elapsed()),
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
        if let Some(how) = self.wait_for_close(idle).await {
            return self.closed(how);
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
                        Traffic::Pong => self.ws.send(Message::Pong(n.to_be_bytes().to_vec().into())).await,
                        Traffic::SendOnly => self.ws.send(Message::text(format!("keepalive {n}"))).await,
                        Traffic::Echo => match self.echo(Message::text(format!("keepalive {n}"))).await {
                            Ok(_) => Ok(()),
                            Err(e) => return self.closed(ending(e)),
                        },
                    };
                    match sent {
                        Ok(()) => self.last_traffic = Instant::now(),
                        Err(e) => return self.closed(CloseKind::from_error(&e)),
                    }
                }
                next = self.ws.next() => {
                    if let Some(how) = CloseKind::from_next(next) {
                        return self.closed(how);
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

    /// Sets how holds confirm survival (an echo by default).
    pub fn confirm_with(mut self, confirm: Confirm) -> Self {
        self.confirm = confirm;
        self
    }

    async fn after_hold(&mut self, start: Instant) -> HoldOutcome {
        let held = start.elapsed();
        let confirmed = match self.confirm {
            Confirm::Echo => self.echo(Message::text("still there?")).await,
            Confirm::Ping => self.ping(PONG_DEADLINE).await,
        };
        match confirmed {
            Ok(_) => HoldOutcome::Survived { held },
            Err(e) => self.closed(ending(e)),
        }
    }

    /// Ended `how`, timed from the last traffic (what a proxy's idle timer counts from).
    fn closed(&self, how: CloseKind) -> HoldOutcome {
        HoldOutcome::Closed {
            after: self.last_traffic.elapsed(),
            how,
        }
    }

    /// How the session ends after an event at `since` (a reload, a restart, a signal),
    /// timed from that event: closed, or still open at `deadline` (counted as held that long).
    pub async fn ending_since(&mut self, since: Instant, deadline: Duration) -> HoldOutcome {
        let ended = self.wait_for_close(deadline).await;
        match ended {
            Some(how) => HoldOutcome::Closed {
                after: since.elapsed(),
                how,
            },
            None => HoldOutcome::Survived {
                held: since.elapsed(),
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

    /// The next text or binary message the other side sends, within `deadline`.
    pub async fn next_message(&mut self, deadline: Duration) -> Result<Message, ProbeError> {
        let data = |m: &Message| matches!(m, Message::Text(_) | Message::Binary(_));
        self.exchange(None, deadline, data)
            .await?
            .ok_or_else(|| ProbeError::NoReply {
                url: self.url.clone(),
                sent: "nothing (waiting for a message)".into(),
                deadline,
            })
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

/// How a failed exchange ended the session: its close, or the error itself.
fn ending(e: ProbeError) -> CloseKind {
    match e {
        ProbeError::Closed { how, .. } => how,
        e => CloseKind::Error {
            message: e.to_string(),
        },
    }
}
