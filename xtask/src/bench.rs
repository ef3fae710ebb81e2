//! `cargo xtask bench`: the test suite's wall time against its longest test, over several runs,
//! optionally with every core kept busy by another process. No test asserts wall time; this
//! measures it, and a failing run here is a flaky test to fix at its cause.

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::flags::BenchArgs;
use wsgate_runner::action::Cmd;
use wsgate_runner::tools::which;

/// One test's end, as nextest's libtest JSON reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub name: String,
    pub passed: bool,
    pub secs: f64,
}

/// The tests that ended in nextest's `--message-format libtest-json-plus` output.
pub fn ended(json_lines: &str) -> Vec<Ended> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "test")
        .filter_map(|v| {
            let passed = match v["event"].as_str()? {
                "ok" => true,
                "failed" => false,
                _ => return None,
            };
            Some(Ended {
                name: v["name"].as_str()?.to_owned(),
                passed,
                secs: v["exec_time"].as_f64().unwrap_or(0.0),
            })
        })
        .collect()
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub wall: Duration,
    pub tests: Vec<Ended>,
}

impl Run {
    pub fn longest(&self) -> Option<&Ended> {
        self.tests.iter().max_by(|a, b| a.secs.total_cmp(&b.secs))
    }

    /// Wall time over the longest test: 1.0 is the floor, a suite as fast as its longest wait.
    pub fn ratio(&self) -> f64 {
        self.longest()
            .map_or(f64::NAN, |l| self.wall.as_secs_f64() / l.secs)
    }

    pub fn failed(&self) -> Vec<&Ended> {
        self.tests.iter().filter(|t| !t.passed).collect()
    }
}

/// Processes that keep every core busy until dropped (their group is killed).
struct Load(Vec<std::process::Child>);

impl Load {
    fn start() -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut children = Vec::new();
        for _ in 0..cores {
            children.push(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .process_group(0)
                    .spawn()
                    .context("starting a busy loop")?,
            );
        }
        Ok(Self(children))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_once(nextest: &Cmd, log: &Path) -> anyhow::Result<Run> {
    let err = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let start = Instant::now();
    let mut child = nextest
        .command()
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting `{nextest}`"))?;
    let mut json = String::new();
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        json.push_str(&line?);
        json.push('\n');
    }
    child.wait()?;
    Ok(Run {
        wall: start.elapsed(),
        tests: ended(&json),
    })
}

/// `cargo xtask bench`: builds once, then runs the suite `runs` times and prints a table.
pub fn run(args: &BenchArgs, root: &Path) -> anyhow::Result<()> {
    crate::setup::prepare(root)?;
    let cargo = which("cargo", &std::env::var_os("PATH").unwrap_or_default());
    let base = Cmd::new(&cargo)
        .args(["nextest", "run", "--workspace", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(["--profile", &args.profile]);
    eprintln!("building the tests once");
    base.clone().arg("--no-run").run()?;
    let nextest = base
        .args(["--no-fail-fast", "--message-format", "libtest-json-plus"])
        .env("NEXTEST_EXPERIMENTAL_LIBTEST_JSON", "1");
    let dir = root.join("target/wsgate/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::ASCII_MARKDOWN)
        .set_header([
            "run",
            "cores busy",
            "wall s",
            "tests",
            "failed",
            "longest test",
            "longest s",
            "wall / longest",
        ]);
    let mut failures = Vec::new();
    for i in 1..=args.runs {
        let log = dir.join(format!("run-{i}.log"));
        eprintln!(
            "run {i}/{}{} (nextest's output: {})",
            args.runs,
            if args.load { ", every core busy" } else { "" },
            log.display()
        );
        let load = args.load.then(Load::start).transpose()?;
        let run = run_once(&nextest, &log)?;
        drop(load);
        let longest = run.longest();
        table.add_row([
            i.to_string(),
            if args.load { "yes" } else { "no" }.to_owned(),
            format!("{:.1}", run.wall.as_secs_f64()),
            run.tests.len().to_string(),
            run.failed().len().to_string(),
            longest.map(|l| l.name.clone()).unwrap_or_default(),
            longest
                .map(|l| format!("{:.1}", l.secs))
                .unwrap_or_default(),
            format!("{:.2}", run.ratio()),
        ]);
        failures.extend(run.failed().into_iter().map(|t| {
            format!(
                "run {i}: {} ({:.1} s; see {})",
                t.name,
                t.secs,
                log.display()
            )
        }));
    }
    println!("{table}");
    if !failures.is_empty() {
        bail!(
            "{} test failure(s):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_tests_and_the_ratio_come_from_nextest_s_json_lines() {
        let json = r#"{"type":"suite","event":"started","test_count":3}
{"type":"test","event":"started","name":"a::x"}
{"type":"test","event":"ok","name":"a::x","exec_time":75.2}
{"type":"test","event":"failed","name":"a::y","exec_time":2.5}
{"type":"test","event":"ignored","name":"a::z"}
not json"#;
        let tests = ended(json);
        assert_eq!(tests.len(), 2);
        let run = Run {
            wall: Duration::from_secs_f64(82.72),
            tests,
        };
        assert_eq!(run.longest().unwrap().name, "a::x");
        assert!((run.ratio() - 1.1).abs() < 1e-9, "{}", run.ratio());
        assert_eq!(run.failed()[0].name, "a::y");
    }
}
