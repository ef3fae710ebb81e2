//! The kind tier (and existing clusters): pins, tools, the plan, and the executor that runs it.

pub mod config;
pub mod exec;
pub mod pins;
pub mod plan;
pub mod tools;

use std::path::Path;

use crate::flags::E2eArgs;

/// `cargo xtask e2e` on kind or an existing cluster: run the plan.
pub fn run(args: &E2eArgs, root: &Path) -> anyhow::Result<()> {
    let plan = plan::Plan::for_machine(&args.kind, &args.own, &args.profile, root)?;
    exec::run(&plan, &exec::Options::real(root))
}
