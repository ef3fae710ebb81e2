//! The manifests' variants, and each proxy serving one: ingress-nginx's local tier, Envoy
//! Gateway (egctl and Envoy), NGINX Gateway Fabric (rendered, nginx 1.31.3) and Traefik (its
//! provider against the bare tier's API server), every one in front of the same backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use wsgate_cluster::{ObjectRef, apply_body, server_side_apply};
use wsgate_local::{LocalIngress, LocalIngressSpec, ServiceRef};
use wsgate_manifests::{
    PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT, Rule, TLS_SECRET_NAME, Workload, apply_tls,
    namespace_of, tls_pair, tls_secret,
};
use wsgate_probe::Trust;
use wsgate_successors::ngf::{ProxySettings, ServicePort};
use wsgate_successors::{Proxy, Successor, envoy, gateway_api, ngf, traefik};
use wsgate_tls::TlsMaterial;

use super::cases::VariantKey;

/// One variant of the manifests, with its rules and TLS Secrets resolved.
#[derive(Debug, Clone)]
pub struct Variant {
    pub key: VariantKey,
    pub workload: Workload,
    pub rules: Vec<Rule>,
    /// `(namespace/name, crt PEM, key PEM)` of every TLS Secret the rules use.
    pub secrets: Vec<(String, String, String)>,
    pub trust: Vec<CertificateDer<'static>>,
    /// What a reader must know (generated certificates).
    pub notes: Vec<String>,
}

fn with_timeouts(w: &Workload, value: Option<&str>) -> Workload {
    let mut w = w.clone();
    for ing in &mut w.ingresses {
        let a = ing
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        for key in [PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT] {
            match value {
                Some(v) => a.insert(key.into(), v.into()),
                None => a.remove(key),
            };
        }
    }
    w
}

/// The longest read timeout ingress-nginx gives any rule of `w`.
pub fn longest_read(w: &Workload) -> anyhow::Result<u64> {
    Ok(longest_timeouts(w)?.0)
}

/// Read and send timeouts (seconds) a restoring setting gives back.
pub type Restore = (u64, u64);

/// The longest read and send timeouts ingress-nginx gives any rule of `w`, in seconds.
pub fn longest_timeouts(w: &Workload) -> anyhow::Result<Restore> {
    let config = w.controller_config()?;
    let rules = w.rules(&config)?;
    let max = |f: &dyn Fn(&Rule) -> u64| rules.iter().map(f).max().unwrap_or(60);
    Ok((
        max(&|r| r.timeouts.read.seconds),
        max(&|r| r.timeouts.send.seconds),
    ))
}

impl Variant {
    fn new(key: VariantKey, workload: Workload) -> anyhow::Result<Self> {
        let config = workload.controller_config()?;
        let rules: Vec<Rule> = workload
            .rules(&config)?
            .into_iter()
            .filter(|r| !r.regex)
            .collect();
        let mut v = Self {
            key,
            workload,
            rules,
            secrets: Vec::new(),
            trust: Vec::new(),
            notes: Vec::new(),
        };
        // The manifests' Secrets as they are; one without data (or missing) gets a
        // self-signed certificate for its hosts, the same for every proxy.
        for ((ns, name), hosts) in wsgate_manifests::tls_secret_hosts(&v.rules) {
            let given = v
                .workload
                .secret(&ns, &name)
                .and_then(tls_pair)
                .map(|(c, k)| {
                    (
                        String::from_utf8_lossy(c).into_owned(),
                        String::from_utf8_lossy(k).into_owned(),
                    )
                });
            let (crt, key) = match given {
                Some(pair) => pair,
                None => {
                    let m = TlsMaterial::self_signed(&hosts)?;
                    v.notes.push(format!(
                        "Secret {ns}/{name} has no certificate in the manifests: a self-signed one for {} is used",
                        hosts.join(", ")
                    ));
                    v.workload.secrets.retain(|s| {
                        !(namespace_of(&s.metadata) == ns
                            && s.metadata.name.as_deref() == Some(&name))
                    });
                    v.workload
                        .secrets
                        .push(tls_secret(&name, &ns, m.cert_pem(), m.key_pem()));
                    (m.cert_pem().to_owned(), m.key_pem().to_owned())
                }
            };
            v.trust.extend(
                wsgate_probe::pem_certificates(crt.as_bytes()).with_context(|| {
                    format!("Secret {ns}/{name}: tls.crt is not a PEM certificate")
                })?,
            );
            v.secrets.push((format!("{ns}/{name}"), crt, key));
        }
        Ok(v)
    }

    /// Every Service port the rules route to.
    pub fn service_ports(&self) -> Vec<ServicePort> {
        let mut out: Vec<ServicePort> = self
            .rules
            .iter()
            .map(|r| (r.namespace.clone(), r.service.clone(), i64::from(r.port)))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn trust(&self) -> Trust {
        Trust::Certificates(self.trust.clone())
    }
}

/// The variants `migrate` measures: as written; after the document's TLS patch (the
/// document's own manifests only); without timeout annotations; with the team's own short
/// timeout (as written when its read timeout is at most `own` × 5 s, else set to `own`).
pub fn variants(w: &Workload, documented: bool, own: u64) -> anyhow::Result<Vec<Variant>> {
    let mut out = vec![Variant::new(VariantKey::Written, w.clone())?];
    if documented {
        let mut tls = w.clone();
        for ing in &mut tls.ingresses {
            let hosts: Vec<String> = ing
                .spec
                .iter()
                .flat_map(|s| s.rules.iter().flatten())
                .filter_map(|r| r.host.clone())
                .collect();
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            apply_tls(ing, &hosts, TLS_SECRET_NAME);
        }
        out.push(Variant::new(VariantKey::Tls, tls)?);
    }
    out.push(Variant::new(VariantKey::Without, with_timeouts(w, None))?);
    if longest_read(w)? > own * 5 {
        out.push(Variant::new(
            VariantKey::Own,
            with_timeouts(w, Some(&own.to_string())),
        )?);
    }
    Ok(out)
}

/// A proxy serving one variant, kept alive as long as this is.
pub struct Served {
    pub http: String,
    pub https: String,
    /// What its configuration says about timeouts (for the report).
    pub config: Vec<String>,
    _keep: Keep,
}

enum Keep {
    Nginx(Box<LocalIngress>),
    Proxy(Proxy),
}

impl Served {
    fn proxy(p: Proxy, config: Vec<String>) -> Self {
        Self {
            http: p.http.to_string(),
            https: p.https.to_string(),
            config,
            _keep: Keep::Proxy(p),
        }
    }

    /// The proxy's log, for a failure's diagnostics.
    pub fn log_tail(&self) -> String {
        match &self._keep {
            Keep::Nginx(n) => n.error_log(),
            Keep::Proxy(p) => wsgate_successors::proxy::tail(&p.log, 30),
        }
    }
}

/// ingress-nginx's local tier (real nginx, rendered as controller-v1.15.1 renders).
pub fn ingress_nginx(
    v: &Variant,
    backends: &BTreeMap<ServicePort, SocketAddr>,
) -> anyhow::Result<Served> {
    let secrets: Vec<Secret> = v
        .workload
        .secrets
        .iter()
        .filter(|s| tls_pair(s).is_some())
        .cloned()
        .collect();
    let backends = backends
        .iter()
        .map(|((ns, name, port), a)| (ServiceRef::new(ns, name, *port as i32), *a))
        .collect();
    let nginx = LocalIngress::start(&LocalIngressSpec {
        ingresses: v.workload.resolved_ingresses(),
        secrets,
        config: v.workload.controller_config()?,
        backends,
    })?;
    let config = v
        .rules
        .iter()
        .map(|r| {
            format!(
                "{}: proxy_read_timeout {} s, proxy_send_timeout {} s",
                r.target(),
                r.timeouts.read.seconds,
                r.timeouts.send.seconds
            )
        })
        .collect();
    Ok(Served {
        http: nginx.http_addr().to_string(),
        https: nginx.https_addr().to_string(),
        config,
        _keep: Keep::Nginx(Box::new(nginx)),
    })
}

/// Envoy Gateway: ingress2gateway's objects through egctl, served by Envoy; `restore` adds the
/// BackendTrafficPolicy that sets the stream idle timeout.
pub fn envoy_gateway(
    v: &Variant,
    bins: &Bins,
    backends: &BTreeMap<ServicePort, SocketAddr>,
    restore: Option<Restore>,
) -> anyhow::Result<(Served, gateway_api::Translated)> {
    let t = gateway_api::translate(&v.workload.resolved_ingresses());
    let policies = restore
        .map(|(read, _)| envoy::stream_idle_policy(&t, read))
        .unwrap_or_default();
    let (proxy, boot) = envoy::serve(
        &bins.egctl,
        &bins.envoy,
        &t,
        &policies,
        backends,
        &v.secrets,
    )?;
    Ok((Served::proxy(proxy, envoy::timeouts_of(&boot)), t))
}

/// NGINX Gateway Fabric: ingress2gateway's objects rendered as NGF renders them; `restore`
/// adds the ProxySettingsPolicy read and send timeouts.
pub fn nginx_gateway_fabric(
    v: &Variant,
    bins: &Bins,
    backends: &BTreeMap<ServicePort, SocketAddr>,
    restore: Option<Restore>,
) -> anyhow::Result<Served> {
    let t = gateway_api::translate(&v.workload.resolved_ingresses());
    let policy = ProxySettings {
        read: restore.map(|r| r.0),
        send: restore.map(|r| r.1),
    };
    let proxy = ngf::serve(&bins.nginx, &t, backends, &v.secrets, policy)?;
    let config = vec![match restore {
        Some((r, s)) => {
            format!("ProxySettingsPolicy: proxy_read_timeout {r}s, proxy_send_timeout {s}s")
        }
        None => {
            "no proxy timeout rendered (HTTPRoute timeouts are not supported): nginx's 60 s apply"
                .into()
        }
    }];
    Ok(Served::proxy(proxy, config))
}

/// The binaries the successors run.
#[derive(Debug, Clone)]
pub struct Bins {
    pub egctl: std::path::PathBuf,
    pub envoy: std::path::PathBuf,
    pub nginx: std::path::PathBuf,
    pub traefik: std::path::PathBuf,
}

/// The label that puts a namespace in one Traefik's view.
const VARIANT_LABEL: &str = "wsgate.dev/migrate-variant";

/// A Traefik variant's copy of a namespace.
fn mapped(ns: &str, v: VariantKey) -> String {
    format!("{ns}-{}", v.slug())
}

/// The objects Traefik reads for `v`, in its own namespaces: the Services (no ClusterIP of
/// their own), an EndpointSlice per Service port naming the pod address that serves it, the
/// TLS Secrets and the Ingresses as written.
pub fn traefik_objects(
    v: &Variant,
    pods: &BTreeMap<(String, String), std::net::Ipv4Addr>,
) -> Vec<(ObjectRef, Value)> {
    let w = &v.workload;
    let mut namespaces: Vec<String> = w
        .ingresses
        .iter()
        .map(|i| namespace_of(&i.metadata))
        .chain(w.services.iter().map(|s| namespace_of(&s.metadata)))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let mut out = Vec::new();
    for ns in &namespaces {
        let n = Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(mapped(ns, v.key)),
                labels: Some([(VARIANT_LABEL.to_owned(), v.key.slug().to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        out.push((
            ObjectRef::of::<Namespace>(None, &mapped(ns, v.key)),
            apply_body(&n, None),
        ));
    }
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().unwrap_or_default()
    };
    for s in &w.services {
        let ns = mapped(&namespace_of(&s.metadata), v.key);
        let mut body = apply_body(s, Some(&ns));
        if let Some(spec) = body["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        out.push((
            ObjectRef::of::<Service>(Some(&ns), &name(&s.metadata)),
            body,
        ));
        let svc_ns = namespace_of(&s.metadata);
        let svc = name(&s.metadata);
        let Some(ip) = pods.get(&(svc_ns, svc.clone())) else {
            continue;
        };
        let ports: Vec<Value> = s
            .spec
            .iter()
            .flat_map(|sp| sp.ports.iter().flatten())
            .map(|p| json!({"name": p.name.clone().unwrap_or_default(), "port": p.port, "protocol": "TCP"}))
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{svc}-wsgate"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "wsgate"}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true, "serving": true}}]
        }))
        .expect("an EndpointSlice");
        out.push((
            ObjectRef::of::<EndpointSlice>(Some(&ns), &format!("{svc}-wsgate")),
            apply_body(&slice, Some(&ns)),
        ));
    }
    for s in w.secrets.iter().filter(|s| tls_pair(s).is_some()) {
        let ns = mapped(&namespace_of(&s.metadata), v.key);
        out.push((
            ObjectRef::of::<Secret>(Some(&ns), &name(&s.metadata)),
            apply_body(s, Some(&ns)),
        ));
    }
    for i in &w.ingresses {
        let ns = mapped(&namespace_of(&i.metadata), v.key);
        out.push((
            ObjectRef::of::<Ingress>(Some(&ns), &name(&i.metadata)),
            apply_body(i, Some(&ns)),
        ));
    }
    out
}

/// The IngressClass ingress-nginx's install makes, which the provider looks for.
pub fn ingress_class() -> (ObjectRef, Value) {
    let ic: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx"}
    }))
    .expect("an IngressClass");
    (
        ObjectRef::of::<IngressClass>(None, "nginx"),
        apply_body(&ic, None),
    )
}

/// Applies `objects` to the API server behind `kubeconfig`.
pub async fn apply_all(
    kubeconfig: &std::path::Path,
    objects: &[(ObjectRef, Value)],
) -> anyhow::Result<()> {
    let client = wsgate_cluster::connect(kubeconfig, None).await?;
    for (target, body) in objects {
        server_side_apply(&client, target, body).await?;
    }
    Ok(())
}

/// Traefik for `v`, once its objects are applied: the controller ConfigMap's timeouts as the
/// provider's options.
pub fn traefik(v: &Variant, bins: &Bins, kubeconfig: &std::path::Path) -> anyhow::Result<Served> {
    let options: Vec<(String, String)> = v
        .workload
        .controller
        .iter()
        .flat_map(|cm| cm.data.iter().flatten())
        .filter_map(|(k, val)| Some((traefik::provider_option(k)?.to_owned(), val.clone())))
        .collect();
    let mut hosts: Vec<String> = v.rules.iter().map(|r| r.host.clone()).collect();
    hosts.dedup();
    let spec = traefik::Spec {
        kubeconfig: kubeconfig.to_owned(),
        selector: format!("{VARIANT_LABEL}={}", v.key.slug()),
        hosts,
        options: options.clone(),
    };
    let proxy = traefik::serve(&bins.traefik, &spec)?;
    let mut config: Vec<String> = v
        .rules
        .iter()
        .map(|r| {
            format!(
                "{}: read {} s, send {} s from the Ingress as ingress-nginx reads it",
                r.target(),
                r.timeouts.read.seconds,
                r.timeouts.send.seconds
            )
        })
        .collect();
    config.extend(
        options
            .iter()
            .map(|(k, val)| format!("provider option {k}={val}")),
    );
    Ok(Served::proxy(proxy, config))
}

/// Which successors have a restoring policy to measure (Traefik reads the annotations).
pub fn has_restoring_policy(s: Successor) -> bool {
    matches!(s, Successor::EnvoyGateway | Successor::NginxGatewayFabric)
}
