//! Test bodies shared by the phase test binaries: connect, hold, judge, record a row.

use std::time::Duration;

use wsgate_manifests::Variant;
use wsgate_probe::{HoldOutcome, Message, Probe, Scheme, Session, Traffic, chain};
use wsgate_wait::{Check, Wait};

use crate::{Expect, Observed, Target};

/// The default proxy timeout (controller `proxy-read-timeout`), for expectations.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The tolerance of the fast-scale cases (2 s timeouts, a local nginx): timers fire to the
/// millisecond there, so half a second either way is generous and still tells 2 s from 3 s.
pub const HALF_SECOND: Duration = Duration::from_millis(500);

pub use wsgate_local::LAZY_TIMER_EARLY;

/// Connects and does one echo, so "last traffic" is well defined; panics with the target's
/// diagnostics on failure.
pub async fn open(target: &Target, scheme: Scheme, variant: &Variant) -> Session {
    let probe = target.probe(scheme, variant);
    let mut s = match probe.connect().await {
        Ok(s) => s,
        Err(e) => panic!(
            "connect to {} failed: {}\n{}",
            probe.endpoint().url(),
            chain(&e),
            target.diagnostics()
        ),
    };
    if let Err(e) = s.echo(Message::text("hello")).await {
        panic!(
            "first echo on {} failed: {}\n{}",
            probe.endpoint().url(),
            chain(&e),
            target.diagnostics()
        );
    }
    s
}

/// Waits until a new connection through `probe` echoes `text`, within `limit` (after a fault,
/// until the ingress routes again); returns how long that took, or the last failure.
pub async fn reconnects(probe: &Probe, limit: Duration, text: &str) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    Wait::new(
        format!("a new connection to {} echoes", probe.endpoint().url()),
        limit,
    )
    .every(Duration::from_secs(1))
    .until(move || async move {
        let attempt = async {
            let mut s = probe.connect().await?;
            s.echo(Message::text(text)).await
        };
        match attempt.await {
            Ok(_) => Check::Done(()),
            Err(e) => Check::Pending(chain(&e)),
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

/// A row for `case` on `target`'s tier, with the variant as its Ingress.
pub fn row(
    target: &Target,
    case: &str,
    scheme: Scheme,
    variant: &Variant,
) -> wsgate_report::RowBuilder {
    target.row(
        case,
        format!("{} ({})", variant.name, variant.describe),
        scheme,
    )
}

/// Holds an idle connection for `idle` and asserts `expect`, recording a report row.
pub async fn idle_case(
    target: &Target,
    case: &str,
    scheme: Scheme,
    variant: &Variant,
    idle: Duration,
    expect: Expect,
) -> HoldOutcome {
    let mut s = open(target, scheme, variant).await;
    let outcome = s.hold_idle(idle).await;
    row(target, case, scheme, variant)
        .client(format!("idle {} s", idle.as_secs_f64()))
        .judge(expect, Observed::Hold(outcome.clone()))
        .assert(&target.diagnostics());
    outcome
}

/// How a traffic case keeps a connection busy.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub traffic: Traffic,
    pub every: Duration,
    pub total: Duration,
}

/// Keeps traffic flowing at `pace` and asserts `expect`, recording a row.
pub async fn traffic_case(
    target: &Target,
    case: &str,
    scheme: Scheme,
    variant: &Variant,
    pace: Pace,
    expect: Expect,
) -> HoldOutcome {
    let mut s = open(target, scheme, variant).await;
    let outcome = s
        .hold_with_traffic(pace.total, pace.every, pace.traffic)
        .await;
    row(target, case, scheme, variant)
        .client(format!(
            "{} every {} s for {} s",
            pace.traffic,
            pace.every.as_secs_f64(),
            pace.total.as_secs_f64()
        ))
        .judge(expect, Observed::Hold(outcome.clone()))
        .assert(&target.diagnostics());
    outcome
}

/// The idle cases both phases run, once per scheme; the report's case is `<scheme>_<name>`.
pub mod idle {
    use super::*;

    fn case(scheme: Scheme, name: &str, long: bool) -> String {
        format!("{}{scheme}_{name}", if long { "long_idle::" } else { "" })
    }

    /// `"3"` on both annotations: an idle connection is cut at 3 s (±0.5 s).
    pub async fn cut_at_short_read_timeout(t: &Target, scheme: Scheme) {
        let tol = Duration::from_millis(500);
        let name = case(
            scheme,
            "idle_connection_is_cut_at_short_read_timeout",
            false,
        );
        idle_case(
            t,
            &name,
            scheme,
            &Variant::short(3),
            Duration::from_secs(6),
            Expect::cut_at(Duration::from_secs(3), tol, tol),
        )
        .await;
    }

    /// Idle 2 s under a 3 s timeout survives.
    pub async fn shorter_than_the_timeout_survives(t: &Target, scheme: Scheme) {
        let name = case(scheme, "idle_shorter_than_the_read_timeout_survives", false);
        idle_case(
            t,
            &name,
            scheme,
            &Variant::short(3),
            Duration::from_secs(2),
            Expect::Survive,
        )
        .await;
    }

    /// The documented Ingress (3600): idle 75 s survives and still echoes.
    pub async fn documented_keeps_idle_past_75s(t: &Target, scheme: Scheme) {
        let name = case(
            scheme,
            "documented_annotations_keep_an_idle_connection_past_75s",
            true,
        );
        idle_case(
            t,
            &name,
            scheme,
            &Variant::documented(),
            Duration::from_secs(75),
            Expect::Survive,
        )
        .await;
    }

    /// Without the annotations: cut at the 60 s default, no close frame.
    pub async fn cut_at_default_read_timeout(t: &Target, scheme: Scheme) {
        let name = case(
            scheme,
            "idle_connection_is_cut_at_default_read_timeout",
            true,
        );
        let expect = Expect::cut_at(DEFAULT_TIMEOUT, LAZY_TIMER_EARLY, Duration::from_secs(2));
        idle_case(
            t,
            &name,
            scheme,
            &Variant::without_annotations(),
            Duration::from_secs(75),
            expect,
        )
        .await;
    }
}
