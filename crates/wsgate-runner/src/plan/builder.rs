//! What every step shares, derived once from the flags and the inputs.

use std::path::PathBuf;

use wsgate_contract::Phase;
use wsgate_manifests::derived_hosts;
use wsgate_manifests::{DOCUMENTED_HOST, DOCUMENTED_NAMESPACE, Documented, Variant};

use super::{Inputs, Mode, Plan, Step, StepId};
use crate::action::{Action, Cmd, Download};
use crate::kind_config::split_host_port;
use crate::options::{ClusterArgs, EchoImage};
use crate::tools::{Tool, Tools};

/// Derived values the steps share.
pub(super) struct Builder<'a> {
    pub(super) args: &'a ClusterArgs,
    pub(super) inputs: &'a Inputs,
    pub(super) mode: Mode,
    pub(super) namespace: String,
    pub(super) http_addr: String,
    pub(super) https_addr: String,
    pub(super) work: PathBuf,
    pub(super) kubeconfig: PathBuf,
    pub(super) tier: String,
    pub(super) variants: Vec<Variant>,
    pub(super) documented: Documented,
}

impl<'a> Builder<'a> {
    pub(super) fn new(args: &'a ClusterArgs, inputs: &'a Inputs) -> anyhow::Result<Self> {
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
        // With a team's own workload, the namespace their (first) Ingress lives in: what the
        // plan's header and the diagnostics name.
        let namespace = inputs
            .workload
            .as_ref()
            .and_then(|run| run.workload.ingresses.first())
            .map(|i| {
                i.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| DOCUMENTED_NAMESPACE.into())
            })
            .unwrap_or(namespace);
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

    pub(super) fn echo_image(&self) -> EchoImage {
        match self.mode {
            Mode::Kind => self.args.echo_image.unwrap_or(EchoImage::Built),
            Mode::Existing => EchoImage::Documented,
        }
    }

    pub(super) fn tools(&self) -> &Tools {
        &self.inputs.tools
    }

    pub(super) fn kind(&self) -> Cmd {
        Cmd::new(&self.tools().kind.path)
    }

    pub(super) fn kubectl(&self) -> Cmd {
        let mut c = Cmd::new(&self.tools().kubectl.path)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        if let Some(ctx) = &self.args.context {
            c = c.args(["--context", ctx]);
        }
        c
    }

    /// Where report rows go (one JSON file each).
    pub(super) fn rows_dir(&self) -> PathBuf {
        self.work.join("rows")
    }

    pub(super) fn tls_dir(&self) -> PathBuf {
        self.work.join("tls")
    }

    pub(super) fn cert_files(&self, stem: &str) -> (PathBuf, PathBuf) {
        (
            self.tls_dir().join(format!("{stem}.crt")),
            self.tls_dir().join(format!("{stem}.key")),
        )
    }

    pub(super) fn trust_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.cert_files(DOCUMENTED_HOST).0];
        if !derived_hosts(&self.variants).is_empty() {
            v.push(self.cert_files("variants").0);
        }
        v
    }

    pub(super) fn plan(self) -> anyhow::Result<Plan> {
        // Another version than the pin is never used silently: without a pin to download,
        // a wrong version on PATH stops the run before anything is made.
        let tools = self.tools();
        let needed = match self.mode {
            Mode::Kind => vec![&tools.kind, &tools.kubectl],
            Mode::Existing => vec![&tools.kubectl],
        };
        if let Some(why) = needed.iter().find_map(|t| t.unusable.as_ref()) {
            anyhow::bail!("{why}");
        }
        let mut steps = vec![self.prerequisites()?];
        if self.mode == Mode::Kind {
            steps.push(self.cluster()?);
            steps.push(self.ingress_nginx());
        }
        if let Some(run) = &self.inputs.workload {
            // A team's own manifests instead of the document's: their objects (and images),
            // their checks.
            steps.extend(self.workload_steps(run)?);
        } else {
            if self.echo_image() == EchoImage::Built {
                steps.push(self.image_step()?);
            }
            if self.args.reuse {
                steps.push(self.reset_reused());
            }
            steps.push(self.manifests());
            steps.push(self.wait_routes(Phase::Plain));
            steps.push(self.tests(StepId::Tests(Phase::Plain), Phase::Plain, "phase-1"));
            steps.push(self.tls());
            steps.push(self.wait_routes(Phase::Tls));
            steps.push(self.tests(StepId::Tests(Phase::Tls), Phase::Tls, "phase-2"));
            steps.push(self.tests(StepId::Faults, Phase::Tls, "faults"));
            // Restarting the controller is for a controller the suite installed.
            if self.mode == Mode::Kind {
                steps.push(self.tests(StepId::Rollout, Phase::Tls, "rollout"));
            }
        }
        steps.push(self.teardown());
        // kind's notes only when kind is used.
        let mut notes = Vec::new();
        if self.mode == Mode::Kind {
            notes.extend(self.tools().kind.notes.clone());
        }
        notes.extend(self.tools().kubectl.notes.clone());
        if self.mode == Mode::Kind && !self.args.reuse {
            notes.push(format!(
                "node image {} (Kubernetes {}, the newest ingress-nginx {} supports): its digest is from {}",
                crate::pins::KIND_NODE_IMAGE,
                crate::pins::KUBERNETES_MINOR,
                crate::pins::INGRESS_NGINX_VERSION,
                crate::pins::KIND_NODE_IMAGE_SOURCE
            ));
        }
        if self.mode == Mode::Kind
            && self.echo_image() == EchoImage::Built
            && let Some(why) = &self.inputs.echo.assumed
        {
            notes.push(why.clone());
        }
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

    pub(super) fn step(id: StepId, actions: Vec<Action>) -> Step {
        Step {
            id,
            actions,
            arms_teardown: None,
            reaches_cluster: None,
        }
    }

    pub(super) fn fetch(&self, tool: &Tool) -> Option<Action> {
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
}
