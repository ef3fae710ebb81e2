//! The command line of `cargo xtask`: every flag, parsed by clap; nothing here runs anything.

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
    /// Run the end-to-end suite on kind (or an existing cluster); --local for the local tier.
    E2e(E2eArgs),
    /// Install and start what the tests need (nginx, Docker, cargo-nextest), build the echo
    /// image, then run `cargo nextest run --workspace` with any arguments after `--`.
    Test(TestArgs),
    /// Bring the local tier up (nginx + echo server) until Ctrl-C, to try it by hand.
    LocalUp(LocalUpArgs),
    /// Build the echo server image (static binary, FROM scratch), tagged <version>-<git sha>.
    Image,
}

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    /// Run against the local tier (nginx rendered from the manifests) instead of a cluster.
    #[arg(long)]
    pub local: bool,
    /// nextest profile (`ci` writes JUnit XML).
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Print every step instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub kind: KindArgs,
}

/// Which echo image the Deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EchoImage {
    /// The workspace's echo server, built FROM scratch and loaded into kind.
    Built,
    /// The document's image reference, unchanged (pulled by the cluster).
    Documented,
}

/// Flags of `cargo xtask e2e` for the cluster tiers.
#[derive(Debug, Clone, clap::Args)]
pub struct KindArgs {
    /// kind cluster name.
    #[arg(long, default_value = "wsgate")]
    pub name: String,
    /// Use an existing kind cluster of that name (it is kept afterwards).
    #[arg(long)]
    pub reuse: bool,
    /// Keep the cluster (or namespace) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Host port mapped to the ingress's port 80 (80 is often taken on a laptop).
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// Host port mapped to the ingress's port 443.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Echo image: `built` (this workspace's, default on kind) or `documented` (the document's).
    #[arg(long, value_enum)]
    pub echo_image: Option<EchoImage>,
    /// Existing cluster: kubeconfig file (skips kind).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Existing cluster: kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Existing cluster: the ingress controller's address, HOST[:PORT] (port 80 by default).
    #[arg(long)]
    pub ingress_address: Option<String>,
    /// Existing cluster: the ingress controller's TLS port.
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Namespace for the suite's objects (default: `default` on kind as documented,
    /// `wsgate-e2e` on an existing cluster).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Fail on annotation values that ingress-nginx would silently ignore.
    #[arg(long)]
    pub strict: bool,
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

#[derive(clap::Args, Debug)]
pub struct LocalUpArgs {
    /// Where the certificate to trust is written.
    #[arg(long, default_value = "target/wsgate/local-up")]
    pub out: PathBuf,
}
