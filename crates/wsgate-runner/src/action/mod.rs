//! Typed actions: what a step does, as values. `--dry-run` prints these values and the executor
//! runs these values, so the printed plan cannot drift from what runs.
//!
//! Printed lines start with `$` when they are shell commands (shell-quoted: paste one and it
//! does the same), `>` for Kubernetes API calls, `~` for waits with their deadline, and `#`
//! for work done in-process (with what it is equivalent to).

mod api;
mod cmd;
mod nextest;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use api::{ApiBody, ApiCall, ApiVerb, IMAGE_ID_ANNOTATION, Route, RouteAnswer, WaitFor};
pub use cmd::{ActionError, Cmd, Download, partial, quote, shell_line};
pub use nextest::{Listed, Nextest, NextestMode, listed};

/// Loading the echo image into kind: `kind load docker-image`, and when that fails (Docker's
/// containerd image store, kind#3795), `docker save` + `kind load image-archive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadImage {
    pub direct: Cmd,
    /// `docker save --platform`: only this platform's content (the fix for kind#3795).
    pub save: Cmd,
    /// `docker save` without `--platform`, for engines older than 28 (API 1.48), which lack it.
    pub save_any_platform: Cmd,
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
    /// A self-signed certificate for `hosts` (rcgen, [`wsgate_tls::VALIDITY_DAYS`]; key file 0600).
    GenerateCert {
        hosts: Vec<String>,
        cert: PathBuf,
        key: PathBuf,
    },
    /// The echo image (static binary for `target`, FROM scratch), built unless up to date.
    EnsureImage {
        reference: String,
        target: wsgate_image::BinaryBuild,
    },
    /// A tool at least this version, else the run stops with `hint`.
    RequireVersion {
        cmd: Cmd,
        at_least: String,
        hint: String,
    },
    /// Nothing may answer on these addresses (the kind node's host ports are to take them).
    PortsFree {
        addrs: Vec<String>,
        hint: String,
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
    IgnoredAnnotations {
        warnings: Vec<String>,
        strict: bool,
    },
    /// Controller logs, events and Ingresses written to `dir`.
    Diagnostics {
        namespace: String,
        dir: PathBuf,
    },
    /// None of these objects may exist unless an earlier wsgate run applied them: on a shared
    /// cluster the run must not change, nor its teardown delete, what belongs to someone else.
    ExpectAbsent {
        targets: Vec<wsgate_cluster::ObjectRef>,
        hint: String,
        /// How long one being deleted is waited for.
        limit: Duration,
    },
    /// Nothing to do, and why.
    Note(String),
    /// Every rule of a team's own manifests checked through the ingress, rows written to `rows`.
    CheckRules(CheckRules),
}

/// The checks of `--manifests` on a cluster: every Ingress rule through the ingress address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRules {
    /// The rules with a URL to dial (not regex paths), as the plan worked them out.
    pub rules: Vec<wsgate_manifests::Rule>,
    pub http: String,
    pub https: String,
    /// PEM certificates the TLS hosts must present (besides the manifests' own Secrets).
    pub trust: Vec<PathBuf>,
    pub max_idle: Duration,
    /// The backends echo: echo checks run too.
    pub echo: bool,
    pub tier: String,
    pub rows: PathBuf,
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
                    ApiVerb::Delete => "delete",
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
                WaitFor::DeploymentAvailable { namespace, name } => {
                    format!("wait Deployment {namespace}/{name}")
                }
                WaitFor::RolloutComplete { namespace, name } => {
                    format!("wait rollout {namespace}/{name}")
                }
                WaitFor::NodesReady => "wait nodes".into(),
                WaitFor::Exists(t) => format!("wait exists {t}"),
            },
            Self::Nextest(n) => format!("nextest {}", n.filterset),
            Self::GenerateCert { hosts, .. } => format!("certificate {}", hosts.join(",")),
            Self::EnsureImage { reference, target } => {
                format!("image {reference} {}", target.platform)
            }
            Self::RequireVersion { cmd, at_least, .. } => {
                format!("{} >= {at_least}", cmd_signature(cmd))
            }
            Self::PortsFree { addrs, .. } => format!("ports free {}", addrs.join(",")),
            Self::LoadImage(l) => cmd_signature(&l.direct),
            Self::WriteFile { path, .. } => format!("write {}", file_name(path)),
            Self::Reset { path, .. } => format!("reset {}", file_name(path)),
            Self::CopyIfExists { to, .. } => format!("copy {}", file_name(to)),
            Self::IgnoredAnnotations { strict, .. } => format!("annotations strict={strict}"),
            Self::Diagnostics { .. } => "diagnostics".into(),
            Self::Note(n) => format!("note {n}"),
            Self::ExpectAbsent { targets, .. } => format!("absent {}", targets.len()),
            Self::CheckRules(c) => format!("check rules {}", rule_targets(c)),
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
                "# self-signed certificate for {} (rcgen, ECDSA P-256, {} days): {}, key {} (0600)",
                hosts.join(", "),
                wsgate_tls::VALIDITY_DAYS,
                cert.display(),
                key.display()
            )],
            Self::EnsureImage { reference, target } => vec![format!(
                "$ cargo xtask image --platform {p}   # {reference}: static wsgate-echo for {p} (cargo build --release --target {}{}), FROM scratch; built unless up to date",
                target.triple,
                target
                    .linker
                    .map(|l| format!(", linked by {l}"))
                    .unwrap_or_default(),
                p = target.platform,
            )],
            Self::RequireVersion {
                cmd,
                at_least,
                hint,
            } => vec![format!(
                "$ {cmd}   # must print version {at_least} or later, else: {hint}"
            )],
            Self::PortsFree { addrs, hint } => vec![format!(
                "~ nothing may answer on {} (else: {hint})",
                addrs.join(" or ")
            )],
            Self::LoadImage(l) => vec![
                format!("$ {}", l.direct),
                format!("#   if that fails (containerd image store): $ {}", l.save),
                format!(
                    "#   or, on Docker before 28 (no --platform): $ {}",
                    l.save_any_platform
                ),
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
            Self::IgnoredAnnotations { warnings, strict } => {
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
            Self::ExpectAbsent {
                targets,
                hint,
                limit,
            } => {
                let mut v = vec![format!(
                    "~ GET each: none may exist unless only wsgate applied it (else: {hint}); one being deleted is waited for, up to {} s",
                    limit.as_secs()
                )];
                v.extend(targets.iter().map(|t| format!("#   {}", t.path())));
                v
            }
            Self::CheckRules(c) => vec![format!(
                "# check {} via {} (ws) and {} (wss): handshake, ping/pong liveness, {}idle (up to {} s), traffic; rows to {}",
                rule_targets(c),
                c.http,
                c.https,
                if c.echo { "echo, " } else { "" },
                c.max_idle.as_secs(),
                c.rows.display()
            )],
        }
    }
}

/// `chat.example.org/chat (read 4 s (annotation)), ...`: the rules a `CheckRules` checks.
fn rule_targets(c: &CheckRules) -> String {
    c.rules
        .iter()
        .map(|r| format!("{} (read {})", r.target(), r.timeouts.read))
        .collect::<Vec<_>>()
        .join(", ")
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
