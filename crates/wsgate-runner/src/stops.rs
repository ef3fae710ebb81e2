//! Ctrl-C and SIGTERM for the commands a person runs until they stop them (`local-up`,
//! `bare-up`), watched from before anything starts: a signal that arrives once the banner says
//! "Ctrl-C stops everything" must stop everything, not kill the process.

use anyhow::Context;

/// The two signals that stop a long-running command.
pub struct Stops {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// Starts watching Ctrl-C and SIGTERM (inside a tokio runtime).
pub fn watch() -> anyhow::Result<Stops> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(Stops {
        int: signal(SignalKind::interrupt()).context("watching Ctrl-C")?,
        term: signal(SignalKind::terminate()).context("watching SIGTERM")?,
    })
}

impl Stops {
    /// Waits for either, and says which.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "Ctrl-C",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
