//! Typed actions: what a step does, as values. `--dry-run` prints these values and the executor
//! runs these values, so the printed plan cannot drift from what runs.
//!
//! Printed lines start with `$` when they are shell commands (shell-quoted: paste one and it
//! does the same), `>` for Kubernetes API calls, `~` for waits with their deadline, and `#`
//! for work done in-process (with what it is equivalent to).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wsgate_cluster::ObjectRef;
use wsgate_probe::Scheme;

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
            let file = std::fs::File::create(path).map_err(|source| ActionError::Io {
                what: "create",
                path: path.clone(),
                source,
            })?;
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

/// What an API call does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVerb {
    /// Server-side apply, forced, field manager `wsgate`.
    ServerSideApply,
    /// A JSON merge patch (what `kubectl patch -p` sends).
    MergePatch,
}

/// The body of an API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiBody {
    Json(serde_json::Value),
    /// A `kubernetes.io/tls` Secret built from certificate and key files when the call runs
    /// (the key is never printed).
    TlsSecret {
        cert: PathBuf,
        key: PathBuf,
    },
}

/// A Kubernetes API call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub verb: ApiVerb,
    pub target: ObjectRef,
    pub body: ApiBody,
    /// Retried while the admission webhook does not answer, up to this long.
    pub webhook_retry: Option<Duration>,
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.verb {
            ApiVerb::ServerSideApply => "server-side apply (fieldManager=wsgate, force)",
            ApiVerb::MergePatch => "merge patch",
        };
        write!(f, "PATCH {} {kind}", self.target.path())?;
        match &self.body {
            ApiBody::Json(v) if self.verb == ApiVerb::MergePatch => write!(f, " {v}")?,
            ApiBody::Json(v) => {
                let summary = summarize(v);
                if !summary.is_empty() {
                    write!(f, "; {summary}")?;
                }
            }
            ApiBody::TlsSecret { cert, key } => write!(
                f,
                "; type kubernetes.io/tls, tls.crt from {}, tls.key from {}",
                cert.display(),
                key.display()
            )?,
        }
        if let Some(limit) = self.webhook_retry {
            write!(
                f,
                "; retried while the admission webhook does not answer, up to {} s",
                limit.as_secs()
            )?;
        }
        Ok(())
    }
}

/// What a reader wants to know of an applied object: images, hosts, annotations.
fn summarize(v: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(containers) = v
        .pointer("/spec/template/spec/containers")
        .and_then(|c| c.as_array())
    {
        for c in containers {
            if let Some(image) = c.get("image").and_then(|i| i.as_str()) {
                parts.push(format!("image {image}"));
            }
        }
    }
    if let Some(rules) = v.pointer("/spec/rules").and_then(|r| r.as_array()) {
        let hosts: Vec<&str> = rules
            .iter()
            .filter_map(|r| r.get("host").and_then(|h| h.as_str()))
            .collect();
        parts.push(format!("host {}", hosts.join(",")));
        let annotations = v
            .pointer("/metadata/annotations")
            .and_then(|a| a.as_object())
            .map(|a| {
                a.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        parts.push(if annotations.is_empty() {
            "no annotations".into()
        } else {
            annotations
        });
    }
    parts.join("; ")
}

/// What a wait waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// A Job `Complete` (or already removed by its TTL).
    JobDone { namespace: String, name: String },
    /// Every pod matching a selector Running and Ready (at least one).
    PodsReady { namespace: String, selector: String },
    /// A WebSocket echo through the ingress works for a host.
    Route(Route),
}

/// A host reached through the ingress address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub scheme: Scheme,
    pub addr: String,
    pub host: String,
    /// Certificates (PEM files) a `wss` route must verify against.
    pub trust: Vec<PathBuf>,
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JobDone { namespace, name } => {
                write!(f, "Job {namespace}/{name} Complete (or removed by its TTL)")
            }
            Self::PodsReady {
                namespace,
                selector,
            } => write!(f, "pods {selector} in {namespace} Running and Ready"),
            Self::Route(r) => {
                write!(f, "an echo over {}://{}/ via {}", r.scheme, r.host, r.addr)?;
                if r.scheme == Scheme::Wss {
                    write!(
                        f,
                        ", certificate verified against {} (the controller's fake certificate fails)",
                        r.trust
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// How a nextest action is run: for real, or only listed (a rehearsal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextestMode {
    Run,
    List,
}

/// A nextest run of the e2e tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nextest {
    pub cargo: PathBuf,
    pub manifest_path: PathBuf,
    pub package: String,
    pub profile: String,
    pub filterset: String,
    /// nextest ANDs a profile's `default-filter` with `--filterset` unless this is set.
    pub ignore_default_filter: bool,
    pub env: Vec<(String, String)>,
}

impl Nextest {
    /// The command for `mode`: `run` and `list` take the very same selection arguments.
    pub fn cmd(&self, mode: NextestMode) -> Cmd {
        let mut c = Cmd::new(&self.cargo)
            .arg("nextest")
            .arg(match mode {
                NextestMode::Run => "run",
                NextestMode::List => "list",
            })
            .arg("--manifest-path")
            .arg(&self.manifest_path)
            .args(["--package", &self.package, "--profile", &self.profile]);
        if self.ignore_default_filter {
            c = c.arg("--ignore-default-filter");
        }
        c = c.args(["--filterset", &self.filterset]);
        if mode == NextestMode::List {
            c = c.args(["--message-format", "json"]);
        }
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        c
    }
}

/// Loading the echo image into kind: `kind load docker-image`, and when that fails (Docker's
/// containerd image store, kind#3795), `docker save` + `kind load image-archive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadImage {
    pub direct: Cmd,
    pub save: Cmd,
    pub archive: Cmd,
}

/// One thing a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run a program.
    Run(Cmd),
    /// Run a program and check that a line of its output is present or absent.
    Expect {
        cmd: Cmd,
        line: String,
        present: bool,
        hint: String,
    },
    /// Fetch a pinned file (skipped when an intact copy is already there).
    Download(Download),
    Api(ApiCall),
    Wait {
        what: WaitFor,
        limit: Duration,
    },
    Nextest(Nextest),
    /// A self-signed certificate for `hosts` (rcgen, 365 days; key file 0600).
    GenerateCert {
        hosts: Vec<String>,
        cert: PathBuf,
        key: PathBuf,
    },
    /// The echo image (static binary, FROM scratch), built unless up to date.
    EnsureImage {
        reference: String,
    },
    LoadImage(LoadImage),
    WriteFile {
        path: PathBuf,
        contents: String,
        about: String,
    },
    /// Remove a directory or file if it exists, and optionally recreate it as a directory.
    Reset {
        path: PathBuf,
        recreate: bool,
    },
    /// Copy a file when it exists (a phase's JUnit output).
    CopyIfExists {
        from: PathBuf,
        to: PathBuf,
    },
    /// Annotation values ingress-nginx would silently ignore; with `strict` they fail the run.
    CheckAnnotations {
        warnings: Vec<String>,
        strict: bool,
    },
    /// Controller logs, events and Ingresses written to `dir`.
    Diagnostics {
        namespace: String,
        dir: PathBuf,
    },
    /// Nothing to do, and why.
    Note(String),
}

impl Action {
    /// A short name of what the action does, for tests and logs: `kind create cluster`,
    /// `apply Ingress default/ws`, `wait Job ingress-nginx/…`.
    pub fn signature(&self) -> String {
        match self {
            Self::Run(cmd) | Self::Expect { cmd, .. } => cmd_signature(cmd),
            Self::Download(d) => format!("download {}", d.what),
            Self::Api(call) => format!(
                "{} {}",
                match call.verb {
                    ApiVerb::ServerSideApply => "apply",
                    ApiVerb::MergePatch => "merge-patch",
                },
                call.target
            ),
            Self::Wait { what, .. } => match what {
                WaitFor::JobDone { namespace, name } => format!("wait Job {namespace}/{name}"),
                WaitFor::PodsReady {
                    namespace,
                    selector,
                } => format!("wait pods {namespace} {selector}"),
                WaitFor::Route(r) => format!("wait {}://{}", r.scheme, r.host),
            },
            Self::Nextest(n) => format!("nextest {}", n.filterset),
            Self::GenerateCert { hosts, .. } => format!("certificate {}", hosts.join(",")),
            Self::EnsureImage { reference } => format!("image {reference}"),
            Self::LoadImage(l) => cmd_signature(&l.direct),
            Self::WriteFile { path, .. } => format!("write {}", file_name(path)),
            Self::Reset { path, .. } => format!("reset {}", file_name(path)),
            Self::CopyIfExists { to, .. } => format!("copy {}", file_name(to)),
            Self::CheckAnnotations { strict, .. } => format!("annotations strict={strict}"),
            Self::Diagnostics { .. } => "diagnostics".into(),
            Self::Note(n) => format!("note {n}"),
        }
    }

    /// The lines `--dry-run` prints for this action.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Run(cmd) => vec![format!("$ {cmd}")],
            Self::Expect {
                cmd,
                line,
                present,
                hint,
            } => vec![format!(
                "$ {cmd}   # must {} a line {line:?}, else: {hint}",
                if *present { "print" } else { "not print" }
            )],
            Self::Download(d) => vec![
                format!(
                    "# {}: use {} if its sha256 is {}, else:",
                    d.what,
                    d.dest.display(),
                    d.sha256
                ),
                format!("$ {}", d.curl),
                format!(
                    "#   then check sha256 = {}, move to {}{}",
                    d.sha256,
                    d.dest.display(),
                    if d.executable { ", chmod 755" } else { "" }
                ),
            ],
            Self::Api(call) => vec![format!("> {call}")],
            Self::Wait { what, limit } => {
                vec![format!("~ wait up to {} s: {what}", limit.as_secs())]
            }
            Self::Nextest(n) => vec![format!("$ {}", n.cmd(NextestMode::Run))],
            Self::GenerateCert { hosts, cert, key } => vec![format!(
                "# self-signed certificate for {} (rcgen, ECDSA P-256, 365 days): {}, key {} (0600)",
                hosts.join(", "),
                cert.display(),
                key.display()
            )],
            Self::EnsureImage { reference } => vec![format!(
                "$ cargo xtask image   # {reference}: static wsgate-echo, FROM scratch; built unless up to date"
            )],
            Self::LoadImage(l) => vec![
                format!("$ {}", l.direct),
                format!("#   if that fails (containerd image store): $ {}", l.save),
                format!("#   and: $ {}", l.archive),
            ],
            Self::WriteFile { path, about, .. } => {
                vec![format!("# write {} ({about})", path.display())]
            }
            Self::Reset { path, recreate } => vec![format!(
                "$ rm -rf {}{}",
                quote(&path.to_string_lossy()),
                if *recreate {
                    format!(" && mkdir -p {}", quote(&path.to_string_lossy()))
                } else {
                    String::new()
                }
            )],
            Self::CopyIfExists { from, to } => vec![format!(
                "$ test ! -f {f} || cp {f} {t}",
                f = quote(&from.to_string_lossy()),
                t = quote(&to.to_string_lossy())
            )],
            Self::CheckAnnotations { warnings, strict } => {
                let mut v = vec![format!(
                    "# annotation values ingress-nginx ignores: {}{}",
                    warnings.len(),
                    if *strict {
                        " (--strict: any fails the run)"
                    } else {
                        " (reported; --strict fails on them)"
                    }
                )];
                v.extend(warnings.iter().map(|w| format!("#   {w}")));
                v
            }
            Self::Diagnostics { namespace, dir } => vec![format!(
                "# controller logs, events of ingress-nginx and {namespace}, Ingresses as YAML -> {}",
                dir.display()
            )],
            Self::Note(n) => vec![format!("# {n}")],
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `kubectl apply -f`: the program and its first words, without the connection flags and paths.
fn cmd_signature(cmd: &Cmd) -> String {
    let mut words = vec![cmd.name()];
    let mut skip = false;
    for a in &cmd.args {
        if std::mem::take(&mut skip) || a.starts_with('/') {
            continue;
        }
        if a == "--kubeconfig" || a == "--context" {
            skip = true;
            continue;
        }
        words.push(a.clone());
        if words.len() == 4 {
            break;
        }
    }
    words.join(" ")
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
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filterset_with_spaces_and_parentheses_is_quoted_once() {
        let n = Nextest {
            cargo: "cargo".into(),
            manifest_path: "/repo/Cargo.toml".into(),
            package: "wsgate-e2e".into(),
            profile: "ci".into(),
            filterset: "binary(cluster) | binary(plain)".into(),
            ignore_default_filter: true,
            env: vec![("WSGATE_TRUST".into(), "/a b/c.crt:/d.crt".into())],
        };
        assert_eq!(
            n.cmd(NextestMode::Run).to_string(),
            "WSGATE_TRUST='/a b/c.crt:/d.crt' cargo nextest run --manifest-path /repo/Cargo.toml \
             --package wsgate-e2e --profile ci --ignore-default-filter --filterset \
             'binary(cluster) | binary(plain)'"
        );
    }

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

    #[test]
    fn list_and_run_select_with_the_same_arguments() {
        let n = Nextest {
            cargo: "cargo".into(),
            manifest_path: "/r/Cargo.toml".into(),
            package: "p".into(),
            profile: "default".into(),
            filterset: "binary(faults)".into(),
            ignore_default_filter: true,
            env: vec![],
        };
        let run = n.cmd(NextestMode::Run).args;
        let list = n.cmd(NextestMode::List).args;
        assert_eq!(run[2..], list[2..run.len()]);
        assert_eq!(&list[run.len()..], ["--message-format", "json"]);
    }

    #[test]
    fn a_tls_secret_call_never_prints_key_material() {
        let call = ApiCall {
            verb: ApiVerb::ServerSideApply,
            target: ObjectRef::of::<k8s_openapi::api::core::v1::Secret>(Some("default"), "s"),
            body: ApiBody::TlsSecret {
                cert: "/t/c.crt".into(),
                key: "/t/c.key".into(),
            },
            webhook_retry: None,
        };
        let line = call.to_string();
        assert!(line.contains("tls.key from /t/c.key"), "{line}");
        assert!(!line.contains("PRIVATE KEY"));
    }
}
