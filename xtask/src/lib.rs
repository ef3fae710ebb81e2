//! The tasks behind `cargo xtask`, one module per concern; `main.rs` only parses flags.

pub mod action;
pub mod bench;
pub mod flags;
pub mod kind;
pub mod local;
pub mod local_up;
pub mod own;
pub mod progress;
pub mod report;
pub mod setup;

use std::path::PathBuf;

pub use flags::Cli;
use flags::Command;

/// The variables `cargo run` sets for xtask itself (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...).
/// A cargo started with them in its environment rebuilds crates that read them, so the
/// commands xtask runs would not do what the same lines do when pasted into a shell.
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

/// What `cargo xtask e2e --dry-run` prints for `args`, from `inputs` (this machine's, or fixed
/// ones in a test): the plan of whichever tier the flags choose. Nothing is changed.
pub fn dry_run(args: &flags::E2eArgs, inputs: &kind::plan::Inputs) -> anyhow::Result<String> {
    if args.local && !args.own.manifests.is_empty() {
        let (w, notices) = own::load(&args.own)?;
        return own::describe(&w, &notices, &args.own);
    }
    if args.local {
        let actions = local::actions(&inputs.root, &inputs.tools.cargo, &args.profile);
        return Ok(local::render(&inputs.root, &actions));
    }
    Ok(kind::plan::Plan::new(&args.kind, inputs)?.render())
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    match cli.command {
        Command::E2e(args) if args.dry_run => {
            let inputs = kind::plan::Inputs::for_machine(&args.own, &args.profile, &root)?;
            print!("{}", dry_run(&args, &inputs)?);
            Ok(())
        }
        Command::E2e(args) if args.local && !args.own.manifests.is_empty() => {
            own::run_local(&args, &root)
        }
        Command::E2e(args) if args.local => local::run(&args, &root),
        Command::E2e(args) => kind::run(&args, &root),
        Command::Test(args) => setup::run_tests(&args, &root),
        Command::LocalUp(args) => local_up::run(args),
        Command::Bench(args) => bench::run(&args, &root),
        Command::Image(args) => {
            let platform = match args.platform {
                Some(p) => p,
                None => wsgate_image::docker_server_platform(std::path::Path::new("docker"))?,
            };
            let image = wsgate_image::ensure_image(
                &root,
                &wsgate_image::BuildTarget::for_platform(platform)?,
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
