//! The run's report: step timings and the idle-survival table, on stdout and in `report.md`
//! (appended to `$GITHUB_STEP_SUMMARY` in Actions).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wsgate_report as report;

/// Reads the rows the tests wrote into `rows_dir`, prints the report and writes `report.md`
/// into `dir`. Rows that cannot be read fail the call, after the rest is written.
pub fn write(
    dir: &Path,
    rows_dir: &Path,
    timings: &[(String, Duration)],
    notes: &[String],
) -> anyhow::Result<()> {
    let (rows, unreadable) = match report::read_rows(rows_dir) {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut notes = notes.to_vec();
    if let Some(e) = &unreadable {
        notes.push(format!(
            "report rows could not be read: {}",
            wsgate_probe::chain(e)
        ));
    }
    let rows = rows.as_slice();
    let mut md = String::from("# wsgate e2e report\n\n## Steps\n\n| step | seconds |\n|---|---|\n");
    println!("\nSteps:");
    for (step, d) in timings {
        println!("  {step:<72} {:>8.1} s", d.as_secs_f64());
        md.push_str(&format!("| {step} | {:.1} |\n", d.as_secs_f64()));
    }
    for n in &notes {
        println!("note: {n}");
        md.push_str(&format!("\n> {n}\n"));
    }
    md.push_str("\n## Idle survival and behaviour\n\n");
    if rows.is_empty() {
        // An empty table says nothing; say why there is none.
        let none = "No case ran, so there is no idle-survival table (see the steps above for where the run stopped).";
        println!("\n{none}");
        md.push_str(none);
        md.push('\n');
    } else {
        println!(
            "\nIdle survival and behaviour ({} cases):\n{}",
            rows.len(),
            report::table(rows)
        );
        md.push_str(&report::markdown(rows));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("report: {}", path.display());
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)
            .with_context(|| format!("opening $GITHUB_STEP_SUMMARY {summary:?}"))?;
        f.write_all(md.as_bytes())?;
    }
    match unreadable {
        Some(e) => Err(anyhow::Error::from(e).context("reading the report rows")),
        None => Ok(()),
    }
}
