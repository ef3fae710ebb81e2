//! The steps for a team's own manifests (`--manifests`): their images, their objects (TLS
//! Secrets without data get a generated certificate), their Deployments Available and rules
//! routing, then every rule checked; on an existing cluster, teardown deletes what was applied.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use wsgate_cluster::{INGRESS_NGINX_NAMESPACE, ObjectRef, apply_body};
use wsgate_manifests::Object;
use wsgate_probe::Scheme;

use super::builder::Builder;
use super::{Mode, Own, Step, StepId};
use crate::action::{Action, ApiBody, ApiCall, ApiVerb, CheckRules, Route, WaitFor};

fn ns(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The object's address and its server-side apply body.
fn target(o: &Object) -> (ObjectRef, serde_json::Value) {
    macro_rules! namespaced {
        ($t:ty, $obj:expr) => {{
            let n = ns(&$obj.metadata);
            (
                ObjectRef::of::<$t>(Some(&n), &name(&$obj.metadata)),
                apply_body(&**$obj, Some(&n)),
            )
        }};
    }
    match o {
        Object::Deployment(d) => namespaced!(Deployment, d),
        Object::Service(s) => namespaced!(Service, s),
        Object::Ingress(i) => namespaced!(Ingress, i),
        Object::Secret(s) => namespaced!(Secret, s),
        Object::ConfigMap(c) => namespaced!(ConfigMap, c),
        Object::Namespace(n) => (
            ObjectRef::of::<Namespace>(None, &name(&n.metadata)),
            apply_body(&**n, None),
        ),
    }
}

/// A TLS Secret the manifests name without a certificate in it.
fn lacks_cert(s: &Secret) -> bool {
    s.data
        .as_ref()
        .is_none_or(|d| !d.contains_key("tls.crt") || !d.contains_key("tls.key"))
}

impl Builder<'_> {
    pub(super) fn own_steps(&self, own: &Own) -> anyhow::Result<Vec<Step>> {
        let w = &own.workload;
        let config = w.controller_config()?;
        let rules = w.rules(&config)?;
        let mut steps = Vec::new();
        if self.mode == Mode::Kind && !own.args.load_images.is_empty() {
            let actions = own
                .args
                .load_images
                .iter()
                .map(|image| self.load_image(image))
                .collect();
            steps.push(Self::step(StepId::LoadImages, actions));
        }

        // The objects, in apply order; TLS Secrets without a certificate get a generated one.
        let mut actions = Vec::new();
        if let Some(cm) = &w.controller {
            match self.mode {
                Mode::Kind => {
                    let mut cm = cm.clone();
                    cm.metadata.namespace = Some(INGRESS_NGINX_NAMESPACE.into());
                    actions.push(self.apply(
                        ObjectRef::of::<ConfigMap>(
                            Some(INGRESS_NGINX_NAMESPACE),
                            &name(&cm.metadata),
                        ),
                        apply_body(&cm, Some(INGRESS_NGINX_NAMESPACE)),
                        None,
                    ));
                }
                Mode::Existing => actions.push(Action::Note(
                    "the manifests' controller ConfigMap sets the expected timeouts only; the cluster's controller keeps its own".into(),
                )),
            }
        }
        let mut generated = Vec::new();
        let mut hosts_of: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for r in &rules {
            if let Some(secret) = &r.tls_secret {
                hosts_of
                    .entry((r.namespace.clone(), secret.clone()))
                    .or_default()
                    .push(r.host.clone());
            }
        }
        for ((sns, sname), hosts) in &hosts_of {
            let given = w
                .secrets
                .iter()
                .find(|s| ns(&s.metadata) == *sns && name(&s.metadata) == *sname);
            let tls_dir = self.work.join("tls");
            match given {
                Some(s) if !lacks_cert(s) => {
                    // Its certificate, for the route waits to verify (a certificate, not the key).
                    let crt = &s.data.as_ref().expect("checked")["tls.crt"].0;
                    let path = tls_dir.join(format!("{sns}-{sname}.crt"));
                    actions.push(Action::WriteFile {
                        path: path.clone(),
                        contents: String::from_utf8_lossy(crt).into_owned(),
                        about: format!("the certificate of Secret {sns}/{sname}"),
                    });
                    generated.push(path);
                }
                _ => {
                    let (cert, key) = (
                        tls_dir.join(format!("{sns}-{sname}.crt")),
                        tls_dir.join(format!("{sns}-{sname}.key")),
                    );
                    let mut hosts = hosts.clone();
                    hosts.dedup();
                    actions.push(Action::GenerateCert {
                        hosts,
                        cert: cert.clone(),
                        key: key.clone(),
                    });
                    actions.push(Action::Api(ApiCall {
                        verb: ApiVerb::ServerSideApply,
                        target: ObjectRef::of::<Secret>(Some(sns), sname),
                        body: ApiBody::TlsSecret {
                            cert: cert.clone(),
                            key,
                        },
                        webhook_retry: None,
                    }));
                    generated.push(cert);
                }
            }
        }
        for o in w.apply_order() {
            if let Object::Secret(s) = &o
                && lacks_cert(s)
                && s.type_.as_deref() == Some("kubernetes.io/tls")
            {
                continue; // Applied above with its generated certificate.
            }
            let retry = matches!(o, Object::Ingress(_)).then_some(self.inputs.deadlines.webhook);
            let (target, body) = target(&o);
            actions.push(self.apply(target, body, retry));
        }
        steps.push(Step {
            id: StepId::OwnManifests,
            actions,
            arms_teardown: (self.mode == Mode::Existing).then_some(0),
        });

        let mut ready: Vec<Action> = w
            .deployments
            .iter()
            .map(|d| Action::Wait {
                what: WaitFor::DeploymentAvailable {
                    namespace: ns(&d.metadata),
                    name: name(&d.metadata),
                },
                limit: self.inputs.deadlines.controller,
            })
            .collect();
        let mut trust = generated;
        trust.extend(own.args.trust.iter().cloned());
        for r in rules.iter().filter(|r| !r.regex) {
            let (scheme, addr) = match r.tls_secret {
                Some(_) => (Scheme::Wss, &self.https_addr),
                None => (Scheme::Ws, &self.http_addr),
            };
            ready.push(Action::Wait {
                what: WaitFor::Route(Route {
                    scheme,
                    addr: addr.clone(),
                    host: r.host.clone(),
                    path: r.url_path.clone(),
                    trust: trust.clone(),
                    echo: false,
                }),
                limit: self.inputs.deadlines.routes,
            });
        }
        steps.push(Self::step(StepId::OwnReady, ready));
        steps.push(Self::step(
            StepId::OwnChecks,
            vec![Action::CheckRules(CheckRules {
                manifests: own.args.manifests.clone(),
                http: self.http_addr.clone(),
                https: self.https_addr.clone(),
                trust,
                max_idle: Duration::from_secs(own.args.max_idle),
                echo: own.args.echo,
                tier: self.tier.clone(),
                rows: self.work.join("rows"),
            })],
        ));
        Ok(steps)
    }

    /// On an existing cluster: delete what the manifests applied, namespaces last.
    pub(super) fn own_teardown(&self) -> Vec<Action> {
        let Some(own) = &self.inputs.own else {
            return Vec::new();
        };
        let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut namespaces = Vec::new();
        for o in own.workload.apply_order() {
            let (t, _) = target(&o);
            match &t.namespace {
                Some(n) => by_ns.entry(n.clone()).or_default().push(format!(
                    "{}/{}",
                    t.resource.kind.to_lowercase(),
                    t.name
                )),
                None => namespaces.push(t.name),
            }
        }
        let mut v: Vec<Action> = by_ns
            .into_iter()
            .map(|(n, objects)| {
                Action::Run(
                    self.kubectl()
                        .args(["-n", &n, "delete", "--ignore-not-found"])
                        .args(objects),
                )
            })
            .collect();
        v.extend(namespaces.into_iter().map(|n| {
            Action::Run(self.kubectl().args([
                "delete",
                "namespace",
                &n,
                "--wait=false",
                "--ignore-not-found",
            ]))
        }));
        v
    }
}
