//! `cargo xtask e2e --local`: the e2e tests against local nginx, then the report. The same
//! typed actions as the kind plan, printed by `--dry-run` and run as printed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::action::{Action, Nextest, NextestMode};
use crate::exit::{RunError, nextest_exit};
use crate::options::E2eArgs;
use crate::report;

pub use wsgate_contract::selection::LOCAL_FILTER;

/// The local run's actions: reset the rows, run the tests (with `cargo`).
pub fn actions(root: &Path, cargo: &Path, profile: &str) -> Vec<Action> {
    let rows = rows_dir(root);
    vec![
        Action::Reset {
            path: rows.clone(),
            recreate: true,
        },
        Action::Nextest(Nextest {
            cargo: cargo.to_owned(),
            manifest_path: root.join("Cargo.toml"),
            packages: Vec::new(),
            profile: profile.into(),
            filterset: LOCAL_FILTER.into(),
            // The profile's default filter stays: the default profile leaves out the 240 s case.
            ignore_default_filter: false,
            env: vec![(
                wsgate_contract::ENV_REPORT_DIR.into(),
                rows.display().to_string(),
            )],
        }),
    ]
}

fn report_dir(root: &Path) -> PathBuf {
    root.join("target/wsgate/local")
}

fn rows_dir(root: &Path) -> PathBuf {
    report_dir(root).join("rows")
}

/// What `--local --dry-run` prints: each action's lines, numbered, then the report.
pub fn render(root: &Path, actions: &[Action]) -> String {
    let mut out = String::new();
    for (i, a) in actions.iter().enumerate() {
        for line in a.lines() {
            out.push_str(&format!("[{}] {line}\n", i + 1));
        }
    }
    out.push_str(&format!(
        "[{}] # print the idle-survival table; write {}\n",
        actions.len() + 1,
        report_dir(root).join("report.md").display()
    ));
    out
}

pub fn run(args: &E2eArgs, root: &Path) -> Result<(), RunError> {
    let cargo = crate::tools::which("cargo", &std::env::var_os("PATH").unwrap_or_default());
    let actions = actions(root, &cargo, &args.profile);
    let start = Instant::now();
    let mut failed = None;
    for action in &actions {
        for line in action.lines() {
            eprintln!("{line}");
        }
        match action {
            Action::Reset { path, .. } => {
                let _ = std::fs::remove_dir_all(path);
                std::fs::create_dir_all(path).map_err(|e| {
                    RunError::setup(
                        anyhow::Error::from(e).context(format!("creating {}", path.display())),
                    )
                })?;
            }
            Action::Nextest(n) => failed = n.cmd(NextestMode::Run).run().err(),
            _ => unreachable!("the local plan has only these actions"),
        }
    }
    let timings = vec![("e2e tests (local tier)".to_owned(), start.elapsed())];
    let written = report::write(&report_dir(root), &rows_dir(root), &timings, &[]);
    match failed {
        Some(e) => Err(RunError::new(
            nextest_exit(e.exit_code()),
            anyhow::Error::from(e)
                .context("e2e tests failed; the table above shows the idle cases"),
        )),
        None => written.map_err(RunError::setup),
    }
}
