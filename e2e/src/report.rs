//! Rows of the idle/behaviour table: what was expected, what was observed, with timings.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use wsgate_probe::{CloseKind, HoldOutcome};

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub enum Expect {
    /// Open for the whole hold, echo works afterwards.
    Survive,
    /// Cut without a close frame `at` after the last traffic, within `[at - early, at + late]`.
    CutAt {
        at_ms: u64,
        early_ms: u64,
        late_ms: u64,
    },
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

    /// Whether `outcome` meets the expectation.
    pub fn met_by(&self, outcome: &HoldOutcome) -> bool {
        match (self, outcome) {
            (Self::Survive, HoldOutcome::Survived { .. }) => true,
            (
                Self::CutAt {
                    at_ms,
                    early_ms,
                    late_ms,
                },
                HoldOutcome::Closed {
                    after,
                    how: CloseKind::NoCloseFrame,
                },
            ) => {
                let t = after.as_millis() as u64;
                t + early_ms >= *at_ms && t <= at_ms + late_ms
            }
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Survive => f.write_str("survive, echo after"),
            Self::CutAt {
                at_ms,
                early_ms,
                late_ms,
            } => {
                write!(
                    f,
                    "cut at {at_ms} ms (-{early_ms}/+{late_ms}), no close frame"
                )
            }
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Test case (the test's name).
    pub case: String,
    /// `local` or `kind`.
    pub tier: String,
    /// Ingress name and what it configures.
    pub ingress: String,
    pub scheme: String,
    /// What the client did (idle 75 s, ping every 1 s for 8 s, ...).
    pub action: String,
    pub expected: String,
    pub observed: String,
    pub pass: bool,
}

impl Row {
    /// A row for a held connection, judged by `expect`.
    pub fn hold(
        case: &str,
        tier: &str,
        ingress: &str,
        scheme: impl fmt::Display,
        action: impl Into<String>,
        expect: &Expect,
        outcome: &HoldOutcome,
    ) -> Self {
        Self {
            case: case.into(),
            tier: tier.into(),
            ingress: ingress.into(),
            scheme: scheme.to_string(),
            action: action.into(),
            expected: expect.to_string(),
            observed: outcome.to_string(),
            pass: expect.met_by(outcome),
        }
    }

    /// A row for a check that is not a held connection (readiness, endpoint, ...).
    pub fn check(
        case: &str,
        tier: &str,
        ingress: &str,
        action: &str,
        expected: &str,
        observed: String,
        pass: bool,
    ) -> Self {
        Self {
            case: case.into(),
            tier: tier.into(),
            ingress: ingress.into(),
            scheme: "-".into(),
            action: action.into(),
            expected: expected.into(),
            observed,
            pass,
        }
    }

    /// Writes the row to the report directory when one is set (under xtask), and to stdout.
    pub fn record(&self) {
        println!("{}", table(std::slice::from_ref(self)));
        if let Some(dir) = crate::env::report_dir() {
            let _ = std::fs::create_dir_all(&dir);
            // Several rows may share a case (one per Ingress); a counter keeps their files apart.
            static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let case = self.case.replace("::", ".");
            let file = dir.join(format!(
                "{case}-{}-{}-{n}.json",
                self.scheme,
                std::process::id()
            ));
            if let Ok(json) = serde_json::to_string_pretty(self) {
                let _ = std::fs::write(file, json);
            }
        }
    }

    /// Records the row and panics with it (and `diagnostics`) unless it passed.
    pub fn assert(&self, diagnostics: &str) {
        self.record();
        assert!(
            self.pass,
            "{}: expected {}, observed {}\n{}\n{diagnostics}",
            self.case,
            self.expected,
            self.observed,
            table(std::slice::from_ref(self))
        );
    }
}

/// The rows as a table for a terminal.
pub fn table(rows: &[Row]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "case", "tier", "ingress", "scheme", "client", "expected", "observed", "ok",
        ]);
    for r in rows {
        t.add_row([
            r.case.as_str(),
            r.tier.as_str(),
            r.ingress.as_str(),
            r.scheme.as_str(),
            r.action.as_str(),
            r.expected.as_str(),
            r.observed.as_str(),
            if r.pass { "yes" } else { "NO" },
        ]);
    }
    t.to_string()
}

/// The rows as a Markdown table (for `$GITHUB_STEP_SUMMARY` and `target/`).
pub fn markdown(rows: &[Row]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "| case | tier | ingress | scheme | client | expected | observed | ok |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            esc(&r.case),
            r.tier,
            esc(&r.ingress),
            r.scheme,
            esc(&r.action),
            esc(&r.expected),
            esc(&r.observed),
            if r.pass { "yes" } else { "**NO**" }
        ));
    }
    out
}

/// Reads every row written into `dir`, sorted by case and scheme.
pub fn read_rows(dir: &Path) -> Vec<Row> {
    let mut rows: Vec<Row> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| serde_json::from_str(&s).ok())
        .collect();
    rows.sort_by(|a, b| (&a.case, &a.scheme).cmp(&(&b.case, &b.scheme)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(ms: u64, how: CloseKind) -> HoldOutcome {
        HoldOutcome::Closed {
            after: Duration::from_millis(ms),
            how,
        }
    }

    #[test]
    fn cut_expectation_holds_only_inside_its_window() {
        let e = Expect::cut_at(
            Duration::from_secs(60),
            Duration::from_millis(300),
            Duration::from_secs(2),
        );
        assert!(e.met_by(&cut(60_010, CloseKind::NoCloseFrame)));
        assert!(e.met_by(&cut(59_700, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&cut(59_600, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&cut(62_001, CloseKind::NoCloseFrame)));
        assert!(!e.met_by(&HoldOutcome::Survived {
            held: Duration::from_secs(75)
        }));
    }

    #[test]
    fn a_cut_with_a_close_frame_is_not_the_proxy_timeout() {
        let e = Expect::cut_at(
            Duration::from_secs(3),
            Duration::from_millis(500),
            Duration::from_millis(500),
        );
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
    fn rows_round_trip_through_the_report_dir_and_render() {
        let dir = std::env::temp_dir().join(format!("wsgate-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let row = Row::hold(
            "idle",
            "local",
            "ws",
            "ws",
            "idle 75 s",
            &Expect::Survive,
            &HoldOutcome::Survived {
                held: Duration::from_secs(75),
            },
        );
        std::fs::write(dir.join("a.json"), serde_json::to_string(&row).unwrap()).unwrap();
        let rows = read_rows(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].pass);
        assert!(table(&rows).contains("survived 75000 ms"));
        assert!(markdown(&rows).contains("| idle | local | ws | ws | idle 75 s |"));
    }
}
