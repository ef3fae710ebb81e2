//! Runs the e2e test binaries with nextest and turns their rows into the report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use wsgate_e2e::report::{self, ENV_REPORT_DIR, Row};

use crate::{E2eArgs, workspace_root};

/// Where a run's report goes: `target/wsgate/<tier>/`.
pub fn report_dir(tier: &str) -> PathBuf {
    workspace_root().join("target").join("wsgate").join(tier)
}

/// The nextest invocation for a set of test binaries, with the report directory in its env.
pub fn nextest_command(
    profile: &str,
    filter: &str,
    rows: &Path,
    envs: &[(String, String)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args([
            "nextest",
            "run",
            "--package",
            "wsgate-e2e",
            "--profile",
            profile,
            "--no-fail-fast",
        ])
        .args(["--filterset", filter])
        .env(ENV_REPORT_DIR, rows);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Prints a command the way a person would type it.
pub fn show(cmd: &Command) -> String {
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let program = Path::new(cmd.get_program())
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{} {program} {}", envs.join(" "), args.join(" "))
        .trim()
        .to_owned()
}

/// `cargo xtask e2e --local`: the e2e tests against local nginx, then the report.
pub fn run_local(args: &E2eArgs) -> anyhow::Result<()> {
    let dir = report_dir("local");
    let rows = dir.join("rows");
    let cmd = nextest_command(
        &args.profile,
        "package(wsgate-e2e) and not binary(cluster)",
        &rows,
        &[],
    );
    if args.dry_run {
        println!("[1] remove {}", rows.display());
        println!("[2] {}", show(&cmd));
        println!(
            "[3] print the idle-survival table; write {}",
            dir.join("report.md").display()
        );
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&rows);
    std::fs::create_dir_all(&rows).with_context(|| format!("creating {}", rows.display()))?;
    let start = Instant::now();
    let status = run_tests(cmd)?;
    let timings = vec![("e2e tests (local tier)".to_owned(), start.elapsed())];
    write_report(&dir, &report::read_rows(&rows), &timings, &[])?;
    anyhow::ensure!(
        status.success(),
        "e2e tests failed ({status}); the table above shows the idle cases"
    );
    Ok(())
}

pub fn run_tests(mut cmd: Command) -> anyhow::Result<std::process::ExitStatus> {
    eprintln!("+ {}", show(&cmd));
    cmd.status()
        .context("running cargo nextest (install it: `cargo install cargo-nextest --locked`)")
}

/// Prints the table, writes `report.md` next to the rows, and appends to `$GITHUB_STEP_SUMMARY`.
pub fn write_report(
    dir: &Path,
    rows: &[Row],
    timings: &[(String, std::time::Duration)],
    notes: &[String],
) -> anyhow::Result<()> {
    let mut md = String::from("# wsgate e2e report\n\n## Steps\n\n| step | seconds |\n|---|---|\n");
    println!("\nSteps:");
    for (step, d) in timings {
        println!("  {step:<44} {:>8.1} s", d.as_secs_f64());
        md.push_str(&format!("| {step} | {:.1} |\n", d.as_secs_f64()));
    }
    for n in notes {
        println!("note: {n}");
        md.push_str(&format!("\n> {n}\n"));
    }
    println!(
        "\nIdle survival and behaviour ({} cases):\n{}",
        rows.len(),
        report::table(rows)
    );
    md.push_str("\n## Idle survival and behaviour\n\n");
    md.push_str(&report::markdown(rows));
    std::fs::create_dir_all(dir)?;
    let path = dir.join("report.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("report: {}", path.display());
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)?;
        f.write_all(md.as_bytes())?;
    }
    Ok(())
}
