//! The tasks behind `cargo xtask`, one module per concern; `main.rs` only parses flags.

pub mod action;
pub mod flags;
pub mod kind;
pub mod local;
pub mod local_up;
pub mod progress;
pub mod report;
pub mod setup;

use std::path::PathBuf;

pub use flags::Cli;
use flags::Command;

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
        Command::E2e(args) if args.local => local::run(&args, &root),
        Command::E2e(args) => kind::run(&args, &root),
        Command::Test(args) => setup::run_tests(&args, &root),
        Command::LocalUp(args) => local_up::run(args),
        Command::Image => {
            let image = wsgate_image::ensure_image(&root)?;
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
