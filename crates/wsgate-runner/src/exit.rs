//! How a run ended, as its exit code tells a release gate: a promise failed, the input was bad,
//! or the set-up failed before the tests could judge. Documented in the README.

use std::fmt;

/// Why a run did not pass. The numbers are the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The suite ran and a promise (a test, a check) failed: the service is not fit to ship.
    PromiseFailed = 1,
    /// The flags or the manifests are wrong (an unknown flag, a broken manifest, a value
    /// `--strict` refuses); nothing was changed.
    BadInput = 2,
    /// Set-up or the cluster failed before the tests could judge (Docker, kind, the controller,
    /// a route that never came up, a teardown that failed).
    SetupFailed = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Every exit code, with what it means (for `--help` and the README).
    pub const ALL: [(u8, &'static str); 4] = [
        (0, "every promise held"),
        (1, "the suite ran and a promise failed"),
        (2, "bad input: flags or manifests (nothing was changed)"),
        (
            3,
            "set-up or the cluster failed before the tests could judge",
        ),
    ];
}

/// The exit codes as `--help` shows them.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 every promise held; 1 the suite ran and a promise failed; 2 bad input (flags or manifests; nothing was changed); 3 set-up or the cluster failed before the tests could judge.";

/// A run that did not pass: what failed (with its causes), and which exit that is.
#[derive(Debug)]
pub struct RunError {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl RunError {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit,
            error: error.into(),
        }
    }

    /// Bad input, unless the error says it is something else ([`BadInput`] is always input).
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::BadInput, error)
    }

    /// A set-up failure, unless the error's chain holds a [`BadInput`].
    pub fn setup(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        let exit = if error.chain().any(|c| c.is::<BadInput>()) {
            Exit::BadInput
        } else {
            Exit::SetupFailed
        };
        Self { exit, error }
    }

    pub fn promise(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::PromiseFailed, error)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.error)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Input the run refuses (a value `--strict` rejects, a flag combination that cannot work),
/// found by a step: the run's exit is [`Exit::BadInput`], not a set-up failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// What nextest's exit status says: 100 is "tests failed" (a promise), anything else (a build
/// that failed, no test selected, a setup script) means the tests could not judge.
pub fn nextest_exit(status: Option<i32>) -> Exit {
    match status {
        Some(100) => Exit::PromiseFailed,
        _ => Exit::SetupFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_input_deep_in_a_step_failure_is_still_bad_input() {
        let e = anyhow::Error::new(BadInput("--strict: 1 ignored value".into()))
            .context("step 1 `prerequisites` failed");
        assert_eq!(RunError::setup(e).exit, Exit::BadInput);
        let e = anyhow::anyhow!("kind create failed").context("step 2 `cluster` failed");
        assert_eq!(RunError::setup(e).exit, Exit::SetupFailed);
    }

    #[test]
    fn the_help_text_names_every_code() {
        for (code, _) in Exit::ALL {
            assert!(EXIT_CODES_HELP.contains(&format!("{code} ")), "{code}");
        }
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        for e in [Exit::PromiseFailed, Exit::BadInput, Exit::SetupFailed] {
            assert!(Exit::ALL.iter().any(|(c, _)| *c == e.code()));
        }
        assert_eq!(nextest_exit(Some(100)), Exit::PromiseFailed);
        assert_eq!(nextest_exit(Some(101)), Exit::SetupFailed);
        assert_eq!(nextest_exit(Some(4)), Exit::SetupFailed);
    }
}
