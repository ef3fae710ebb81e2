//! `--workload`: a team's own objects on kind and on an existing cluster.

use super::*;

fn own_plan_of(
    flags: &[&str],
    workload: wsgate_manifests::Workload,
    load_images: &[&str],
) -> anyhow::Result<Plan> {
    let mut argv = vec!["e2e"];
    argv.extend(flags);
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut i = inputs();
    let args = crate::options::WorkloadArgs {
        paths: workload.files.iter().map(Into::into).collect(),
        load_images: load_images.iter().map(|s| s.to_string()).collect(),
        max_idle: 90,
        ..Default::default()
    };
    i.workload = Some(super::WorkloadRun::new(args, workload)?);
    Plan::new(&cli.args, &i)
}

/// The teardown step's actions, each as the lines `--dry-run` prints, joined.
fn teardown_lines(p: &Plan) -> Vec<String> {
    p.step(StepId::Teardown)
        .unwrap()
        .actions
        .iter()
        .map(|a| a.lines().join(" "))
        .collect()
}

/// The chat example, with `chat:dev` loaded on kind.
fn own_plan(flags: &[&str]) -> Plan {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples/chat");
    let existing = flags.contains(&"--kubeconfig");
    let load: &[&str] = if existing { &[] } else { &["chat:dev"] };
    own_plan_of(
        flags,
        wsgate_manifests::Workload::load(&[dir]).unwrap(),
        load,
    )
    .unwrap()
}

/// A namespace of its own, a TLS Secret written with stringData but without its key, and a
/// second Ingress whose port is plain HTTP.
const TEAM: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: Secret
metadata: {name: team-tls, namespace: team}
type: kubernetes.io/tls
stringData: {tls.crt: "not yet"}
---
apiVersion: v1
kind: Secret
metadata: {name: spare-tls, namespace: team}
type: kubernetes.io/tls
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: team}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: api, namespace: team}
spec:
  ingressClassName: nginx
  tls: [{hosts: [api.team.example], secretName: team-tls}]
  rules:
  - host: api.team.example
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}]
"#;

fn team() -> wsgate_manifests::Workload {
    wsgate_manifests::Workload::from_sources(&[("team.yaml".into(), TEAM.into())]).unwrap()
}

#[test]
fn own_tls_secrets_are_generated_inside_their_namespace_and_deleted_with_it() {
    let p = own_plan_of(
        &["--kubeconfig", "/k", "--ingress-address", "lb"],
        team(),
        &[],
    )
    .unwrap();
    assert_eq!(
        p.namespace, "team",
        "the header names the Ingress's namespace"
    );
    let step: Vec<String> = p
        .step(StepId::WorkloadApply)
        .unwrap()
        .actions
        .iter()
        .map(Action::signature)
        .collect();
    let at = |sig: &str| {
        step.iter()
            .position(|s| s == sig)
            .unwrap_or_else(|| panic!("{sig} missing from {step:#?}"))
    };
    assert_eq!(at("absent 4"), 0, "checked before anything changes");
    assert!(at("apply Namespace team") < at("apply Secret team/team-tls"));
    assert_eq!(
        step.iter()
            .filter(|s| s.contains("Secret team/team-tls"))
            .count(),
        1,
        "the given Secret (no tls.key) is replaced by the generated one, not applied too"
    );
    assert!(
        !step
            .iter()
            .any(|s| s.contains("apply Secret team/spare-tls")),
        "an unused TLS Secret without data is not applied: {step:#?}"
    );
    prints(
        &p,
        &[
            "Secret team/spare-tls is kubernetes.io/tls without tls.crt and tls.key, and no rule uses it: not applied",
            // A port not marked appProtocol kubernetes.io/ws may refuse the upgrade.
            "a WebSocket handshake, or the backend's own refusal of it, with wss://api.team.example/",
            "the manifests have no ingress-nginx-controller ConfigMap",
        ],
    );
    let teardown = teardown_lines(&p);
    assert!(
        teardown[0]
            .ends_with("-n team delete --ignore-not-found secret/team-tls service/api ingress/api"),
        "{teardown:?}"
    );
    assert!(
        teardown[1].contains("delete namespace team"),
        "{teardown:?}"
    );
}

#[test]
fn own_manifests_that_cannot_work_here_are_refused_with_the_fix() {
    let existing = ["--kubeconfig", "/k", "--ingress-address", "lb"];
    let e = own_plan_of(&existing, team(), &["api:dev"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("push them there and drop --load-image"), "{e}");
    let e = own_plan_of(&["--namespace", "x"], team(), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("each object names its own namespace"), "{e}");
    let with = |from: &str, to: &str| {
        wsgate_manifests::Workload::from_sources(&[("t.yaml".into(), TEAM.replace(from, to))])
            .unwrap()
    };
    let other = with("ingressClassName: nginx", "ingressClassName: traefik");
    let e = own_plan_of(&[], other.clone(), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("set spec.ingressClassName: nginx"), "{e}");
    // An existing cluster may well serve that class.
    own_plan_of(&existing, other, &[]).unwrap();
    // No class is served on kind (--watch-ingress-without-class), unless the old annotation
    // names another.
    own_plan_of(&[], with("  ingressClassName: nginx\n", ""), &[]).unwrap();
    let mut annotated = with("  ingressClassName: nginx\n", "");
    annotated.ingresses[0].metadata.annotations =
        Some([("kubernetes.io/ingress.class".into(), "traefik".into())].into());
    let e = own_plan_of(&[], annotated, &[]).unwrap_err().to_string();
    assert!(e.contains("kubernetes.io/ingress.class"), "{e}");
}

#[test]
fn own_manifests_on_kind_load_their_images_apply_their_objects_and_check_their_rules() {
    let p = own_plan(&[]);
    let ids: Vec<StepId> = p.steps.iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        [
            StepId::Prerequisites,
            StepId::Cluster,
            StepId::IngressNginx,
            StepId::WorkloadImages,
            StepId::WorkloadApply,
            StepId::WorkloadReady,
            StepId::WorkloadChecks,
            StepId::Teardown
        ],
        "the document's steps and the echo image are not part of it"
    );
    for sig in [
        "your workload's images loaded into kind: kind load docker-image chat:dev",
        "your workload's objects: apply Service default/chat",
        "your workload's objects: apply Deployment default/chat",
        "your workload's objects: apply Ingress default/chat",
        "wait Deployment default/chat",
        "wait ws://chat.example.org",
        "check rules chat.example.org/chat (read 4 s (annotation))",
        "teardown: kind delete cluster --name",
    ] {
        assert!(has(&p, sig), "{sig} missing from {:#?}", signatures(&p));
    }
    prints(
        &p,
        &["a WebSocket handshake with ws://chat.example.org/chat via 127.0.0.1:80"],
    );
}

#[test]
fn own_manifests_on_an_existing_cluster_delete_exactly_what_they_applied() {
    let p = own_plan(&["--kubeconfig", "/k", "--ingress-address", "lb"]);
    assert!(!has(&p, "kind load"), "no kind on an existing cluster");
    let teardown = teardown_lines(&p);
    assert_eq!(teardown.len(), 1, "{teardown:?}");
    assert!(
        teardown[0].ends_with(
            "-n default delete --ignore-not-found service/chat deployment/chat ingress/chat"
        ),
        "{teardown:?}"
    );
    assert_eq!(armed(&p), [StepId::WorkloadApply]);
}
