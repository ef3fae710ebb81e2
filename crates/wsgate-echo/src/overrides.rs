//! Per-connection behaviour from the upgrade request's query, so that one server behind one
//! Ingress can play every backend a measurement needs: `?mode=sink`, `?ping-every=1`,
//! `?push-every=1`, `?upgrade-delay=20`. Proxies pass the query through unchanged; anything
//! not understood is ignored (the server is also the documented Deployment's container).

use std::time::Duration;

use crate::{EchoConfig, Heartbeat, HeartbeatKind, Mode};

/// The longest an upgrade may be held back.
pub const MAX_UPGRADE_DELAY: Duration = Duration::from_secs(600);
/// The shortest heartbeat interval a query may ask for.
const MIN_EVERY: Duration = Duration::from_millis(50);

/// What a query changes for its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub mode: Option<Mode>,
    pub heartbeat: Option<Heartbeat>,
    /// How long to wait after the request head before answering the upgrade.
    pub upgrade_delay: Option<Duration>,
}

fn seconds(v: &str) -> Option<Duration> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

impl Overrides {
    /// Reads the query of a request target (`/chat?mode=sink&ping-every=1`).
    pub fn from_target(target: &str) -> Self {
        let mut o = Self::default();
        let Some((_, query)) = target.split_once('?') else {
            return o;
        };
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "mode" => o.mode = v.parse().ok(),
                "ping-every" | "push-every" => {
                    let kind = if k == "ping-every" {
                        HeartbeatKind::Ping
                    } else {
                        HeartbeatKind::Text
                    };
                    o.heartbeat = seconds(v).map(|every| Heartbeat {
                        every: every.max(MIN_EVERY),
                        kind,
                    });
                }
                "upgrade-delay" => o.upgrade_delay = seconds(v).map(|d| d.min(MAX_UPGRADE_DELAY)),
                _ => {}
            }
        }
        o
    }

    /// The server's settings with these applied.
    pub fn apply(&self, config: &EchoConfig) -> EchoConfig {
        let mut c = config.clone();
        if let Some(m) = self.mode {
            c.mode = m;
        }
        if let Some(h) = self.heartbeat {
            c.heartbeat = Some(h);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_selects_mode_heartbeat_and_delay() {
        let o = Overrides::from_target("/chat?mode=sink&ping-every=1.5&upgrade-delay=20");
        assert_eq!(o.mode, Some(Mode::Sink));
        assert_eq!(
            o.heartbeat,
            Some(Heartbeat {
                every: Duration::from_millis(1500),
                kind: HeartbeatKind::Ping
            })
        );
        assert_eq!(o.upgrade_delay, Some(Duration::from_secs(20)));
    }

    #[test]
    fn no_query_or_nonsense_changes_nothing_and_limits_hold() {
        assert_eq!(Overrides::from_target("/"), Overrides::default());
        assert_eq!(
            Overrides::from_target("/?mode=loud&ping-every=-1&x=1"),
            Overrides::default()
        );
        let o = Overrides::from_target("/?upgrade-delay=99999&push-every=0");
        assert_eq!(o.upgrade_delay, Some(MAX_UPGRADE_DELAY));
        assert_eq!(o.heartbeat.map(|h| h.every), Some(MIN_EVERY));
    }
}
