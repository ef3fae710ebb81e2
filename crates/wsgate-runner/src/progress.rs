//! Progress of long waits: what is awaited and the time left. On a terminal one line is
//! redrawn each second; in CI logs a line is printed every 15 s.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Runs `fut`, showing progress for `what` against `limit` until it finishes.
pub async fn show<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(15)
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(fut);
    let out = loop {
        tokio::select! {
            out = &mut fut => break out,
            _ = tick.tick() => {
                let left = limit.saturating_sub(start.elapsed()).as_secs();
                let line = format!("    waiting {} s for {what}; {left} s left", start.elapsed().as_secs());
                if tty {
                    eprint!("\r\x1b[2K{line}");
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!("{line}");
                }
            }
        }
    };
    if tty && start.elapsed() >= every {
        eprint!("\r\x1b[2K");
    }
    out
}
