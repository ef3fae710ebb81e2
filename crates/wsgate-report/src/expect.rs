//! What a case expects and what it observed, and the one function that judges them.

use std::fmt;
use std::time::Duration;

use wsgate_probe::{CloseKind, HoldOutcome};

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub enum Expect {
    /// Open for the whole hold, and still answering afterwards.
    Survive,
    /// Cut without a close frame `at` after the last traffic, within `[at - early, at + late]`.
    CutAt {
        at_ms: u64,
        early_ms: u64,
        late_ms: u64,
    },
    /// Ended, in any way, within `within_ms` of an event (`after` says which).
    EndsWithin { within_ms: u64, after: String },
    /// Ended by a WebSocket close frame with this code.
    CloseFrame { code: u16 },
    /// A check that states its own expectation and observes whether it held.
    Holds { what: String },
}

impl Expect {
    /// Cut at `at`, accepting `early` before and `late` after it.
    pub fn cut_at(at: Duration, early: Duration, late: Duration) -> Self {
        Self::CutAt {
            at_ms: at.as_millis() as u64,
            early_ms: early.as_millis() as u64,
            late_ms: late.as_millis() as u64,
        }
    }

    /// Ends, in any way, within `within` after the event `after` names.
    pub fn ends_within(within: Duration, after: impl Into<String>) -> Self {
        Self::EndsWithin {
            within_ms: within.as_millis() as u64,
            after: after.into(),
        }
    }

    pub fn holds(what: impl Into<String>) -> Self {
        Self::Holds { what: what.into() }
    }

    /// Whether `observed` meets the expectation.
    pub fn met_by(&self, observed: &Observed) -> bool {
        match (self, observed) {
            (Self::Survive, Observed::Hold(HoldOutcome::Survived { .. })) => true,
            (
                Self::CutAt {
                    at_ms,
                    early_ms,
                    late_ms,
                },
                Observed::Hold(HoldOutcome::Closed {
                    after,
                    how: CloseKind::NoCloseFrame,
                }),
            ) => {
                let t = after.as_millis() as u64;
                t + early_ms >= *at_ms && t <= at_ms + late_ms
            }
            (
                Self::EndsWithin { within_ms, .. },
                Observed::Hold(HoldOutcome::Closed { after, .. }),
            ) => after.as_millis() as u64 <= *within_ms,
            (
                Self::CloseFrame { code },
                Observed::Ended {
                    how: Some(CloseKind::CloseFrame { code: got, .. }),
                },
            ) => code == got,
            (Self::Holds { .. }, Observed::Check { held, .. }) => *held,
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Survive => f.write_str("survive, still answering after"),
            Self::CutAt {
                at_ms,
                early_ms,
                late_ms,
            } => write!(
                f,
                "cut at {at_ms} ms (-{early_ms}/+{late_ms}), no close frame"
            ),
            Self::EndsWithin { within_ms, after } => {
                write!(f, "ends within {} s {after}", within_ms / 1000)
            }
            Self::CloseFrame { code } => write!(f, "close frame {code}"),
            Self::Holds { what } => f.write_str(what),
        }
    }
}

/// What a case observed; stays typed until the report renders it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "observed", rename_all = "snake_case")]
pub enum Observed {
    /// A held connection's outcome.
    Hold(HoldOutcome),
    /// How a connection ended (`None`: it did not end within the check's deadline).
    Ended { how: Option<CloseKind> },
    /// A check's own finding.
    Check { held: bool, detail: String },
}

impl Observed {
    pub fn check(held: bool, detail: impl Into<String>) -> Self {
        Self::Check {
            held,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hold(o) => write!(f, "{o}"),
            Self::Ended { how: Some(how) } => write!(f, "{how}"),
            Self::Ended { how: None } => f.write_str("still open at the deadline"),
            Self::Check { detail, .. } => f.write_str(detail),
        }
    }
}

/// A further condition of a case (which layer cut, what a log says), judged with the rest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Condition {
    pub what: String,
    pub held: bool,
    pub seen: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn cut(after_ms: u64, how: CloseKind) -> Observed {
        Observed::Hold(HoldOutcome::Closed {
            after: ms(after_ms),
            how,
        })
    }

    #[test]
    fn an_ending_counts_only_within_its_deadline() {
        let e = Expect::ends_within(Duration::from_secs(40), "of the deletion");
        assert!(e.met_by(&cut(1_500, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&cut(40_001, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&Observed::Hold(HoldOutcome::Survived {
            held: Duration::from_secs(40)
        })));
        assert_eq!(e.to_string(), "ends within 40 s of the deletion");
    }

    #[test]
    fn cut_expectation_holds_only_inside_its_window() {
        let e = Expect::cut_at(ms(60_000), ms(300), ms(2_000));
        assert!(e.met_by(&cut(60_010, CloseKind::NoCloseFrame)));
        assert!(e.met_by(&cut(59_700, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&cut(59_600, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&cut(62_001, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&Observed::Hold(HoldOutcome::Survived {
            held: Duration::from_secs(75)
        })));
    }

    #[test]
    fn a_cut_with_a_close_frame_is_not_the_proxy_timeout() {
        let e = Expect::cut_at(ms(3_000), ms(500), ms(500));
        assert!(!e.met_by(&cut(
            3_000,
            CloseKind::CloseFrame {
                code: 1001,
                reason: String::new()
            }
        )));
    }

    #[test]
    fn survive_is_not_met_by_a_cut() {
        assert!(!Expect::Survive.met_by(&cut(75_000, CloseKind::NoCloseFrame)));
    }

    #[test]
    fn a_close_code_must_be_the_one_expected() {
        let frame = |code| Observed::Ended {
            how: Some(CloseKind::CloseFrame {
                code,
                reason: String::new(),
            }),
        };
        assert!(Expect::CloseFrame { code: 1009 }.met_by(&frame(1009)));
        assert!(!Expect::CloseFrame { code: 1009 }.met_by(&frame(1002)));
        assert!(!Expect::CloseFrame { code: 1009 }.met_by(&Observed::Ended { how: None }));
    }

    #[test]
    fn a_check_is_met_only_when_it_held() {
        let e = Expect::holds("0 failures");
        assert!(e.met_by(&Observed::check(true, "0 failures, 40 echoes")));
        assert!(!e.met_by(&Observed::check(false, "3 failures")));
        assert!(
            !e.met_by(&cut(1, CloseKind::Reset)),
            "a check is not judged by a hold"
        );
    }
}
