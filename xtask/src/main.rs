//! `cargo xtask`: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    xtask::forget_cargo_run_env();
    let cli = xtask::Cli::parse();
    match xtask::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // What failed and why, cause by cause; a backtrace (RUST_BACKTRACE=1) would bury an
            // expected failure's message under frames that say nothing to a user.
            eprintln!("Error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            // The runner says which exit a failure is (see the README's exit codes).
            let code = e
                .downcast_ref::<wsgate_runner::exit::RunError>()
                .map_or(wsgate_runner::exit::Exit::SetupFailed.code(), |r| {
                    r.exit.code()
                });
            ExitCode::from(code)
        }
    }
}
