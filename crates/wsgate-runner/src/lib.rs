//! The main job behind `cargo xtask e2e`: a run is a plan of typed actions, made from the
//! options and the machine; `--dry-run` prints those actions and the executor runs the very
//! same values. Also the local tier's runs (`--local`, your manifests) and `local-up`.
//!
//! `plan/` makes plans (kind, an existing cluster), `exec/` runs them, `action/` is what a step
//! does, `local.rs` and `workload.rs` run the local tier, `report.rs` writes what a person reads.

pub mod action;
pub mod bare;
pub mod bare_up;
pub mod exec;
pub mod exit;
pub mod kind_config;
pub mod local;
pub mod local_up;
pub mod migrate;
pub mod options;
pub mod pins;
pub mod plan;
pub mod progress;
pub mod report;
pub mod stops;
pub mod tools;
pub mod workload;

use std::path::Path;

use exit::RunError;
use options::E2eArgs;
use plan::{Inputs, Plan};

/// The variables `cargo run` sets for the program it runs (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`,
/// ...). A cargo started with them in its environment rebuilds crates that read them, so the
/// commands a run makes would not do what the same lines do when pasted into a shell.
pub fn cargo_run_vars() -> impl Iterator<Item = std::ffi::OsString> {
    std::env::vars_os().map(|(k, _)| k).filter(|k| {
        let k = k.to_string_lossy();
        k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                k.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
    })
}

/// What `cargo xtask e2e --dry-run` prints for `args`, from `inputs` (this machine's, or fixed
/// ones in a test): the plan of whichever tier the flags choose. Nothing is changed.
pub fn dry_run(args: &E2eArgs, inputs: &Inputs) -> anyhow::Result<String> {
    if args.local && !args.workload.paths.is_empty() {
        let (w, notices) = workload::load(&args.workload)?;
        return workload::describe(&w, &notices, &args.workload);
    }
    if args.local {
        let actions = local::actions(&inputs.root, &inputs.tools.cargo, &args.profile);
        return Ok(local::render(&inputs.root, &actions));
    }
    Ok(Plan::new(&args.cluster, inputs)?.render())
}

/// `cargo xtask e2e`: print the plan (`--dry-run`), or run it on the tier the flags choose.
/// `root` is the workspace. The error says which exit it is ([`exit::Exit`]).
pub fn e2e(args: &E2eArgs, root: &Path) -> Result<(), RunError> {
    if args.dry_run {
        let inputs =
            Inputs::for_machine(&args.workload, &args.profile, root).map_err(RunError::input)?;
        print!("{}", dry_run(args, &inputs).map_err(RunError::input)?);
        return Ok(());
    }
    if args.local && !args.workload.paths.is_empty() {
        return workload::run_local(args, root);
    }
    if args.local {
        return local::run(args, root);
    }
    // Made from the flags and the manifests before anything is run: what fails here is input.
    let plan = Plan::for_machine(&args.cluster, &args.workload, &args.profile, root)
        .map_err(RunError::input)?;
    exec::run(&plan, &exec::Options::real(root))
}
