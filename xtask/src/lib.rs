//! `cargo xtask`: argument parsing, dispatch to the runner, and machine set-up; `main.rs` only
//! parses flags. The product is in `wsgate-runner`; the chores here are setting a machine up
//! for the tests (`setup`) and measuring them (`bench`).

pub mod bench;
pub mod flags;
pub mod setup;

use std::path::PathBuf;

pub use flags::Cli;
use flags::Command;

pub use wsgate_runner::cargo_run_vars;

/// Removes [`cargo_run_vars`] from this process's environment. Call it first thing in `main`,
/// while no other thread runs.
pub fn forget_cargo_run_env() {
    for k in cargo_run_vars().collect::<Vec<_>>() {
        // SAFETY: called at the start of main, before any thread is spawned.
        unsafe { std::env::remove_var(k) };
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    match cli.command {
        Command::E2e(args) => Ok(wsgate_runner::e2e(&args, &root)?),
        Command::Test(args) => Ok(setup::run_tests(&args, &root)?),
        Command::LocalUp(args) => wsgate_runner::local_up::run(args),
        Command::BareUp => wsgate_runner::bare_up::run(&root),
        Command::Migrate(args) => Ok(wsgate_runner::migrate::run(&args, &root)?),
        Command::Bench(args) => bench::run(&args, &root),
        Command::Image(args) => {
            let platform = match args.platform {
                Some(p) => p,
                None => wsgate_image::docker_server_platform(std::path::Path::new("docker"))?,
            };
            let image = wsgate_image::ensure_image(
                &root,
                &wsgate_image::BinaryBuild::for_platform(platform)?,
            )?;
            println!(
                "{} {} ({:.1} MB, {})",
                if image.built { "built" } else { "up to date:" },
                image.reference(),
                image.size as f64 / 1e6,
                image.builder
            );
            Ok(())
        }
    }
}
