//! A program run with arguments and environment, printed as the very shell line it runs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A program run with arguments and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where stdout goes (printed as `> FILE`); inherited when `None`.
    pub stdout: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdout: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stdout_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdout = Some(path.into());
        self
    }

    /// The program's file name (`kind`, `kubectl`, `cargo`).
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The process this runs (stdout redirection is applied by [`Cmd::run`]).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs it; a non-zero exit is an error naming the command line.
    pub fn run(&self) -> Result<(), ActionError> {
        let mut c = self.command();
        if let Some(path) = &self.stdout {
            let file = std::fs::File::create(path).map_err(wsgate_fs::at("create", path))?;
            c.stdout(file);
        }
        let status = c.status().map_err(|source| ActionError::Spawn {
            line: self.to_string(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(ActionError::Failed {
                line: self.to_string(),
                status,
            })
        }
    }

    /// Runs it and returns its stdout; a non-zero exit is an error with its stderr.
    pub fn output(&self) -> Result<String, ActionError> {
        let out = self
            .command()
            .output()
            .map_err(|source| ActionError::Spawn {
                line: self.to_string(),
                source,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(ActionError::FailedWith {
                line: self.to_string(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

impl fmt::Display for Cmd {
    /// The shell line of the very process [`Cmd::command`] builds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_line(&self.command()))?;
        if let Some(path) = &self.stdout {
            write!(f, " > {}", quote(&path.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// Quotes one word for a POSIX shell (unchanged when nothing needs quoting).
pub fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", word.replace('\'', r"'\''")))
}

/// A process as a shell line: `K=V ... program args...`, every word quoted as needed.
pub fn shell_line(cmd: &Command) -> String {
    let env = cmd.get_envs().filter_map(|(k, v)| {
        Some(format!(
            "{}={}",
            k.to_string_lossy(),
            quote(&v?.to_string_lossy())
        ))
    });
    let words = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| quote(&w.to_string_lossy()));
    env.chain(words).collect::<Vec<_>>().join(" ")
}

/// A file fetched with curl and checked against a pinned sha256 before it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub what: String,
    pub dest: PathBuf,
    pub sha256: String,
    /// curl writing to `<dest>.download`, which is renamed once its sha256 matches.
    pub curl: Cmd,
    pub executable: bool,
}

impl Download {
    pub fn new(
        curl: &Path,
        what: String,
        url: &str,
        sha256: &str,
        dest: PathBuf,
        executable: bool,
    ) -> Self {
        let tmp = partial(&dest);
        let curl = Cmd::new(curl)
            .args([
                "--fail",
                "--location",
                "--silent",
                "--show-error",
                "--connect-timeout",
                "20",
                "--max-time",
                "300",
                "--output",
            ])
            .arg(&tmp)
            .arg(url);
        Self {
            what,
            dest,
            sha256: sha256.to_owned(),
            curl,
            executable,
        }
    }
}

/// Where a download is written before its checksum is verified.
pub fn partial(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".download");
    dest.with_file_name(name)
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("cannot start `{line}`")]
    Spawn {
        line: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{line}` failed ({status})")]
    Failed {
        line: String,
        status: std::process::ExitStatus,
    },
    #[error("`{line}` failed ({status}): {stderr}")]
    FailedWith {
        line: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
}

impl ActionError {
    /// The program's exit code, when it ran and exited with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Failed { status, .. } | Self::FailedWith { status, .. } => status.code(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_line_splits_back_into_the_same_words() {
        let cmd = Cmd::new("/usr/bin/docker").args([
            "version",
            "--format",
            "{{.Server.Version}}",
            "it's",
            "",
        ]);
        let words = shlex::split(&cmd.to_string()).expect("valid shell words");
        assert_eq!(
            words,
            [
                "/usr/bin/docker",
                "version",
                "--format",
                "{{.Server.Version}}",
                "it's",
                ""
            ]
        );
    }
}
