//! One action of each kind, run exactly as the plan holds it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use wsgate_cluster::Client;
use wsgate_probe::{Endpoint, Message, Probe, Trust};
use wsgate_wait::{Check, Wait};

use super::{Exec, Ran};
use crate::action::{
    Action, ApiBody, ApiCall, ApiVerb, Cmd, Download, IMAGE_ID_ANNOTATION, NextestMode, WaitFor,
    partial,
};
use crate::progress;
use crate::tools::{checksum_message, docker_message, offline_message};

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

    pub(super) fn diagnostics(&mut self) {
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

    pub(super) fn action(&mut self, action: &Action) -> anyhow::Result<Ran> {
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
                        Err(e) => match crate::exit::nextest_exit(e.exit_code()) {
                            crate::exit::Exit::PromiseFailed => Ran::TestsFailed(format!("{e}")),
                            _ => Ran::TestsUnjudged(format!("{e}")),
                        },
                    },
                    NextestMode::List => match cmd.output() {
                        Ok(json) => {
                            let selected = crate::action::listed(&json)?
                                .iter()
                                .filter(|t| t.selected)
                                .count();
                            eprintln!("  listed {selected} tests");
                            if selected == 0 {
                                Ran::TestsUnjudged("selects no test".into())
                            } else {
                                Ran::Done
                            }
                        }
                        Err(e) => Ran::TestsUnjudged(format!("{e}")),
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
            Action::EnsureImage { reference, target } => {
                let image = (self.opts.build_image)(&self.opts.root, target)?;
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
                        let save = match run_checked(&l.save) {
                            Ok(()) => "docker save --platform",
                            Err(platform) => {
                                // Docker before 28 (API 1.48) has no --platform; its classic
                                // image store holds one platform anyway.
                                eprintln!("  {platform:#}; saving without --platform");
                                run_checked(&l.save_any_platform)?;
                                "docker save"
                            }
                        };
                        run_checked(&l.archive)?;
                        format!(
                            "`kind load docker-image` failed ({e}); loaded with `{save}` + `kind load image-archive`"
                        )
                    }
                };
                self.notes.push(format!("echo image {used}"));
            }
            Action::RequireVersion {
                cmd,
                at_least,
                hint,
            } => {
                let printed = cmd.output().map_err(|e| anyhow!("{e}; {hint}"))?;
                let version = printed.split_whitespace().nth(1).unwrap_or_default();
                if !version_at_least(version, at_least) {
                    bail!(
                        "`{cmd}` printed {:?}: version {at_least} or later is needed; {hint}",
                        printed.trim()
                    );
                }
                eprintln!("  {}", printed.lines().next().unwrap_or_default());
            }
            Action::PortsFree { addrs, hint } => {
                let taken: Vec<&String> = addrs.iter().filter(|a| answers(a)).collect();
                if !taken.is_empty() {
                    bail!(
                        "something already answers on {}: {hint}",
                        taken
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    );
                }
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
            Action::IgnoredAnnotations { warnings, strict } => {
                for w in warnings {
                    self.notes.push(format!("warning: {w}"));
                }
                if *strict && !warnings.is_empty() {
                    return Err(crate::exit::BadInput(format!(
                        "--strict: {} annotation value(s) that ingress-nginx would ignore:\n{}",
                        warnings.len(),
                        warnings.join("\n")
                    ))
                    .into());
                }
            }
            Action::Diagnostics { namespace, dir } => {
                let client = self.client()?;
                self.rt
                    .block_on(wsgate_cluster::collect_diagnostics(&client, namespace, dir))?;
            }
            Action::Note(_) => {}
            Action::ExpectAbsent {
                targets,
                hint,
                limit,
            } => {
                let client = self.client()?;
                let foreign = self
                    .rt
                    .block_on(wsgate_cluster::foreign_objects(&client, targets, *limit))?;
                if !foreign.is_empty() {
                    bail!(
                        "already on the cluster and not applied by wsgate: {}; {hint}",
                        foreign.join(", ")
                    );
                }
            }
            Action::CheckRules(c) => {
                let rows = self.rt.block_on(crate::workload::check_on_cluster(c))?;
                let failed = wsgate_report::failures(&rows);
                if !failed.is_empty() {
                    return Ok(Ran::TestsFailed(format!(
                        "{} of {} checks failed: {}",
                        failed.len(),
                        rows.len(),
                        failed.join("; ")
                    )));
                }
            }
        }
        Ok(Ran::Done)
    }
}

/// Whether `a` (`dotted.numbers`, a leading `v` and any `-suffix` ignored) is at least `b`.
pub fn version_at_least(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Option<Vec<u64>> {
        let v = v.trim().trim_start_matches('v');
        let v = v.split(['-', '+', ' ']).next().unwrap_or_default();
        v.split('.').map(|p| p.parse().ok()).collect()
    };
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

/// Whether anything accepts a TCP connection on `addr` within a moment.
fn answers(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
    })
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
    if call.verb == ApiVerb::Delete {
        let was = wsgate_cluster::delete_object(client, &call.target).await?;
        eprintln!(
            "  {} {}",
            call.target,
            if was { "deleted" } else { "was not there" }
        );
        return Ok(());
    }
    let body = match &call.body {
        ApiBody::Json(v) => v.clone(),
        ApiBody::None => serde_json::Value::Null,
        ApiBody::WithImageId { body, inspect } => {
            let id = inspect.output()?.trim().to_owned();
            anyhow::ensure!(!id.is_empty(), "`{inspect}` printed no image ID");
            let mut body = body.clone();
            body["spec"]["template"]["metadata"]["annotations"][IMAGE_ID_ANNOTATION] = id.into();
            body
        }
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
        (ApiVerb::Delete, _) => unreachable!("handled above"),
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
        WaitFor::DeploymentAvailable { namespace, name } => {
            let client = client.context("a cluster client")?;
            wsgate_cluster::wait_deployment_available(client, namespace, name, limit).await?;
        }
        WaitFor::RolloutComplete { namespace, name } => {
            let client = client.context("a cluster client")?;
            wsgate_cluster::wait_rollout_of_current(client, namespace, name, limit).await?;
        }
        WaitFor::NodesReady => {
            let client = client.context("a cluster client")?;
            let n = wsgate_cluster::wait_nodes_ready(client, limit).await?;
            eprintln!("  {n} Node(s) Ready");
        }
        WaitFor::Exists(target) => {
            let client = client.context("a cluster client")?;
            wsgate_cluster::wait_exists(client, target, limit).await?;
        }
        WaitFor::Route(route) => {
            let mut trust = Vec::new();
            for p in &route.trust {
                trust.extend(
                    wsgate_probe::pem_file_certificates(p)
                        .with_context(|| format!("reading certificates from {}", p.display()))?,
                );
            }
            let probe = Probe::new(
                Endpoint::new(route.scheme, route.addr.clone(), route.host.clone())
                    .with_path(&route.path),
                Trust::Certificates(trust),
            )
            .with_connect_timeout(Duration::from_secs(5));
            let (probe, echo) = (&probe, route.echo);
            let start = Instant::now();
            Wait::new(what.to_string(), limit)
                .every(Duration::from_secs(1))
                .until(move || async move {
                    let attempt = async {
                        let mut s = probe.connect().await?;
                        if echo {
                            s.echo(Message::text("route check")).await?;
                        }
                        s.close().await;
                        Ok::<_, wsgate_probe::ProbeError>(())
                    };
                    match attempt.await {
                        Ok(()) => Check::Done(()),
                        // A backend that is no WebSocket server refused the upgrade itself.
                        Err(e) if route.accepts(&e) => Check::Done(()),
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

#[cfg(test)]
mod tests {
    use super::version_at_least;

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert!(version_at_least("0.9.151", "0.9.77"));
        assert!(version_at_least("0.9.77", "0.9.77"));
        assert!(version_at_least("v1.10.0-rc.1", "1.9"));
        assert!(!version_at_least("0.9.76", "0.9.77"));
        assert!(!version_at_least("0.9.8", "0.9.77"));
        assert!(!version_at_least("", "0.9.77"));
        assert!(!version_at_least("unknown", "0.9.77"));
    }
}
