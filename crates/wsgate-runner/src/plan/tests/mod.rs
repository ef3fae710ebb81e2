//! One test per main flag combination: the plan's actions, and what it prints.

use super::Mode;
use super::*;
use crate::action::{NextestMode, shell_line};
use crate::tools::Tool;
use clap::Parser;
use wsgate_contract::{ENV_PHASE, ENV_REPORT_DIR, ENV_TIER, ENV_TRUST};
use wsgate_manifests::DOCUMENTED_TLS_PATCH;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ClusterArgs,
}

fn found(path: &str) -> Tool {
    Tool {
        path: path.into(),
        fetch: None,
        notes: Vec::new(),
        unusable: None,
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
        workload: None,
        echo: EchoBuild {
            platform: wsgate_image::Platform::LINUX_AMD64,
            target: Ok(wsgate_image::BinaryBuild {
                platform: wsgate_image::Platform::LINUX_AMD64,
                triple: "x86_64-unknown-linux-gnu".into(),
                linker: None,
            }),
            installed: true,
            rustup: Some("/home/u/.cargo/bin/rustup".into()),
            assumed: None,
        },
        nextest_version: Some("0.9.151".into()),
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

/// Asserts that what `--dry-run` prints holds each of `parts`.
fn prints(p: &Plan, parts: &[&str]) {
    let text = p.render();
    for part in parts {
        assert!(text.contains(part), "{part:?} is not in:\n{text}");
    }
}

/// The steps that arm teardown.
fn armed(p: &Plan) -> Vec<StepId> {
    p.steps
        .iter()
        .filter(|s| s.arms_teardown.is_some())
        .map(|s| s.id)
        .collect()
}

/// A phase's route waits (one per host) and its test step.
fn routes_then_tests(phase: Phase, hosts: &[&str], filter: &str, junit: &str) -> Vec<String> {
    let routes = StepId::WaitRoutes(phase).title();
    let scheme = if phase == Phase::Tls { "wss" } else { "ws" };
    let mut v: Vec<String> = hosts
        .iter()
        .map(|h| format!("{routes}: wait {scheme}://{h}"))
        .collect();
    v.extend(tests_step(StepId::Tests(phase), filter, junit));
    v
}

/// A test step's signatures: its JUnit file reset, nextest with `filter`, the copy kept.
fn tests_step(id: StepId, filter: &str, junit: &str) -> [String; 3] {
    let t = id.title();
    [
        format!("{t}: reset junit.xml"),
        format!("{t}: nextest package(wsgate-e2e) and {filter}"),
        format!("{t}: copy junit-{junit}.xml"),
    ]
}

#[test]
fn kind_default_creates_installs_loads_applies_tests_patches_and_tears_down_in_order() {
    let p = plan(&[]).unwrap();
    let mut want: Vec<String> = vec![
        "prerequisites: reset rows",
        "prerequisites: docker version --format {{.Server.Version}}",
        "prerequisites: cargo nextest --version >= 0.9.91",
        "prerequisites: ports free 127.0.0.1:80,127.0.0.1:443",
        "prerequisites: annotations strict=false",
        "cluster: kind get clusters",
        "cluster: write kind-config.yaml",
        "cluster: kind create cluster --name",
        "cluster: wait nodes",
        "ingress-nginx controller-v1.15.1: download ingress-nginx kind manifest controller-v1.15.1",
        "ingress-nginx controller-v1.15.1: kubectl apply -f",
        "ingress-nginx controller-v1.15.1: wait Job ingress-nginx/ingress-nginx-admission-create",
        "ingress-nginx controller-v1.15.1: wait Job ingress-nginx/ingress-nginx-admission-patch",
        "ingress-nginx controller-v1.15.1: wait exists Secret ingress-nginx/ingress-nginx-admission",
        "ingress-nginx controller-v1.15.1: wait pods ingress-nginx app.kubernetes.io/component=controller",
        "echo image: image wsgate-echo:0.1.0-0123456789ab linux/amd64",
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
    want.push(format!("{step5}: wait rollout default/websocket-server"));
    let hosts = [
        "test.example.com",
        "no-annotations.test.example.com",
        "short-3.test.example.com",
        "short-read.test.example.com",
        "short-send.test.example.com",
    ];
    want.extend(routes_then_tests(
        Phase::Plain,
        &hosts,
        "binary(/^(cluster|any)_plain/)",
        "phase-1",
    ));
    let tls = StepId::Tls.title();
    want.push(format!("{tls}: certificate test.example.com"));
    want.push(format!("{tls}: certificate {}", hosts[1..].join(",")));
    want.push(format!("{tls}: apply Secret default/nginx-ingress-tls"));
    want.push(format!("{tls}: apply Secret default/wsgate-variants-tls"));
    want.push(format!("{tls}: merge-patch Ingress default/ws"));
    want.extend(DERIVED.map(|n| format!("{tls}: merge-patch Ingress default/{n}")));
    want.extend(routes_then_tests(
        Phase::Tls,
        &hosts,
        "binary(/^(cluster|any)_tls/)",
        "phase-2",
    ));
    want.extend(tests_step(
        StepId::Faults,
        "binary(cluster_faults)",
        "faults",
    ));
    want.extend(tests_step(
        StepId::Rollout,
        "binary(cluster_rollout)",
        "rollout",
    ));
    want.push("teardown: kind delete cluster --name".into());
    assert_eq!(signatures(&p), want);
    // The cluster step arms teardown right before `kind create`, nothing earlier does.
    assert_eq!(armed(&p), [StepId::Cluster]);
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
        let want = if p.mode == Mode::Kind { 4 } else { 3 };
        assert_eq!(
            nextest.len(),
            want,
            "phase 1, phase 2, faults (and the rollout on kind)"
        );
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
            let words =
                shlex::split(cmd.to_string().split(" > ").next().unwrap()).expect("valid shell");
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
    prints(
        &p,
        &[
            "hostPort 80 -> 8080, 443 -> 8443",
            "WSGATE_HTTPS_ADDR=127.0.0.1:8443",
            "create cluster --name dev",
        ],
    );
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
    assert_eq!(armed(&p), [StepId::Manifests]);
    prints(
        &p,
        &[
            "kubectl --kubeconfig /k --context prod delete namespace wsgate-e2e",
            "WSGATE_HTTP_ADDR=203.0.113.7:80",
            "WSGATE_HTTPS_ADDR=203.0.113.7:443",
            // The document's image is pulled by the cluster: not the built one.
            "image registry-cn-hangzhou.ack.aliyuncs.com/ack-demo/websocket-echo-server:latest",
        ],
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
    prints(
        &p,
        &[
            "-n default delete --ignore-not-found deployment/websocket-server service/websocket-server ingress/ws ingress/ws-no-annotations",
        ],
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
        fetch: Some(pins::KIND[0].1),
        notes: vec!["/usr/local/bin/kind is v0.20.0, not v0.32.0: passed over".into()],
        unusable: None,
    };
    let cli = Cli::try_parse_from(["e2e"]).unwrap();
    let p = Plan::new(&cli.args, &i).unwrap();
    assert!(has(&p, "prerequisites: download kind v0.32.0"));
    assert!(p.notes.iter().any(|n| n.contains("v0.20.0")));
    prints(&p, &["$ /repo/target/wsgate/tools/kind create cluster"]);
}

#[test]
fn the_tls_patch_on_ws_is_the_document_s_byte_for_byte() {
    let text = plan(&[]).unwrap().render();
    assert!(
        text.contains(&format!(
            "/namespaces/default/ingresses/ws merge patch (fieldManager=wsgate) {DOCUMENTED_TLS_PATCH}\n"
        )),
        "{text}"
    );
}

#[test]
fn on_failure_collects_diagnostics_the_controller_s_nginx_conf_and_kind_s_logs() {
    let p = plan(&[]).unwrap();
    let sigs: Vec<String> = p.on_failure.iter().map(Action::signature).collect();
    assert_eq!(
        sigs,
        [
            "diagnostics",
            "kubectl -n ingress-nginx exec",
            "kind export logs --name"
        ]
    );
    let existing = plan(&["--ingress-address", "lb", "--kubeconfig", "/k"]).unwrap();
    assert!(
        !existing
            .on_failure
            .iter()
            .any(|a| a.signature().starts_with("kind")),
        "no kind on an existing cluster"
    );
}

mod snapshot;
mod workload;

/// A `docker` that answers `version --format {{.Server.Os}}/{{.Server.Arch}}` with `platform`.
fn docker_reporting(dir: &std::path::Path, platform: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let docker = dir.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\ncase \"$*\" in *Server.Os*) echo {platform} ;; *) echo 29.0.0 ;; esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    docker
}

#[test]
fn a_docker_server_on_linux_arm64_gets_an_aarch64_linux_echo_build() {
    let dir = tempfile::tempdir().unwrap();
    let docker = docker_reporting(dir.path(), "linux/arm64");
    let mut echo = EchoBuild::detect(&docker, std::ffi::OsStr::new(""));
    assert_eq!(echo.platform, wsgate_image::Platform::LINUX_ARM64);
    let target = echo.target.clone().unwrap();
    if wsgate_image::Platform::host() != Some(wsgate_image::Platform::LINUX_ARM64) {
        assert_eq!(
            (target.triple.as_str(), target.linker),
            ("aarch64-unknown-linux-musl", Some("rust-lld"))
        );
    }
    // Not installed yet: rustup adds it in step 1, before any cluster exists.
    echo.installed = false;
    echo.rustup = Some("/home/u/.cargo/bin/rustup".into());
    let mut i = inputs();
    i.echo = echo.clone();
    let cli = Cli::try_parse_from(["e2e"]).unwrap();
    let p = Plan::new(&cli.args, &i).unwrap();
    assert!(has(
        &p,
        &format!("prerequisites: rustup target add {}", target.triple)
    ));
    assert!(has(
        &p,
        "echo image: image wsgate-echo:0.1.0-0123456789ab linux/arm64"
    ));
    prints(
        &p,
        &[
            "$ cargo xtask image --platform linux/arm64",
            &format!("cargo build --release --target {}", target.triple),
            "docker save --platform linux/arm64",
        ],
    );
    // Without rustup the run stops before anything is made, naming the way out.
    echo.rustup = None;
    i.echo = echo;
    let e = Plan::new(&cli.args, &i).unwrap_err().to_string();
    assert!(
        e.contains("--echo-image documented") && e.contains("linux/arm64"),
        "{e}"
    );
}

#[test]
fn a_docker_server_that_runs_no_linux_containers_stops_the_plan_unless_the_documented_image_is_used()
 {
    let dir = tempfile::tempdir().unwrap();
    let docker = docker_reporting(dir.path(), "windows/amd64");
    let mut i = inputs();
    i.echo = EchoBuild::detect(&docker, std::ffi::OsStr::new(""));
    let built = Cli::try_parse_from(["e2e"]).unwrap();
    let e = Plan::new(&built.args, &i).unwrap_err().to_string();
    assert!(e.contains("--echo-image documented"), "{e}");
    let documented = Cli::try_parse_from(["e2e", "--echo-image", "documented"]).unwrap();
    let p = Plan::new(&documented.args, &i).unwrap();
    assert!(p.step(StepId::EchoImage).is_none());
}

#[test]
fn step_1_checks_nextest_and_the_host_ports_before_kind_is_made() {
    let p = plan(&["--http-port", "8080", "--https-port", "8443"]).unwrap();
    assert!(has(&p, "prerequisites: cargo nextest --version >= 0.9.91"));
    assert!(has(
        &p,
        "prerequisites: ports free 127.0.0.1:8080,127.0.0.1:8443"
    ));
    prints(&p, &["--http-port 8081 --https-port 8444"]);
    // A reused cluster holds those ports itself.
    let reused = plan(&["--reuse"]).unwrap();
    assert!(!signatures(&reused).iter().any(|s| s.contains("ports free")));
}

#[test]
fn kind_s_wait_is_followed_by_a_real_node_wait_and_the_admission_secret_is_checked() {
    let p = plan(&[]).unwrap();
    let sigs = signatures(&p);
    let create = sigs
        .iter()
        .position(|s| s.ends_with("kind create cluster --name"))
        .unwrap();
    assert!(sigs[create + 1].ends_with("wait nodes"), "{sigs:#?}");
    assert!(has(
        &p,
        "wait exists Secret ingress-nginx/ingress-nginx-admission"
    ));
    prints(&p, &["~ wait up to 120 s: every Node Ready"]);
}

#[test]
fn the_dry_run_names_the_pinned_node_image_and_where_its_digest_came_from() {
    let p = plan(&[]).unwrap();
    prints(
        &p,
        &[
            pins::KIND_NODE_IMAGE,
            "kind v0.32.0's release notes",
            "cert-manager/makefile-modules",
        ],
    );
}
