//! The kind tier as an ordered plan of steps; `--dry-run` prints it, the executor runs it.

use std::path::{Path, PathBuf};

use wsgate_e2e::Phase;
use wsgate_e2e::target::{
    ENV_CONTEXT, ENV_HTTP_ADDR, ENV_HTTPS_ADDR, ENV_KUBECONFIG, ENV_NAMESPACE, ENV_PHASE,
    ENV_TARGET, ENV_TRUST, VARIANTS_TLS_SECRET,
};
use wsgate_manifests::{
    AnnotationWarning, ControllerConfig, DOCUMENTED_TLS_PATCH, ProxyTimeouts, TLS_SECRET_NAME,
    Variant, tls_patch,
};

use super::pins;

/// Which echo image the Deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EchoImage {
    /// The workspace's echo server, built FROM scratch and loaded into kind.
    Built,
    /// The document's image reference, unchanged (pulled by the cluster).
    Documented,
}

/// Flags of `cargo xtask e2e` (cluster tiers).
#[derive(Debug, Clone, clap::Args)]
pub struct KindArgs {
    /// kind cluster name.
    #[arg(long, default_value = "wsgate")]
    pub name: String,
    /// Use an existing kind cluster of that name instead of failing.
    #[arg(long)]
    pub reuse: bool,
    /// Keep the cluster (or namespace) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Host port mapped to the ingress's port 80 (80 is often taken on a laptop).
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// Host port mapped to the ingress's port 443.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Echo image: `built` (this workspace's, default on kind) or `documented` (the document's).
    #[arg(long, value_enum)]
    pub echo_image: Option<EchoImage>,
    /// Existing cluster: kubeconfig file (skips kind).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Existing cluster: kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Existing cluster: the ingress controller's address, HOST[:PORT] (port 80 by default).
    #[arg(long)]
    pub ingress_address: Option<String>,
    /// Existing cluster: the ingress controller's TLS port.
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Namespace for the suite's objects (default: `default` on kind as documented, `wsgate-e2e` on an existing cluster).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Fail on annotation values that ingress-nginx would silently ignore.
    #[arg(long)]
    pub strict: bool,
}

/// Kind cluster made by the suite, or a cluster someone already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Kind,
    Existing,
}

/// Everything derived from the flags.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: KindArgs,
    pub mode: Mode,
    pub namespace: String,
    pub echo_image: EchoImage,
    pub http_addr: String,
    pub https_addr: String,
    pub work: PathBuf,
    pub kubeconfig: PathBuf,
    pub profile: String,
    pub variants: Vec<Variant>,
}

/// One step of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
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

impl Step {
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

impl Plan {
    pub fn new(args: KindArgs, profile: &str, root: &Path) -> anyhow::Result<Self> {
        let existing =
            args.ingress_address.is_some() || args.kubeconfig.is_some() || args.context.is_some();
        let mode = if existing { Mode::Existing } else { Mode::Kind };
        let work = root.join("target").join("wsgate").join(match mode {
            Mode::Kind => "kind",
            Mode::Existing => "cluster",
        });
        let (namespace, echo_image, http_addr, https_addr, kubeconfig) = match mode {
            Mode::Kind => (
                args.namespace
                    .clone()
                    .unwrap_or_else(|| wsgate_manifests::DOCUMENTED_NAMESPACE.into()),
                args.echo_image.unwrap_or(EchoImage::Built),
                format!("127.0.0.1:{}", args.http_port),
                format!("127.0.0.1:{}", args.https_port),
                work.join("kubeconfig"),
            ),
            Mode::Existing => {
                let Some(address) = args.ingress_address.clone() else {
                    anyhow::bail!(
                        "an existing cluster (--kubeconfig/--context) also needs --ingress-address HOST[:PORT]: where its ingress controller answers"
                    );
                };
                if args.echo_image == Some(EchoImage::Built) {
                    anyhow::bail!(
                        "--echo-image built needs kind (the image is loaded into kind's nodes); on an existing cluster use --echo-image documented"
                    );
                }
                let (host, http) = split_host_port(&address, 80)?;
                let kubeconfig = args
                    .kubeconfig
                    .clone()
                    .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .map(|h| PathBuf::from(h).join(".kube").join("config"))
                    })
                    .ok_or_else(|| anyhow::anyhow!("no kubeconfig: pass --kubeconfig"))?;
                (
                    args.namespace
                        .clone()
                        .unwrap_or_else(|| "wsgate-e2e".into()),
                    EchoImage::Documented,
                    format!("{host}:{http}"),
                    format!("{host}:{}", args.ingress_https_port),
                    kubeconfig,
                )
            }
        };
        Ok(Self {
            mode,
            namespace,
            echo_image,
            http_addr,
            https_addr,
            work,
            kubeconfig,
            profile: profile.to_owned(),
            variants: wsgate_e2e::suite_variants(),
            args,
        })
    }

    pub fn steps(&self) -> Vec<Step> {
        let mut steps = vec![Step::Prerequisites];
        if self.mode == Mode::Kind {
            steps.extend([Step::Cluster, Step::IngressNginx]);
        }
        if self.echo_image == EchoImage::Built {
            steps.push(Step::EchoImage);
        }
        steps.extend([
            Step::Manifests,
            Step::WaitRoutes(Phase::Plain),
            Step::Tests(Phase::Plain),
            Step::Tls,
            Step::WaitRoutes(Phase::Tls),
            Step::Tests(Phase::Tls),
            Step::Faults,
            Step::Teardown,
        ]);
        steps
    }

    pub fn kind_config(&self) -> PathBuf {
        self.work.join("kind-config.yaml")
    }

    pub fn manifest_cache(&self) -> PathBuf {
        self.work.join("cache").join(format!(
            "ingress-nginx-kind-{}.yaml",
            pins::INGRESS_NGINX_VERSION
        ))
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.work.join("tls")
    }

    pub fn rows(&self) -> PathBuf {
        self.work.join("rows")
    }

    pub fn diagnostics(&self) -> PathBuf {
        self.work.join("diagnostics")
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.work
            .parent()
            .expect("work dir has a parent")
            .join("tools")
    }

    /// The environment the e2e tests read in a phase.
    pub fn test_env(&self, phase: Phase, trust: &[PathBuf]) -> Vec<(String, String)> {
        let mut env = vec![
            (ENV_TARGET.to_owned(), "cluster".to_owned()),
            (ENV_PHASE.to_owned(), phase.as_str().to_owned()),
            (ENV_HTTP_ADDR.to_owned(), self.http_addr.clone()),
            (ENV_HTTPS_ADDR.to_owned(), self.https_addr.clone()),
            (
                ENV_KUBECONFIG.to_owned(),
                self.kubeconfig.display().to_string(),
            ),
            (ENV_NAMESPACE.to_owned(), self.namespace.clone()),
        ];
        if let Some(c) = &self.args.context {
            env.push((ENV_CONTEXT.to_owned(), c.clone()));
        }
        if !trust.is_empty() {
            let joined: Vec<String> = trust.iter().map(|p| p.display().to_string()).collect();
            env.push((ENV_TRUST.to_owned(), joined.join(":")));
        }
        env
    }

    /// The fault tests: after phase 2, alone.
    pub const FAULTS_FILTER: &'static str = "binary(faults)";

    /// Which test binaries a phase runs.
    pub fn test_filter(phase: Phase) -> &'static str {
        match phase {
            Phase::Plain => "binary(cluster) | binary(plain)",
            Phase::Tls => "binary(tls)",
        }
    }

    fn kubectl(&self) -> String {
        let mut s = format!("kubectl --kubeconfig {}", self.kubeconfig.display());
        if let Some(c) = &self.args.context {
            s.push_str(&format!(" --context {c}"));
        }
        s
    }

    /// The commands and API calls of a step, in order, as a person would read them.
    pub fn describe(&self, step: Step) -> Vec<String> {
        let ns = &self.namespace;
        let name = &self.args.name;
        let ing_path =
            |n: &str| format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{n}");
        match step {
            Step::Prerequisites => {
                let mut v = Vec::new();
                if self.mode == Mode::Kind {
                    v.push("docker version --format {{.Server.Version}}   (a reachable Docker daemon)".into());
                    v.push(format!("kind {} from PATH or {}, else download {} (sha256 {})", pins::KIND_VERSION, self.tools_dir().display(), pins::KIND_LINUX_AMD64.url, pins::KIND_LINUX_AMD64.sha256));
                }
                v.push(format!("kubectl from PATH or {}, else download {} (sha256 {})", self.tools_dir().display(), pins::KUBECTL_LINUX_AMD64.url, pins::KUBECTL_LINUX_AMD64.sha256));
                v.push("annotation check of every Ingress to apply (--strict fails on values ingress-nginx ignores)".into());
                v
            }
            Step::Cluster if self.args.reuse => vec![
                format!("kind get clusters   (expect {name})"),
                format!("kind export kubeconfig --name {name} --kubeconfig {}", self.kubeconfig.display()),
            ],
            Step::Cluster => vec![
                format!("write {} from manifests/kind-config.yaml (hostPort 80 -> {}, 443 -> {})", self.kind_config().display(), self.args.http_port, self.args.https_port),
                format!("kind create cluster --name {name} --image {} --config {} --kubeconfig {} --wait 120s", pins::KIND_NODE_IMAGE, self.kind_config().display(), self.kubeconfig.display()),
            ],
            Step::IngressNginx => vec![
                format!("download {} to {} unless cached; sha256 must be {}", pins::INGRESS_NGINX_KIND_MANIFEST.url, self.manifest_cache().display(), pins::INGRESS_NGINX_KIND_MANIFEST.sha256),
                format!("{} apply -f {}", self.kubectl(), self.manifest_cache().display()),
                "wait (deadline 240s): Jobs ingress-nginx/ingress-nginx-admission-create and -patch Complete".into(),
                "wait (deadline 240s): pods ingress-nginx app.kubernetes.io/component=controller Running and Ready".into(),
            ],
            Step::EchoImage => vec![
                "cargo xtask image   (static wsgate-echo, FROM scratch, tag <version>-<git sha>)".into(),
                format!("kind load docker-image wsgate-echo:<tag> --name {name}"),
            ],
            Step::Manifests => {
                let mut v = Vec::new();
                if ns != wsgate_manifests::DOCUMENTED_NAMESPACE {
                    v.push(format!("{} apply -f {}   (Namespace {ns})", self.kubectl(), self.work.join("namespace.yaml").display()));
                }
                let image = match self.echo_image {
                    EchoImage::Built => "image overridden with wsgate-echo:<tag>".to_owned(),
                    EchoImage::Documented => "image as documented".to_owned(),
                };
                v.push(format!("PATCH /apis/apps/v1/namespaces/{ns}/deployments/websocket-server (server-side apply, fieldManager=wsgate; {image})"));
                v.push(format!("PATCH /api/v1/namespaces/{ns}/services/websocket-server (server-side apply)"));
                for variant in &self.variants {
                    v.push(format!(
                        "PATCH {} (server-side apply; host {}; {}; retried while the admission webhook is not answering, deadline 120s)",
                        ing_path(&variant.name),
                        variant.host,
                        variant.describe
                    ));
                }
                v
            }
            Step::WaitRoutes(phase) => self
                .variants
                .iter()
                .map(|variant| {
                    let (scheme, addr) = match phase {
                        Phase::Plain => ("ws", &self.http_addr),
                        Phase::Tls => ("wss", &self.https_addr),
                    };
                    format!("echo over {scheme}://{}/ via {addr} until it works (deadline 120s){}", variant.host, if phase == Phase::Tls { ", certificate verified: the controller's fake certificate does not pass" } else { "" })
                })
                .collect(),
            Step::Tests(phase) => vec![self.nextest_line(phase, Self::test_filter(phase))],
            Step::Faults => vec![self.nextest_line(Phase::Tls, Self::FAULTS_FILTER)],
            Step::Tls => {
                let mut v = vec![
                    format!("generate certificate + key for test.example.com (rcgen, 365 days) in {} (key 0600)", self.tls_dir().display()),
                    format!("PATCH /api/v1/namespaces/{ns}/secrets/{TLS_SECRET_NAME} (server-side apply, type kubernetes.io/tls)"),
                    format!("PATCH /api/v1/namespaces/{ns}/secrets/{VARIANTS_TLS_SECRET} (server-side apply, type kubernetes.io/tls, the derived hosts)"),
                ];
                for variant in &self.variants {
                    let body = if variant.is_documented() {
                        DOCUMENTED_TLS_PATCH.to_owned()
                    } else {
                        tls_patch(&[&variant.host], VARIANTS_TLS_SECRET).to_string()
                    };
                    v.push(format!("PATCH {} (merge patch) {body}", ing_path(&variant.name)));
                }
                v
            }
            Step::Teardown => match (self.mode, self.args.keep, self.args.reuse) {
                (_, true, _) => vec!["keep everything (--keep)".into()],
                (Mode::Kind, false, true) => vec![format!("keep the reused cluster {name}; delete nothing")],
                (Mode::Kind, false, false) => vec![format!("kind delete cluster --name {name} --kubeconfig {}   (also after a failure or Ctrl-C)", self.kubeconfig.display())],
                (Mode::Existing, false, _) if ns != wsgate_manifests::DOCUMENTED_NAMESPACE => {
                    vec![format!("{} delete namespace {ns} --wait=false   (also after a failure or Ctrl-C)", self.kubectl())]
                }
                (Mode::Existing, false, _) => vec![format!("{} -n {ns} delete {}   (also after a failure or Ctrl-C)", self.kubectl(), self.owned_objects().join(" "))],
            },
        }
    }

    /// The nextest run of a phase as a person would type it (the trust files exist after TLS).
    fn nextest_line(&self, phase: Phase, filter: &str) -> String {
        let trust = match phase {
            Phase::Plain => vec![],
            Phase::Tls => vec![
                self.tls_dir().join("test.example.com.crt"),
                self.tls_dir().join("variants.crt"),
            ],
        };
        let env: Vec<String> = self
            .test_env(phase, &trust)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{} cargo nextest run --package wsgate-e2e --profile {} --no-fail-fast --ignore-default-filter --filterset '{filter}'",
            env.join(" "),
            self.profile
        )
    }

    /// The annotation values among the Ingresses to apply that ingress-nginx would ignore.
    pub fn annotation_warnings(
        &self,
        documented: &k8s_openapi::api::networking::v1::Ingress,
    ) -> Vec<AnnotationWarning> {
        self.variants
            .iter()
            .flat_map(|v| {
                ProxyTimeouts::for_ingress(&v.ingress(documented), &ControllerConfig::default()).1
            })
            .collect()
    }

    /// With `--strict`, ignored annotation values fail the run before anything is applied.
    pub fn check_strict(&self, warnings: &[AnnotationWarning]) -> anyhow::Result<()> {
        if self.args.strict && !warnings.is_empty() {
            let list: Vec<String> = warnings.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "--strict: {} annotation value(s) that ingress-nginx would ignore:\n{}",
                warnings.len(),
                list.join("\n")
            );
        }
        Ok(())
    }

    /// The objects the suite creates, as `kind/name`, for deletion in a shared namespace.
    pub fn owned_objects(&self) -> Vec<String> {
        let mut v = vec![
            "deployment/websocket-server".to_owned(),
            "service/websocket-server".to_owned(),
        ];
        v.extend(self.variants.iter().map(|x| format!("ingress/{}", x.name)));
        v.push(format!("secret/{TLS_SECRET_NAME}"));
        v.push(format!("secret/{VARIANTS_TLS_SECRET}"));
        v
    }

    /// The whole plan as printed by `--dry-run`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "wsgate e2e plan ({} mode, namespace {}, ingress at {} / {}):\n",
            match self.mode {
                Mode::Kind => "kind",
                Mode::Existing => "existing cluster",
            },
            self.namespace,
            self.http_addr,
            self.https_addr
        );
        for (i, step) in self.steps().into_iter().enumerate() {
            out.push_str(&format!("[{:>2}] {}\n", i + 1, step.title()));
            for line in self.describe(step) {
                out.push_str(&format!("     $ {line}\n"));
            }
        }
        out.push_str(&format!(
            "on failure: diagnostics (controller logs, events of ingress-nginx and {}, Ingresses as YAML, the controller's nginx.conf) in {}\n",
            self.namespace,
            self.diagnostics().display()
        ));
        out.push_str(&format!(
            "report: step timings and the idle table on stdout and in {}\n",
            self.work.join("report.md").display()
        ));
        out
    }
}

/// `host[:port]` with a default port; IPv6 literals in brackets.
pub fn split_host_port(s: &str, default: u16) -> anyhow::Result<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow::anyhow!("--ingress-address {s:?}: unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow::anyhow!("--ingress-address {s:?}: bad port {p:?}"))?,
            None => default,
        };
        return Ok((format!("[{host}]"), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse()
                .map_err(|_| anyhow::anyhow!("--ingress-address {s:?}: bad port {port:?}"))?;
            Ok((host.to_owned(), port))
        }
        _ if s.is_empty() => anyhow::bail!("--ingress-address is empty"),
        _ => Ok((s.to_owned(), default)),
    }
}

/// The kind config from `manifests/kind-config.yaml` with the host ports replaced.
pub fn kind_config(template: &str, http_port: u16, https_port: u16) -> anyhow::Result<String> {
    let mut doc: serde_json::Value = serde_saphyr::from_str(template)
        .map_err(|e| anyhow::anyhow!("manifests/kind-config.yaml: {e}"))?;
    let mappings = doc
        .pointer_mut("/nodes/0/extraPortMappings")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| {
            anyhow::anyhow!("manifests/kind-config.yaml: nodes[0].extraPortMappings is missing")
        })?;
    let mut seen = (false, false);
    for m in mappings {
        match m.get("containerPort").and_then(|p| p.as_u64()) {
            Some(80) => {
                m["hostPort"] = http_port.into();
                seen.0 = true;
            }
            Some(443) => {
                m["hostPort"] = https_port.into();
                seen.1 = true;
            }
            _ => {}
        }
    }
    anyhow::ensure!(
        seen == (true, true),
        "manifests/kind-config.yaml: needs extraPortMappings for containerPort 80 and 443"
    );
    serde_saphyr::to_string(&doc).map_err(|e| anyhow::anyhow!("rendering the kind config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: KindArgs,
    }

    fn plan(flags: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("e2e").chain(flags.iter().copied())).unwrap();
        Plan::new(cli.args, "ci", Path::new("/repo"))
    }

    #[test]
    fn default_plan_creates_kind_installs_the_controller_and_runs_both_phases_in_order() {
        let p = plan(&[]).unwrap();
        assert_eq!(
            p.steps(),
            vec![
                Step::Prerequisites,
                Step::Cluster,
                Step::IngressNginx,
                Step::EchoImage,
                Step::Manifests,
                Step::WaitRoutes(Phase::Plain),
                Step::Tests(Phase::Plain),
                Step::Tls,
                Step::WaitRoutes(Phase::Tls),
                Step::Tests(Phase::Tls),
                Step::Faults,
                Step::Teardown
            ]
        );
        let text = p.render();
        assert!(
            text.contains(&format!(
                "kind create cluster --name wsgate --image {}",
                pins::KIND_NODE_IMAGE
            )),
            "{text}"
        );
        assert!(text.contains("kind delete cluster --name wsgate"), "{text}");
        assert!(text.contains("WSGATE_HTTP_ADDR=127.0.0.1:80"), "{text}");
        // The TLS patch on `ws` is the document's, byte for byte.
        assert!(
            text.contains(&format!(
                "/namespaces/default/ingresses/ws (merge patch) {DOCUMENTED_TLS_PATCH}"
            )),
            "{text}"
        );
        // TLS comes after phase 1 and before phase 2.
        let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(
            at("tests, phase 1") < at("TLS: Secret") && at("TLS: Secret") < at("tests, phase 2")
        );
    }

    #[test]
    fn other_host_ports_reach_the_config_and_the_tests() {
        let p = plan(&[
            "--http-port",
            "8080",
            "--https-port",
            "8443",
            "--name",
            "dev",
            "--keep",
        ])
        .unwrap();
        let text = p.render();
        assert!(text.contains("hostPort 80 -> 8080, 443 -> 8443"), "{text}");
        assert!(text.contains("WSGATE_HTTPS_ADDR=127.0.0.1:8443"), "{text}");
        assert!(text.contains("keep everything (--keep)"), "{text}");
        assert!(!text.contains("kind delete cluster"), "{text}");
    }

    #[test]
    fn reuse_exports_the_kubeconfig_and_keeps_the_cluster() {
        let text = plan(&["--reuse"]).unwrap().render();
        assert!(
            text.contains("kind export kubeconfig --name wsgate"),
            "{text}"
        );
        assert!(!text.contains("kind create cluster"), "{text}");
        assert!(text.contains("keep the reused cluster wsgate"), "{text}");
    }

    #[test]
    fn documented_image_skips_the_build_and_load() {
        let p = plan(&["--echo-image", "documented"]).unwrap();
        assert!(!p.steps().contains(&Step::EchoImage));
        assert!(p.render().contains("image as documented"));
    }

    #[test]
    fn existing_cluster_skips_kind_and_uses_its_own_namespace() {
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
        let text = p.render();
        assert!(
            !text.contains("kind create") && !text.contains("ingress-nginx controller-v1.15.1"),
            "{text}"
        );
        assert!(
            text.contains("kubectl --kubeconfig /k --context prod delete namespace wsgate-e2e"),
            "{text}"
        );
        assert!(
            text.contains("WSGATE_HTTP_ADDR=203.0.113.7:80")
                && text.contains("WSGATE_HTTPS_ADDR=203.0.113.7:443"),
            "{text}"
        );
        assert!(
            text.contains("/namespaces/wsgate-e2e/ingresses/ws (merge patch)"),
            "{text}"
        );
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
    fn existing_cluster_in_the_default_namespace_deletes_only_its_objects() {
        let text = plan(&[
            "--ingress-address",
            "lb.example:8080",
            "--kubeconfig",
            "/k",
            "--namespace",
            "default",
        ])
        .unwrap()
        .render();
        assert!(text.contains("-n default delete deployment/websocket-server service/websocket-server ingress/ws ingress/ws-no-annotations"), "{text}");
        assert!(text.contains("WSGATE_HTTP_ADDR=lb.example:8080"), "{text}");
    }

    #[test]
    fn strict_fails_on_an_ignored_annotation_in_the_manifests_and_names_it() {
        let mut documented = wsgate_manifests::Documented::shipped().unwrap().ingress;
        documented
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(wsgate_manifests::PROXY_READ_TIMEOUT.into(), "3600s".into());
        let lenient = plan(&[]).unwrap();
        let warnings = lenient.annotation_warnings(&documented);
        assert!(!warnings.is_empty());
        assert!(
            lenient.check_strict(&warnings).is_ok(),
            "without --strict it only warns"
        );
        let e = plan(&["--strict"])
            .unwrap()
            .check_strict(&warnings)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("default/ws:") || e.contains("Ingress default/ws"),
            "{e}"
        );
        assert!(e.contains("\"3600s\""), "{e}");
    }

    #[test]
    fn shipped_manifests_pass_strict() {
        let p = plan(&["--strict"]).unwrap();
        let documented = wsgate_manifests::Documented::shipped().unwrap().ingress;
        assert!(p.check_strict(&p.annotation_warnings(&documented)).is_ok());
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            split_host_port("1.2.3.4", 80).unwrap(),
            ("1.2.3.4".into(), 80)
        );
        assert_eq!(split_host_port("lb:8080", 80).unwrap(), ("lb".into(), 8080));
        assert_eq!(
            split_host_port("[::1]:81", 80).unwrap(),
            ("[::1]".into(), 81)
        );
        assert!(split_host_port("lb:http", 80).is_err());
    }

    #[test]
    fn kind_config_maps_the_chosen_host_ports() {
        let template = include_str!("../../../manifests/kind-config.yaml");
        let out = kind_config(template, 8080, 8443).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&out).unwrap();
        let m = &v["nodes"][0]["extraPortMappings"];
        assert_eq!(
            (m[0]["containerPort"].as_u64(), m[0]["hostPort"].as_u64()),
            (Some(80), Some(8080))
        );
        assert_eq!(
            (m[1]["containerPort"].as_u64(), m[1]["hostPort"].as_u64()),
            (Some(443), Some(8443))
        );
        assert_eq!(m[0]["listenAddress"], "127.0.0.1");
        assert_eq!(v["kind"], "Cluster");
    }

    #[test]
    fn kind_config_without_port_mappings_is_refused() {
        let e = kind_config("kind: Cluster\nnodes:\n- role: control-plane\n", 80, 443).unwrap_err();
        assert!(e.to_string().contains("extraPortMappings"), "{e}");
    }
}
