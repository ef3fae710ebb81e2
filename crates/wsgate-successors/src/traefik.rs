//! Traefik 3.7.15 with its `kubernetesIngressNGINX` provider: the real binary reads the Ingress
//! as it is, with its Services, EndpointSlices and Secrets, from a real API server (the bare
//! tier's), through the admin kubeconfig (`KUBECONFIG`, which the provider reads). Nothing is
//! translated here: the objects are applied (by the caller) and Traefik does the rest. The
//! controller ConfigMap's timeouts become the provider's options of the same name, which is
//! where a team moving to Traefik sets them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wsgate_wait::{Check, Wait};

use crate::SuccessorError;
use crate::proxy::{Proxy, READY_DEADLINE, free_port, http_get, tail};

/// What this run changes of a Traefik deployment, none of it on a request's path.
pub const FIDELITY: [&str; 2] = [
    "entry points on two free loopback ports instead of 80/443 (:8000/:8443 in Traefik's chart)",
    "each backend reached at a pod address of the run's own network namespace, relayed there to the server on loopback",
];

/// How Traefik runs: the API server to read, which namespace, the provider's timeouts.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub kubeconfig: std::path::PathBuf,
    /// The label selector of the namespaces it watches (each variant of a run has its own).
    pub selector: String,
    /// The hosts whose routers must be loaded before it counts as ready.
    pub hosts: Vec<String>,
    /// Provider options from the controller ConfigMap: (`proxyReadTimeout`, seconds), …
    pub options: Vec<(String, String)>,
}

/// The provider option a controller ConfigMap key becomes, if it has one.
pub fn provider_option(configmap_key: &str) -> Option<&'static str> {
    match configmap_key {
        "proxy-read-timeout" => Some("proxyReadTimeout"),
        "proxy-send-timeout" => Some("proxySendTimeout"),
        "proxy-connect-timeout" => Some("proxyConnectTimeout"),
        _ => None,
    }
}

/// Starts Traefik and waits until it serves a router for every host of `spec`.
pub fn serve(traefik: &Path, spec: &Spec) -> Result<Proxy, SuccessorError> {
    let dir = tempfile::Builder::new()
        .prefix("wsgate-traefik-")
        .tempdir()
        .map_err(wsgate_fs::at("create a temp dir in", &std::env::temp_dir()))?;
    let (http, https, api) = (free_port()?, free_port()?, free_port()?);
    let at = |p: u16| format!("127.0.0.1:{p}");
    let mut cmd = Command::new(traefik);
    cmd.env("KUBECONFIG", &spec.kubeconfig)
        .arg(format!("--entryPoints.web.address={}", at(http)))
        .arg(format!("--entryPoints.websecure.address={}", at(https)))
        .arg("--entryPoints.websecure.http.tls=true")
        .arg(format!("--entryPoints.traefik.address={}", at(api)))
        .arg("--api.insecure=true")
        .arg("--providers.kubernetesIngressNGINX=true")
        .arg(format!(
            "--providers.kubernetesIngressNGINX.watchNamespaceSelector={}",
            spec.selector
        ))
        .arg("--providers.kubernetesIngressNGINX.httpEntryPoint=web")
        .arg("--providers.kubernetesIngressNGINX.httpsEntryPoint=websecure")
        .arg("--log.level=INFO")
        .arg("--log.noColor=true")
        .arg("--global.checkNewVersion=false")
        .arg("--global.sendAnonymousUsage=false");
    for (k, v) in &spec.options {
        cmd.arg(format!("--providers.kubernetesIngressNGINX.{k}={v}"));
    }
    let log = dir.path().join("traefik.log");
    let proxy = Proxy::start("traefik", cmd, (http, https), true, log.clone(), dir)?;
    let api = SocketAddr::from((Ipv4Addr::LOCALHOST, api));
    let waited = Wait::new(
        format!("Traefik's routers for {}", spec.hosts.join(", ")),
        READY_DEADLINE,
    )
    .every(Duration::from_millis(200))
    .until_blocking(|| match http_get(api, "127.0.0.1", "/api/http/routers") {
        Ok((200, body)) => {
            let routers: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
            let rules: Vec<&str> = routers
                .iter()
                .filter(|r| r["provider"] == "kubernetesingressnginx")
                .filter_map(|r| r["rule"].as_str())
                .collect();
            // The provider quotes hosts with `"`, hand-written rules with backticks.
            let missing: Vec<&String> = spec
                .hosts
                .iter()
                .filter(|h| {
                    !rules.iter().any(|r| {
                        r.contains(&format!("Host(\"{h}\")")) || r.contains(&format!("Host(`{h}`)"))
                    })
                })
                .collect();
            if missing.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(format!("no router yet for {missing:?}"))
            }
        }
        Ok((status, _)) => Check::Pending(format!("its API answered {status}")),
        Err(e) => Check::Pending(format!("its API: {e}")),
    });
    match waited {
        Ok(()) => Ok(proxy),
        Err(timed_out) => Err(SuccessorError::NotReady {
            name: "traefik".into(),
            problem: timed_out.to_string(),
            tail: tail(&log, 20),
            log,
        }),
    }
}
