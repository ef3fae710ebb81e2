//! Rows on disk: each test process writes its rows as JSON files into the report directory
//! that `cargo xtask` names; the report reads them all back. Failures are errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Row;

pub use wsgate_contract::{ENV_REPORT_DIR, report_dir};

/// A row that could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
    #[error("report row {} is not a row", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Row {
    /// Writes the row into the report directory when one is set; returns the file written.
    pub fn record(&self) -> Result<Option<PathBuf>, ReportError> {
        match report_dir() {
            Some(dir) => self.record_in(&dir).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the row into `dir`.
    pub fn record_in(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let io = wsgate_fs::at;
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        // Several rows may share a case (one per Ingress); a counter keeps their files apart.
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let file = dir.join(format!(
            "{}-{}-{}-{n}.json",
            self.case.replace("::", "."),
            self.scheme_text(),
            std::process::id()
        ));
        let json = serde_json::to_string_pretty(self).expect("rows serialize");
        std::fs::write(&file, json).map_err(io("write", &file))?;
        Ok(file)
    }
}

/// Every row written into `dir`, sorted by case and scheme (none when `dir` does not exist).
pub fn read_rows(dir: &Path) -> Result<Vec<Row>, ReportError> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(wsgate_fs::at("list", dir))?,
    };
    let mut rows = Vec::new();
    for entry in entries {
        let path = entry.map_err(wsgate_fs::at("list", dir))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(wsgate_fs::at("read", &path))?;
        rows.push(
            serde_json::from_str(&text).map_err(|source| ReportError::Parse { path, source })?,
        );
    }
    rows.sort_by(|a: &Row, b: &Row| (&a.case, a.scheme_text()).cmp(&(&b.case, b.scheme_text())));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::row::sample as row;

    #[test]
    fn rows_round_trip_typed_through_the_report_dir() {
        let dir = tempfile::tempdir().unwrap();
        row().record_in(dir.path()).unwrap();
        let rows = read_rows(dir.path()).unwrap();
        assert_eq!(rows, [row()]);
        assert!(rows[0].pass());
    }

    #[test]
    fn every_kind_of_observation_round_trips() {
        use crate::{Expect, Observed};
        use wsgate_probe::CloseKind;
        let dir = tempfile::tempdir().unwrap();
        let observations = [
            Observed::Ended { how: None },
            Observed::Ended {
                how: Some(CloseKind::CloseFrame {
                    code: 1009,
                    reason: "message too big".into(),
                }),
            },
            Observed::Ended {
                how: Some(CloseKind::NoCloseFrame),
            },
            Observed::check(true, "fine"),
            row().observed,
        ];
        for (i, o) in observations.iter().enumerate() {
            let r = Row::builder(format!("case-{i}"))
                .also("extra", true, "seen")
                .judge(Expect::CloseFrame { code: 1009 }, o.clone());
            r.record_in(dir.path()).unwrap();
        }
        let back: Vec<Observed> = read_rows(dir.path())
            .unwrap()
            .into_iter()
            .map(|r| r.observed)
            .collect();
        assert_eq!(back, observations);
    }

    #[test]
    fn a_row_that_cannot_be_read_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let e = read_rows(dir.path()).unwrap_err();
        assert!(e.to_string().contains("broken.json"), "{e}");
    }

    #[test]
    fn a_row_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        assert!(row().record_in(&file).is_err());
    }

    #[test]
    fn no_report_dir_means_no_rows() {
        assert!(
            read_rows(Path::new("/nonexistent/wsgate"))
                .unwrap()
                .is_empty()
        );
    }
}
