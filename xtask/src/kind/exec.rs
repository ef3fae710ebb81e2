//! Runs the plan: each step timed, diagnostics on failure, teardown always (unless --keep).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use wsgate_cluster::{ADMISSION_JOBS, CONTROLLER_SELECTOR, Client, INGRESS_NGINX_NAMESPACE};
use wsgate_e2e::Phase;
use wsgate_e2e::target::{TlsSetup, VARIANTS_TLS_SECRET};
use wsgate_manifests::{DOCUMENTED_TLS_PATCH, Documented, tls_patch};
use wsgate_probe::{Endpoint, Message, Probe, Scheme, Trust};

use super::plan::{EchoImage, Mode, Plan, Step};
use super::{pins, prereq};
use crate::suite;

const CONTROLLER_DEADLINE: Duration = Duration::from_secs(240);
const WEBHOOK_DEADLINE: Duration = Duration::from_secs(120);
const ROUTE_DEADLINE: Duration = Duration::from_secs(120);

struct Run {
    plan: Plan,
    rt: tokio::runtime::Runtime,
    tools: Option<prereq::Tools>,
    client: Option<Client>,
    image: Option<String>,
    trust_files: Vec<PathBuf>,
    trust: Vec<rustls_pki_types::CertificateDer<'static>>,
    created_cluster: bool,
    test_failures: Vec<String>,
    notes: Vec<String>,
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("  + {}", suite::show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    anyhow::ensure!(
        status.success(),
        "`{}` failed with {status}",
        suite::show(cmd)
    );
    Ok(())
}

impl Run {
    fn kubectl(&self) -> Command {
        let tools = self.tools.as_ref().expect("prerequisites ran");
        let mut c = Command::new(&tools.kubectl);
        c.arg("--kubeconfig").arg(&self.plan.kubeconfig);
        if let Some(ctx) = &self.plan.args.context {
            c.args(["--context", ctx]);
        }
        c
    }

    fn kind(&self) -> Command {
        Command::new(&self.tools.as_ref().expect("prerequisites ran").kind)
    }

    fn client(&mut self) -> anyhow::Result<Client> {
        if self.client.is_none() {
            let client = self.rt.block_on(wsgate_cluster::connect(
                &self.plan.kubeconfig,
                self.plan.args.context.as_deref(),
            ))?;
            self.client = Some(client);
        }
        Ok(self.client.clone().expect("set above"))
    }

    fn step(&mut self, step: Step) -> anyhow::Result<()> {
        match step {
            Step::Prerequisites => self.prerequisites(),
            Step::Cluster => self.cluster(),
            Step::IngressNginx => self.ingress_nginx(),
            Step::EchoImage => self.echo_image(),
            Step::Manifests => self.manifests(),
            Step::WaitRoutes(phase) => self.wait_routes(phase),
            Step::Tests(phase) => self.run_tests(phase, Plan::test_filter(phase), phase.as_str()),
            Step::Tls => self.tls(),
            Step::Faults => self.run_tests(Phase::Tls, Plan::FAULTS_FILTER, "faults"),
            Step::Teardown => self.teardown(),
        }
    }

    fn prerequisites(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        self.tools = Some(prereq::check(
            &self.plan.tools_dir(),
            self.plan.mode == Mode::Kind,
        )?);
        eprintln!(
            "  prerequisites checked in {} ms",
            start.elapsed().as_millis()
        );
        let warnings = self
            .plan
            .annotation_warnings(&Documented::shipped()?.ingress);
        for w in &warnings {
            eprintln!("  warning: {w}");
            self.notes.push(format!("warning: {w}"));
        }
        self.plan.check_strict(&warnings)?;
        Ok(())
    }

    fn cluster(&mut self) -> anyhow::Result<()> {
        let name = self.plan.args.name.clone();
        std::fs::create_dir_all(&self.plan.work)?;
        let existing = self
            .kind()
            .arg("get")
            .arg("clusters")
            .output()
            .context("running `kind get clusters`")?;
        let exists = String::from_utf8_lossy(&existing.stdout)
            .lines()
            .any(|l| l.trim() == name);
        if self.plan.args.reuse {
            anyhow::ensure!(
                exists,
                "--reuse: there is no kind cluster named {name:?} (`kind get clusters`)"
            );
            return run_cmd(
                self.kind()
                    .args(["export", "kubeconfig", "--name", &name])
                    .arg("--kubeconfig")
                    .arg(&self.plan.kubeconfig),
            );
        }
        anyhow::ensure!(
            !exists,
            "a kind cluster named {name:?} already exists: pass --reuse to use it, --name for another, or delete it with `kind delete cluster --name {name}`"
        );
        let template =
            std::fs::read_to_string(crate::workspace_root().join("manifests/kind-config.yaml"))
                .context("reading manifests/kind-config.yaml")?;
        let config = super::plan::kind_config(
            &template,
            self.plan.args.http_port,
            self.plan.args.https_port,
        )?;
        std::fs::write(self.plan.kind_config(), config)?;
        // Mark the cluster ours before creating it, so a failure half-way still tears it down.
        self.created_cluster = true;
        run_cmd(
            self.kind()
                .args([
                    "create",
                    "cluster",
                    "--name",
                    &name,
                    "--image",
                    pins::KIND_NODE_IMAGE,
                    "--config",
                ])
                .arg(self.plan.kind_config())
                .arg("--kubeconfig")
                .arg(&self.plan.kubeconfig)
                .args(["--wait", "120s"]),
        )
    }

    fn ingress_nginx(&mut self) -> anyhow::Result<()> {
        let file = self.plan.manifest_cache();
        let pin = pins::INGRESS_NGINX_KIND_MANIFEST;
        let cached_ok =
            file.is_file() && wsgate_image::sha256_file(&file).ok().as_deref() == Some(pin.sha256);
        if !cached_ok {
            prereq::download(&pin, &file)?;
        }
        run_cmd(self.kubectl().arg("apply").arg("-f").arg(&file))?;
        let client = self.client()?;
        self.rt.block_on(async {
            for job in ADMISSION_JOBS {
                wsgate_cluster::wait_job_done(
                    &client,
                    INGRESS_NGINX_NAMESPACE,
                    job,
                    CONTROLLER_DEADLINE,
                )
                .await?;
                eprintln!("  Job {INGRESS_NGINX_NAMESPACE}/{job} complete");
            }
            wsgate_cluster::wait_pods_ready(
                &client,
                INGRESS_NGINX_NAMESPACE,
                CONTROLLER_SELECTOR,
                CONTROLLER_DEADLINE,
            )
            .await?;
            eprintln!("  controller pod Running and Ready");
            anyhow::Ok(())
        })
    }

    fn echo_image(&mut self) -> anyhow::Result<()> {
        let image = wsgate_image::ensure_image(&crate::workspace_root())?;
        eprintln!(
            "  {} ({:.1} MB)",
            image.reference(),
            image.size as f64 / 1e6
        );
        run_cmd(self.kind().args([
            "load",
            "docker-image",
            &image.reference(),
            "--name",
            &self.plan.args.name,
        ]))?;
        self.image = Some(image.reference());
        Ok(())
    }

    fn manifests(&mut self) -> anyhow::Result<()> {
        let ns = self.plan.namespace.clone();
        if ns != wsgate_manifests::DOCUMENTED_NAMESPACE {
            let file = self.plan.work.join("namespace.yaml");
            std::fs::create_dir_all(&self.plan.work)?;
            std::fs::write(
                &file,
                format!(
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    app.kubernetes.io/managed-by: wsgate\n"
                ),
            )?;
            run_cmd(self.kubectl().arg("apply").arg("-f").arg(&file))?;
        }
        let documented = Documented::shipped()?;
        let mut deployment: Deployment = documented.deployment.clone();
        if let (EchoImage::Built, Some(image)) = (self.plan.echo_image, &self.image) {
            let spec = deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .expect("checked when loaded");
            spec.containers[0].image = Some(image.clone());
        }
        let client = self.client()?;
        let ingresses: Vec<_> = self
            .plan
            .variants
            .iter()
            .map(|v| v.ingress(&documented.ingress))
            .collect();
        self.rt.block_on(async {
            wsgate_cluster::apply(&client, &ns, &deployment).await?;
            wsgate_cluster::apply(&client, &ns, &documented.service).await?;
            for ing in &ingresses {
                wsgate_cluster::apply_ingress(&client, &ns, ing, WEBHOOK_DEADLINE).await?;
                eprintln!(
                    "  applied Ingress {ns}/{}",
                    ing.metadata.name.as_deref().unwrap_or_default()
                );
            }
            anyhow::Ok(())
        })
    }

    fn wait_routes(&mut self, phase: Phase) -> anyhow::Result<()> {
        let (scheme, addr) = match phase {
            Phase::Plain => (Scheme::Ws, self.plan.http_addr.clone()),
            Phase::Tls => (Scheme::Wss, self.plan.https_addr.clone()),
        };
        let trust = Trust::Certificates(self.trust.clone());
        let variants = self.plan.variants.clone();
        self.rt.block_on(async {
            for v in &variants {
                let probe = Probe::new(
                    Endpoint::new(scheme, addr.clone(), v.host.clone()),
                    trust.clone(),
                )
                .with_connect_timeout(Duration::from_secs(5));
                let start = Instant::now();
                loop {
                    let attempt = async {
                        let mut s = probe.connect().await?;
                        s.echo(Message::text("route check")).await?;
                        s.close().await;
                        Ok::<_, wsgate_probe::ProbeError>(())
                    };
                    match attempt.await {
                        Ok(()) => {
                            eprintln!(
                                "  {} routes after {} ms",
                                probe.endpoint().url(),
                                start.elapsed().as_millis()
                            );
                            break;
                        }
                        Err(e) if start.elapsed() < ROUTE_DEADLINE => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(e) => bail!(
                            "{} via {addr} did not work within {}s: {e}",
                            probe.endpoint().url(),
                            ROUTE_DEADLINE.as_secs()
                        ),
                    }
                }
            }
            Ok(())
        })
    }

    fn run_tests(&mut self, phase: Phase, filter: &str, label: &str) -> anyhow::Result<()> {
        let env = self.plan.test_env(phase, &self.trust_files);
        let cmd = suite::nextest_command(&self.plan.profile, filter, &self.plan.rows(), &env);
        let status = suite::run_tests(cmd)?;
        // Each phase is its own nextest run and would overwrite the other's JUnit file.
        let junit = crate::workspace_root()
            .join("target/nextest")
            .join(&self.plan.profile)
            .join("junit.xml");
        if junit.is_file() {
            let _ = std::fs::copy(&junit, self.plan.work.join(format!("junit-{label}.xml")));
        }
        if !status.success() {
            // Keep going: phase 2 still tells something, and teardown must run anyway.
            self.test_failures
                .push(format!("{} ({status})", Step::Tests(phase).title()));
        }
        Ok(())
    }

    fn tls(&mut self) -> anyhow::Result<()> {
        let ns = self.plan.namespace.clone();
        let tls = TlsSetup::generate(&self.plan.variants)?;
        let dir = self.plan.tls_dir();
        std::fs::create_dir_all(&dir)?;
        self.trust_files = vec![tls.documented.write_to(&dir, "test.example.com")?.cert];
        if let Some(v) = &tls.variants {
            self.trust_files.push(v.write_to(&dir, "variants")?.cert);
        }
        self.trust = tls.certs();
        let client = self.client()?;
        let variants = self.plan.variants.clone();
        self.rt.block_on(async {
            for secret in tls.secrets(&ns) {
                wsgate_cluster::apply(&client, &ns, &secret).await?;
            }
            for v in &variants {
                let body: serde_json::Value = if v.is_documented() {
                    serde_json::from_str(DOCUMENTED_TLS_PATCH)
                        .expect("the documented patch is JSON")
                } else {
                    tls_patch(&[&v.host], VARIANTS_TLS_SECRET)
                };
                wsgate_cluster::merge_patch_ingress(&client, &ns, &v.name, &body).await?;
                eprintln!("  patched Ingress {ns}/{} with {body}", v.name);
            }
            anyhow::Ok(())
        })
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        if self.plan.args.keep {
            eprintln!(
                "  keeping everything (--keep); kubeconfig: {}",
                self.plan.kubeconfig.display()
            );
            return Ok(());
        }
        match self.plan.mode {
            Mode::Kind if self.created_cluster => run_cmd(
                self.kind()
                    .args(["delete", "cluster", "--name", &self.plan.args.name])
                    .arg("--kubeconfig")
                    .arg(&self.plan.kubeconfig),
            ),
            Mode::Kind => Ok(()),
            Mode::Existing if self.plan.namespace != wsgate_manifests::DOCUMENTED_NAMESPACE => {
                run_cmd(self.kubectl().args([
                    "delete",
                    "namespace",
                    &self.plan.namespace,
                    "--wait=false",
                    "--ignore-not-found",
                ]))
            }
            Mode::Existing => {
                let objects = self.plan.owned_objects();
                run_cmd(
                    self.kubectl()
                        .args(["-n", &self.plan.namespace, "delete", "--ignore-not-found"])
                        .args(&objects),
                )
            }
        }
    }

    fn diagnostics(&mut self) -> Option<PathBuf> {
        let dir = self.plan.diagnostics();
        let client = self.client().ok()?;
        let written = self.rt.block_on(wsgate_cluster::collect_diagnostics(
            &client,
            &self.plan.namespace,
            &dir,
        ));
        if let Err(e) = &written {
            eprintln!("  diagnostics incomplete: {e}");
        }
        if self.tools.is_some() {
            let out = self
                .kubectl()
                .args([
                    "-n",
                    INGRESS_NGINX_NAMESPACE,
                    "exec",
                    "deploy/ingress-nginx-controller",
                    "--",
                    "cat",
                    "/etc/nginx/nginx.conf",
                ])
                .output();
            let text = match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                Ok(o) => format!(
                    "# cannot read the controller's nginx.conf: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => format!("# cannot run kubectl exec: {e}"),
            };
            let _ = std::fs::write(dir.join("nginx.conf"), text);
        }
        Some(dir)
    }
}

/// `cargo xtask e2e` on kind or an existing cluster.
pub fn run(plan: Plan, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        print!("{}", plan.render());
        return Ok(());
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // Children (kind, nextest) get the same Ctrl-C and stop; we stop between steps and tear down.
        let _ = ctrlc::set_handler(move || {
            eprintln!("\ninterrupted: finishing the current step, then tearing down");
            flag.store(true, Ordering::SeqCst);
        });
    }
    let _ = std::fs::remove_dir_all(plan.rows());
    std::fs::create_dir_all(plan.rows())?;
    let steps = plan.steps();
    let total = steps.len();
    let mut run = Run {
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        plan,
        tools: None,
        client: None,
        image: None,
        trust_files: Vec::new(),
        trust: Vec::new(),
        created_cluster: false,
        test_failures: Vec::new(),
        notes: Vec::new(),
    };
    let mut timings = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    for (i, step) in steps.into_iter().enumerate() {
        let skip = failure.is_some() || interrupted.load(Ordering::SeqCst);
        if skip && step != Step::Teardown {
            continue;
        }
        let failed = failure.is_some() || !run.test_failures.is_empty();
        if step == Step::Teardown
            && failed
            && let Some(dir) = run.diagnostics()
        {
            eprintln!("diagnostics: {}", dir.display());
            run.notes.push(format!("diagnostics: {}", dir.display()));
        }
        eprintln!("[{:>2}/{total}] {}", i + 1, step.title());
        let start = Instant::now();
        let result = run.step(step);
        timings.push((step.title().to_owned(), start.elapsed()));
        if let Err(e) = result {
            eprintln!("  FAILED: {e:#}");
            if failure.is_none() {
                failure = Some(e.context(format!("step `{}`", step.title())));
            }
        }
    }
    let rows = wsgate_e2e::report::read_rows(&run.plan.rows());
    suite::write_report(&run.plan.work, &rows, &timings, &run.notes)?;
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    if let Some(e) = failure {
        return Err(e);
    }
    anyhow::ensure!(
        run.test_failures.is_empty(),
        "tests failed: {}",
        run.test_failures.join("; ")
    );
    Ok(())
}
