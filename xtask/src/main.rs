//! `cargo xtask`: parses flags and hands over to the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = xtask::Cli::parse();
    xtask::run(cli)
}
