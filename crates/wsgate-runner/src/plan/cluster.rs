//! The steps of the cluster's life: prerequisites, the kind cluster, the controller, the echo
//! image, and teardown and diagnostics.

use k8s_openapi::api::core::v1::Secret;
use wsgate_cluster::{
    ADMISSION_JOBS, ADMISSION_SECRET, CONTROLLER_DEPLOYMENT, CONTROLLER_SELECTOR,
    INGRESS_NGINX_NAMESPACE, ObjectRef,
};
use wsgate_manifests::{ControllerConfig, DOCUMENTED_NAMESPACE, ProxyTimeouts};

use super::builder::Builder;
use super::{Mode, NEXTEST_MIN, Step, StepId};
use crate::action::{Action, Cmd, Download, LoadImage, WaitFor};
use crate::kind_config::{KIND_CONFIG_TEMPLATE, kind_config};
use crate::options::EchoImage;
use crate::pins;

impl Builder<'_> {
    /// The annotation values the controller would ignore (and, with `--workload`, what the
    /// local tier does not model).
    fn annotation_notices(&self) -> Vec<String> {
        if let Some(run) = &self.inputs.workload {
            return run.notices.clone();
        }
        self.variants
            .iter()
            .flat_map(|v| {
                ProxyTimeouts::for_ingress(
                    &v.ingress(&self.documented.ingress),
                    &ControllerConfig::default(),
                )
                .1
            })
            .map(|w| w.to_string())
            .collect()
    }

    /// Everything that can be checked before anything is made: Docker, the tools, nextest,
    /// the host ports, the echo build, the annotations. A run that would fail later for want
    /// of one of these stops here, with the fix.
    pub(super) fn prerequisites(&self) -> anyhow::Result<Step> {
        let mut actions = vec![Action::Reset {
            path: self.rows_dir(),
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
        actions.push(Action::RequireVersion {
            cmd: Cmd::new(&self.tools().cargo).args(["nextest", "--version"]),
            at_least: NEXTEST_MIN.into(),
            hint: "cargo install cargo-nextest --locked (or `cargo xtask test --setup-only`)"
                .into(),
        });
        if self.mode == Mode::Kind && !self.args.reuse {
            let (http, https) = (self.args.http_port, self.args.https_port);
            actions.push(Action::PortsFree {
                addrs: vec![self.http_addr.clone(), self.https_addr.clone()],
                hint: format!(
                    "the kind node maps its ingress to these host ports; pass free ones, e.g. --http-port {} --https-port {}",
                    if http == 8080 { 8081 } else { 8080 },
                    if https == 8443 { 8444 } else { 8443 }
                ),
            });
        }
        if self.mode == Mode::Kind
            && self.inputs.workload.is_none()
            && self.echo_image() == EchoImage::Built
        {
            actions.extend(self.echo_target()?);
        }
        actions.push(Action::IgnoredAnnotations {
            warnings: self.annotation_notices(),
            strict: self.args.strict,
        });
        Ok(Self::step(StepId::Prerequisites, actions))
    }

    /// The Rust target the echo server is built for (the Docker server's platform), added
    /// with rustup when missing; without a way to build it the run stops before kind is made.
    fn echo_target(&self) -> anyhow::Result<Option<Action>> {
        let echo = &self.inputs.echo;
        let target = echo
            .target
            .as_ref()
            .map_err(|why| anyhow::anyhow!("{why}"))?;
        if echo.installed {
            return Ok(None);
        }
        match &echo.rustup {
            Some(rustup) => Ok(Some(Action::Run(Cmd::new(rustup).args([
                "target",
                "add",
                &target.triple,
            ])))),
            None => anyhow::bail!(
                "cannot build the echo server for {}: the Rust target {} is not installed and there is no rustup to add it. Install it, or pass --echo-image documented to run the document's image instead",
                echo.platform,
                target.triple
            ),
        }
    }

    pub(super) fn cluster(&self) -> anyhow::Result<Step> {
        let name = &self.args.name;
        let nodes = Action::Wait {
            what: WaitFor::NodesReady,
            limit: self.inputs.deadlines.kind_wait,
        };
        if self.args.reuse {
            return Ok(Step {
                id: StepId::Cluster,
                arms_teardown: None,
                // The cluster was there before the run: diagnostics can look at it at once.
                reaches_cluster: Some(0),
                actions: vec![
                    Action::Run(
                        self.kind()
                            .args(["export", "kubeconfig", "--name", name])
                            .arg("--kubeconfig")
                            .arg(&self.kubeconfig),
                    ),
                    nodes,
                ],
            });
        }
        let config = self.work.join("kind-config.yaml");
        Ok(Step {
            id: StepId::Cluster,
            // Teardown deletes the cluster by name: armed only at `kind create`, never over a
            // cluster that was already there.
            arms_teardown: Some(2),
            reaches_cluster: Some(2),
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
                // kind's --wait only warns when it expires and still exits 0.
                nodes,
            ],
        })
    }

    pub(super) fn ingress_nginx(&self) -> Step {
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
        // A failed Job is removed by its TTL (0) too; what a successful one leaves is its
        // Secret, without which the controller never becomes Ready.
        actions.push(Action::Wait {
            what: WaitFor::Exists(ObjectRef::of::<Secret>(
                Some(INGRESS_NGINX_NAMESPACE),
                ADMISSION_SECRET,
            )),
            limit,
        });
        actions.push(Action::Wait {
            what: WaitFor::PodsReady {
                namespace: INGRESS_NGINX_NAMESPACE.into(),
                selector: CONTROLLER_SELECTOR.into(),
            },
            limit,
        });
        Self::step(StepId::IngressNginx, actions)
    }

    pub(super) fn image_step(&self) -> anyhow::Result<Step> {
        let image = &self.inputs.image;
        let target = self
            .inputs
            .echo
            .target
            .clone()
            .map_err(|why| anyhow::anyhow!("{why}"))?;
        Ok(Self::step(
            StepId::EchoImage,
            vec![
                Action::EnsureImage {
                    reference: image.clone(),
                    target,
                },
                self.load_image(image),
            ],
        ))
    }

    /// `kind load docker-image`, with an image-archive fallback (saved for this platform only:
    /// an index naming other platforms' absent content is what fails to import, kind#3795).
    pub(super) fn load_image(&self, image: &str) -> Action {
        let name = &self.args.name;
        let archive = self
            .work
            .join(format!("{}.tar", image.replace(['/', ':'], "_")));
        Action::LoadImage(LoadImage {
            direct: self
                .kind()
                .args(["load", "docker-image", image, "--name", name]),
            save: Cmd::new(&self.tools().docker)
                .args([
                    "save",
                    "--platform",
                    &self.inputs.echo.platform.to_string(),
                    "--output",
                ])
                .arg(&archive)
                .arg(image),
            save_any_platform: Cmd::new(&self.tools().docker)
                .args(["save", "--output"])
                .arg(&archive)
                .arg(image),
            archive: self
                .kind()
                .args(["load", "image-archive"])
                .arg(&archive)
                .args(["--name", name]),
        })
    }

    pub(super) fn teardown(&self) -> Step {
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
            (Mode::Existing, false, _) if self.inputs.workload.is_some() => {
                return Self::step(StepId::Teardown, self.workload_teardown());
            }
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
                    .args(
                        self.owned_objects()
                            .iter()
                            .map(|o| format!("{}/{}", o.resource.kind.to_lowercase(), o.name)),
                    ),
            ),
        };
        Self::step(StepId::Teardown, vec![action])
    }

    pub(super) fn on_failure(&self) -> Vec<Action> {
        let dir = self.work.join("diagnostics");
        let mut actions = vec![
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
        ];
        if self.mode == Mode::Kind {
            // The node's own logs: kubelet, containerd, every container's.
            actions.push(Action::Run(
                self.kind()
                    .args(["export", "logs"])
                    .arg(dir.join("kind"))
                    .args(["--name", &self.args.name]),
            ));
        }
        actions
    }
}
