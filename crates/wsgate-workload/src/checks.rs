//! A workload's Ingress rules checked through any ingress: the handshake, ping/pong liveness,
//! an echo where the backend echoes, idle survival against the effective read timeout, and
//! traffic that keeps a connection alive. One report row per rule and check.

use std::time::Duration;

use futures_util::future::join_all;
use rustls_pki_types::CertificateDer;
use wsgate_manifests::Rule;
use wsgate_probe::{Confirm, Endpoint, Message, Probe, Scheme, Traffic, Trust, chain};
use wsgate_report::RowBuilder;

use wsgate_local::LAZY_TIMER_EARLY;
use wsgate_report::{Expect, Observed, Row};

/// How the checks run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The longest a check holds a connection idle; a longer read timeout is checked by
    /// surviving this long.
    pub max_idle: Duration,
    /// How long a ping may wait for its pong.
    pub liveness: Duration,
    /// What rows call the tier.
    pub tier: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_idle: Duration::from_secs(90),
            liveness: Duration::from_secs(5),
            tier: "local".into(),
        }
    }
}

/// Where the ingress answers and which certificates its TLS hosts must present.
#[derive(Debug, Clone)]
pub struct Addrs {
    pub http: String,
    pub https: String,
    pub trust: Vec<CertificateDer<'static>>,
}

/// A rule to check, and whether its backend echoes (then echo checks run too).
#[derive(Debug, Clone)]
pub struct Checked {
    pub rule: Rule,
    pub echoes: bool,
}

/// How late a cut may come after the timeout.
pub const CUT_LATE: Duration = Duration::from_secs(2);

fn row(rule: &Rule, check: &str, scheme: Scheme, s: &Settings) -> RowBuilder {
    Row::builder(format!("workload::{check}"))
        .tier(&s.tier)
        .ingress(format!(
            "{} {} (read {}, send {})",
            rule.ingress,
            rule.target(),
            rule.timeouts.read,
            rule.timeouts.send
        ))
        .scheme(scheme)
}

/// Checks every rule at once (their idle holds overlap), returning all rows.
pub async fn check_all(rules: &[Checked], addrs: &Addrs, s: &Settings) -> Vec<Row> {
    join_all(rules.iter().map(|c| check_rule(c, addrs, s)))
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The checks of one rule.
pub async fn check_rule(c: &Checked, addrs: &Addrs, s: &Settings) -> Vec<Row> {
    let rule = &c.rule;
    let (scheme, addr) = match rule.tls_secret {
        Some(_) => (Scheme::Wss, &addrs.https),
        None => (Scheme::Ws, &addrs.http),
    };
    let probe = Probe::new(
        Endpoint::new(scheme, addr.clone(), rule.host.clone()).with_path(&rule.path),
        Trust::Certificates(addrs.trust.clone()),
    );
    let mut rows = Vec::new();
    let mut session = match probe.connect().await {
        Ok(session) => {
            rows.push(row(rule, "handshake", scheme, s).client("upgrade").judge(
                Expect::holds("HTTP 101 through the ingress"),
                Observed::check(true, format!("101 for {}", probe.endpoint().url())),
            ));
            session.confirm_with(confirm(c))
        }
        Err(e) => {
            // A port that does not say it speaks WebSocket and refuses the upgrade itself is no
            // WebSocket backend: said once, not a failure. The proxy's own answers (a redirect,
            // 404, 502/503/504) are failures.
            let not_websocket =
                !rule.marked_websocket && e.refused_by_backend(&rule.proxy_statuses);
            rows.push(row(rule, "handshake", scheme, s).client("upgrade").judge(
                Expect::holds(if rule.marked_websocket {
                    "HTTP 101 through the ingress (the Service port says appProtocol kubernetes.io/ws)"
                } else {
                    "HTTP 101, or a refusal from a backend that is no WebSocket server"
                }),
                Observed::check(
                    not_websocket,
                    if not_websocket {
                        format!("{}: not a WebSocket backend; no further checks", chain(&e))
                    } else {
                        chain(&e)
                    },
                ),
            ));
            return rows;
        }
    };
    let live = session.ping(s.liveness).await;
    rows.push(row(rule, "liveness", scheme, s).client("ping").judge(
        Expect::holds(format!(
            "a pong within {} ms (RFC 6455)",
            s.liveness.as_millis()
        )),
        match &live {
            Ok(rtt) => Observed::check(
                true,
                format!("pong after {:.1} ms", rtt.as_secs_f64() * 1e3),
            ),
            Err(e) => Observed::check(false, chain(e)),
        },
    ));
    if c.echoes {
        let echoed = session.echo(Message::text("wsgate: hello")).await;
        rows.push(row(rule, "echo", scheme, s).client("text message").judge(
            Expect::holds("the same message back"),
            match &echoed {
                Ok(rtt) => Observed::check(
                    true,
                    format!("echoed after {:.1} ms", rtt.as_secs_f64() * 1e3),
                ),
                Err(e) => Observed::check(false, chain(e)),
            },
        ));
    }
    session.close().await;
    let (idle, traffic) = tokio::join!(
        idle_check(c, &probe, scheme, s),
        traffic_check(c, &probe, scheme, s)
    );
    rows.extend([idle, traffic]);
    rows
}

/// How a hold confirms survival for this rule: an echo where the backend echoes, else a pong.
fn confirm(c: &Checked) -> Confirm {
    if c.echoes {
        Confirm::Echo
    } else {
        Confirm::Ping
    }
}

async fn connect(
    c: &Checked,
    probe: &Probe,
) -> Result<wsgate_probe::Session, wsgate_probe::ProbeError> {
    Ok(probe.connect().await?.confirm_with(confirm(c)))
}

/// The effective read timeout, and whether it is within what a check holds idle.
fn read_timeout(rule: &Rule, s: &Settings) -> (Duration, bool) {
    let t = Duration::from_secs(rule.timeouts.read.seconds);
    (t, t <= s.max_idle)
}

async fn idle_check(c: &Checked, probe: &Probe, scheme: Scheme, s: &Settings) -> Row {
    let (t, within) = read_timeout(&c.rule, s);
    let (hold, expect) = if within {
        (
            t + CUT_LATE + Duration::from_secs(1),
            Expect::cut_at(t, LAZY_TIMER_EARLY, CUT_LATE),
        )
    } else {
        (s.max_idle, Expect::Survive)
    };
    let builder = row(&c.rule, "idle", scheme, s).client(format!("idle {} s", hold.as_secs_f64()));
    let outcome = match connect(c, probe).await {
        Ok(mut session) => session.hold_idle(hold).await,
        Err(e) => return builder.judge(expect, Observed::check(false, chain(&e))),
    };
    builder.judge(expect, Observed::Hold(outcome))
}

async fn traffic_check(c: &Checked, probe: &Probe, scheme: Scheme, s: &Settings) -> Row {
    let (t, within) = read_timeout(&c.rule, s);
    let reach = if within { t } else { s.max_idle };
    let every = reach / 2;
    let total = if within { t + every } else { s.max_idle };
    let traffic = if c.echoes {
        Traffic::Echo
    } else {
        Traffic::Ping
    };
    let builder = row(&c.rule, "traffic", scheme, s).client(format!(
        "{traffic} every {} s for {} s",
        every.as_secs_f64(),
        total.as_secs_f64()
    ));
    let outcome = match connect(c, probe).await {
        Ok(mut session) => session.hold_with_traffic(total, every, traffic).await,
        Err(e) => return builder.judge(Expect::Survive, Observed::check(false, chain(&e))),
    };
    builder.judge(Expect::Survive, Observed::Hold(outcome))
}
