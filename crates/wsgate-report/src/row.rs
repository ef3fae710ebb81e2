//! One row: the case, where it ran, what the client did, expected and observed. Built with
//! named fields; its verdict is computed from its values and cannot be set.

use std::fmt;

use wsgate_probe::Scheme;

use crate::expect::{Condition, Expect, Observed};

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Test case (the test's name).
    pub case: String,
    /// `local`, `kind`, or an existing cluster's context.
    pub tier: String,
    /// Ingress name and what it configures.
    pub ingress: String,
    pub scheme: Option<Scheme>,
    /// What the client did (idle 75 s, ping every 1 s for 8 s, ...).
    pub client: String,
    pub expect: Expect,
    pub observed: Observed,
    /// Further conditions, judged with the expectation.
    pub also: Vec<Condition>,
}

/// Builds a [`Row`] field by field; [`RowBuilder::judge`] finishes it.
#[derive(Debug, Clone)]
pub struct RowBuilder {
    case: String,
    tier: String,
    ingress: String,
    scheme: Option<Scheme>,
    client: String,
    also: Vec<Condition>,
}

impl Row {
    pub fn builder(case: impl Into<String>) -> RowBuilder {
        RowBuilder {
            case: case.into(),
            tier: "local".into(),
            ingress: "-".into(),
            scheme: None,
            client: String::new(),
            also: Vec::new(),
        }
    }

    /// The verdict: the expectation met and every further condition held.
    pub fn pass(&self) -> bool {
        self.expect.met_by(&self.observed) && self.also.iter().all(|c| c.held)
    }

    pub fn expected_text(&self) -> String {
        std::iter::once(self.expect.to_string())
            .chain(self.also.iter().map(|c| c.what.clone()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn observed_text(&self) -> String {
        std::iter::once(self.observed.to_string())
            .chain(self.also.iter().map(|c| c.seen.clone()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn scheme_text(&self) -> String {
        self.scheme.map_or_else(|| "-".into(), |s| s.to_string())
    }

    /// Prints the row, records it (a failure to record fails the test), and panics with the
    /// row and `diagnostics` unless it passed.
    pub fn assert(&self, diagnostics: &str) {
        println!("{}", crate::table(std::slice::from_ref(self)));
        if let Err(e) = self.record() {
            panic!("{}: {}", self.case, wsgate_probe::chain(&e));
        }
        assert!(
            self.pass(),
            "{}: expected {}, observed {}\n{}\n{diagnostics}",
            self.case,
            self.expected_text(),
            self.observed_text(),
            crate::table(std::slice::from_ref(self))
        );
    }
}

/// Each row that did not pass, as one line.
pub fn failures(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|r| !r.pass())
        .map(ToString::to_string)
        .collect()
}

/// [`Row::assert`] for many rows: prints their table, records each, and panics listing the
/// ones that failed, with `diagnostics`.
pub fn assert_rows(rows: &[Row], diagnostics: &str) {
    println!("{}", crate::table(rows));
    for r in rows {
        if let Err(e) = r.record() {
            panic!("{}: {}", r.case, wsgate_probe::chain(&e));
        }
    }
    let failed = failures(rows);
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}\n{diagnostics}",
        failed.len(),
        rows.len(),
        failed.join("\n")
    );
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, observed {}",
            self.case,
            self.expected_text(),
            self.observed_text()
        )
    }
}

impl RowBuilder {
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = tier.into();
        self
    }

    pub fn ingress(mut self, ingress: impl Into<String>) -> Self {
        self.ingress = ingress.into();
        self
    }

    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = Some(scheme);
        self
    }

    /// What the client did.
    pub fn client(mut self, client: impl Into<String>) -> Self {
        self.client = client.into();
        self
    }

    /// A further condition: what must hold, whether it did, what was seen.
    pub fn also(mut self, what: impl Into<String>, held: bool, seen: impl Into<String>) -> Self {
        self.also.push(Condition {
            what: what.into(),
            held,
            seen: seen.into(),
        });
        self
    }

    /// The finished row, judged from `expect` and `observed`.
    pub fn judge(self, expect: Expect, observed: Observed) -> Row {
        Row {
            case: self.case,
            tier: self.tier,
            ingress: self.ingress,
            scheme: self.scheme,
            client: self.client,
            expect,
            observed,
            also: self.also,
        }
    }
}

/// A passing row, for the crate's tests.
#[cfg(test)]
pub(crate) fn sample() -> Row {
    Row::builder("idle")
        .ingress("ws")
        .scheme(Scheme::Ws)
        .client("idle 75 s")
        .judge(
            Expect::Survive,
            Observed::Hold(wsgate_probe::HoldOutcome::Survived {
                held: std::time::Duration::from_secs(75),
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wsgate_probe::HoldOutcome;

    #[test]
    fn a_failed_condition_fails_the_row_and_shows_in_both_columns() {
        let row = Row::builder("outer")
            .scheme(Scheme::Ws)
            .client("idle 6 s")
            .also("cut by the outer proxy", false, "cut by: ingress")
            .judge(
                Expect::cut_at(
                    Duration::from_secs(2),
                    Duration::from_millis(500),
                    Duration::from_millis(500),
                ),
                Observed::Hold(HoldOutcome::Closed {
                    after: Duration::from_millis(2001),
                    how: wsgate_probe::CloseKind::NoCloseFrame,
                }),
            );
        assert!(row.expect.met_by(&row.observed));
        assert!(!row.pass());
        assert!(row.expected_text().ends_with("; cut by the outer proxy"));
        assert_eq!(
            row.observed_text(),
            "cut after 2001 ms, no close frame (1006); cut by: ingress"
        );
    }
}
