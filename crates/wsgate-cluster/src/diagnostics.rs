//! What a person needs after a failed run: controller logs, events, the Ingresses as YAML, the
//! suite's pods described, with their logs.

use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use crate::error::ClusterError;
use crate::{CONTROLLER_SELECTOR, INGRESS_NGINX_NAMESPACE};

/// Writes what a person needs to understand a failed run into `dir`: controller logs, events of
/// both namespaces, the Ingresses as YAML, and the pods of `namespace` (the echo server's, or a
/// team's) described, with their logs. Best effort: each part that fails is noted in its file.
pub async fn collect_diagnostics(
    client: &Client,
    namespace: &str,
    dir: &Path,
) -> Result<Vec<String>, ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> Result<(), ClusterError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ClusterError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(name.to_owned());
        Ok(())
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), INGRESS_NGINX_NAMESPACE);
    let logs = match pods
        .list(&ListParams::default().labels(CONTROLLER_SELECTOR))
        .await
    {
        Ok(list) => {
            let mut out = String::new();
            for p in list.items {
                let name = p.metadata.name.unwrap_or_default();
                let log = pods
                    .logs(&name, &LogParams::default())
                    .await
                    .unwrap_or_else(|e| format!("(cannot read logs: {e})"));
                out.push_str(&format!("==> {name} <==\n{log}\n"));
            }
            out
        }
        Err(e) => format!("(cannot list controller pods: {e})"),
    };
    write("controller.log", logs)?;
    for ns in [INGRESS_NGINX_NAMESPACE, namespace] {
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        let listed = events.list(&ListParams::default()).await;
        let text = each_of(listed, "events", "\n", |e: &Event| {
            format!(
                "{} {} {}/{}: {} {}",
                // events.k8s.io/v1 writers leave lastTimestamp empty and set eventTime.
                e.last_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                    .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.to_string()))
                    .unwrap_or_default(),
                e.type_.as_deref().unwrap_or(""),
                e.involved_object.kind.as_deref().unwrap_or(""),
                e.involved_object.name.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        });
        write(&format!("events-{ns}.txt"), text)?;
    }
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let listed = ingresses.list(&ListParams::default()).await;
    let yaml = each_of(listed, "Ingresses", "---\n", |i: &Ingress| {
        serde_saphyr::to_string(i).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    });
    write("ingresses.yaml", yaml)?;
    let (described, logs) = pods_of(client, namespace).await;
    write(&format!("pods-{namespace}.txt"), described)?;
    write(&format!("pod-logs-{namespace}.txt"), logs)?;
    Ok(written)
}

/// Each pod of `namespace` as `kubectl describe` would summarise it (phase, conditions, each
/// container's image, state and restarts), and each container's log (and the previous one's,
/// after a restart).
async fn pods_of(client: &Client, namespace: &str) -> (String, String) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            let none = format!("(cannot list pods of {namespace}: {e})\n");
            return (none.clone(), none);
        }
    };
    let (mut described, mut logs) = (String::new(), String::new());
    for p in &list {
        let name = p.metadata.name.clone().unwrap_or_default();
        let status = p.status.clone().unwrap_or_default();
        described.push_str(&format!(
            "{name}: phase {}, node {}, pod IP {}{}\n",
            status.phase.as_deref().unwrap_or("?"),
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("(unscheduled)"),
            status.pod_ip.as_deref().unwrap_or("-"),
            if p.metadata.deletion_timestamp.is_some() {
                ", being deleted"
            } else {
                ""
            }
        ));
        for c in status.conditions.iter().flatten() {
            described.push_str(&format!(
                "  condition {}={} {} {}\n",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ));
        }
        for c in status.container_statuses.iter().flatten() {
            described.push_str(&format!(
                "  container {}: image {} ({}), ready {}, restarts {}, state {}, last state {}\n",
                c.name,
                c.image,
                c.image_id,
                c.ready,
                c.restart_count,
                serde_json::to_string(&c.state).unwrap_or_default(),
                serde_json::to_string(&c.last_state).unwrap_or_default()
            ));
            for previous in [false, true] {
                if previous && c.restart_count == 0 {
                    continue;
                }
                let params = LogParams {
                    container: Some(c.name.clone()),
                    previous,
                    ..LogParams::default()
                };
                let log = api
                    .logs(&name, &params)
                    .await
                    .unwrap_or_else(|e| format!("(cannot read logs: {e})"));
                logs.push_str(&format!(
                    "==> {name}/{}{} <==\n{log}\n",
                    c.name,
                    if previous { " (previous)" } else { "" }
                ));
            }
        }
    }
    if list.is_empty() {
        described.push_str(&format!("(no pods in {namespace})\n"));
    }
    (described, logs)
}

/// Each listed object as `line` makes it, joined by `sep`; a failed list as a line saying so.
fn each_of<T: Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    listed: Result<kube::api::ObjectList<T>, kube::Error>,
    what: &str,
    sep: &str,
    line: impl Fn(&T) -> String,
) -> String {
    match listed {
        Ok(list) => list.items.iter().map(line).collect::<Vec<_>>().join(sep),
        Err(e) => format!("(cannot list {what}: {e})\n"),
    }
}
