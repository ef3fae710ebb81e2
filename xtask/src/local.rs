//! `cargo xtask e2e --local`: the e2e tests against local nginx, then the report. The same
//! typed actions as the kind plan, printed by `--dry-run` and run as printed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::action::{Action, Nextest, NextestMode};
use crate::flags::E2eArgs;
use crate::report;

/// The local tier's selection: every e2e binary but the cluster-only ones and the container
/// tier's (which needs Docker, not nginx), and the echo server's bad-input rows.
pub const LOCAL_FILTER: &str = "(package(wsgate-e2e) and not (binary(cluster) | binary(faults) | binary(rollout) | binary(container))) | binary_id(wsgate-echo::bad_input)";

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
                wsgate_e2e::env::ENV_REPORT_DIR.into(),
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

pub fn run(args: &E2eArgs, root: &Path) -> anyhow::Result<()> {
    let cargo = crate::kind::tools::which("cargo", &std::env::var_os("PATH").unwrap_or_default());
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
                std::fs::create_dir_all(path)?;
            }
            Action::Nextest(n) => failed = n.cmd(NextestMode::Run).run().err(),
            _ => unreachable!("the local plan has only these actions"),
        }
    }
    let timings = vec![("e2e tests (local tier)".to_owned(), start.elapsed())];
    report::write(&report_dir(root), &rows_dir(root), &timings, &[])?;
    match failed {
        Some(e) => Err(anyhow::Error::from(e)
            .context("e2e tests failed; the table above shows the idle cases")),
        None => Ok(()),
    }
}
