//! Runs a plan: each action exactly as planned, steps timed, diagnostics on failure, and a
//! teardown guard so that a failure, Ctrl-C or panic never leaves a cluster behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use wsgate_cluster::Client;
use wsgate_image::{Image, ImageError};
use wsgate_probe::{Endpoint, Message, Probe, Trust};
use wsgate_wait::{Check, Wait};

use super::plan::{Plan, StepId};
use super::tools::{checksum_message, docker_message, offline_message};
use crate::action::{
    Action, ApiBody, ApiCall, ApiVerb, Cmd, Download, NextestMode, WaitFor, partial,
};
use crate::{progress, report};

/// How the executor runs what the plan cannot describe as a command line.
#[derive(Clone)]
pub struct Options {
    /// nextest steps run the tests, or (a rehearsal) only list them.
    pub nextest: NextestMode,
    /// Builds the echo image: `wsgate_image::ensure_image`, or a stand-in in a rehearsal.
    pub build_image: fn(&Path) -> Result<Image, ImageError>,
    pub root: PathBuf,
}

impl Options {
    pub fn real(root: &Path) -> Self {
        Self {
            nextest: NextestMode::Run,
            build_image: wsgate_image::ensure_image,
            root: root.to_owned(),
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Children (kind, nextest) get the same Ctrl-C and stop; the run then tears down.
        let _ = ctrlc::set_handler(|| {
            eprintln!("\ninterrupted: stopping after the current action, then tearing down");
            INTERRUPTED.store(true, Ordering::SeqCst);
        });
    });
}

/// An action failed the step, or only its tests failed (the run goes on to the next step).
enum Ran {
    Done,
    TestsFailed(String),
}

/// Teardown owned by a guard: once armed, dropping it (early return, panic) runs the teardown
/// commands. A normal run disarms it and runs teardown as its last step.
struct TeardownGuard<'a> {
    actions: &'a [Action],
    armed: bool,
}

impl TeardownGuard<'_> {
    fn fire(&mut self) -> Vec<anyhow::Error> {
        self.armed = false;
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Run(cmd) => {
                    eprintln!("  $ {cmd}");
                    cmd.run().err().map(anyhow::Error::from)
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for TeardownGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            eprintln!("tearing down after an early exit");
            for e in self.fire() {
                eprintln!("  teardown failed: {e:#}");
            }
        }
    }
}

struct Exec<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    notes: Vec<String>,
}

/// What a run did: printed as the report, and an error when anything failed.
pub fn run(plan: &Plan, opts: &Options) -> anyhow::Result<()> {
    install_ctrlc();
    let mut exec = Exec {
        plan,
        opts,
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        client: None,
        notes: plan.notes.clone(),
    };
    let teardown = plan
        .steps
        .iter()
        .find(|s| s.id == StepId::Teardown)
        .map(|s| s.actions.as_slice())
        .unwrap_or_default();
    let mut guard = TeardownGuard {
        actions: teardown,
        armed: false,
    };
    let total = plan.steps.len();
    let mut timings = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut test_failures = Vec::new();
    // Whether anything exists that teardown must remove (and diagnostics can look at).
    let mut reached_cluster = false;
    for (i, step) in plan.steps.iter().enumerate() {
        let title = step.id.title();
        if step.id == StepId::Teardown {
            if !reached_cluster {
                eprintln!("[{:>2}/{total}] {title}: nothing was created", i + 1);
                continue;
            }
            if failure.is_some() || !test_failures.is_empty() {
                exec.diagnostics();
            }
            guard.armed = false;
        } else if failure.is_some() || INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("[{:>2}/{total}] {title}: skipped", i + 1);
            continue;
        }
        eprintln!("[{:>2}/{total}] {title}", i + 1);
        let start = Instant::now();
        for (a, action) in step.actions.iter().enumerate() {
            if step.arms_teardown == Some(a) {
                guard.armed = true;
                reached_cluster = true;
            }
            for line in action.lines() {
                eprintln!("  {line}");
            }
            match exec.action(action) {
                Ok(Ran::Done) => {}
                Ok(Ran::TestsFailed(why)) => {
                    eprintln!("  FAILED: {why}");
                    test_failures.push(format!("step {} `{title}`: {why}", i + 1));
                }
                Err(e) => {
                    eprintln!("  FAILED: {e:#}");
                    if failure.is_none() {
                        failure = Some(e.context(format!("step {} `{title}` failed", i + 1)));
                    }
                    break;
                }
            }
            if INTERRUPTED.load(Ordering::SeqCst) && step.id != StepId::Teardown {
                failure.get_or_insert_with(|| anyhow!("interrupted during step `{title}`"));
                break;
            }
        }
        timings.push((title.to_owned(), start.elapsed()));
    }
    drop(guard);
    let rows = wsgate_e2e::report::read_rows(&plan.rows());
    report::write(&plan.work, &rows, &timings, &exec.notes)?;
    if let Some(e) = failure {
        return Err(e);
    }
    if !test_failures.is_empty() {
        bail!("tests failed: {}", test_failures.join("; "));
    }
    Ok(())
}

impl Exec<'_> {
    fn client(&mut self) -> anyhow::Result<Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = self.rt.block_on(wsgate_cluster::connect(
            &self.plan.kubeconfig,
            self.plan.context.as_deref(),
        ))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    fn diagnostics(&mut self) {
        eprintln!("on failure: diagnostics");
        for action in &self.plan.on_failure {
            for line in action.lines() {
                eprintln!("  {line}");
            }
            if let Err(e) = self.action(action) {
                let note = format!("diagnostics incomplete: {e:#}");
                eprintln!("  {note}");
                self.notes.push(note);
            }
        }
        if let Some(Action::Diagnostics { dir, .. }) = self.plan.on_failure.first() {
            self.notes.push(format!("diagnostics: {}", dir.display()));
        }
    }

    fn action(&mut self, action: &Action) -> anyhow::Result<Ran> {
        match action {
            Action::Run(cmd) => {
                if let Some(dir) = cmd.stdout.as_ref().and_then(|p| p.parent()) {
                    create_dir(dir)?;
                }
                run_checked(cmd)?;
            }
            Action::Expect {
                cmd,
                line,
                present,
                hint,
            } => {
                let out = cmd.output()?;
                if out.lines().any(|l| l.trim() == line) != *present {
                    bail!("{hint}");
                }
            }
            Action::Download(d) => download(d)?,
            Action::Api(call) => {
                let client = self.client()?;
                self.rt.block_on(api_call(&client, call))?;
            }
            Action::Wait { what, limit } => {
                let client = match what {
                    WaitFor::Route(_) => None,
                    _ => Some(self.client()?),
                };
                let label = what.to_string();
                self.rt.block_on(progress::show(
                    &label,
                    *limit,
                    wait(client.as_ref(), what, *limit),
                ))?;
            }
            Action::Nextest(n) => {
                let cmd = n.cmd(self.opts.nextest);
                return Ok(match self.opts.nextest {
                    NextestMode::Run => match cmd.run() {
                        Ok(()) => Ran::Done,
                        Err(e) => Ran::TestsFailed(format!("{e}")),
                    },
                    NextestMode::List => match cmd.output() {
                        Ok(json) => {
                            let selected = count_selected(&json)?;
                            eprintln!("  listed {selected} tests");
                            if selected == 0 {
                                Ran::TestsFailed("selects no test".into())
                            } else {
                                Ran::Done
                            }
                        }
                        Err(e) => Ran::TestsFailed(format!("{e}")),
                    },
                });
            }
            Action::GenerateCert { hosts, cert, key } => {
                let material = wsgate_tls::TlsMaterial::self_signed(hosts)?;
                let dir = cert.parent().context("certificate path has a directory")?;
                create_dir(dir)?;
                let stem = cert
                    .file_stem()
                    .context("certificate path has a file name")?;
                let files = material.write_to(dir, &stem.to_string_lossy())?;
                anyhow::ensure!(
                    files.cert == *cert && files.key == *key,
                    "certificate written to {} / {}, planned {} / {}",
                    files.cert.display(),
                    files.key.display(),
                    cert.display(),
                    key.display()
                );
            }
            Action::EnsureImage { reference } => {
                let image = (self.opts.build_image)(&self.opts.root)?;
                anyhow::ensure!(
                    image.reference() == *reference,
                    "the image built is {}, the plan named {reference} (did HEAD change during the run?)",
                    image.reference()
                );
                let note = format!(
                    "echo image {} ({:.1} MB, {}; {})",
                    image.reference(),
                    image.size as f64 / 1e6,
                    if image.built { "built" } else { "up to date" },
                    image.builder
                );
                eprintln!("  {note}");
                self.notes.push(note);
            }
            Action::LoadImage(l) => {
                let used = match run_checked(&l.direct) {
                    Ok(()) => format!("loaded with `{}`", l.direct),
                    Err(e) => {
                        eprintln!("  {e:#}; falling back to an image archive");
                        run_checked(&l.save)?;
                        run_checked(&l.archive)?;
                        format!(
                            "`kind load docker-image` failed ({e}); loaded with `docker save` + `kind load image-archive`"
                        )
                    }
                };
                self.notes.push(format!("echo image {used}"));
            }
            Action::WriteFile { path, contents, .. } => {
                if let Some(dir) = path.parent() {
                    create_dir(dir)?;
                }
                std::fs::write(path, contents)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Action::Reset { path, recreate } => {
                let gone = if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
                match gone {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("removing {}", path.display()));
                    }
                    _ => {}
                }
                if *recreate {
                    create_dir(path)?;
                }
            }
            Action::CopyIfExists { from, to } => {
                if from.is_file() {
                    std::fs::copy(from, to).with_context(|| {
                        format!("copying {} to {}", from.display(), to.display())
                    })?;
                } else {
                    self.notes
                        .push(format!("no {} was written", from.display()));
                }
            }
            Action::CheckAnnotations { warnings, strict } => {
                for w in warnings {
                    self.notes.push(format!("warning: {w}"));
                }
                if *strict && !warnings.is_empty() {
                    bail!(
                        "--strict: {} annotation value(s) that ingress-nginx would ignore:\n{}",
                        warnings.len(),
                        warnings.join("\n")
                    );
                }
            }
            Action::Diagnostics { namespace, dir } => {
                let client = self.client()?;
                self.rt
                    .block_on(wsgate_cluster::collect_diagnostics(&client, namespace, dir))?;
            }
            Action::Note(_) => {}
        }
        Ok(Ran::Done)
    }
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Runs a command; a docker that cannot reach its daemon gets the message that says what to do.
fn run_checked(cmd: &Cmd) -> anyhow::Result<()> {
    match cmd.run() {
        Err(e) if cmd.name() == "docker" && cmd.args.first().is_some_and(|a| a == "version") => {
            Err(anyhow!(docker_message(&e.to_string())))
        }
        other => Ok(other?),
    }
}

fn download(d: &Download) -> anyhow::Result<()> {
    if d.dest.is_file() && wsgate_image::sha256_file(&d.dest)? == d.sha256 {
        eprintln!("  {} is already there and intact", d.dest.display());
        return Ok(());
    }
    if let Some(dir) = d.dest.parent() {
        create_dir(dir)?;
    }
    let url = d.curl.args.last().cloned().unwrap_or_default();
    let tmp = partial(&d.dest);
    let out = d.curl.command().output();
    let out = match out {
        Ok(o) => o,
        Err(_) => bail!(offline_message(&d.what, &url, None, "")),
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(offline_message(
            &d.what,
            &url,
            out.status.code(),
            &String::from_utf8_lossy(&out.stderr)
        ));
    }
    let got = wsgate_image::sha256_file(&tmp)?;
    if got != d.sha256 {
        let _ = std::fs::remove_file(&tmp);
        bail!(checksum_message(&d.what, &url, &d.sha256, &got));
    }
    std::fs::rename(&tmp, &d.dest)
        .with_context(|| format!("moving the download to {}", d.dest.display()))?;
    if d.executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d.dest, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

async fn api_call(client: &Client, call: &ApiCall) -> anyhow::Result<()> {
    let body = match &call.body {
        ApiBody::Json(v) => v.clone(),
        ApiBody::TlsSecret { cert, key } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let secret = wsgate_manifests::tls_secret(
                &call.target.name,
                call.target.namespace.as_deref().unwrap_or_default(),
                &read(cert)?,
                &read(key)?,
            );
            wsgate_cluster::apply_body(&secret, call.target.namespace.as_deref())
        }
    };
    match (call.verb, call.webhook_retry) {
        (ApiVerb::ServerSideApply, Some(limit)) => {
            wsgate_cluster::apply_when_webhook_answers(client, &call.target, &body, limit).await?;
        }
        (ApiVerb::ServerSideApply, None) => {
            wsgate_cluster::server_side_apply(client, &call.target, &body).await?;
        }
        (ApiVerb::MergePatch, _) => {
            wsgate_cluster::merge_patch(client, &call.target, &body).await?;
        }
    }
    Ok(())
}

async fn wait(client: Option<&Client>, what: &WaitFor, limit: Duration) -> anyhow::Result<()> {
    match what {
        WaitFor::JobDone { namespace, name } => {
            let client = client.context("a cluster client")?;
            wsgate_cluster::wait_job_done(client, namespace, name, limit).await?;
        }
        WaitFor::PodsReady {
            namespace,
            selector,
        } => {
            let client = client.context("a cluster client")?;
            wsgate_cluster::wait_pods_ready(client, namespace, selector, limit).await?;
        }
        WaitFor::Route(route) => {
            let mut trust = Vec::new();
            for p in &route.trust {
                trust.push(
                    CertificateDer::from_pem_file(p)
                        .with_context(|| format!("reading certificate {}", p.display()))?,
                );
            }
            let probe = Probe::new(
                Endpoint::new(route.scheme, route.addr.clone(), route.host.clone()),
                Trust::Certificates(trust),
            )
            .with_connect_timeout(Duration::from_secs(5));
            let probe = &probe;
            let start = Instant::now();
            Wait::new(what.to_string(), limit)
                .every(Duration::from_secs(1))
                .until(move || async move {
                    let attempt = async {
                        let mut s = probe.connect().await?;
                        s.echo(Message::text("route check")).await?;
                        s.close().await;
                        Ok::<_, wsgate_probe::ProbeError>(())
                    };
                    match attempt.await {
                        Ok(()) => Check::Done(()),
                        Err(e) => Check::Pending(e.to_string()),
                    }
                })
                .await?;
            eprintln!(
                "  {} routes after {} ms",
                probe.endpoint().url(),
                start.elapsed().as_millis()
            );
        }
    }
    Ok(())
}

/// How many tests a `cargo nextest list --message-format json` output selects.
pub fn count_selected(json: &str) -> anyhow::Result<usize> {
    Ok(selected_tests(json)?.len())
}

/// The tests (`binary::name`) a `cargo nextest list --message-format json` output selects.
pub fn selected_tests(json: &str) -> anyhow::Result<Vec<String>> {
    Ok(listed_tests(json)?
        .into_iter()
        .filter(|(_, selected)| *selected)
        .map(|(name, _)| name)
        .collect())
}

/// Every test (`binary::name`) a `cargo nextest list --message-format json` output names, and
/// whether the filters select it.
pub fn listed_tests(json: &str) -> anyhow::Result<Vec<(String, bool)>> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("reading `cargo nextest list` JSON")?;
    let suites = v
        .get("rust-suites")
        .and_then(|s| s.as_object())
        .context("`cargo nextest list` JSON has no rust-suites")?;
    let mut out = Vec::new();
    for suite in suites.values() {
        let binary = suite
            .get("binary-name")
            .and_then(|b| b.as_str())
            .unwrap_or("?");
        for (name, case) in suite
            .get("testcases")
            .and_then(|t| t.as_object())
            .into_iter()
            .flatten()
        {
            let selected = case
                .pointer("/filter-match/status")
                .and_then(|s| s.as_str())
                == Some("matches");
            out.push((format!("{binary}::{name}"), selected));
        }
    }
    out.sort();
    Ok(out)
}
