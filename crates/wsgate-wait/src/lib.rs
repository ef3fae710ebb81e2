//! One way to wait: poll a condition at an interval until a named deadline, reporting the last
//! state seen when time runs out.
//!
//! Every check runs inside the deadline (an API call that hangs cannot outlive it), and a
//! timeout says what was awaited, for how long, and what the last check saw.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one check found: done with a value, or not yet, with what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check<T, S> {
    Done(T),
    Pending(S),
}

/// A named deadline: what is awaited, for how long, how often it is checked.
#[derive(Debug, Clone)]
pub struct Wait {
    pub what: String,
    pub limit: Duration,
    pub interval: Duration,
}

/// The deadline passed before the condition held.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: not done within {} ms{}", limit.as_millis(), last.as_ref().map(|l| format!(" (last seen: {l})")).unwrap_or_default())]
pub struct TimedOut {
    pub what: String,
    pub limit: Duration,
    /// The last state a check reported (none when no check finished in time).
    pub last: Option<String>,
}

impl Wait {
    pub fn new(what: impl Into<String>, limit: Duration) -> Self {
        Self {
            what: what.into(),
            limit,
            interval: Duration::from_millis(500),
        }
    }

    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    fn timed_out(&self, last: Option<String>) -> TimedOut {
        TimedOut {
            what: self.what.clone(),
            limit: self.limit,
            last,
        }
    }

    /// Polls `check` until it is done or the deadline passes. Each check is itself bounded by
    /// the time left, so a hanging call ends with the wait.
    pub async fn until<T, S, F, Fut>(&self, mut check: F) -> Result<T, TimedOut>
    where
        S: fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Check<T, S>>,
    {
        let deadline = tokio::time::Instant::now() + self.limit;
        let mut last = None;
        loop {
            match tokio::time::timeout_at(deadline, check()).await {
                Ok(Check::Done(value)) => return Ok(value),
                Ok(Check::Pending(state)) => last = Some(state.to_string()),
                Err(_) => return Err(self.timed_out(last)),
            }
            let next = tokio::time::Instant::now() + self.interval;
            if next >= deadline {
                return Err(self.timed_out(last));
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// The same for checks that do not block (a `try_wait`, a connect with its own short
    /// timeout): polled from a plain thread.
    pub fn until_blocking<T, S>(
        &self,
        mut check: impl FnMut() -> Check<T, S>,
    ) -> Result<T, TimedOut>
    where
        S: fmt::Display,
    {
        let start = Instant::now();
        loop {
            match check() {
                Check::Done(value) => return Ok(value),
                Check::Pending(state) if start.elapsed() + self.interval >= self.limit => {
                    return Err(self.timed_out(Some(state.to_string())));
                }
                Check::Pending(_) => std::thread::sleep(self.interval),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn done_on_the_third_check() {
        let mut n = 0;
        let got = Wait::new("counter", Duration::from_secs(10))
            .every(Duration::from_secs(1))
            .until(|| {
                n += 1;
                let n = n;
                async move {
                    if n == 3 {
                        Check::Done(n)
                    } else {
                        Check::Pending(format!("n={n}"))
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_names_the_wait_and_the_last_state() {
        let e = Wait::new("pods Running and Ready", Duration::from_secs(3))
            .every(Duration::from_secs(1))
            .until(|| async { Check::<(), _>::Pending("echo-1: Pending") })
            .await
            .unwrap_err();
        assert_eq!(e.limit, Duration::from_secs(3));
        assert_eq!(
            e.to_string(),
            "pods Running and Ready: not done within 3000 ms (last seen: echo-1: Pending)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_ends_with_the_deadline() {
        let start = tokio::time::Instant::now();
        let e = Wait::new("an API call that never answers", Duration::from_secs(5))
            .until(std::future::pending::<Check<(), String>>)
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(e.last, None);
    }

    #[test]
    fn blocking_wait_gives_up_with_the_last_state() {
        let e = Wait::new("port open", Duration::from_millis(50))
            .every(Duration::from_millis(10))
            .until_blocking(|| Check::<(), _>::Pending("refused"))
            .unwrap_err();
        assert!(e.to_string().contains("last seen: refused"), "{e}");
    }
}
