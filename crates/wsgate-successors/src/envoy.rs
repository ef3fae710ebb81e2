//! Envoy Gateway: the Gateway API objects translated by Envoy Gateway v1.9.1's own `egctl x
//! translate` (built from `tools/egctl`), offline, into the xDS resources its controller would
//! serve, then made a static bootstrap for Envoy 1.39.1 (the release's proxy): clusters' EDS
//! becomes their load assignment with each Service's endpoint rewritten to the server that
//! serves it here, listeners' RDS becomes their route configuration inline, SDS names become
//! static secrets, and the listeners bind two loopback ports instead of 10080/10443. Nothing
//! in a route, cluster or filter is changed; [`FIDELITY`] lists what is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use wsgate_bare::tools::GoTool;

use crate::SuccessorError;
use crate::gateway_api::Translated;
use crate::ngf::ServicePort;
use crate::proxy::{Proxy, free_port};

/// egctl at the release `tools/egctl/go.mod` pins.
pub const EGCTL: GoTool = GoTool {
    module: "tools/egctl",
    package: "github.com/envoyproxy/gateway/cmd/egctl",
    name: "egctl",
    ldflags: "-s -w",
};

/// What the static bootstrap changes of egctl's output, none of it on a request's path.
pub const FIDELITY: [&str; 4] = [
    "configuration from Envoy Gateway v1.9.1's own translator (egctl x translate), not from its running controller",
    "EDS, RDS and SDS inlined (the controller serves the same resources over ADS)",
    "each endpoint rewritten from the Service's ClusterIP to the loopback server that serves it",
    "listeners on two free loopback ports instead of 10080/10443; egctl's readiness listener dropped",
];

/// The GatewayClass egctl needs for the translated Gateways (`gatewayClassName: nginx`).
fn gateway_class() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "nginx"},
        "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}
    })
}

/// A BackendTrafficPolicy setting the stream idle timeout of every route (what restores an
/// idle connection's lifetime on Envoy Gateway).
pub fn stream_idle_policy(t: &Translated, seconds: u64) -> Vec<Value> {
    t.routes
        .iter()
        .map(|r| {
            let (ns, name) = (&r["metadata"]["namespace"], &r["metadata"]["name"]);
            json!({
                "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy",
                "metadata": {"name": format!("{}-idle", name.as_str().unwrap_or_default()), "namespace": ns},
                "spec": {
                    "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}],
                    "timeout": {"http": {"streamIdleTimeout": format!("{seconds}s")}}
                }
            })
        })
        .collect()
}

/// egctl's input: the GatewayClass, the translated objects, `policies`, a Service per backend
/// port and the TLS Secrets (`(namespace/name, crt PEM, key PEM)`).
pub fn egctl_input(
    t: &Translated,
    policies: &[Value],
    backends: &BTreeMap<ServicePort, SocketAddr>,
    secrets: &[(String, String, String)],
) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut docs: Vec<Value> = vec![gateway_class()];
    docs.extend(t.objects().into_iter().cloned());
    docs.extend(policies.iter().cloned());
    let mut services: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (ns, name, port) in backends.keys() {
        services
            .entry((ns.clone(), name.clone()))
            .or_default()
            .push(*port);
    }
    for ((ns, name), ports) in services {
        docs.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            // The endpoint egctl emits; the bootstrap rewrites it to the real server.
            "spec": {"clusterIP": "127.0.0.1",
                     "ports": ports.iter().map(|p| json!({"name": format!("p{p}"), "port": p, "protocol": "TCP"})).collect::<Vec<_>>()}
        }));
    }
    for (id, crt, key) in secrets {
        let (ns, name) = id.split_once('/').unwrap_or(("default", id));
        docs.push(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": ns},
            "data": {"tls.crt": b64(crt), "tls.key": b64(key)}
        }));
    }
    docs.iter()
        .map(|d| serde_saphyr::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Runs `egctl x translate` on `input` and returns its xDS dump.
pub fn translate(egctl: &Path, input: &str, dir: &Path) -> Result<Value, SuccessorError> {
    let file = dir.join("egctl-input.yaml");
    std::fs::write(&file, input).map_err(wsgate_fs::at("write", &file))?;
    let mut cmd = Command::new(egctl);
    cmd.args([
        "x",
        "translate",
        "--from",
        "gateway-api",
        "--to",
        "xds",
        "-t",
        "all",
        "-o",
        "json",
        "-f",
    ])
    .arg(&file);
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| SuccessorError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(SuccessorError::Command {
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| SuccessorError::Translate {
        what: format!("egctl's output for {}", file.display()),
        detail: e.to_string(),
    })
}

fn bad(detail: impl Into<String>) -> SuccessorError {
    SuccessorError::Translate {
        what: "egctl's xDS dump".into(),
        detail: detail.into(),
    }
}

/// The resources of one dump section (`ClustersConfigDump`, …), each under `field`.
fn section<'a>(configs: &'a [Value], kind: &str, list: &str, field: &str) -> Vec<&'a Value> {
    configs
        .iter()
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(&format!(".{kind}")))
        })
        .flat_map(|c| c[list].as_array().into_iter().flatten())
        .filter_map(|e| e.pointer(field))
        .collect()
}

fn without_type(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("@type");
    }
    v
}

/// The Service port an endpoint group was made from (egctl's `envoy-gateway` metadata).
fn endpoint_service(group: &Value) -> Option<ServicePort> {
    let r = group.pointer("/metadata/filterMetadata/envoy-gateway/resources/0")?;
    (r["kind"] == "Service").then(|| {
        (
            r["namespace"].as_str().unwrap_or_default().to_owned(),
            r["name"].as_str().unwrap_or_default().to_owned(),
            r["sectionName"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .unwrap_or_default(),
        )
    })
}

/// A listener's filter chains: `filterChains` and the `defaultFilterChain` (egctl puts a
/// plain-HTTP listener's connection manager there).
fn chains_mut(l: &mut Value) -> Vec<&mut Value> {
    let o = l.as_object_mut().expect("a listener is an object");
    let mut out = Vec::new();
    for (k, v) in o.iter_mut() {
        match k.as_str() {
            "filterChains" => out.extend(v.as_array_mut().into_iter().flatten()),
            "defaultFilterChain" => out.push(v),
            _ => {}
        }
    }
    out
}

fn chains(l: &Value) -> Vec<&Value> {
    l["filterChains"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(l.get("defaultFilterChain"))
        .collect()
}

/// The static bootstrap for egctl's `dump`: backends at `backends`, Secrets inline, the
/// Gateway's port 80 and 443 listeners on `ports` (ws, wss) of 127.0.0.1.
pub fn bootstrap(
    dump: &Value,
    backends: &BTreeMap<ServicePort, SocketAddr>,
    secrets: &[(String, String, String)],
    ports: (u16, u16),
) -> Result<Value, SuccessorError> {
    let gateways = dump["xds"]
        .as_object()
        .ok_or_else(|| bad("no xds section"))?;
    let configs: Vec<Value> = gateways
        .values()
        .flat_map(|g| g["configs"].as_array().cloned().unwrap_or_default())
        .collect();
    let assignments: BTreeMap<String, &Value> = section(
        &configs,
        "EndpointsConfigDump",
        "dynamicEndpointConfigs",
        "/endpointConfig",
    )
    .into_iter()
    .filter_map(|e| Some((e["clusterName"].as_str()?.to_owned(), e)))
    .collect();
    let routes: BTreeMap<String, &Value> = section(
        &configs,
        "RoutesConfigDump",
        "dynamicRouteConfigs",
        "/routeConfig",
    )
    .into_iter()
    .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r)))
    .collect();
    let mut clusters = Vec::new();
    for c in section(
        &configs,
        "ClustersConfigDump",
        "dynamicActiveClusters",
        "/cluster",
    ) {
        let mut c = without_type(c);
        let name = c["name"].as_str().unwrap_or_default().to_owned();
        if c["type"] == "EDS" {
            let mut la = without_type(
                assignments
                    .get(&name)
                    .ok_or_else(|| bad(format!("cluster {name} has no endpoints")))?,
            );
            for group in la["endpoints"].as_array_mut().into_iter().flatten() {
                let service = endpoint_service(group)
                    .ok_or_else(|| bad(format!("cluster {name}: an endpoint names no Service")))?;
                let addr = backends.get(&service).ok_or_else(|| {
                    bad(format!(
                        "cluster {name}: no server for Service {}/{} port {}",
                        service.0, service.1, service.2
                    ))
                })?;
                for ep in group["lbEndpoints"].as_array_mut().into_iter().flatten() {
                    ep["endpoint"]["address"]["socketAddress"] =
                        json!({"address": addr.ip().to_string(), "portValue": addr.port()});
                }
            }
            let o = c.as_object_mut().expect("a cluster is an object");
            o.remove("edsClusterConfig");
            o.insert("type".into(), json!("STATIC"));
            o.insert("loadAssignment".into(), la);
        }
        clusters.push(c);
    }
    let mut listeners = Vec::new();
    for l in section(
        &configs,
        "ListenersConfigDump",
        "dynamicListeners",
        "/activeState/listener",
    ) {
        let mut l = without_type(l);
        let name = l["name"].as_str().unwrap_or_default().to_owned();
        let port = l
            .pointer("/address/socketAddress/portValue")
            .and_then(Value::as_u64);
        let bind = match port {
            Some(10080) => ports.0,
            Some(10443) => ports.1,
            // egctl's readiness listener (19001) serves no route.
            _ if name.contains("ready") => continue,
            other => {
                return Err(bad(format!(
                    "listener {name} on port {other:?}: expected the Gateway's 80 or 443"
                )));
            }
        };
        l["address"]["socketAddress"] = json!({"address": "127.0.0.1", "portValue": bind});
        for fc in chains_mut(&mut l) {
            for f in fc["filters"].as_array_mut().into_iter().flatten() {
                let tc = &mut f["typedConfig"];
                if let Some(rds) = tc.as_object_mut().and_then(|o| o.remove("rds")) {
                    let rname = rds["routeConfigName"].as_str().unwrap_or_default();
                    let rc = routes.get(rname).ok_or_else(|| {
                        bad(format!("listener {name}: no route configuration {rname}"))
                    })?;
                    tc["routeConfig"] = without_type(rc);
                }
            }
            if let Some(sds) = fc
                .pointer_mut(
                    "/transportSocket/typedConfig/commonTlsContext/tlsCertificateSdsSecretConfigs",
                )
                .and_then(Value::as_array_mut)
            {
                for s in sds {
                    if let Some(o) = s.as_object_mut() {
                        o.remove("sdsConfig");
                    }
                }
            }
        }
        listeners.push(l);
    }
    let secrets: Vec<Value> = secrets
        .iter()
        .map(|(id, crt, key)| {
            json!({"name": id, "tlsCertificate": {
                "certificateChain": {"inlineString": crt},
                "privateKey": {"inlineString": key}}})
        })
        .collect();
    // The node identity Envoy Gateway's bootstrap carries (its route configurations need one).
    let gateway = gateways.keys().next().cloned().unwrap_or_default();
    Ok(json!({
        "node": {"id": format!("wsgate-{}", gateway.replace('/', "-")), "cluster": gateway},
        "staticResources": {"listeners": listeners, "clusters": clusters, "secrets": secrets}
    }))
}

/// Envoy serving `bootstrap` (written 0600: it holds the private keys), on `ports`.
pub fn serve_bootstrap(
    envoy: &Path,
    bootstrap: &Value,
    ports: (u16, u16),
    dir: tempfile::TempDir,
) -> Result<Proxy, SuccessorError> {
    let path = dir.path().join("envoy.json");
    wsgate_fs::write_private(&path, bootstrap.to_string().as_bytes())?;
    let mut cmd = Command::new(envoy);
    cmd.arg("-c")
        .arg(&path)
        // No shared memory: several Envoys may run at once (tests run in parallel).
        .args(["--disable-hot-restart", "-l", "warn"]);
    let log = dir.path().join("envoy.log");
    let tls = bootstrap["staticResources"]["listeners"]
        .as_array()
        .is_some_and(|ls| {
            ls.iter()
                .any(|l| l.pointer("/address/socketAddress/portValue") == Some(&json!(ports.1)))
        });
    Proxy::start("envoy-gateway", cmd, ports, tls, log, dir)
}

/// What the translator set that bounds a WebSocket: each route's `timeout` and `idleTimeout`,
/// and each connection manager's `streamIdleTimeout` (Envoy's defaults when absent: 15 s and
/// 5 min, the route's idle timeout falling back to the stream idle timeout).
pub fn timeouts_of(bootstrap: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let listeners = bootstrap["staticResources"]["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for l in &listeners {
        for fc in chains(l) {
            for f in fc["filters"].as_array().into_iter().flatten() {
                let hcm = &f["typedConfig"];
                let stream = hcm["streamIdleTimeout"]
                    .as_str()
                    .unwrap_or("unset (Envoy's 300s)");
                out.push(format!(
                    "listener {}: streamIdleTimeout {stream}",
                    l["name"].as_str().unwrap_or_default()
                ));
                for vh in hcm["routeConfig"]["virtualHosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    for r in vh["routes"].as_array().into_iter().flatten() {
                        let rt = &r["route"];
                        if rt.is_null() {
                            continue;
                        }
                        out.push(format!(
                            "route {}: timeout {}, idleTimeout {}",
                            r["name"].as_str().unwrap_or_default(),
                            rt["timeout"].as_str().unwrap_or("unset (Envoy's 15s)"),
                            rt["idleTimeout"]
                                .as_str()
                                .unwrap_or("unset (the stream idle timeout)")
                        ));
                    }
                }
            }
        }
    }
    out.dedup();
    out
}

/// Envoy Gateway serving `t` (with `policies`): egctl translates, Envoy runs the result,
/// returned with the bootstrap it runs.
pub fn serve(
    egctl: &Path,
    envoy: &Path,
    t: &Translated,
    policies: &[Value],
    backends: &BTreeMap<ServicePort, SocketAddr>,
    secrets: &[(String, String, String)],
) -> Result<(Proxy, Value), SuccessorError> {
    let dir = tempfile::Builder::new()
        .prefix("wsgate-envoy-")
        .tempdir()
        .map_err(wsgate_fs::at("create a temp dir in", &std::env::temp_dir()))?;
    let dump = translate(
        egctl,
        &egctl_input(t, policies, backends, secrets),
        dir.path(),
    )?;
    let ports = (free_port()?, free_port()?);
    let boot = bootstrap(&dump, backends, secrets, ports)?;
    Ok((serve_bootstrap(envoy, &boot, ports, dir)?, boot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of egctl's dump for one route (abridged from a real run of egctl v1.9.1).
    fn dump() -> Value {
        json!({"xds": {"default/nginx": {"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
            {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamicEndpointConfigs": [
                {"endpointConfig": {"@type": "x", "clusterName": "httproute/default/ws/rule/0", "endpoints": [
                    {"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 3000}}}}],
                     "metadata": {"filterMetadata": {"envoy-gateway": {"resources": [
                        {"kind": "Service", "name": "websocket-server", "namespace": "default", "sectionName": "3000"}]}}}}]}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamicActiveClusters": [
                {"cluster": {"@type": "x", "name": "httproute/default/ws/rule/0", "type": "EDS",
                             "edsClusterConfig": {"edsConfig": {"ads": {}}}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamicListeners": [
                {"activeState": {"listener": {"@type": "x", "name": "default/nginx/http",
                    "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 10080}},
                    "defaultFilterChain": {"filters": [{"name": "hcm", "typedConfig": {"@type": "hcm",
                        "rds": {"routeConfigName": "default/nginx/http"}}}]}}}},
                {"activeState": {"listener": {"@type": "x", "name": "envoy-gateway-proxy-ready-0.0.0.0-19001",
                    "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 19001}}}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamicRouteConfigs": [
                {"routeConfig": {"@type": "x", "name": "default/nginx/http",
                    "virtualHosts": [{"routes": [{"route": {"idleTimeout": "36000s"}}]}]}}]}
        ]}}})
    }

    #[test]
    fn the_dump_becomes_a_static_bootstrap_serving_the_real_backend_on_loopback() {
        let key = ("default".to_owned(), "websocket-server".to_owned(), 3000);
        let backends = BTreeMap::from([(key, "127.0.0.1:4242".parse().unwrap())]);
        let b = bootstrap(&dump(), &backends, &[], (8080, 8443)).unwrap();
        let c = &b["staticResources"]["clusters"][0];
        assert_eq!(c["type"], "STATIC");
        assert!(c.get("edsClusterConfig").is_none() && c.get("@type").is_none());
        assert_eq!(
            c.pointer("/loadAssignment/endpoints/0/lbEndpoints/0/endpoint/address/socketAddress"),
            Some(&json!({"address": "127.0.0.1", "portValue": 4242}))
        );
        let ls = b["staticResources"]["listeners"].as_array().unwrap();
        assert_eq!(ls.len(), 1, "the readiness listener is dropped: {ls:?}");
        assert_eq!(ls[0]["address"]["socketAddress"]["portValue"], 8080);
        let hcm = &ls[0]["defaultFilterChain"]["filters"][0]["typedConfig"];
        assert!(hcm.get("rds").is_none());
        assert_eq!(hcm["@type"], "hcm", "nested types stay");
        assert_eq!(
            hcm.pointer("/routeConfig/virtualHosts/0/routes/0/route/idleTimeout"),
            Some(&json!("36000s")),
            "routes are carried unchanged"
        );
    }

    #[test]
    fn a_backend_with_no_server_is_an_error_naming_the_service() {
        let err = bootstrap(&dump(), &BTreeMap::new(), &[], (1, 2)).unwrap_err();
        assert!(
            err.to_string()
                .contains("default/websocket-server port 3000"),
            "{err}"
        );
    }

    #[test]
    fn the_restoring_policy_targets_each_route() {
        let t = crate::gateway_api::translate(&[wsgate_manifests::Documented::shipped()
            .unwrap()
            .ingress]);
        let p = stream_idle_policy(&t, 3600);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["spec"]["targetRefs"][0]["name"], "ws-test-example-com");
        assert_eq!(
            p[0]["spec"]["timeout"]["http"]["streamIdleTimeout"],
            "3600s"
        );
    }
}
