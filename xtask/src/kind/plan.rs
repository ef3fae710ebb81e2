//! The kind tier as a plan: flags in, ordered steps of typed actions out. Nothing here runs
//! anything; `--dry-run` prints these actions and the executor runs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use wsgate_cluster::{
    ADMISSION_JOBS, CONTROLLER_DEPLOYMENT, CONTROLLER_SELECTOR, INGRESS_NGINX_NAMESPACE, ObjectRef,
    apply_body,
};
use wsgate_e2e::env::{
    ENV_CONTEXT, ENV_HTTP_ADDR, ENV_HTTPS_ADDR, ENV_KUBECONFIG, ENV_NAMESPACE, ENV_PHASE,
    ENV_REPORT_DIR, ENV_TARGET, ENV_TIER, ENV_TRUST, Phase,
};
use wsgate_e2e::tls::{VARIANTS_TLS_SECRET, derived_hosts};
use wsgate_manifests::{
    ControllerConfig, DOCUMENTED_HOST, DOCUMENTED_NAMESPACE, DOCUMENTED_TLS_PATCH, Documented,
    ProxyTimeouts, TLS_SECRET_NAME, Variant, tls_patch,
};
use wsgate_probe::Scheme;

use super::config::{KIND_CONFIG_TEMPLATE, kind_config, split_host_port};
use super::pins::{self, Pinned};
use super::tools::{Tool, Tools};
use crate::action::{
    Action, ApiBody, ApiCall, ApiVerb, Cmd, Download, LoadImage, Nextest, Route, WaitFor,
};
use crate::flags::{EchoImage, KindArgs};

/// A kind cluster made by the suite, or a cluster someone already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Kind,
    Existing,
}

/// Every deadline of the plan, in one place (a rehearsal shortens them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// `kind create cluster --wait`.
    pub kind_wait: Duration,
    /// The admission Jobs and the controller pod. A runner's first pull of the controller
    /// image has been seen to take ~140 s.
    pub controller: Duration,
    /// An Ingress apply retried while the admission webhook does not answer.
    pub webhook: Duration,
    /// Each host echoing through the ingress.
    pub routes: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            kind_wait: Duration::from_secs(120),
            controller: Duration::from_secs(300),
            webhook: Duration::from_secs(120),
            routes: Duration::from_secs(120),
        }
    }
}

/// Which step an action belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepId {
    Prerequisites,
    Cluster,
    IngressNginx,
    EchoImage,
    Manifests,
    WaitRoutes(Phase),
    Tests(Phase),
    Tls,
    /// The echo pod deleted under an open connection; alone, since it disturbs every connection.
    Faults,
    Teardown,
}

impl StepId {
    pub fn title(self) -> &'static str {
        match self {
            Self::Prerequisites => "prerequisites",
            Self::Cluster => "cluster",
            Self::IngressNginx => "ingress-nginx controller-v1.15.1",
            Self::EchoImage => "echo image",
            Self::Manifests => "documented manifests and derived Ingresses (doc steps 1-2)",
            Self::WaitRoutes(Phase::Plain) => "wait until every host routes over ws",
            Self::WaitRoutes(Phase::Tls) => "wait until every host serves its certificate over wss",
            Self::Tests(Phase::Plain) => {
                "tests, phase 1: readiness, endpoint, ws echo, idle (doc steps 1-3 ws)"
            }
            Self::Tests(Phase::Tls) => {
                "tests, phase 2: wss echo, 308, idle over wss (doc step 3 wss)"
            }
            Self::Tls => "TLS: Secret nginx-ingress-tls and the documented patch",
            Self::Faults => "faults: the echo pod deleted under an open connection",
            Self::Teardown => "teardown",
        }
    }
}

/// One step: its actions in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: StepId,
    pub actions: Vec<Action>,
    /// Before the action at this index runs, teardown is armed: from then on something may
    /// exist that teardown must remove, even after a panic.
    pub arms_teardown: Option<usize>,
}

/// What the plan is made from besides the flags.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub root: PathBuf,
    pub profile: String,
    pub tools: Tools,
    pub deadlines: Deadlines,
    /// The ingress-nginx kind manifest to install.
    pub manifest: Pinned,
    /// `wsgate-echo:<version>-<git sha>`, the image the echo step builds.
    pub image: String,
    /// The kubeconfig of an existing cluster when `--kubeconfig` is not given.
    pub default_kubeconfig: Option<PathBuf>,
}

/// The whole run, ready to print or execute.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    /// What report rows call this tier: `kind`, or the existing cluster's context.
    pub tier: String,
    pub namespace: String,
    pub http_addr: String,
    pub https_addr: String,
    pub work: PathBuf,
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    pub steps: Vec<Step>,
    /// Run before teardown when a step or a test failed.
    pub on_failure: Vec<Action>,
    /// Notes for the reader (tools passed over, annotation warnings).
    pub notes: Vec<String>,
}

/// The e2e package and the selection of each nextest step.
pub const E2E_PACKAGE: &str = "wsgate-e2e";
pub fn test_filter(phase: Phase) -> &'static str {
    match phase {
        Phase::Plain => "binary(cluster) | binary(plain)",
        Phase::Tls => "binary(tls)",
    }
}
pub const FAULTS_FILTER: &str = "binary(faults)";

impl Plan {
    /// The plan for this machine: tools from PATH, the shipped pins, the default deadlines.
    pub fn for_machine(args: &KindArgs, profile: &str, root: &Path) -> anyhow::Result<Self> {
        let search = std::env::var_os("PATH").unwrap_or_default();
        let tools = super::tools::resolve(&search, &root.join("target/wsgate/tools"));
        let inputs =
            Inputs {
                root: root.to_owned(),
                profile: profile.to_owned(),
                tools,
                deadlines: Deadlines::default(),
                manifest: pins::INGRESS_NGINX_KIND_MANIFEST,
                image: wsgate_image::reference_for(root),
                default_kubeconfig: std::env::var_os("KUBECONFIG").map(PathBuf::from).or_else(
                    || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")),
                ),
            };
        Self::new(args, &inputs)
    }

    pub fn new(args: &KindArgs, inputs: &Inputs) -> anyhow::Result<Self> {
        Builder::new(args, inputs)?.plan()
    }

    /// Every action in order, teardown included (not the failure-only ones).
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.steps.iter().flat_map(|s| &s.actions)
    }

    /// The nextest actions, each with the step it belongs to.
    pub fn nextest_actions(&self) -> Vec<(StepId, &Nextest)> {
        self.steps
            .iter()
            .flat_map(|s| {
                s.actions.iter().filter_map(move |a| match a {
                    Action::Nextest(n) => Some((s.id, n)),
                    _ => None,
                })
            })
            .collect()
    }

    pub fn step(&self, id: StepId) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Where the report and the rows go.
    pub fn rows(&self) -> PathBuf {
        self.work.join("rows")
    }

    /// The plan as `--dry-run` prints it: every action's own lines.
    pub fn render(&self) -> String {
        let mut out = format!(
            "wsgate e2e plan: {}, namespace {}, ingress at {} (ws) and {} (wss)\n",
            match self.mode {
                Mode::Kind => "a kind cluster",
                Mode::Existing => "an existing cluster",
            },
            self.namespace,
            self.http_addr,
            self.https_addr
        );
        out.push_str(
            "($ shell command, paste it to run it alone; > Kubernetes API call; ~ wait with its deadline; # in-process)\n",
        );
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        let total = self.steps.len();
        for (i, step) in self.steps.iter().enumerate() {
            out.push_str(&format!("[{:>2}/{total}] {}\n", i + 1, step.id.title()));
            for action in &step.actions {
                for line in action.lines() {
                    out.push_str(&format!("     {line}\n"));
                }
            }
        }
        out.push_str("on failure, before teardown:\n");
        for action in &self.on_failure {
            for line in action.lines() {
                out.push_str(&format!("     {line}\n"));
            }
        }
        out.push_str(&format!(
            "teardown also runs after a failure, Ctrl-C or panic; report: {}\n",
            self.work.join("report.md").display()
        ));
        out
    }
}

/// This machine's platform as Docker names it (`linux/amd64`).
fn docker_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// Derived values the steps share.
struct Builder<'a> {
    args: &'a KindArgs,
    inputs: &'a Inputs,
    mode: Mode,
    namespace: String,
    http_addr: String,
    https_addr: String,
    work: PathBuf,
    kubeconfig: PathBuf,
    tier: String,
    variants: Vec<Variant>,
    documented: Documented,
}

impl<'a> Builder<'a> {
    fn new(args: &'a KindArgs, inputs: &'a Inputs) -> anyhow::Result<Self> {
        let existing =
            args.ingress_address.is_some() || args.kubeconfig.is_some() || args.context.is_some();
        let mode = if existing { Mode::Existing } else { Mode::Kind };
        let work = inputs.root.join("target/wsgate").join(match mode {
            Mode::Kind => "kind",
            Mode::Existing => "cluster",
        });
        let (namespace, http_addr, https_addr, kubeconfig, tier) = match mode {
            Mode::Kind => (
                args.namespace
                    .clone()
                    .unwrap_or_else(|| DOCUMENTED_NAMESPACE.into()),
                format!("127.0.0.1:{}", args.http_port),
                format!("127.0.0.1:{}", args.https_port),
                work.join("kubeconfig"),
                "kind".to_owned(),
            ),
            Mode::Existing => {
                let Some(address) = &args.ingress_address else {
                    anyhow::bail!(
                        "an existing cluster (--kubeconfig/--context) also needs --ingress-address HOST[:PORT]: where its ingress controller answers"
                    );
                };
                if args.echo_image == Some(EchoImage::Built) {
                    anyhow::bail!(
                        "--echo-image built needs kind (the image is loaded into kind's nodes); on an existing cluster use --echo-image documented"
                    );
                }
                if args.reuse {
                    anyhow::bail!(
                        "--reuse names a kind cluster; an existing cluster (--kubeconfig/--context/--ingress-address) is never created or deleted"
                    );
                }
                let (host, http) = split_host_port(address, 80)?;
                let kubeconfig = args
                    .kubeconfig
                    .clone()
                    .or_else(|| inputs.default_kubeconfig.clone())
                    .ok_or_else(|| {
                        anyhow::anyhow!("no kubeconfig: pass --kubeconfig (or set KUBECONFIG)")
                    })?;
                (
                    args.namespace
                        .clone()
                        .unwrap_or_else(|| "wsgate-e2e".into()),
                    format!("{host}:{http}"),
                    format!("{host}:{}", args.ingress_https_port),
                    kubeconfig,
                    args.context.clone().unwrap_or_else(|| "cluster".into()),
                )
            }
        };
        Ok(Self {
            args,
            inputs,
            mode,
            namespace,
            http_addr,
            https_addr,
            work,
            kubeconfig,
            tier,
            variants: Variant::suite(),
            documented: Documented::shipped()?,
        })
    }

    fn echo_image(&self) -> EchoImage {
        match self.mode {
            Mode::Kind => self.args.echo_image.unwrap_or(EchoImage::Built),
            Mode::Existing => EchoImage::Documented,
        }
    }

    fn tools(&self) -> &Tools {
        &self.inputs.tools
    }

    fn kind(&self) -> Cmd {
        Cmd::new(&self.tools().kind.path)
    }

    fn kubectl(&self) -> Cmd {
        let mut c = Cmd::new(&self.tools().kubectl.path)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        if let Some(ctx) = &self.args.context {
            c = c.args(["--context", ctx]);
        }
        c
    }

    fn tls_dir(&self) -> PathBuf {
        self.work.join("tls")
    }

    fn cert_files(&self, stem: &str) -> (PathBuf, PathBuf) {
        (
            self.tls_dir().join(format!("{stem}.crt")),
            self.tls_dir().join(format!("{stem}.key")),
        )
    }

    fn trust_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.cert_files(DOCUMENTED_HOST).0];
        if !derived_hosts(&self.variants).is_empty() {
            v.push(self.cert_files("variants").0);
        }
        v
    }

    fn plan(self) -> anyhow::Result<Plan> {
        let mut steps = vec![self.prerequisites()];
        if self.mode == Mode::Kind {
            steps.push(self.cluster()?);
            steps.push(self.ingress_nginx());
        }
        if self.echo_image() == EchoImage::Built {
            steps.push(self.image_step());
        }
        steps.push(self.manifests());
        steps.push(self.wait_routes(Phase::Plain));
        steps.push(self.tests(StepId::Tests(Phase::Plain), Phase::Plain, "phase-1"));
        steps.push(self.tls());
        steps.push(self.wait_routes(Phase::Tls));
        steps.push(self.tests(StepId::Tests(Phase::Tls), Phase::Tls, "phase-2"));
        steps.push(self.tests(StepId::Faults, Phase::Tls, "faults"));
        steps.push(self.teardown());
        let mut notes: Vec<String> = [&self.tools().kind, &self.tools().kubectl]
            .into_iter()
            .filter(|t| self.mode == Mode::Kind || !std::ptr::eq(*t, &self.tools().kind))
            .flat_map(|t| t.passed_over.clone())
            .collect();
        if self.mode == Mode::Existing {
            notes.push(format!(
                "existing cluster: kubeconfig {}, context {}",
                self.kubeconfig.display(),
                self.args.context.as_deref().unwrap_or("(current)")
            ));
        }
        Ok(Plan {
            mode: self.mode,
            tier: self.tier.clone(),
            namespace: self.namespace.clone(),
            http_addr: self.http_addr.clone(),
            https_addr: self.https_addr.clone(),
            on_failure: self.on_failure(),
            work: self.work.clone(),
            kubeconfig: self.kubeconfig.clone(),
            context: self.args.context.clone(),
            steps,
            notes,
        })
    }

    fn step(id: StepId, actions: Vec<Action>) -> Step {
        Step {
            id,
            actions,
            arms_teardown: None,
        }
    }

    fn fetch(&self, tool: &Tool) -> Option<Action> {
        tool.fetch.map(|pin| {
            Action::Download(Download::new(
                &self.tools().curl,
                format!("{} {}", pin.name, pin.version),
                pin.url,
                pin.sha256,
                tool.path.clone(),
                true,
            ))
        })
    }

    fn prerequisites(&self) -> Step {
        let mut actions = vec![Action::Reset {
            path: self.work.join("rows"),
            recreate: true,
        }];
        if self.mode == Mode::Kind {
            actions.push(Action::Run(Cmd::new(&self.tools().docker).args([
                "version",
                "--format",
                "{{.Server.Version}}",
            ])));
            actions.extend(self.fetch(&self.tools().kind));
        }
        actions.extend(self.fetch(&self.tools().kubectl));
        let warnings = self
            .variants
            .iter()
            .flat_map(|v| {
                ProxyTimeouts::for_ingress(
                    &v.ingress(&self.documented.ingress),
                    &ControllerConfig::default(),
                )
                .1
            })
            .map(|w| w.to_string())
            .collect();
        actions.push(Action::CheckAnnotations {
            warnings,
            strict: self.args.strict,
        });
        Self::step(StepId::Prerequisites, actions)
    }

    fn cluster(&self) -> anyhow::Result<Step> {
        let name = &self.args.name;
        if self.args.reuse {
            return Ok(Self::step(
                StepId::Cluster,
                vec![Action::Run(
                    self.kind()
                        .args(["export", "kubeconfig", "--name", name])
                        .arg("--kubeconfig")
                        .arg(&self.kubeconfig),
                )],
            ));
        }
        let config = self.work.join("kind-config.yaml");
        Ok(Step {
            id: StepId::Cluster,
            // Teardown deletes the cluster by name: armed only at `kind create`, never over a
            // cluster that was already there.
            arms_teardown: Some(2),
            actions: vec![
                Action::Expect {
                    cmd: self.kind().args(["get", "clusters"]),
                    line: name.clone(),
                    present: false,
                    hint: format!(
                        "a kind cluster named {name:?} already exists: pass --reuse to use it, --name for another, or delete it with `kind delete cluster --name {name}`"
                    ),
                },
                Action::WriteFile {
                    path: config.clone(),
                    contents: kind_config(
                        KIND_CONFIG_TEMPLATE,
                        self.args.http_port,
                        self.args.https_port,
                    )?,
                    about: format!(
                        "manifests/kind-config.yaml with hostPort 80 -> {}, 443 -> {} on 127.0.0.1",
                        self.args.http_port, self.args.https_port
                    ),
                },
                Action::Run(
                    self.kind()
                        .args(["create", "cluster", "--name", name])
                        .args(["--image", pins::KIND_NODE_IMAGE, "--config"])
                        .arg(&config)
                        .arg("--kubeconfig")
                        .arg(&self.kubeconfig)
                        .arg("--wait")
                        .arg(format!("{}s", self.inputs.deadlines.kind_wait.as_secs())),
                ),
            ],
        })
    }

    fn ingress_nginx(&self) -> Step {
        let pin = self.inputs.manifest;
        let file = self
            .work
            .join("cache")
            .join(format!("ingress-nginx-kind-{}.yaml", pin.version));
        let limit = self.inputs.deadlines.controller;
        let mut actions = vec![
            Action::Download(Download::new(
                &self.tools().curl,
                format!("{} {}", pin.name, pin.version),
                pin.url,
                pin.sha256,
                file.clone(),
                false,
            )),
            Action::Run(self.kubectl().arg("apply").arg("-f").arg(&file)),
        ];
        actions.extend(ADMISSION_JOBS.iter().map(|job| Action::Wait {
            what: WaitFor::JobDone {
                namespace: INGRESS_NGINX_NAMESPACE.into(),
                name: (*job).into(),
            },
            limit,
        }));
        actions.push(Action::Wait {
            what: WaitFor::PodsReady {
                namespace: INGRESS_NGINX_NAMESPACE.into(),
                selector: CONTROLLER_SELECTOR.into(),
            },
            limit,
        });
        Self::step(StepId::IngressNginx, actions)
    }

    fn image_step(&self) -> Step {
        let image = &self.inputs.image;
        let name = &self.args.name;
        let archive = self.work.join("wsgate-echo-image.tar");
        Self::step(
            StepId::EchoImage,
            vec![
                Action::EnsureImage {
                    reference: image.clone(),
                },
                Action::LoadImage(LoadImage {
                    direct: self
                        .kind()
                        .args(["load", "docker-image", image, "--name", name]),
                    // One platform only: an index naming other platforms' (absent) content is
                    // what fails to import (kind#3795, containerd#12908).
                    save: Cmd::new(&self.tools().docker)
                        .args(["save", "--platform", &docker_platform(), "--output"])
                        .arg(&archive)
                        .arg(image),
                    archive: self
                        .kind()
                        .args(["load", "image-archive"])
                        .arg(&archive)
                        .args(["--name", name]),
                }),
            ],
        )
    }

    fn ns(&self) -> Option<&str> {
        Some(&self.namespace)
    }

    fn manifests(&self) -> Step {
        let mut actions = Vec::new();
        let owns_namespace = self.namespace != DOCUMENTED_NAMESPACE;
        if owns_namespace {
            let mut ns = Namespace::default();
            ns.metadata.name = Some(self.namespace.clone());
            ns.metadata.labels =
                Some([("app.kubernetes.io/managed-by".into(), "wsgate".into())].into());
            actions.push(self.apply(
                ObjectRef::of::<Namespace>(None, &self.namespace),
                apply_body(&ns, None),
                None,
            ));
        }
        let mut deployment: Deployment = self.documented.deployment.clone();
        if self.echo_image() == EchoImage::Built
            && let Some(spec) = deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
        {
            spec.containers[0].image = Some(self.inputs.image.clone());
        }
        let name = |o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            o.name.clone().unwrap_or_default()
        };
        actions.push(self.apply(
            ObjectRef::of::<Deployment>(self.ns(), &name(&deployment.metadata)),
            apply_body(&deployment, self.ns()),
            None,
        ));
        let service: &Service = &self.documented.service;
        actions.push(self.apply(
            ObjectRef::of::<Service>(self.ns(), &name(&service.metadata)),
            apply_body(service, self.ns()),
            None,
        ));
        for v in &self.variants {
            let ing = v.ingress(&self.documented.ingress);
            actions.push(self.apply(
                ObjectRef::of::<Ingress>(self.ns(), &v.name),
                apply_body(&ing, self.ns()),
                Some(self.inputs.deadlines.webhook),
            ));
        }
        Step {
            id: StepId::Manifests,
            actions,
            // On an existing cluster, from here on the suite owns objects there.
            arms_teardown: (self.mode == Mode::Existing).then_some(0),
        }
    }

    fn apply(
        &self,
        target: ObjectRef,
        body: serde_json::Value,
        webhook_retry: Option<Duration>,
    ) -> Action {
        Action::Api(ApiCall {
            verb: ApiVerb::ServerSideApply,
            target,
            body: ApiBody::Json(body),
            webhook_retry,
        })
    }

    fn wait_routes(&self, phase: Phase) -> Step {
        let (scheme, addr, trust) = match phase {
            Phase::Plain => (Scheme::Ws, &self.http_addr, vec![]),
            Phase::Tls => (Scheme::Wss, &self.https_addr, self.trust_files()),
        };
        let actions = self
            .variants
            .iter()
            .map(|v| Action::Wait {
                what: WaitFor::Route(Route {
                    scheme,
                    addr: addr.clone(),
                    host: v.host.clone(),
                    trust: trust.clone(),
                }),
                limit: self.inputs.deadlines.routes,
            })
            .collect();
        Self::step(StepId::WaitRoutes(phase), actions)
    }

    /// The environment the e2e tests read in `phase`.
    fn test_env(&self, phase: Phase) -> Vec<(String, String)> {
        let mut env = vec![
            (ENV_TARGET.to_owned(), "cluster".to_owned()),
            (ENV_PHASE.to_owned(), phase.as_str().to_owned()),
            (ENV_TIER.to_owned(), self.tier.clone()),
            (ENV_HTTP_ADDR.to_owned(), self.http_addr.clone()),
            (ENV_HTTPS_ADDR.to_owned(), self.https_addr.clone()),
            (
                ENV_KUBECONFIG.to_owned(),
                self.kubeconfig.display().to_string(),
            ),
            (ENV_NAMESPACE.to_owned(), self.namespace.clone()),
            (
                ENV_REPORT_DIR.to_owned(),
                self.work.join("rows").display().to_string(),
            ),
        ];
        if let Some(c) = &self.args.context {
            env.push((ENV_CONTEXT.to_owned(), c.clone()));
        }
        if phase == Phase::Tls {
            let joined: Vec<String> = self
                .trust_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            env.push((ENV_TRUST.to_owned(), joined.join(":")));
        }
        env
    }

    fn tests(&self, id: StepId, phase: Phase, label: &str) -> Step {
        let filterset = match id {
            StepId::Faults => FAULTS_FILTER,
            _ => test_filter(phase),
        };
        // nextest writes one JUnit file per profile; each step keeps its own copy, and the
        // previous step's file is removed first so that a run that writes none hands on nothing.
        let junit = self
            .inputs
            .root
            .join("target/nextest")
            .join(&self.inputs.profile)
            .join("junit.xml");
        Self::step(
            id,
            vec![
                Action::Reset {
                    path: junit.clone(),
                    recreate: false,
                },
                Action::Nextest(Nextest {
                    cargo: self.tools().cargo.clone(),
                    manifest_path: self.inputs.root.join("Cargo.toml"),
                    package: E2E_PACKAGE.into(),
                    profile: self.inputs.profile.clone(),
                    filterset: filterset.into(),
                    ignore_default_filter: true,
                    env: self.test_env(phase),
                }),
                Action::CopyIfExists {
                    from: junit,
                    to: self.work.join(format!("junit-{label}.xml")),
                },
            ],
        )
    }

    fn tls(&self) -> Step {
        let mut actions = Vec::new();
        let (cert, key) = self.cert_files(DOCUMENTED_HOST);
        actions.push(Action::GenerateCert {
            hosts: vec![DOCUMENTED_HOST.into()],
            cert: cert.clone(),
            key: key.clone(),
        });
        let mut secrets = vec![(TLS_SECRET_NAME, cert, key)];
        let derived: Vec<String> = derived_hosts(&self.variants)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !derived.is_empty() {
            let (cert, key) = self.cert_files("variants");
            actions.push(Action::GenerateCert {
                hosts: derived,
                cert: cert.clone(),
                key: key.clone(),
            });
            secrets.push((VARIANTS_TLS_SECRET, cert, key));
        }
        for (name, cert, key) in secrets {
            actions.push(Action::Api(ApiCall {
                verb: ApiVerb::ServerSideApply,
                target: ObjectRef::of::<Secret>(self.ns(), name),
                body: ApiBody::TlsSecret { cert, key },
                webhook_retry: None,
            }));
        }
        for v in &self.variants {
            let body = if v.is_documented() {
                serde_json::from_str(DOCUMENTED_TLS_PATCH).expect("the documented patch is JSON")
            } else {
                tls_patch(&[&v.host], VARIANTS_TLS_SECRET)
            };
            actions.push(Action::Api(ApiCall {
                verb: ApiVerb::MergePatch,
                target: ObjectRef::of::<Ingress>(self.ns(), &v.name),
                body: ApiBody::Json(body),
                webhook_retry: None,
            }));
        }
        Self::step(StepId::Tls, actions)
    }

    /// The objects the suite creates in a shared namespace, as `kind/name`.
    fn owned_objects(&self) -> Vec<String> {
        let mut v = vec![
            "deployment/websocket-server".to_owned(),
            "service/websocket-server".to_owned(),
        ];
        v.extend(self.variants.iter().map(|x| format!("ingress/{}", x.name)));
        v.push(format!("secret/{TLS_SECRET_NAME}"));
        v.push(format!("secret/{VARIANTS_TLS_SECRET}"));
        v
    }

    fn teardown(&self) -> Step {
        let ns = &self.namespace;
        let action = match (self.mode, self.args.keep, self.args.reuse) {
            (_, true, _) => Action::Note(format!(
                "keep everything (--keep); kubeconfig {}",
                self.kubeconfig.display()
            )),
            (Mode::Kind, false, true) => Action::Note(format!(
                "keep the reused cluster {}; delete nothing",
                self.args.name
            )),
            (Mode::Kind, false, false) => Action::Run(
                self.kind()
                    .args(["delete", "cluster", "--name", &self.args.name])
                    .arg("--kubeconfig")
                    .arg(&self.kubeconfig),
            ),
            (Mode::Existing, false, _) if ns != DOCUMENTED_NAMESPACE => {
                Action::Run(self.kubectl().args([
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ]))
            }
            (Mode::Existing, false, _) => Action::Run(
                self.kubectl()
                    .args(["-n", ns, "delete", "--ignore-not-found"])
                    .args(self.owned_objects()),
            ),
        };
        Self::step(StepId::Teardown, vec![action])
    }

    fn on_failure(&self) -> Vec<Action> {
        let dir = self.work.join("diagnostics");
        vec![
            Action::Diagnostics {
                namespace: self.namespace.clone(),
                dir: dir.clone(),
            },
            Action::Run(
                self.kubectl()
                    .args(["-n", INGRESS_NGINX_NAMESPACE, "exec"])
                    .arg(format!("deploy/{CONTROLLER_DEPLOYMENT}"))
                    .args(["--", "cat", "/etc/nginx/nginx.conf"])
                    .stdout_to(dir.join("nginx.conf")),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{NextestMode, shell_line};
    use crate::kind::tools::Tool;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: KindArgs,
    }

    fn found(path: &str) -> Tool {
        Tool {
            path: path.into(),
            fetch: None,
            passed_over: Vec::new(),
        }
    }

    fn inputs() -> Inputs {
        Inputs {
            root: "/repo".into(),
            profile: "ci".into(),
            tools: Tools {
                docker: "/usr/bin/docker".into(),
                kind: found("/usr/local/bin/kind"),
                kubectl: found("/usr/local/bin/kubectl"),
                cargo: "/home/u/.cargo/bin/cargo".into(),
                curl: "/usr/bin/curl".into(),
            },
            deadlines: Deadlines::default(),
            manifest: pins::INGRESS_NGINX_KIND_MANIFEST,
            image: "wsgate-echo:0.1.0-0123456789ab".into(),
            default_kubeconfig: Some("/home/u/.kube/config".into()),
        }
    }

    fn plan(flags: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("e2e").chain(flags.iter().copied()))?;
        Plan::new(&cli.args, &inputs())
    }

    /// Each step's actions by signature, `<step title>: <action>`.
    fn signatures(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .flat_map(|s| {
                s.actions
                    .iter()
                    .map(move |a| format!("{}: {}", s.id.title(), a.signature()))
            })
            .collect()
    }

    fn has(p: &Plan, sig: &str) -> bool {
        signatures(p).iter().any(|s| s.ends_with(sig))
    }

    const DERIVED: [&str; 4] = [
        "ws-no-annotations",
        "ws-short-3",
        "ws-short-read",
        "ws-short-send",
    ];

    #[test]
    fn kind_default_creates_installs_loads_applies_tests_patches_and_tears_down_in_order() {
        let p = plan(&[]).unwrap();
        let mut want: Vec<String> = vec![
            "prerequisites: reset rows",
            "prerequisites: docker version --format {{.Server.Version}}",
            "prerequisites: annotations strict=false",
            "cluster: kind get clusters",
            "cluster: write kind-config.yaml",
            "cluster: kind create cluster --name",
            "ingress-nginx controller-v1.15.1: download ingress-nginx kind manifest controller-v1.15.1",
            "ingress-nginx controller-v1.15.1: kubectl apply -f",
            "ingress-nginx controller-v1.15.1: wait Job ingress-nginx/ingress-nginx-admission-create",
            "ingress-nginx controller-v1.15.1: wait Job ingress-nginx/ingress-nginx-admission-patch",
            "ingress-nginx controller-v1.15.1: wait pods ingress-nginx app.kubernetes.io/component=controller",
            "echo image: image wsgate-echo:0.1.0-0123456789ab",
            "echo image: kind load docker-image wsgate-echo:0.1.0-0123456789ab",
            "documented manifests and derived Ingresses (doc steps 1-2): apply Deployment default/websocket-server",
            "documented manifests and derived Ingresses (doc steps 1-2): apply Service default/websocket-server",
            "documented manifests and derived Ingresses (doc steps 1-2): apply Ingress default/ws",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let step5 = StepId::Manifests.title();
        want.extend(DERIVED.map(|n| format!("{step5}: apply Ingress default/{n}")));
        let hosts = [
            "test.example.com",
            "no-annotations.test.example.com",
            "short-3.test.example.com",
            "short-read.test.example.com",
            "short-send.test.example.com",
        ];
        let ws = StepId::WaitRoutes(Phase::Plain).title();
        want.extend(hosts.map(|h| format!("{ws}: wait ws://{h}")));
        let t1 = StepId::Tests(Phase::Plain).title();
        want.extend([
            format!("{t1}: reset junit.xml"),
            format!("{t1}: nextest binary(cluster) | binary(plain)"),
            format!("{t1}: copy junit-phase-1.xml"),
        ]);
        let tls = StepId::Tls.title();
        want.push(format!("{tls}: certificate test.example.com"));
        want.push(format!("{tls}: certificate {}", hosts[1..].join(",")));
        want.push(format!("{tls}: apply Secret default/nginx-ingress-tls"));
        want.push(format!("{tls}: apply Secret default/wsgate-variants-tls"));
        want.push(format!("{tls}: merge-patch Ingress default/ws"));
        want.extend(DERIVED.map(|n| format!("{tls}: merge-patch Ingress default/{n}")));
        let wss = StepId::WaitRoutes(Phase::Tls).title();
        want.extend(hosts.map(|h| format!("{wss}: wait wss://{h}")));
        let t2 = StepId::Tests(Phase::Tls).title();
        want.extend([
            format!("{t2}: reset junit.xml"),
            format!("{t2}: nextest binary(tls)"),
            format!("{t2}: copy junit-phase-2.xml"),
        ]);
        let f = StepId::Faults.title();
        want.extend([
            format!("{f}: reset junit.xml"),
            format!("{f}: nextest binary(faults)"),
            format!("{f}: copy junit-faults.xml"),
        ]);
        want.push("teardown: kind delete cluster --name".into());
        assert_eq!(signatures(&p), want);
        // The cluster step arms teardown right before `kind create`, nothing earlier does.
        let armed: Vec<StepId> = p
            .steps
            .iter()
            .filter(|s| s.arms_teardown.is_some())
            .map(|s| s.id)
            .collect();
        assert_eq!(armed, [StepId::Cluster]);
    }

    #[test]
    fn every_printed_nextest_line_is_the_command_that_runs() {
        for flags in [
            &[][..],
            &["--reuse"],
            &["--ingress-address", "lb:8080", "--kubeconfig", "/k"],
        ] {
            let p = plan(flags).unwrap();
            let text = p.render();
            let nextest = p.nextest_actions();
            assert_eq!(nextest.len(), 3, "phase 1, phase 2, faults");
            for (_, n) in nextest {
                let real = n.cmd(NextestMode::Run).command();
                let line = format!("     $ {}\n", shell_line(&real));
                assert!(text.contains(&line), "{line} not printed in\n{text}");
                // Every run ignores the profile's default filter, which excludes these binaries.
                assert!(real.get_args().any(|a| a == "--ignore-default-filter"));
            }
        }
    }

    #[test]
    fn every_printed_shell_line_splits_into_the_words_that_run() {
        let p = plan(&["--namespace", "team a"]).unwrap();
        for action in p.actions().chain(&p.on_failure) {
            if let Action::Run(cmd) = action {
                let words = shlex::split(cmd.to_string().split(" > ").next().unwrap())
                    .expect("valid shell");
                let mut want = vec![cmd.program.display().to_string()];
                want.extend(cmd.args.iter().cloned());
                assert_eq!(words, want, "{cmd}");
            }
        }
    }

    #[test]
    fn phase_env_names_the_tier_the_report_dir_and_the_trust() {
        let p = plan(&[]).unwrap();
        let env = |id| {
            p.nextest_actions()
                .into_iter()
                .find(|(s, _)| *s == id)
                .unwrap()
                .1
                .env
                .clone()
        };
        let plain = env(StepId::Tests(Phase::Plain));
        let get = |env: &[(String, String)], k: &str| {
            env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&plain, ENV_TIER).as_deref(), Some("kind"));
        assert_eq!(get(&plain, ENV_PHASE).as_deref(), Some("plain"));
        assert_eq!(
            get(&plain, ENV_REPORT_DIR).as_deref(),
            Some("/repo/target/wsgate/kind/rows")
        );
        assert_eq!(get(&plain, ENV_TRUST), None);
        let tls = env(StepId::Faults);
        assert_eq!(get(&tls, ENV_PHASE).as_deref(), Some("tls"));
        assert_eq!(
            get(&tls, ENV_TRUST).as_deref(),
            Some(
                "/repo/target/wsgate/kind/tls/test.example.com.crt:/repo/target/wsgate/kind/tls/variants.crt"
            )
        );
    }

    #[test]
    fn reuse_exports_the_kubeconfig_checks_nothing_and_keeps_the_cluster() {
        let p = plan(&["--reuse"]).unwrap();
        assert!(has(&p, "cluster: kind export kubeconfig --name"));
        assert!(!has(&p, "kind create cluster --name"));
        assert!(!has(&p, "cluster: kind get clusters"));
        assert!(has(
            &p,
            "teardown: note keep the reused cluster wsgate; delete nothing"
        ));
        assert!(p.steps.iter().all(|s| s.arms_teardown.is_none()));
    }

    #[test]
    fn keep_creates_but_never_deletes() {
        let p = plan(&[
            "--keep",
            "--name",
            "dev",
            "--http-port",
            "8080",
            "--https-port",
            "8443",
        ])
        .unwrap();
        assert!(has(&p, "kind create cluster --name"));
        assert!(!p.actions().any(|a| a.signature().contains("delete")));
        let text = p.render();
        assert!(text.contains("hostPort 80 -> 8080, 443 -> 8443"), "{text}");
        assert!(text.contains("WSGATE_HTTPS_ADDR=127.0.0.1:8443"), "{text}");
        assert!(text.contains("create cluster --name dev"), "{text}");
    }

    #[test]
    fn existing_cluster_skips_kind_applies_its_namespace_and_deletes_it() {
        let p = plan(&[
            "--kubeconfig",
            "/k",
            "--context",
            "prod",
            "--ingress-address",
            "203.0.113.7",
        ])
        .unwrap();
        assert_eq!(p.mode, Mode::Existing);
        assert_eq!(p.tier, "prod");
        let sigs = signatures(&p);
        assert!(
            !sigs
                .iter()
                .any(|s| s.contains("kind ") || s.contains("docker")),
            "{sigs:#?}"
        );
        assert!(p.step(StepId::IngressNginx).is_none() && p.step(StepId::EchoImage).is_none());
        assert!(has(&p, "apply Namespace wsgate-e2e"));
        assert!(has(&p, "apply Ingress wsgate-e2e/ws"));
        assert!(has(&p, "teardown: kubectl delete namespace wsgate-e2e"));
        assert_eq!(
            p.steps
                .iter()
                .filter(|s| s.arms_teardown.is_some())
                .map(|s| s.id)
                .collect::<Vec<_>>(),
            [StepId::Manifests]
        );
        let text = p.render();
        assert!(
            text.contains("kubectl --kubeconfig /k --context prod delete namespace wsgate-e2e"),
            "{text}"
        );
        assert!(
            text.contains("WSGATE_HTTP_ADDR=203.0.113.7:80")
                && text.contains("WSGATE_HTTPS_ADDR=203.0.113.7:443")
        );
        // The document's image is pulled by the cluster: not the built one.
        assert!(
            text.contains(
                "image registry-cn-hangzhou.ack.aliyuncs.com/ack-demo/websocket-echo-server:latest"
            ),
            "{text}"
        );
    }

    #[test]
    fn existing_cluster_in_the_default_namespace_deletes_only_its_objects() {
        let p = plan(&[
            "--ingress-address",
            "lb.example:8080",
            "--kubeconfig",
            "/k",
            "--namespace",
            "default",
        ])
        .unwrap();
        assert!(!has(&p, "apply Namespace default"));
        let text = p.render();
        assert!(text.contains("-n default delete --ignore-not-found deployment/websocket-server service/websocket-server ingress/ws ingress/ws-no-annotations"), "{text}");
    }

    #[test]
    fn existing_cluster_needs_an_ingress_address_and_cannot_load_images() {
        let e = plan(&["--kubeconfig", "/k"]).unwrap_err().to_string();
        assert!(e.contains("--ingress-address"), "{e}");
        let e = plan(&["--ingress-address", "x", "--echo-image", "built"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--echo-image documented"), "{e}");
    }

    #[test]
    fn documented_echo_image_skips_the_build_and_load_and_keeps_the_document_s_image() {
        let p = plan(&["--echo-image", "documented"]).unwrap();
        assert!(p.step(StepId::EchoImage).is_none());
        assert!(p.render().contains(
            "; image registry-cn-hangzhou.ack.aliyuncs.com/ack-demo/websocket-echo-server:latest"
        ));
    }

    #[test]
    fn strict_is_carried_into_the_annotation_check() {
        assert!(has(
            &plan(&["--strict"]).unwrap(),
            "prerequisites: annotations strict=true"
        ));
    }

    #[test]
    fn tools_not_at_their_pins_are_downloaded_first_and_used_from_the_tools_folder() {
        let mut i = inputs();
        i.tools.kind = Tool {
            path: "/repo/target/wsgate/tools/kind".into(),
            fetch: Some(pins::KIND_LINUX_AMD64),
            passed_over: vec!["/usr/local/bin/kind is v0.20.0, not the pinned v0.32.0".into()],
        };
        let cli = Cli::try_parse_from(["e2e"]).unwrap();
        let p = Plan::new(&cli.args, &i).unwrap();
        assert!(has(&p, "prerequisites: download kind v0.32.0"));
        assert!(p.notes.iter().any(|n| n.contains("v0.20.0")));
        let text = p.render();
        assert!(
            text.contains("$ /repo/target/wsgate/tools/kind create cluster"),
            "{text}"
        );
    }

    #[test]
    fn the_tls_patch_on_ws_is_the_document_s_byte_for_byte() {
        let text = plan(&[]).unwrap().render();
        assert!(
            text.contains(&format!(
                "/namespaces/default/ingresses/ws merge patch {DOCUMENTED_TLS_PATCH}\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn on_failure_collects_diagnostics_and_the_controller_s_nginx_conf() {
        let p = plan(&[]).unwrap();
        let sigs: Vec<String> = p.on_failure.iter().map(Action::signature).collect();
        assert_eq!(sigs, ["diagnostics", "kubectl -n ingress-nginx exec"]);
    }
}
