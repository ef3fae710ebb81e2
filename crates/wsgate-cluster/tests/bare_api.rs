//! The cluster crate against the real kube-apiserver, etcd, controller-manager and scheduler of
//! the bare tier (kwok for the node), not a mock: server-side apply, the document's merge
//! patch, ownership, namespace lifecycle, Secret validation, Deployment and Job conditions.
//! `cargo xtask test` starts the control plane and runs this binary against it.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use wsgate_cluster::{Client, ObjectRef, Presence, apply_body};
use wsgate_contract::ClusterEnv;
use wsgate_manifests::{DOCUMENTED_TLS_PATCH, Documented, TLS_SECRET_NAME};

/// A test's own namespace on the shared control plane, so tests never see each other's objects.
struct Ns {
    client: Client,
    name: String,
}

async fn ns(test: &str) -> Ns {
    let env = ClusterEnv::from_env().unwrap_or_else(|e| {
        panic!("{e} (the bare control plane is started by `cargo xtask test`)")
    });
    let client = wsgate_cluster::connect(&env.kubeconfig, env.context.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let name = format!("bare-{test}-{}", std::process::id());
    let mut n = Namespace::default();
    n.metadata.name = Some(name.clone());
    wsgate_cluster::server_side_apply(
        &client,
        &ObjectRef::of::<Namespace>(None, &name),
        &apply_body(&n, None),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    Ns { client, name }
}

impl Ns {
    fn of<K: kube::Resource<DynamicType = ()>>(&self, name: &str) -> ObjectRef {
        ObjectRef::of::<K>(Some(&self.name), name)
    }

    async fn apply<K>(&self, obj: &K, name: &str) -> kube::api::DynamicObject
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize + Clone,
    {
        wsgate_cluster::server_side_apply(
            &self.client,
            &self.of::<K>(name),
            &apply_body(obj, Some(&self.name)),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)))
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn documented() -> Documented {
    Documented::shipped().unwrap()
}

fn managers(obj: &kube::api::DynamicObject) -> Vec<(String, String)> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn server_side_apply_is_recorded_as_manager_wsgate_and_force_takes_a_field_back() {
    let ns = ns("ssa").await;
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    cm.data = Some([("k".to_owned(), "wsgate".to_owned())].into());
    let applied = ns.apply(&cm, "c").await;
    assert_eq!(managers(&applied), [("wsgate".into(), "Apply".into())]);
    // Someone else takes the field with their own apply...
    let api: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut theirs = apply_body(&cm, Some(&ns.name));
    theirs["data"]["k"] = "helm".into();
    api.patch(
        "c",
        &PatchParams::apply("helm").force(),
        &Patch::Apply(&theirs),
    )
    .await
    .unwrap();
    // ... an unforced apply of ours would conflict (409), the forced one takes it back.
    let conflict = api
        .patch(
            "c",
            &PatchParams::apply("wsgate"),
            &Patch::Apply(&apply_body(&cm, Some(&ns.name))),
        )
        .await
        .unwrap_err();
    let status = wsgate_cluster::api_status(&conflict).expect("an API status");
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    ns.apply(&cm, "c").await;
    assert_eq!(
        api.get("c").await.unwrap().data.unwrap()["k"],
        "wsgate",
        "force takes the field back"
    );
}

#[tokio::test]
async fn the_documents_tls_patch_sets_spec_tls_and_a_later_apply_keeps_it_until_the_ingress_is_deleted()
 {
    let ns = ns("tls").await;
    let ing = documented().ingress;
    let target = ns.of::<Ingress>("ws");
    let body: serde_json::Value = serde_json::from_str(DOCUMENTED_TLS_PATCH).unwrap();
    // `kubectl patch` of an Ingress that is not there is refused, not a create.
    let absent = wsgate_cluster::merge_patch(&ns.client, &target, &body)
        .await
        .unwrap_err();
    assert_eq!(absent.status(), Some(404), "{}", chain(&absent));
    ns.apply(&ing, "ws").await;
    let patched = wsgate_cluster::merge_patch(&ns.client, &target, &body)
        .await
        .unwrap();
    assert_eq!(
        patched.data["spec"]["tls"],
        serde_json::json!([{"hosts": ["test.example.com"], "secretName": TLS_SECRET_NAME}]),
        "the document's patch, as the API server stored it"
    );
    assert!(
        managers(&patched).contains(&("wsgate".into(), "Update".into())),
        "the merge patch is recorded under wsgate as an Update: {:?}",
        managers(&patched)
    );
    // The --keep then --reuse hazard, on the real server: the same apply again does not
    // remove what the Update entry owns.
    let again = ns.apply(&ing, "ws").await;
    assert!(
        !again.data["spec"]["tls"].is_null(),
        "spec.tls survives a later server-side apply"
    );
    // What a reused run does first: delete, then apply afresh.
    assert!(
        wsgate_cluster::delete_object(&ns.client, &target)
            .await
            .unwrap()
    );
    assert!(
        !wsgate_cluster::delete_object(&ns.client, &target)
            .await
            .unwrap(),
        "deleting what is gone is fine"
    );
    let fresh = ns.apply(&ing, "ws").await;
    assert!(fresh.data["spec"]["tls"].is_null(), "{:?}", fresh.data);
}

#[tokio::test]
async fn someone_elses_object_is_foreign_and_one_only_wsgate_applied_is_taken_over() {
    let ns = ns("owner").await;
    let api: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("helms".into());
    // Some field to own: an object with nothing but a name gets no managedFields at all, and
    // then nothing tells whose it is (it counts as someone else's).
    cm.data = Some([("k".to_owned(), "v".to_owned())].into());
    api.patch(
        "helms",
        &PatchParams::apply("helm"),
        &Patch::Apply(&apply_body(&cm, Some(&ns.name))),
    )
    .await
    .unwrap();
    cm.metadata.name = Some("ours".into());
    ns.apply(&cm, "ours").await;
    // A client that names no manager (a plain create) is someone too.
    cm.metadata.name = Some("plain".into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    let presence = |n: &str| {
        let t = ns.of::<ConfigMap>(n);
        let c = ns.client.clone();
        async move { wsgate_cluster::presence(&c, &t).await.unwrap() }
    };
    assert_eq!(presence("ours").await, Presence::LeftByWsgate);
    assert!(
        matches!(presence("helms").await, Presence::Foreign { managers } if managers == ["helm"])
    );
    assert!(
        matches!(presence("plain").await, Presence::Foreign { .. }),
        "{:?}",
        presence("plain").await
    );
    assert_eq!(presence("absent").await, Presence::Absent);
    // The API server records no manager for an object with no field beyond its name.
    let mut bare = ConfigMap::default();
    bare.metadata.name = Some("empty".into());
    ns.apply(&bare, "empty").await;
    assert_eq!(
        presence("empty").await,
        Presence::Foreign { managers: vec![] }
    );
}

#[tokio::test]
async fn a_deployment_the_controllers_touched_is_still_wsgates() {
    let ns = ns("deploy").await;
    let d = documented().deployment;
    ns.apply(&d, "websocket-server").await;
    wsgate_cluster::wait_deployment_available(
        &ns.client,
        &ns.name,
        "websocket-server",
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    // The deployment controller writes its revision annotation (an Update of the object, not of
    // its status); an earlier run's Deployment is still one wsgate may take over.
    let p = wsgate_cluster::presence(&ns.client, &ns.of::<Deployment>("websocket-server"))
        .await
        .unwrap();
    assert_eq!(p, Presence::LeftByWsgate);
}

#[tokio::test]
async fn a_namespace_still_terminating_is_waited_for_until_the_namespace_controller_finishes() {
    let ns = ns("term").await;
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    ns.apply(&cm, "c").await;
    let target = ObjectRef::of::<Namespace>(None, &ns.name);
    assert!(
        wsgate_cluster::delete_object(&ns.client, &target)
            .await
            .unwrap()
    );
    assert_eq!(
        wsgate_cluster::presence(&ns.client, &target).await.unwrap(),
        Presence::Terminating,
        "the namespace controller has its content to delete first"
    );
    let start = Instant::now();
    let foreign = wsgate_cluster::foreign_objects(
        &ns.client,
        std::slice::from_ref(&target),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(foreign.is_empty(), "{foreign:?}");
    assert_eq!(
        wsgate_cluster::presence(&ns.client, &target).await.unwrap(),
        Presence::Absent,
        "gone after {} ms",
        start.elapsed().as_millis()
    );
}

#[tokio::test]
async fn a_tls_secret_without_its_key_is_refused_by_the_api_server_as_wsgate_judges_it() {
    let ns = ns("secret").await;
    let material = wsgate_tls::TlsMaterial::self_signed(&["test.example.com"]).unwrap();
    let mut s =
        wsgate_manifests::tls_secret("half", &ns.name, material.cert_pem(), material.key_pem());
    s.data.as_mut().unwrap().remove("tls.key");
    assert!(
        wsgate_manifests::tls_pair(&s).is_none(),
        "wsgate's rule: no usable pair"
    );
    let refused = wsgate_cluster::server_side_apply(
        &ns.client,
        &ns.of::<Secret>("half"),
        &apply_body(&s, Some(&ns.name)),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.status(), Some(422), "{}", chain(&refused));
    assert!(chain(&refused).contains("tls.key"), "{}", chain(&refused));
}

#[tokio::test]
async fn job_waits_read_the_real_complete_and_failed_conditions() {
    let ns = ns("jobs").await;
    let job = |name: &str, extra: serde_json::Value| -> Job {
        let mut v = serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}
        });
        merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    };
    ns.apply(&job("done", serde_json::json!({})), "done").await;
    wsgate_cluster::wait_job_done(&ns.client, &ns.name, "done", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    // A pod no node can take, and a 2 s deadline: the Job fails, and the wait says why at once.
    let stuck = serde_json::json!({"spec": {"activeDeadlineSeconds": 2, "template": {"spec": {
        "nodeSelector": {"no-such-node": "x"}}}}});
    ns.apply(&job("stuck", stuck), "stuck").await;
    let start = Instant::now();
    let e = wsgate_cluster::wait_job_done(&ns.client, &ns.name, "stuck", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        chain(&e).contains("DeadlineExceeded"),
        "{} (after {} ms)",
        chain(&e),
        start.elapsed().as_millis()
    );
    assert!(start.elapsed() < Duration::from_secs(30), "failed fast");
}

#[tokio::test]
async fn a_restart_rolls_the_deployment_and_the_rollout_wait_sees_it_complete() {
    let ns = ns("rollout").await;
    let d = documented().deployment;
    ns.apply(&d, "websocket-server").await;
    let limit = Duration::from_secs(60);
    wsgate_cluster::wait_deployment_available(&ns.client, &ns.name, "websocket-server", limit)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let generation = wsgate_cluster::restart_deployment(&ns.client, &ns.name, "websocket-server")
        .await
        .unwrap();
    assert!(generation >= 2, "a new generation: {generation}");
    let done = wsgate_cluster::wait_rollout_complete(
        &ns.client,
        &ns.name,
        "websocket-server",
        generation,
        limit,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(done.status.unwrap().observed_generation.unwrap() >= generation);
}

fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into.as_object_mut(), patch.as_object()) {
        (Some(obj), Some(p)) => {
            for (k, v) in p {
                merge(obj.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        _ => *into = patch.clone(),
    }
}
