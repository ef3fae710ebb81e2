//! The tasks behind `cargo xtask`: flags, and which task runs.

pub mod kind;
pub mod local_up;
pub mod suite;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "wsgate: prove WebSockets behind NGINX Ingress stay up"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the end-to-end suite (use --local for the local tier: real nginx, no cluster).
    E2e(E2eArgs),
    /// Bring the local tier up (nginx + echo server) until Ctrl-C, to try it by hand.
    LocalUp(local_up::LocalUpArgs),
    /// Build the echo server image (static binary, FROM scratch), tagged <version>-<git sha>.
    Image,
}

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    /// Run against the local tier (nginx rendered from the manifests) instead of a cluster.
    #[arg(long)]
    pub local: bool,
    /// nextest profile (`ci` writes JUnit XML to target/nextest/ci/junit.xml).
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Print every step instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub kind: kind::plan::KindArgs,
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::E2e(args) if args.local => suite::run_local(&args),
        Command::E2e(args) => {
            let plan = kind::plan::Plan::new(args.kind.clone(), &args.profile, &workspace_root())?;
            kind::exec::run(plan, args.dry_run)
        }
        Command::LocalUp(args) => local_up::run(args),
        Command::Image => {
            let image = wsgate_image::ensure_image(&workspace_root())?;
            println!(
                "{} {} ({:.1} MB)",
                if image.built { "built" } else { "up to date:" },
                image.reference(),
                image.size as f64 / 1e6
            );
            Ok(())
        }
    }
}
