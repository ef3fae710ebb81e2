//! The kind tier as a plan: flags in, ordered steps of typed actions out. Nothing here runs
//! anything; `--dry-run` prints these actions and the executor runs them.
//!
//! `builder.rs` derives what the steps share; `cluster.rs` makes the steps of the cluster's life
//! (prerequisites, kind, the controller, the image, teardown); `suite.rs` the document's steps.

mod builder;
mod cluster;
mod suite;
#[cfg(test)]
mod tests;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use wsgate_contract::Phase;

use crate::action::{Action, Nextest};
use crate::options::ClusterArgs;
use crate::pins::{self, Pinned};
use crate::tools::Tools;
use builder::Builder;

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
    /// The controller restarted under an open connection (kind only: never someone's own).
    Rollout,
    /// `--workload`: images built here loaded into kind.
    WorkloadImages,
    /// `--workload`: the team's objects applied.
    WorkloadApply,
    /// `--workload`: its Deployments Available, its rules routing.
    WorkloadReady,
    /// `--workload`: every rule checked.
    WorkloadChecks,
    /// `--reuse`: what an earlier run left (the TLS patch, the Secrets) removed first.
    ResetReused,
    Teardown,
}

impl StepId {
    pub fn title(self) -> std::borrow::Cow<'static, str> {
        let fixed = match self {
            // The version named is the one the step installs.
            Self::IngressNginx => {
                return format!("ingress-nginx {}", pins::INGRESS_NGINX_VERSION).into();
            }
            Self::Prerequisites => "prerequisites",
            Self::Cluster => "cluster",
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
            Self::Rollout => "controller rollout restart under an open connection",
            Self::WorkloadImages => "your workload's images loaded into kind",
            Self::WorkloadApply => "your workload's objects",
            Self::WorkloadReady => {
                "wait until your workload's Deployments are Available and every rule routes"
            }
            Self::WorkloadChecks => {
                "checks of every rule of your workload: handshake, liveness, idle, traffic"
            }
            Self::ResetReused => {
                "reused cluster: back to the document's starting state (no TLS patch, no TLS Secrets)"
            }
            Self::Teardown => "teardown",
        };
        fixed.into()
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
    /// Before the action at this index runs, a cluster is there to collect diagnostics from
    /// (a reused or existing one too, which teardown never removes).
    pub reaches_cluster: Option<usize>,
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
    /// A team's own workload (`--workload`), tested instead of the document's.
    pub workload: Option<WorkloadRun>,
    /// How the echo image would be built on this machine.
    pub echo: EchoBuild,
    /// The cargo-nextest version the machine has (`cargo nextest --version`), if any.
    pub nextest_version: Option<String>,
}

impl Inputs {
    /// This machine's: tools from PATH (and the tools folder), the shipped pins, the default
    /// deadlines, the Docker server's platform, `--workload` loaded.
    pub fn for_machine(
        workload_args: &crate::options::WorkloadArgs,
        profile: &str,
        root: &Path,
    ) -> anyhow::Result<Self> {
        let search = std::env::var_os("PATH").unwrap_or_default();
        let tools = crate::tools::resolve(&search, &root.join("target/wsgate/tools"));
        let echo = EchoBuild::detect(&tools.docker, &search);
        let nextest_version = crate::action::Cmd::new(&tools.cargo)
            .args(["nextest", "--version"])
            .output()
            .ok()
            .and_then(|out| out.split_whitespace().nth(1).map(str::to_owned));
        Ok(Self {
            root: root.to_owned(),
            profile: profile.to_owned(),
            tools,
            deadlines: Deadlines::default(),
            manifest: pins::INGRESS_NGINX_KIND_MANIFEST,
            image: wsgate_image::reference_for(root),
            default_kubeconfig: std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
                }),
            workload: if workload_args.paths.is_empty() {
                None
            } else {
                Some(WorkloadRun::new(
                    workload_args.clone(),
                    wsgate_manifests::Workload::load(&workload_args.paths)?,
                )?)
            },
            echo,
            nextest_version,
        })
    }
}

/// How this machine builds the echo image: for the Docker server's platform, with which Rust
/// target, and whether that target is installed.
#[derive(Debug, Clone)]
pub struct EchoBuild {
    pub platform: wsgate_image::Platform,
    /// The build target, or why none can be had (the run then names `--echo-image documented`).
    pub target: Result<wsgate_image::BinaryBuild, String>,
    pub installed: bool,
    pub rustup: Option<PathBuf>,
    /// Set when the Docker server did not say its platform: what was assumed instead.
    pub assumed: Option<String>,
}

impl EchoBuild {
    /// Asks `docker` for its server's platform (on a Mac: the Linux VM's) and works out the build.
    pub fn detect(docker: &Path, search: &std::ffi::OsStr) -> Self {
        let (platform, assumed) = match wsgate_image::docker_server_platform(docker) {
            Ok(p) => (p, None),
            Err(e) => {
                let host = wsgate_image::Platform {
                    os: "linux",
                    arch: wsgate_image::Platform::host().map_or("amd64", |p| p.arch),
                };
                let why = format!(
                    "the Docker server did not say its platform ({e}); the echo build assumes {host}"
                );
                (host, Some(why))
            }
        };
        let target = wsgate_image::BinaryBuild::for_platform(platform).map_err(|e| e.to_string());
        let installed = target.as_ref().is_ok_and(|t| t.installed());
        let rustup = crate::tools::which("rustup", search);
        Self {
            platform,
            target,
            installed,
            rustup: rustup.is_absolute().then_some(rustup),
            assumed,
        }
    }
}

/// The oldest cargo-nextest the plan's commands and `.config/nextest.toml` work with:
/// `priority` came in 0.9.91 (`--ignore-default-filter` in 0.9.77, `--filterset` in 0.9.76).
pub const NEXTEST_MIN: &str = "0.9.91";

/// `--workload` and its flags, with the manifests loaded and their rules and notices worked
/// out once for every step that needs them.
#[derive(Debug, Clone)]
pub struct WorkloadRun {
    pub args: crate::options::WorkloadArgs,
    pub workload: wsgate_manifests::Workload,
    pub rules: Vec<wsgate_manifests::Rule>,
    /// What the controller ignores and the local tier does not model.
    pub notices: Vec<String>,
}

impl WorkloadRun {
    pub fn new(
        args: crate::options::WorkloadArgs,
        workload: wsgate_manifests::Workload,
    ) -> anyhow::Result<Self> {
        let config = crate::workload::controller_config(&workload)?;
        Ok(Self {
            rules: workload.rules(&config)?,
            notices: workload
                .notices(&config)
                .iter()
                .map(ToString::to_string)
                .collect(),
            args,
            workload,
        })
    }
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

pub use wsgate_contract::selection::{FAULTS_FILTER, ROLLOUT_FILTER, phase_filter as test_filter};

impl Plan {
    /// The plan for this machine: tools from PATH, the shipped pins, the default deadlines.
    pub fn for_machine(
        args: &ClusterArgs,
        workload_args: &crate::options::WorkloadArgs,
        profile: &str,
        root: &Path,
    ) -> anyhow::Result<Self> {
        Self::new(args, &Inputs::for_machine(workload_args, profile, root)?)
    }

    pub fn new(args: &ClusterArgs, inputs: &Inputs) -> anyhow::Result<Self> {
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
