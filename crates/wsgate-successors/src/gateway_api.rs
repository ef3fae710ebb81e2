//! An Ingress as Gateway API objects, the way ingress2gateway v1.1.0's ingress-nginx provider
//! and standard emitter translate it. The tool's module is not served by the Go module proxy
//! here, so this follows its source (`pkg/i2gw/providers/ingressnginx/`,
//! `pkg/i2gw/emitters/common_emitter/emitter.go`, `redirect.go`) and says so in every report:
//!
//! - only Ingresses of class `nginx` are read (`ingressClassName`, else the annotation);
//! - one Gateway `nginx` per namespace, a listener per host (`<host>-http`, port 80) and per
//!   TLS host (`<host>-https`, port 443, the Secrets as `certificateRefs`);
//! - one HTTPRoute per namespace and host, named after the first Ingress with that host
//!   (`<ingress>-<host>`), a rule per distinct path type and path, from every such Ingress;
//! - `proxy-{connect,read,send}-timeout` become one `rules[].timeouts.request` of ten times the
//!   largest ("3600" is `10h0m0s`); nothing becomes an idle or stream timeout;
//! - a TLS host with ssl-redirect (the default; read as Go's `ParseBool`) gets a second
//!   HTTPRoute on port 80 that redirects to https with 308.
//!
//! Not modelled (the report says so when an Ingress needs them): regular-expression paths, the
//! trailing-slash redirects of Exact paths, default backends, canaries.

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};
use wsgate_manifests::{ANNOTATION_PREFIX, namespace_of};

/// What the translation made, and what it changed or dropped, in words.
#[derive(Debug, Clone, Default)]
pub struct Translated {
    pub gateways: Vec<Value>,
    pub routes: Vec<Value>,
    /// One line per thing a reader must know (a timeout turned into a request timeout, an
    /// annotation with no Gateway API counterpart).
    pub notes: Vec<String>,
}

impl Translated {
    /// Every object, Gateways first.
    pub fn objects(&self) -> Vec<&Value> {
        self.gateways.iter().chain(&self.routes).collect()
    }

    /// The objects as a YAML stream, for the report.
    pub fn to_yaml(&self) -> String {
        self.objects()
            .iter()
            .map(|o| serde_saphyr::to_string(o).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// The name ingress2gateway gives a host's listener and route parts (`common/utils.go`): each
/// run of characters that are not alphanumeric becomes one `-`, leading dashes go, and no host
/// (or `*`) is `all-hosts`.
pub fn host_name(host: &str) -> String {
    if host.is_empty() || host == "*" {
        return "all-hosts".into();
    }
    let mut out = String::new();
    for c in host.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_start_matches('-').to_owned()
}

/// Go's `time.Duration.String()` of whole seconds: `10h0m0s`, `1m0s`, `40s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The timeout annotations ingress2gateway reads, as it reads them: integer seconds above 0,
/// anything else skipped with a note.
fn tcp_timeouts(ing: &Ingress, id: &str, notes: &mut Vec<String>) -> Vec<(String, u64)> {
    let annotations = ing.metadata.annotations.clone().unwrap_or_default();
    [
        "proxy-connect-timeout",
        "proxy-read-timeout",
        "proxy-send-timeout",
    ]
    .iter()
    .filter_map(|k| {
        let v = annotations.get(&format!("{ANNOTATION_PREFIX}{k}"))?;
        match v.parse::<u64>() {
            Ok(n) if n > 0 => Some(((*k).to_owned(), n)),
            _ => {
                notes.push(format!(
                    "Ingress {id}: {k} {v:?} is not a positive number of seconds; skipped"
                ));
                None
            }
        }
    })
    .collect()
}

/// ssl-redirect as ingress2gateway reads it: Go's `strconv.ParseBool`, where a value it cannot
/// parse turns the redirect off; unset is on.
fn ssl_redirect(ing: &Ingress) -> bool {
    match ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{ANNOTATION_PREFIX}ssl-redirect")))
    {
        None => true,
        Some(v) => matches!(v.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True"),
    }
}

fn match_type(path_type: &str) -> &'static str {
    match path_type {
        "Exact" => "Exact",
        // ImplementationSpecific is a prefix for ingress-nginx without regex.
        _ => "PathPrefix",
    }
}

/// One HTTPRoute in the making: the namespace and host it is for, its rules.
struct Group {
    ns: String,
    host: String,
    name: String,
    /// (path type, path, rule).
    rules: Vec<(String, String, Value)>,
    /// TLS Secrets of the host, merged over its Ingresses.
    secrets: Vec<String>,
    redirect: bool,
}

/// The class ingress2gateway reads an Ingress as: `ingressClassName`, or the annotation when
/// that is unset or empty.
fn class_of(ing: &Ingress) -> Option<String> {
    ing.spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
        })
}

/// The Gateway API objects ingress2gateway makes of `ingresses` (those of class `nginx`).
pub fn translate(ingresses: &[Ingress]) -> Translated {
    let mut t = Translated::default();
    let mut groups: Vec<Group> = Vec::new();
    for ing in ingresses {
        let id = wsgate_manifests::object_id(&ing.metadata);
        let class = class_of(ing);
        if class.as_deref() != Some("nginx") {
            t.notes.push(format!(
                "Ingress {id}: class {class:?} is not nginx; ingress2gateway's ingress-nginx provider leaves it out"
            ));
            continue;
        }
        let annotations = ing.metadata.annotations.clone().unwrap_or_default();
        for (key, what) in [
            ("use-regex", "regular-expression paths"),
            ("rewrite-target", "regular-expression paths"),
            ("canary", "canaries"),
        ] {
            if annotations.contains_key(&format!("{ANNOTATION_PREFIX}{key}")) {
                t.notes.push(format!(
                    "Ingress {id}: {key} asks for {what}, which wsgate's rendering of ingress2gateway does not model"
                ));
            }
        }
        let ns = namespace_of(&ing.metadata);
        let name = ing.metadata.name.clone().unwrap_or_default();
        let timeouts = tcp_timeouts(ing, &id, &mut t.notes);
        let request = timeouts.iter().map(|(_, n)| *n).max().map(|max| {
            let request = go_duration(10 * max);
            t.notes.push(format!(
                "Ingress {id}: {} became timeouts.request {request} (ten times the largest, a request timeout: Gateway API has no idle timeout, so none was set)",
                timeouts
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            request
        });
        let spec = ing.spec.clone().unwrap_or_default();
        if spec.default_backend.is_some() {
            t.notes.push(format!(
                "Ingress {id}: its default backend is not modelled (ingress2gateway makes a `{name}-default-backend` route of it)"
            ));
        }
        let rule_hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .map(|r| r.host.clone().unwrap_or_default())
            .collect();
        // A TLS entry without hosts covers every host of the Ingress.
        let tls_of = |host: &str| -> Vec<String> {
            spec.tls
                .iter()
                .flatten()
                .filter(|tls| {
                    tls.hosts
                        .as_ref()
                        .is_none_or(|hs| hs.is_empty() || hs.iter().any(|h| h == host))
                })
                .filter_map(|tls| tls.secret_name.clone())
                .collect()
        };
        let redirect = ssl_redirect(ing);
        for (rule, host) in spec.rules.iter().flatten().zip(&rule_hosts) {
            let g = match groups.iter().position(|g| g.ns == ns && g.host == *host) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        ns: ns.clone(),
                        host: host.clone(),
                        name: format!("{name}-{}", host_name(host)),
                        rules: Vec::new(),
                        secrets: Vec::new(),
                        redirect,
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            for s in tls_of(host) {
                if !g.secrets.contains(&s) {
                    g.secrets.push(s);
                }
            }
            for p in rule.http.iter().flat_map(|h| &h.paths) {
                let path = p.path.clone().unwrap_or_else(|| "/".into());
                let kind = match_type(&p.path_type).to_owned();
                if g.rules.iter().any(|(k, v, _)| *k == kind && *v == path) {
                    continue;
                }
                let svc = p.backend.service.as_ref();
                let port = svc
                    .and_then(|s| s.port.as_ref())
                    .and_then(|p| p.number)
                    .unwrap_or(80);
                let mut r = json!({
                    "matches": [{"path": {"type": kind, "value": path}}],
                    "backendRefs": [{"name": svc.map(|s| s.name.clone()).unwrap_or_default(), "port": port}]
                });
                if let Some(req) = &request {
                    r["timeouts"] = json!({"request": req});
                }
                g.rules.push((kind, path, r));
            }
        }
    }
    // One Gateway per namespace (in the order first seen), its listeners once each.
    let mut namespaces: Vec<String> = Vec::new();
    for g in &groups {
        if !namespaces.contains(&g.ns) {
            namespaces.push(g.ns.clone());
        }
    }
    for ns in &namespaces {
        let mut listeners: Vec<Value> = Vec::new();
        for g in groups.iter().filter(|g| g.ns == *ns) {
            let hn = host_name(&g.host);
            let mut http = json!({"name": format!("{hn}-http"), "port": 80, "protocol": "HTTP"});
            if !g.host.is_empty() {
                http["hostname"] = json!(g.host);
            }
            listeners.push(http);
            if !g.secrets.is_empty() {
                let mut https = json!({
                    "name": format!("{hn}-https"), "port": 443, "protocol": "HTTPS",
                    "tls": {"certificateRefs": g.secrets.iter()
                        .map(|s| json!({"group": "", "kind": "Secret", "name": s}))
                        .collect::<Vec<_>>()}
                });
                if !g.host.is_empty() {
                    https["hostname"] = json!(g.host);
                }
                listeners.push(https);
            }
        }
        t.gateways.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "nginx", "namespace": ns},
            "spec": {"gatewayClassName": "nginx", "listeners": listeners}
        }));
    }
    for g in &groups {
        let hn = host_name(&g.host);
        let tls = !g.secrets.is_empty();
        let redirect = tls && g.redirect;
        let parent = if redirect {
            json!({"name": "nginx", "port": 443, "sectionName": format!("{hn}-https")})
        } else {
            json!({"name": "nginx"})
        };
        let hostnames: Vec<&str> = Some(g.host.as_str())
            .filter(|h| !h.is_empty())
            .into_iter()
            .collect();
        t.routes.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": g.name, "namespace": g.ns},
            "spec": {"parentRefs": [parent], "hostnames": hostnames,
                     "rules": g.rules.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>()}
        }));
        if redirect {
            let redirects: Vec<Value> = g
                .rules
                .iter()
                .map(|(kind, path, _)| {
                    json!({
                        "matches": [{"path": {"type": kind, "value": path}}],
                        "filters": [{"type": "RequestRedirect",
                                     "requestRedirect": {"scheme": "https", "statusCode": 308}}]
                    })
                })
                .collect();
            t.routes.push(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": format!("{}-http", g.name), "namespace": g.ns},
                "spec": {"parentRefs": [{"name": "nginx", "port": 80}], "hostnames": hostnames,
                         "rules": redirects}
            }));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsgate_manifests::{Documented, TLS_SECRET_NAME, apply_tls};

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(36_000), "10h0m0s");
        assert_eq!(go_duration(40), "40s");
        assert_eq!(go_duration(600), "10m0s");
        assert_eq!(go_duration(3661), "1h1m1s");
    }

    #[test]
    fn the_documented_ingress_becomes_a_gateway_and_a_route_with_a_ten_hour_request_timeout() {
        let ing = Documented::shipped().unwrap().ingress;
        let t = translate(&[ing]);
        assert_eq!(t.gateways.len(), 1);
        assert_eq!(
            t.gateways[0]["spec"]["listeners"],
            json!([{"name": "test-example-com-http", "port": 80, "protocol": "HTTP", "hostname": "test.example.com"}])
        );
        assert_eq!(t.routes.len(), 1);
        let r = &t.routes[0];
        assert_eq!(r["metadata"]["name"], "ws-test-example-com");
        assert_eq!(r["spec"]["rules"][0]["timeouts"]["request"], "10h0m0s");
        assert_eq!(
            r["spec"]["rules"][0]["backendRefs"],
            json!([{"name": "websocket-server", "port": 3000}])
        );
        assert!(
            t.notes.iter().any(|n| n.contains("no idle timeout")),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn after_the_tls_patch_an_https_listener_and_a_308_redirect_route_appear() {
        let mut ing = Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        let t = translate(&[ing]);
        let listeners = t.gateways[0]["spec"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(
            listeners[1]["tls"]["certificateRefs"][0]["name"],
            TLS_SECRET_NAME
        );
        assert_eq!(t.routes.len(), 2);
        assert_eq!(
            t.routes[0]["spec"]["parentRefs"][0]["sectionName"],
            "test-example-com-https"
        );
        assert_eq!(t.routes[1]["metadata"]["name"], "ws-test-example-com-http");
        assert_eq!(
            t.routes[1]["spec"]["rules"][0]["filters"][0]["requestRedirect"]["statusCode"],
            308
        );
    }

    #[test]
    fn a_short_timeout_becomes_ten_times_itself_and_an_invalid_one_is_skipped() {
        let mut ing = Documented::shipped().unwrap().ingress;
        let a = ing
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        a.insert(format!("{ANNOTATION_PREFIX}proxy-read-timeout"), "4".into());
        a.insert(
            format!("{ANNOTATION_PREFIX}proxy-send-timeout"),
            "4s".into(),
        );
        let t = translate(&[ing]);
        assert_eq!(
            t.routes[0]["spec"]["rules"][0]["timeouts"]["request"],
            "40s"
        );
        assert!(
            t.notes.iter().any(|n| n.contains("\"4s\"")),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn host_names_collapse_like_ingress2gateway_and_no_host_is_all_hosts() {
        assert_eq!(host_name("test.example.com"), "test-example-com");
        assert_eq!(host_name("*.example.com"), "example-com");
        assert_eq!(host_name(""), "all-hosts");
        assert_eq!(host_name("*"), "all-hosts");
    }

    #[test]
    fn ingresses_sharing_a_host_become_one_route_named_after_the_first() {
        let a = Documented::shipped().unwrap().ingress;
        let mut b = a.clone();
        b.metadata.name = Some("other".into());
        let paths = &mut b.spec.as_mut().unwrap().rules.as_mut().unwrap()[0]
            .http
            .as_mut()
            .unwrap()
            .paths;
        paths[0].path = Some("/chat".into());
        let t = translate(&[a, b]);
        assert_eq!(t.routes.len(), 1, "{:?}", t.routes);
        assert_eq!(t.routes[0]["metadata"]["name"], "ws-test-example-com");
        assert_eq!(t.routes[0]["spec"]["rules"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_unparsable_ssl_redirect_turns_the_redirect_off_and_a_classless_ingress_is_left_out() {
        let mut ing = Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        ing.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(format!("{ANNOTATION_PREFIX}ssl-redirect"), "no".into());
        let mut classless = ing.clone();
        classless.spec.as_mut().unwrap().ingress_class_name = None;
        let t = translate(&[ing, classless]);
        assert_eq!(t.routes.len(), 1, "no redirect route: {:?}", t.routes);
        assert_eq!(
            t.routes[0]["spec"]["parentRefs"][0],
            json!({"name": "nginx"})
        );
        assert!(
            t.notes.iter().any(|n| n.contains("is not nginx")),
            "{:?}",
            t.notes
        );
    }
}
