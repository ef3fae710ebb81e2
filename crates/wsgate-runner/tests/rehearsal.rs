//! A rehearsal of `cargo xtask e2e` with no cluster: the real plan and the real executor
//! against stubs and a mocked API that keeps its objects between runs (see `support/`). The
//! recorded sequence must be the plan; a failure injected at any step must fail the run naming
//! that step, write the report, and delete the cluster.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;
use wsgate_contract::Phase;
use wsgate_runner::action::Action;
use wsgate_runner::exit::Exit;
use wsgate_runner::plan::{Plan, StepId};

fn teardown_line(plan: &Plan) -> Option<String> {
    plan.step(StepId::Teardown)?
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Run(cmd) => Some(line(cmd)),
            _ => None,
        })
}

#[test]
fn the_executor_runs_exactly_the_plan() {
    let (rig, plan, result) = rehearse(&[], Fault::None);
    result.unwrap();
    let all: Vec<&Action> = plan.actions().collect();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&all));
    // Commands and API calls, from `docker version` to `kind delete cluster`.
    assert_eq!(recorded.len(), 26, "{recorded:#?}");
    assert!(rig.work().join("report.md").is_file());
    // The TLS step's files, as the plan named them, with the key private.
    let key = rig.work().join("tls/test.example.com.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !rig.work().join("diagnostics").exists(),
        "no diagnostics after a passing run"
    );
}

#[test]
fn a_reused_cluster_is_exported_and_kept() {
    let (rig, plan, result) = rehearse(&["--reuse"], Fault::None);
    result.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    assert!(
        recorded
            .iter()
            .any(|l| l.starts_with("kind export kubeconfig"))
    );
    assert!(
        !recorded
            .iter()
            .any(|l| l.starts_with("kind delete") || l.starts_with("kind create"))
    );
}

/// Injects `fault`, which must fail `step`; checks the exit, the message, the report, the
/// diagnostics and the teardown.
fn fails_at(fault: Fault, step: StepId, flags: &[&str]) -> Rig {
    let (rig, plan, result) = rehearse(flags, fault);
    let failed = result.expect_err("the run must fail");
    // A step that failed before its tests could judge is a set-up failure (exit 3); tests that
    // were listed, not run, never judge a promise in a rehearsal.
    assert_eq!(
        failed.exit,
        Exit::SetupFailed,
        "the exit of a failure at {step:?}: {failed:#}"
    );
    let err = format!("{failed:#}");
    let index = plan.steps.iter().position(|s| s.id == step).unwrap() + 1;
    assert!(
        err.contains(&format!("step {index} `{}`", step.title())),
        "the error must name step {index} `{}`: {err}",
        step.title()
    );
    assert!(
        plan.work.join("report.md").is_file(),
        "no report after a failure at {step:?}"
    );
    let recorded = rig.recorded();
    let cluster_made = plan
        .steps
        .iter()
        .take(index)
        .any(|s| match s.arms_teardown {
            // A failure at the arming step before the armed action leaves nothing to delete.
            Some(at) if s.id == step => !err.contains("already") && at < s.actions.len(),
            Some(_) => true,
            None => false,
        });
    let keeps = flags.contains(&"--keep") || flags.contains(&"--reuse");
    match teardown_line(&plan) {
        Some(teardown) if cluster_made && !keeps => assert_eq!(
            recorded.last(),
            Some(&teardown),
            "teardown must run last after a failure at {step:?}: {recorded:#?}"
        ),
        _ => assert!(
            !recorded.iter().any(|l| l.contains(" delete ")),
            "nothing to delete after a failure at {step:?}: {recorded:#?}"
        ),
    }
    // Diagnostics need a cluster that answers: one whose creating step passed. A failing
    // teardown comes after the diagnostics' turn.
    let cluster_answers = plan
        .steps
        .iter()
        .take(index - 1)
        .any(|s| s.arms_teardown.is_some() || s.reaches_cluster.is_some());
    let diagnosed = plan.work.join("diagnostics/controller.log").is_file();
    assert_eq!(
        diagnosed,
        cluster_answers && step != StepId::Teardown,
        "diagnostics after a failure at {step:?}"
    );
    rig
}

#[test]
fn a_failing_prerequisite_stops_before_any_cluster_exists() {
    let rig = fails_at(Fault::Command("docker version"), StepId::Prerequisites, &[]);
    assert!(!rig.recorded().iter().any(|l| l.starts_with("kind ")));
}

#[test]
fn a_failing_cluster_create_still_deletes_what_it_may_have_made() {
    fails_at(Fault::Command("kind create"), StepId::Cluster, &[]);
}

#[test]
fn a_failing_controller_install_tears_down() {
    fails_at(Fault::Command("apply -f"), StepId::IngressNginx, &[]);
}

#[test]
fn admission_jobs_that_never_complete_time_out_and_tear_down() {
    fails_at(Fault::JobsNeverComplete, StepId::IngressNginx, &[]);
}

#[test]
fn a_failing_image_load_falls_back_to_an_archive_then_tears_down() {
    let rig = fails_at(Fault::Command("kind load"), StepId::EchoImage, &[]);
    assert!(
        rig.recorded()
            .iter()
            .any(|l| l.starts_with("kind load image-archive")),
        "the archive fallback is tried before giving up"
    );
}

#[test]
fn a_refused_apply_tears_down() {
    fails_at(
        Fault::Api("deployments/websocket-server"),
        StepId::Manifests,
        &[],
    );
}

#[test]
fn a_host_that_never_routes_over_ws_tears_down() {
    fails_at(
        Fault::NoRoute(Phase::Plain),
        StepId::WaitRoutes(Phase::Plain),
        &[],
    );
}

#[test]
fn failing_phase_1_tests_still_run_phase_2_and_tear_down() {
    let rig = fails_at(
        Fault::Command("binary(/^(cluster|any)_plain/)"),
        StepId::Tests(Phase::Plain),
        &[],
    );
    assert!(
        rig.recorded()
            .iter()
            .any(|l| l.contains("binary(/^(cluster|any)_tls/)")),
        "phase 2 still runs"
    );
}

#[test]
fn a_refused_tls_secret_tears_down() {
    fails_at(Fault::Api("secrets/nginx-ingress-tls"), StepId::Tls, &[]);
}

#[test]
fn a_host_that_never_serves_its_certificate_tears_down() {
    fails_at(
        Fault::NoRoute(Phase::Tls),
        StepId::WaitRoutes(Phase::Tls),
        &[],
    );
}

#[test]
fn failing_phase_2_tests_tear_down() {
    fails_at(
        Fault::Command("binary(/^(cluster|any)_tls/)"),
        StepId::Tests(Phase::Tls),
        &[],
    );
}

#[test]
fn failing_fault_tests_are_named_as_the_faults_step() {
    fails_at(
        Fault::Command("binary(cluster_faults)"),
        StepId::Faults,
        &[],
    );
}

#[test]
fn a_failing_controller_restart_is_named_as_the_rollout_step() {
    fails_at(
        Fault::Command("binary(cluster_rollout)"),
        StepId::Rollout,
        &[],
    );
}

#[test]
fn a_failing_teardown_fails_the_run() {
    fails_at(Fault::Command("kind delete"), StepId::Teardown, &[]);
}

#[test]
fn keep_leaves_the_cluster_after_a_failure() {
    fails_at(Fault::Api("ingresses/ws"), StepId::Manifests, &["--keep"]);
}

const EXISTING: [&str; 8] = [
    "--kubeconfig",
    "{kubeconfig}",
    "--context",
    "prod",
    "--ingress-address",
    "127.0.0.1:{http}",
    "--ingress-https-port",
    "{https}",
];

#[test]
fn an_existing_cluster_gets_its_namespace_and_loses_it_afterwards() {
    let (rig, plan, result) = rehearse(&EXISTING, Fault::None);
    result.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    assert_eq!(
        recorded
            .iter()
            .find(|l| l.starts_with("PATCH"))
            .map(String::as_str),
        Some("PATCH /api/v1/namespaces/wsgate-e2e"),
        "the namespace first"
    );
    assert!(
        recorded
            .last()
            .is_some_and(|l| l.contains("delete namespace wsgate-e2e")),
        "{recorded:#?}"
    );
    assert!(
        !recorded
            .iter()
            .any(|l| l.starts_with("kind ") || l.starts_with("docker "))
    );
}

#[test]
fn someone_elses_namespace_on_an_existing_cluster_is_neither_changed_nor_deleted() {
    let rig = fails_at(
        Fault::Exists {
            path: "namespaces/wsgate-e2e",
            by_wsgate: false,
        },
        StepId::Manifests,
        &EXISTING,
    );
    // Only step 1's read-only version check ran.
    assert_eq!(rig.recorded(), ["cargo nextest --version"]);
}

#[test]
fn a_namespace_left_by_an_earlier_run_is_taken_over() {
    let (rig, plan, result) = rehearse(
        &EXISTING,
        Fault::Exists {
            path: "namespaces/wsgate-e2e",
            by_wsgate: true,
        },
    );
    result.unwrap();
    assert_eq!(
        rig.recorded(),
        expected(&plan.actions().collect::<Vec<_>>())
    );
}

#[test]
fn a_namespace_still_terminating_from_the_last_run_is_waited_for() {
    let (rig, plan, result) = rehearse(&EXISTING, Fault::Terminating("namespaces/wsgate-e2e"));
    result.unwrap();
    assert!(TERMINATING_SEEN.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert_eq!(
        rig.recorded(),
        expected(&plan.actions().collect::<Vec<_>>())
    );
}

#[test]
fn own_manifests_over_someone_elses_objects_are_refused_before_any_change() {
    let chat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/examples/chat");
    let mut flags = EXISTING.to_vec();
    flags.extend(["--manifests", chat]);
    let rig = fails_at(
        Fault::Exists {
            path: "services/chat",
            by_wsgate: false,
        },
        StepId::WorkloadApply,
        &flags,
    );
    assert_eq!(rig.recorded(), ["cargo nextest --version"]);
}

#[test]
fn an_existing_cluster_failing_before_its_objects_exist_deletes_nothing() {
    fails_at(
        Fault::Command("kubectl"),
        StepId::Prerequisites,
        &[
            "--kubeconfig",
            "/nonexistent",
            "--ingress-address",
            "lb",
            "--strict",
        ],
    );
}

#[test]
fn a_cluster_that_already_exists_is_never_deleted() {
    let rig = fails_at(Fault::ClusterExists, StepId::Cluster, &[]);
    assert_eq!(
        rig.recorded(),
        [
            "docker version --format {{.Server.Version}}",
            "cargo nextest --version",
            "kind get clusters"
        ]
    );
}

#[test]
fn own_manifests_are_loaded_applied_waited_for_and_checked() {
    let chat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/examples/chat");
    let (rig, plan, result) = rehearse(
        &[
            "--manifests",
            chat,
            "--load-image",
            "chat:dev",
            "--max-idle",
            "1",
            "--echo",
        ],
        Fault::None,
    );
    result.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    for want in [
        "kind load docker-image chat:dev --name wsgate",
        "PATCH /api/v1/namespaces/default/services/chat",
        "PATCH /apis/apps/v1/namespaces/default/deployments/chat",
        "PATCH /apis/networking.k8s.io/v1/namespaces/default/ingresses/chat",
    ] {
        assert!(
            recorded.iter().any(|l| l == want),
            "{want} not in {recorded:#?}"
        );
    }
    // The checks ran for real against the stand-in ingress and wrote their rows.
    let rows = wsgate_report::read_rows(&plan.rows()).unwrap();
    let cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(
        cases,
        [
            "workload::echo",
            "workload::handshake",
            "workload::idle",
            "workload::liveness",
            "workload::traffic"
        ]
    );
    assert!(
        rows.iter().all(|r| r.pass() && r.tier == "kind"),
        "{rows:#?}"
    );
}

/// The pod-template annotation of the echo Deployment on the mock cluster.
fn image_id_on_cluster(rig: &Rig) -> Option<String> {
    rig.mock
        .object("/apis/apps/v1/namespaces/default/deployments/websocket-server")?
        .pointer("/spec/template/metadata/annotations/wsgate.dev~1image-id")?
        .as_str()
        .map(str::to_owned)
}

#[test]
fn keep_then_reuse_starts_from_the_documents_state_and_rolls_a_changed_image() {
    let rig = Rig::new();
    let ws = "/apis/networking.k8s.io/v1/namespaces/default/ingresses/ws";
    let (_, first) = rig.rehearse(&["--keep"], Fault::None);
    first.unwrap();
    assert!(
        rig.mock.object(ws).unwrap().pointer("/spec/tls").is_some(),
        "the kept cluster has the TLS patch"
    );
    assert_eq!(image_id_on_cluster(&rig).as_deref(), Some("sha256:1111"));

    // The same tag, rebuilt from a dirty tree: another image ID.
    rig.clear_log();
    rig.set_image_id("sha256:2222");
    let (plan, second) = rig.rehearse(&["--reuse"], Fault::None);
    second.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    let at = |l: &str| recorded.iter().position(|r| r == l);
    let first_apply = at("PATCH /apis/apps/v1/namespaces/default/deployments/websocket-server")
        .expect("step 5 applies the Deployment");
    for gone in [
        format!("DELETE {ws}"),
        "DELETE /apis/networking.k8s.io/v1/namespaces/default/ingresses/ws-no-annotations".into(),
        "DELETE /api/v1/namespaces/default/secrets/nginx-ingress-tls".into(),
        "DELETE /api/v1/namespaces/default/secrets/wsgate-variants-tls".into(),
    ] {
        assert!(
            at(&gone).is_some_and(|i| i < first_apply),
            "{gone} before step 5: {recorded:#?}"
        );
    }
    let reapplied = at(&format!("PATCH {ws}")).unwrap();
    let patched_again = recorded.iter().rposition(|r| r == &format!("PATCH {ws}"));
    assert!(
        patched_again > Some(reapplied),
        "applied without spec.tls, then patched by the TLS step"
    );
    // The pod template now names the new image: the Deployment rolls its pods, and step 5
    // waits for that rollout before any route is tried.
    assert_eq!(image_id_on_cluster(&rig).as_deref(), Some("sha256:2222"));
    assert!(
        plan.step(StepId::Manifests)
            .unwrap()
            .actions
            .iter()
            .any(|a| a.signature() == "wait rollout default/websocket-server")
    );
    let text = plan.render();
    for part in [
        "reused cluster: back to the document's starting state",
        "DELETE /apis/networking.k8s.io/v1/namespaces/default/ingresses/ws (absent is fine)",
        "template annotation wsgate.dev/image-id",
    ] {
        assert!(text.contains(part), "{part:?} not printed:\n{text}");
    }

    // Nothing changed since: the same template, so no restart.
    rig.clear_log();
    let (_, third) = rig.rehearse(&["--reuse"], Fault::None);
    third.unwrap();
    assert_eq!(image_id_on_cluster(&rig).as_deref(), Some("sha256:2222"));
}

/// The error of a run that must stop in step 1, after checking nothing was made.
fn stops_in_step_1(flags: &[&str], fault: Fault) -> String {
    let rig = fails_at(fault, StepId::Prerequisites, flags);
    assert!(
        !rig.recorded().iter().any(|l| l.starts_with("kind create")),
        "{:#?}",
        rig.recorded()
    );
    let (_, _, result) = rehearse(flags, fault);
    format!("{:#}", result.unwrap_err())
}

#[test]
fn a_taken_host_port_stops_the_run_in_step_1_with_the_flags_that_fix_it() {
    let e = stops_in_step_1(&[], Fault::PortTaken);
    assert!(
        e.contains("something already answers on 127.0.0.1:")
            && e.contains("--http-port 8080 --https-port 8443"),
        "{e}"
    );
}

#[test]
fn a_missing_nextest_stops_the_run_in_step_1_with_the_install_command() {
    let e = stops_in_step_1(&[], Fault::Command("nextest --version"));
    assert!(e.contains("cargo install cargo-nextest --locked"), "{e}");
}

#[test]
fn admission_jobs_that_failed_and_were_removed_fail_the_controller_step_naming_the_secret() {
    let rig = fails_at(Fault::JobsFail, StepId::IngressNginx, &[]);
    drop(rig);
    let (_, _, result) = rehearse(&[], Fault::JobsFail);
    let e = format!("{:#}", result.unwrap_err());
    assert!(
        e.contains("Secret ingress-nginx/ingress-nginx-admission"),
        "{e}"
    );
}

#[test]
fn docker_before_28_saves_without_platform_after_the_direct_load_fails() {
    let (rig, _, result) = rehearse(
        &[],
        Fault::Commands(&["kind load docker-image", "save --platform"]),
    );
    result.unwrap();
    let recorded = rig.recorded();
    let tried: Vec<&String> = recorded
        .iter()
        .filter(|l| l.starts_with("kind load") || l.starts_with("docker save"))
        .collect();
    assert_eq!(tried.len(), 4, "{tried:#?}");
    assert!(tried[1].starts_with("docker save --platform linux/amd64"));
    assert!(tried[2].starts_with("docker save --output"));
    assert!(tried[3].starts_with("kind load image-archive"));
}

#[test]
fn a_reused_cluster_failing_a_step_still_gets_diagnostics() {
    let (_rig, plan, result) = rehearse(&["--reuse"], Fault::Api("ingresses/ws"));
    result.unwrap_err();
    let dir = plan.work.join("diagnostics");
    for f in ["controller.log", "pods-default.txt", "pod-logs-default.txt"] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
}

#[test]
fn strict_on_an_ignored_annotation_value_is_bad_input_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/examples/chat");
    for f in ["deployment.yaml", "service.yaml", "ingress.yaml"] {
        let text = std::fs::read_to_string(format!("{chat}/{f}")).unwrap();
        // A unit suffix: the controller ignores the value and keeps its default.
        let text = text.replace(r#"proxy-read-timeout: "4""#, r#"proxy-read-timeout: "4s""#);
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    let manifests = dir.path().display().to_string();
    let (rig, _, result) = rehearse(&["--manifests", &manifests, "--strict"], Fault::None);
    let failed = result.expect_err("--strict refuses it");
    assert_eq!(failed.exit, Exit::BadInput, "{failed:#}");
    assert!(format!("{failed:#}").contains("\"4s\""), "{failed:#}");
    assert!(
        !rig.recorded().iter().any(|l| l.starts_with("kind create")),
        "nothing made: {:#?}",
        rig.recorded()
    );
}
