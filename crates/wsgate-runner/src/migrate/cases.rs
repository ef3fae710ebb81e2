//! The cases `migrate` measures on every proxy, what each measured, and the verdict of a
//! successor's measurement against ingress-nginx's.

use std::time::{Duration, Instant};

use wsgate_probe::{
    Confirm, Endpoint, HoldOutcome, Message, Probe, ProbeError, Scheme, Traffic, Trust,
};

/// Which variant of the manifests a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VariantKey {
    /// As written (for the document: before the TLS patch).
    Written,
    /// After the document's TLS patch (the certificate from Secret `nginx-ingress-tls`).
    Tls,
    /// The timeout annotations removed.
    Without,
    /// The team's own short timeout (as written when it is short, else set to `--own-timeout`).
    Own,
    /// As written, with the successor's setting that restores the written timeout.
    Restored,
    /// The own timeout, with the successor's setting that restores it (heartbeats are
    /// measured against a timeout that cuts).
    OwnRestored,
}

impl VariantKey {
    pub fn slug(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Tls => "tls",
            Self::Without => "without",
            Self::Own => "own",
            Self::Restored => "restored",
            Self::OwnRestored => "own-restored",
        }
    }
}

/// Which side's traffic a heartbeat case sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Beat {
    ClientPings,
    BackendPings,
    ClientData,
    BackendData,
}

impl Beat {
    pub const ALL: [Self; 4] = [
        Self::ClientPings,
        Self::BackendPings,
        Self::ClientData,
        Self::BackendData,
    ];

    pub fn short(self) -> &'static str {
        match self {
            Self::ClientPings => "client pings",
            Self::BackendPings => "backend pings",
            Self::ClientData => "client data",
            Self::BackendData => "backend data",
        }
    }

    /// What the case sends and what comes back, for the report's legend.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ClientPings => "client pings alone (the backend's pongs come back)",
            Self::BackendPings => "backend pings alone (the client's pongs go back)",
            Self::ClientData => "client data alone (the backend reads, never answers)",
            Self::BackendData => "backend data alone (the client only listens)",
        }
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Echo,
    /// Held idle this long: does it outlive it?
    Idle(Duration),
    Heartbeat(Beat, Duration, Duration),
    /// The backend answers the upgrade after this long.
    SlowHandshake(Duration),
}

/// One case on one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub kind: Kind,
    pub variant: VariantKey,
    /// The rule's host and path (`test.example.com/`).
    pub target: String,
    pub host: String,
    pub path: String,
    pub scheme: Scheme,
    /// The rule's backend is wsgate's echo server (query overrides work, echoes come back).
    pub echo_backend: bool,
    /// ingress-nginx's read timeout for the rule, in seconds (what cuts an idle connection).
    pub timeout: u64,
    /// Its send timeout, in seconds.
    pub send: u64,
}

impl Case {
    /// The row's name in the table, with the rule's host and path when there are several.
    pub fn title(&self, with_target: bool) -> String {
        let what = match self.kind {
            Kind::Echo => format!("{} echo", self.scheme_name()),
            Kind::Idle(d) => format!("idle {} s", d.as_secs()),
            Kind::Heartbeat(b, hold, every) => format!(
                "{} every {} s for {} s",
                b.short(),
                every.as_secs_f64(),
                hold.as_secs()
            ),
            Kind::SlowHandshake(d) => format!("upgrade answered after {} s", d.as_secs()),
        };
        let t = self.timeout;
        let on = match self.variant {
            VariantKey::Written => "as written".to_owned(),
            VariantKey::Tls => "TLS patch".to_owned(),
            VariantKey::Without => "no timeout annotations".to_owned(),
            VariantKey::Own => format!("own timeout {t} s"),
            VariantKey::Restored => "as written + restoring setting".to_owned(),
            VariantKey::OwnRestored => format!("own timeout {t} s + restoring setting"),
        };
        if with_target {
            format!("{} {what} ({on})", self.target)
        } else {
            format!("{what} ({on})")
        }
    }

    fn scheme_name(&self) -> &'static str {
        match self.scheme {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }

    /// The URL path with the echo server's per-connection switches for this case.
    fn path_with_query(&self) -> String {
        let q = match self.kind {
            Kind::Heartbeat(Beat::ClientData, _, _) => Some("mode=sink".to_owned()),
            Kind::Heartbeat(Beat::BackendPings, _, every) => {
                Some(format!("ping-every={}", every.as_secs_f64()))
            }
            Kind::Heartbeat(Beat::BackendData, _, every) => {
                Some(format!("push-every={}", every.as_secs_f64()))
            }
            Kind::SlowHandshake(d) => Some(format!("upgrade-delay={}", d.as_secs_f64())),
            _ => None,
        };
        match q {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// Whether it needs the echo server's switches.
    pub fn needs_echo_backend(&self) -> bool {
        matches!(
            self.kind,
            Kind::SlowHandshake(_)
                | Kind::Heartbeat(
                    Beat::ClientData | Beat::BackendPings | Beat::BackendData,
                    _,
                    _
                )
        )
    }
}

/// What a proxy did in a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measured {
    /// Text and binary came back.
    Echoed,
    /// The upgrade went through (the handshake only, for a backend that does not echo).
    Upgraded {
        after: Duration,
    },
    Survived {
        held: Duration,
    },
    Cut {
        after: Duration,
        how: String,
    },
    /// The handshake failed: a status, or an error.
    Refused {
        after: Duration,
        what: String,
    },
    NotRun(String),
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
        match self {
            Self::Echoed => f.write_str("echoes"),
            Self::Upgraded { after } => write!(f, "upgraded after {}", s(after)),
            Self::Survived { held } => write!(f, "still open at {}", s(held)),
            Self::Cut { after, how } => write!(f, "cut at {} ({how})", s(after)),
            Self::Refused { after, what } => write!(f, "refused after {}: {what}", s(after)),
            Self::NotRun(why) => write!(f, "not run: {why}"),
        }
    }
}

/// How a successor compares with ingress-nginx in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Changed,
    Broken,
    /// Nothing to compare (a side did not run).
    Unknown,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Same => "same",
            Self::Changed => "changed",
            Self::Broken => "BROKEN",
            Self::Unknown => "-",
        })
    }
}

/// Two cut times are the same within this much, or 10 % of the longer, whichever is more.
pub const CUT_TOLERANCE: Duration = Duration::from_secs(2);

fn close(a: Duration, b: Duration) -> bool {
    let tol = CUT_TOLERANCE.max(a.max(b) / 10);
    a.abs_diff(b) <= tol
}

/// The verdict of `successor` against `nginx`: the same outcome (cut times within
/// [`CUT_TOLERANCE`]) is the same; a connection that no longer comes up, or comes down earlier,
/// is broken; anything else (cut later, or not at all, a different refusal) changed.
pub fn verdict(nginx: &Measured, successor: &Measured) -> Verdict {
    use Measured::*;
    match (nginx, successor) {
        (NotRun(_), _) | (_, NotRun(_)) => Verdict::Unknown,
        (Echoed, Echoed) | (Survived { .. }, Survived { .. }) => Verdict::Same,
        (Upgraded { after: a }, Upgraded { after: b }) if close(*a, *b) => Verdict::Same,
        (Upgraded { .. }, Upgraded { .. }) => Verdict::Changed,
        (Cut { after: a, .. }, Cut { after: b, .. }) if close(*a, *b) => Verdict::Same,
        (Cut { after: a, .. }, Cut { after: b, .. }) if b < a => Verdict::Broken,
        (Cut { .. }, Cut { .. } | Survived { .. }) => Verdict::Changed,
        (Refused { what: a, .. }, Refused { what: b, .. }) if a == b => Verdict::Same,
        (Refused { .. }, _) => Verdict::Changed,
        (Echoed | Upgraded { .. } | Survived { .. }, _) => Verdict::Broken,
        (Cut { .. }, _) => Verdict::Broken,
    }
}

fn refused(start: Instant, e: &ProbeError) -> Measured {
    let what = match e.rejected_status() {
        Some(status) => format!("HTTP {status}"),
        None => wsgate_probe::chain(e),
    };
    Measured::Refused {
        after: start.elapsed(),
        what,
    }
}

/// A hold's outcome, a cut timed from the hold's start (the probe times it from the last
/// traffic, which for a heartbeat case is the last beat).
fn held(o: HoldOutcome, start: Instant) -> Measured {
    match o {
        HoldOutcome::Survived { held } => Measured::Survived { held },
        HoldOutcome::Closed { how, .. } => Measured::Cut {
            after: start.elapsed(),
            how: how.to_string(),
        },
    }
}

/// Runs `case` through the proxy at `connect_to` (its ws or wss port, by the case's scheme).
pub async fn measure(case: &Case, connect_to: &str, trust: &Trust) -> Measured {
    if case.needs_echo_backend() && !case.echo_backend {
        return Measured::NotRun("needs wsgate's echo server as the backend".into());
    }
    let endpoint =
        Endpoint::new(case.scheme, connect_to, &case.host).with_path(case.path_with_query());
    let connect_deadline = match case.kind {
        Kind::SlowHandshake(d) => d + Duration::from_secs(30),
        _ => Duration::from_secs(10),
    };
    let probe = Probe::new(endpoint, trust.clone()).with_connect_timeout(connect_deadline);
    let start = Instant::now();
    let session = match probe.connect().await {
        Ok(s) => s,
        Err(e) => return refused(start, &e),
    };
    match case.kind {
        Kind::Echo => {
            if !case.echo_backend {
                let mut s = session;
                return match s.ping(Duration::from_secs(5)).await {
                    Ok(_) => Measured::Upgraded {
                        after: start.elapsed(),
                    },
                    Err(e) => refused(start, &e),
                };
            }
            let mut s = session;
            for m in [
                Message::text("wsgate migrate"),
                Message::binary(vec![0u8, 1, 2, 254, 255]),
            ] {
                if let Err(e) = s.echo(m).await {
                    return Measured::Refused {
                        after: start.elapsed(),
                        what: format!("no echo: {}", wsgate_probe::chain(&e)),
                    };
                }
            }
            s.close().await;
            Measured::Echoed
        }
        Kind::Idle(d) => {
            let mut s = session.confirm_with(if case.echo_backend {
                Confirm::Echo
            } else {
                Confirm::Ping
            });
            let start = Instant::now();
            held(s.hold_idle(d).await, start)
        }
        Kind::Heartbeat(beat, hold, every) => {
            // A pong confirms survival: a backend sending on its own would answer an echo check
            // with its own message.
            let mut s = session.confirm_with(Confirm::Ping);
            let start = Instant::now();
            let outcome = match beat {
                Beat::ClientPings => s.hold_with_traffic(hold, every, Traffic::Ping).await,
                Beat::ClientData => s.hold_with_traffic(hold, every, Traffic::SendOnly).await,
                Beat::BackendPings | Beat::BackendData => s.hold_idle(hold).await,
            };
            held(outcome, start)
        }
        Kind::SlowHandshake(_) => {
            let after = start.elapsed();
            let mut s = session;
            match s.echo(Message::text("after a slow upgrade")).await {
                Ok(_) => Measured::Upgraded { after },
                Err(e) => Measured::Refused {
                    after,
                    what: format!("upgraded, then no echo: {}", wsgate_probe::chain(&e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(s: u64) -> Measured {
        Measured::Cut {
            after: Duration::from_secs(s),
            how: "no close frame (1006)".into(),
        }
    }

    #[test]
    fn cut_times_within_tolerance_are_the_same_and_earlier_is_broken() {
        assert_eq!(verdict(&cut(60), &cut(61)), Verdict::Same);
        assert_eq!(verdict(&cut(60), &cut(300)), Verdict::Changed);
        assert_eq!(verdict(&cut(60), &cut(15)), Verdict::Broken);
        assert_eq!(verdict(&cut(4), &cut(5)), Verdict::Same, "2 s tolerance");
    }

    #[test]
    fn a_connection_that_outlived_and_now_is_cut_is_broken() {
        let survived = Measured::Survived {
            held: Duration::from_secs(75),
        };
        assert_eq!(verdict(&survived, &cut(60)), Verdict::Broken);
        assert_eq!(verdict(&survived, &survived), Verdict::Same);
        assert_eq!(verdict(&cut(4), &survived), Verdict::Changed, "ignored");
        assert_eq!(
            verdict(
                &Measured::Echoed,
                &Measured::Refused {
                    after: Duration::ZERO,
                    what: "HTTP 404".into()
                }
            ),
            Verdict::Broken
        );
        assert_eq!(
            verdict(&Measured::NotRun("x".into()), &cut(1)),
            Verdict::Unknown
        );
    }

    #[test]
    fn cases_ask_the_echo_server_for_their_backend() {
        let case = |kind| Case {
            kind,
            variant: VariantKey::Own,
            target: "h/".into(),
            host: "h".into(),
            path: "/chat".into(),
            scheme: Scheme::Ws,
            echo_backend: true,
            timeout: 4,
            send: 4,
        };
        let s = Duration::from_secs(1);
        assert_eq!(
            case(Kind::Heartbeat(Beat::ClientData, s, s)).path_with_query(),
            "/chat?mode=sink"
        );
        assert_eq!(
            case(Kind::Heartbeat(Beat::BackendPings, s, s)).path_with_query(),
            "/chat?ping-every=1"
        );
        assert_eq!(
            case(Kind::SlowHandshake(s * 20)).path_with_query(),
            "/chat?upgrade-delay=20"
        );
        assert_eq!(case(Kind::Echo).path_with_query(), "/chat");
    }
}
