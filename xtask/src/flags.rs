//! The command line of `cargo xtask`: every subcommand, parsed by clap; nothing here runs
//! anything. The e2e and local-up flags are the runner's options (`wsgate_runner::options`).

use clap::{Parser, Subcommand};
use wsgate_runner::options::{E2eArgs, LocalUpArgs};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "wsgate: prove WebSockets behind NGINX Ingress stay up",
    after_help = wsgate_runner::exit::EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the end-to-end suite on kind (or an existing cluster); --local for the local tier.
    E2e(Box<E2eArgs>),
    /// Install and start what the tests need (nginx, Docker, cargo-nextest), build the echo
    /// image, then run `cargo nextest run --workspace` with any arguments after `--`.
    Test(TestArgs),
    /// Bring the local tier up (nginx + echo server) until Ctrl-C, to try it by hand.
    LocalUp(LocalUpArgs),
    /// Bring the bare tier's control plane up (the real kube-apiserver, etcd,
    /// controller-manager and scheduler, built from their Go modules; kwok for the node) until
    /// Ctrl-C. Needs root.
    BareUp,
    /// Build the echo server image (static binary, FROM scratch), tagged <version>-<git sha>.
    Image(ImageArgs),
    /// Measure the same WebSocket cases on ingress-nginx and on its successors (Envoy Gateway,
    /// Traefik, NGINX Gateway Fabric) with their real proxies, side by side. Traefik needs root.
    Migrate(wsgate_runner::migrate::MigrateArgs),
    /// Run the test suite several times and print its wall time against its longest test.
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// How many runs, one after another.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Keep every core busy with another process during each run.
    #[arg(long)]
    pub load: bool,
    /// The nextest profile (`ci` adds the 240 s reload case).
    #[arg(long, default_value = "default")]
    pub profile: String,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TestArgs {
    /// Only check and set up (install, start Docker, build the image); run no tests.
    #[arg(long)]
    pub setup_only: bool,
    /// Arguments passed to `cargo nextest run --workspace` (after `--`).
    #[arg(last = true)]
    pub nextest: Vec<String>,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ImageArgs {
    /// The platform to build for, OS/ARCH (default: the Docker server's, e.g. linux/arm64 on
    /// an Apple-silicon Mac).
    #[arg(long)]
    pub platform: Option<wsgate_image::Platform>,
}
