//! What a person needs after a failed run: controller logs, events, the Ingresses as YAML.

use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use crate::error::ClusterError;
use crate::{CONTROLLER_SELECTOR, INGRESS_NGINX_NAMESPACE};

/// Writes what a person needs to understand a failed run into `dir`: controller logs, events of
/// both namespaces, the Ingresses as YAML. Best effort: each part that fails is noted in its file.
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
    Ok(written)
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
