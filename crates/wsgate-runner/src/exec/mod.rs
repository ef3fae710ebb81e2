//! Runs a plan: each action exactly as planned, steps timed, diagnostics on failure, and a
//! teardown guard so that a failure, Ctrl-C or panic never leaves a cluster behind.
//! `actions.rs` runs one action of each kind.

mod actions;

pub use actions::version_at_least;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::anyhow;
use wsgate_cluster::Client;
use wsgate_image::{Image, ImageError};

use crate::action::{Action, NextestMode};
use crate::exit::{Exit, RunError};
use crate::plan::{Plan, StepId};
use crate::report;

/// How the executor runs what the plan cannot describe as a command line.
#[derive(Clone)]
pub struct Options {
    /// nextest steps run the tests, or (a rehearsal) only list them.
    pub nextest: NextestMode,
    /// Builds the echo image: `wsgate_image::ensure_image`, or a stand-in in a rehearsal.
    pub build_image: fn(&Path, &wsgate_image::BinaryBuild) -> Result<Image, ImageError>,
    pub root: PathBuf,
}

impl Options {
    pub fn real(root: &Path) -> Self {
        Self {
            nextest: NextestMode::Run,
            build_image: wsgate_image::ensure_image,
            root: root.to_owned(),
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Children (kind, nextest) get the same Ctrl-C and stop; the run then tears down.
        let _ = ctrlc::set_handler(|| {
            eprintln!("\ninterrupted: stopping after the current action, then tearing down");
            INTERRUPTED.store(true, Ordering::SeqCst);
        });
    });
}

/// An action failed the step, or only its tests failed (the run goes on to the next step).
pub(super) enum Ran {
    Done,
    TestsFailed(String),
    /// The tests could not judge (nextest did not build them, or selected none): the run goes
    /// on, and ends as a set-up failure.
    TestsUnjudged(String),
}

/// Teardown owned by a guard: once armed, dropping it (early return, panic) runs the teardown
/// commands. A normal run disarms it and runs teardown as its last step.
struct TeardownGuard<'a> {
    actions: &'a [Action],
    armed: bool,
}

impl TeardownGuard<'_> {
    fn fire(&mut self) -> Vec<anyhow::Error> {
        self.armed = false;
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Run(cmd) => {
                    eprintln!("  $ {cmd}");
                    cmd.run().err().map(anyhow::Error::from)
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for TeardownGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            eprintln!("tearing down after an early exit");
            for e in self.fire() {
                eprintln!("  teardown failed: {e:#}");
            }
        }
    }
}

pub(super) struct Exec<'a> {
    pub(super) plan: &'a Plan,
    pub(super) opts: &'a Options,
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) client: Option<Client>,
    pub(super) notes: Vec<String>,
}

/// What a run did: printed as the report, and an error when anything failed.
pub fn run(plan: &Plan, opts: &Options) -> Result<(), RunError> {
    install_ctrlc();
    let mut exec = Exec {
        plan,
        opts,
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(RunError::setup)?,
        client: None,
        notes: plan.notes.clone(),
    };
    let teardown = plan
        .steps
        .iter()
        .find(|s| s.id == StepId::Teardown)
        .map(|s| s.actions.as_slice())
        .unwrap_or_default();
    let mut guard = TeardownGuard {
        actions: teardown,
        armed: false,
    };
    let total = plan.steps.len();
    let mut timings = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut test_failures = Vec::new();
    let mut unjudged: Vec<String> = Vec::new();
    // Whether anything exists that teardown must remove; whether a cluster is there that
    // diagnostics can look at (a reused or existing one too).
    let (mut armed_ever, mut reached_cluster) = (false, false);
    for (i, step) in plan.steps.iter().enumerate() {
        let title = step.id.title();
        if step.id == StepId::Teardown {
            if reached_cluster
                && (failure.is_some() || !test_failures.is_empty() || !unjudged.is_empty())
            {
                exec.diagnostics();
            }
            if !armed_ever {
                eprintln!("[{:>2}/{total}] {title}: nothing was created", i + 1);
                continue;
            }
            guard.armed = false;
        } else if failure.is_some() || INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("[{:>2}/{total}] {title}: skipped", i + 1);
            continue;
        }
        eprintln!("[{:>2}/{total}] {title}", i + 1);
        let start = Instant::now();
        for (a, action) in step.actions.iter().enumerate() {
            if step.arms_teardown == Some(a) {
                guard.armed = true;
                armed_ever = true;
            }
            if step.arms_teardown == Some(a) || step.reaches_cluster == Some(a) {
                reached_cluster = true;
            }
            for line in action.lines() {
                eprintln!("  {line}");
            }
            match exec.action(action) {
                Ok(Ran::Done) => {}
                Ok(Ran::TestsFailed(why)) => {
                    eprintln!("  FAILED: {why}");
                    test_failures.push(format!("step {} `{title}`: {why}", i + 1));
                }
                Ok(Ran::TestsUnjudged(why)) => {
                    eprintln!("  FAILED: {why}");
                    unjudged.push(format!("step {} `{title}`: {why}", i + 1));
                }
                Err(e) => {
                    eprintln!("  FAILED: {e:#}");
                    if failure.is_none() {
                        failure = Some(e.context(format!("step {} `{title}` failed", i + 1)));
                    }
                    break;
                }
            }
            if INTERRUPTED.load(Ordering::SeqCst) && step.id != StepId::Teardown {
                failure.get_or_insert_with(|| anyhow!("interrupted during step `{title}`"));
                break;
            }
        }
        timings.push((title.into_owned(), start.elapsed()));
    }
    drop(guard);
    let written = report::write(&plan.work, &plan.rows(), &timings, &exec.notes);
    if let Some(e) = failure {
        return Err(RunError::setup(e));
    }
    if !unjudged.is_empty() {
        return Err(RunError::new(
            Exit::SetupFailed,
            anyhow!(
                "tests could not judge: {}",
                unjudged
                    .iter()
                    .chain(&test_failures)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    if !test_failures.is_empty() {
        return Err(RunError::promise(anyhow!(
            "tests failed: {}",
            test_failures.join("; ")
        )));
    }
    written.map_err(RunError::setup)
}
