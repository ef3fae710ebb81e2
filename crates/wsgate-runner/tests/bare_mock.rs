//! The rehearsal's mock API checked against the real one: every call a rehearsal makes to the
//! objects of its namespace (a `--keep` run, then a `--reuse` run on the same cluster) is
//! replayed against the bare tier's kube-apiserver, in a namespace of its own, and the real
//! status and reason must be the mock's. Calls about what the mock pretends is installed (the
//! controller's Jobs, pods and Secret) have no real counterpart there and are listed, not
//! compared. Runs in `cargo xtask test`'s bare step.

mod support;

use http_body_util::BodyExt;
use support::*;
use wsgate_contract::ClusterEnv;

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

#[test]
fn every_answer_the_mock_gives_is_the_one_the_real_api_server_gives() {
    let rig = Rig::new();
    rig.rehearse(&["--keep"], Fault::None).1.unwrap();
    rig.rehearse(&["--reuse"], Fault::None).1.unwrap();
    let answered = rig.mock.answered.lock().unwrap().clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (compared, mismatches, skipped) = rt.block_on(async {
        let env = ClusterEnv::from_env().unwrap_or_else(|e| panic!("{e}"));
        let client = wsgate_cluster::connect(&env.kubeconfig, env.context.as_deref())
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let ns = format!("bare-mock-{}", std::process::id());
        let namespace =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        wsgate_cluster::server_side_apply(
            &client,
            &wsgate_cluster::ObjectRef::of::<k8s_openapi::api::core::v1::Namespace>(None, &ns),
            &namespace,
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let (mut compared, mut mismatches, mut skipped) = (0, Vec::new(), Vec::new());
        for a in &answered {
            let mutating = a.method == http::Method::PATCH || a.method == http::Method::DELETE;
            let single_get = a.method == http::Method::GET
                && !a.query.contains("watch=")
                && !a.query.contains("fieldSelector")
                && !a.query.contains("labelSelector")
                && !a.path.ends_with("/log");
            if !(mutating || single_get) {
                continue;
            }
            if !a.path.contains("/namespaces/default/") {
                skipped.push(format!("{} {}", a.method, a.path));
                continue;
            }
            let path = a
                .path
                .replace("/namespaces/default/", &format!("/namespaces/{ns}/"));
            let uri = if a.query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{}", a.query)
            };
            let body = String::from_utf8_lossy(&a.body)
                .replace(
                    "\"namespace\":\"default\"",
                    &format!("\"namespace\":\"{ns}\""),
                )
                .into_bytes();
            let mut request = http::Request::builder().method(a.method.clone()).uri(&uri);
            if !a.content_type.is_empty() {
                request = request.header("content-type", &a.content_type);
            }
            let request = request.body(kube::client::Body::from(body)).unwrap();
            let response = client
                .send(request)
                .await
                .unwrap_or_else(|e| panic!("{} {uri}: {e}", a.method));
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .filter(|v| v["kind"] == "Status")
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_default();
            compared += 1;
            if (status, reason.as_str()) != (a.status, a.reason.as_str()) {
                mismatches.push(format!(
                    "{} {path}: mock {} {}, real {status} {reason}",
                    a.method, a.status, a.reason
                ));
            }
        }
        (compared, mismatches, skipped)
    });
    println!(
        "compared {compared} answers; not comparable here (the mock plays an installed controller): {skipped:#?}"
    );
    assert!(compared >= 20, "only {compared} answers compared");
    assert!(
        mismatches.is_empty(),
        "the mock answers differently from the real API server:\n{}",
        mismatches.join("\n")
    );
}
