//! `cargo xtask`: parses flags and hands over to the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    xtask::forget_cargo_run_env();
    let cli = xtask::Cli::parse();
    xtask::run(cli)
}
