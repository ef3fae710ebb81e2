//! The steps for a team's own workload (`--workload`): their images, their objects (TLS
//! Secrets without data get a generated certificate), their Deployments Available and rules
//! routing, then every rule checked; on an existing cluster, teardown deletes what was applied.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use wsgate_cluster::{INGRESS_NGINX_NAMESPACE, ObjectRef, apply_body};
use wsgate_manifests::{Object, namespace_of};
use wsgate_probe::Scheme;

use super::builder::Builder;
use super::{Mode, Step, StepId, WorkloadRun};
use crate::action::{Action, ApiBody, ApiCall, ApiVerb, CheckRules, Route, RouteAnswer, WaitFor};

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The object's address and its server-side apply body.
fn target(o: &Object) -> (ObjectRef, serde_json::Value) {
    macro_rules! namespaced {
        ($t:ty, $obj:expr) => {{
            let n = namespace_of(&$obj.metadata);
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

/// TLS Secrets of the manifests without a certificate and key that no rule uses: nothing would
/// generate theirs, and the API server refuses a `kubernetes.io/tls` Secret without both.
fn unused_incomplete_tls(
    w: &wsgate_manifests::Workload,
    rules: &[wsgate_manifests::Rule],
) -> BTreeSet<(String, String)> {
    let used = wsgate_manifests::tls_secret_hosts(rules);
    w.secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some("kubernetes.io/tls"))
        .filter(|s| wsgate_manifests::tls_pair(s).is_none())
        .map(|s| (namespace_of(&s.metadata), name(&s.metadata)))
        .filter(|id| !used.contains_key(id))
        .collect()
}

impl Builder<'_> {
    /// What the flags and manifests ask that this cluster cannot do, refused before anything runs.
    pub(super) fn check_workload(&self, run: &WorkloadRun) -> anyhow::Result<()> {
        if self.args.namespace.is_some() {
            anyhow::bail!(
                "--namespace is for the document's objects; with --workload each object names its own namespace (metadata.namespace, else default)"
            );
        }
        if self.mode == Mode::Existing && !run.args.load_images.is_empty() {
            anyhow::bail!(
                "--load-image {} loads into kind's nodes; an existing cluster pulls images from a registry: push them there and drop --load-image",
                run.args.load_images.join(", ")
            );
        }
        if self.mode == Mode::Kind {
            // The kind manifest's controller serves class nginx, and Ingresses without a class
            // (`--watch-ingress-without-class=true`) unless the old annotation names another.
            for ing in &run.workload.ingresses {
                let class = ing.spec.as_ref().and_then(|s| s.ingress_class_name.clone());
                let annotated = ing
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/ingress.class").cloned());
                let (field, other) = match (class, annotated) {
                    (Some(c), _) if c != "nginx" => ("spec.ingressClassName", c),
                    (None, Some(a)) if a != "nginx" => {
                        ("the kubernetes.io/ingress.class annotation", a)
                    }
                    _ => continue,
                };
                anyhow::bail!(
                    "Ingress {}/{}: {field} is {other:?}; the kind cluster's ingress-nginx serves class nginx only, so it would never route: set spec.ingressClassName: nginx",
                    namespace_of(&ing.metadata),
                    name(&ing.metadata),
                );
            }
        }
        Ok(())
    }

    pub(super) fn workload_steps(&self, run: &WorkloadRun) -> anyhow::Result<Vec<Step>> {
        self.check_workload(run)?;
        let (w, rules) = (&run.workload, &run.rules);
        let mut steps = Vec::new();
        if self.mode == Mode::Kind && !run.args.load_images.is_empty() {
            let actions = run
                .args
                .load_images
                .iter()
                .map(|image| self.load_image(image))
                .collect();
            steps.push(Self::step(StepId::WorkloadImages, actions));
        }

        let mut actions = Vec::new();
        if self.mode == Mode::Existing {
            // Teardown deletes what the run applied: first make sure none of it is someone else's.
            actions.push(Action::ExpectAbsent {
                targets: self.workload_objects(run),
                hint: "run against a cluster (or namespaces) where the manifests' objects do not exist yet, or delete them first (an earlier run's leftovers that a controller has since changed are refused too: delete them by hand)".into(),
                limit: self.inputs.deadlines.controller,
            });
        }
        match (&w.controller, self.mode) {
            (Some(cm), Mode::Kind) => {
                let mut cm = cm.clone();
                cm.metadata.namespace = Some(INGRESS_NGINX_NAMESPACE.into());
                actions.push(self.apply(
                    ObjectRef::of::<ConfigMap>(Some(INGRESS_NGINX_NAMESPACE), &name(&cm.metadata)),
                    apply_body(&cm, Some(INGRESS_NGINX_NAMESPACE)),
                    None,
                ));
            }
            (Some(_), Mode::Existing) => actions.push(Action::Note(
                "the manifests' controller ConfigMap sets the expected timeouts only; the cluster's controller keeps its own".into(),
            )),
            (None, Mode::Existing) => actions.push(Action::Note(
                "the manifests have no ingress-nginx-controller ConfigMap: timeouts are expected at the controller's defaults (60 s); a cluster whose controller sets others will differ".into(),
            )),
            (None, Mode::Kind) => {}
        }
        // Namespaces first: the generated Secrets may live in them.
        let order = w.apply_order();
        let (namespaces, rest): (Vec<_>, Vec<_>) = order
            .into_iter()
            .partition(|o| matches!(o, Object::Namespace(_)));
        for o in &namespaces {
            let (target, body) = target(o);
            actions.push(self.apply(target, body, None));
        }
        // TLS Secrets: a given certificate is trusted; a Secret without one gets a generated one.
        let mut trust = Vec::new();
        let mut replaced = BTreeSet::new();
        let tls_dir = self.work.join("tls");
        for ((sns, sname), hosts) in wsgate_manifests::tls_secret_hosts(rules) {
            let given = w.secret(&sns, &sname);
            let cert = tls_dir.join(format!("{sns}-{sname}.crt"));
            if let Some((crt, _)) = given.and_then(|s| wsgate_manifests::tls_pair(s)) {
                // Its certificate, for the route waits to verify (a certificate, not the key).
                actions.push(Action::WriteFile {
                    path: cert.clone(),
                    contents: String::from_utf8_lossy(crt).into_owned(),
                    about: format!("the certificate of Secret {sns}/{sname}"),
                });
            } else {
                let key = tls_dir.join(format!("{sns}-{sname}.key"));
                actions.push(Action::GenerateCert {
                    hosts,
                    cert: cert.clone(),
                    key: key.clone(),
                });
                actions.push(Action::Api(ApiCall {
                    verb: ApiVerb::ServerSideApply,
                    target: ObjectRef::of::<Secret>(Some(&sns), &sname),
                    body: ApiBody::TlsSecret {
                        cert: cert.clone(),
                        key,
                    },
                    webhook_retry: None,
                }));
                replaced.insert((sns, sname));
            }
            trust.push(cert);
        }
        let unused = unused_incomplete_tls(&run.workload, rules);
        for (sns, sname) in &unused {
            actions.push(Action::Note(format!(
                "Secret {sns}/{sname} is kubernetes.io/tls without tls.crt and tls.key, and no rule uses it: not applied (the API server would refuse it)"
            )));
        }
        for o in &rest {
            if let Object::Secret(s) = o {
                let id = (namespace_of(&s.metadata), name(&s.metadata));
                if replaced.contains(&id) || unused.contains(&id) {
                    continue; // Applied above with its generated certificate, or not at all.
                }
            }
            let retry = matches!(o, Object::Ingress(_)).then_some(self.inputs.deadlines.webhook);
            let (target, body) = target(o);
            actions.push(self.apply(target, body, retry));
        }
        steps.push(Step {
            id: StepId::WorkloadApply,
            // On an existing cluster teardown is armed once the objects are known to be absent.
            arms_teardown: (self.mode == Mode::Existing).then_some(1),
            reaches_cluster: (self.mode == Mode::Existing).then_some(1),
            actions,
        });

        let mut ready: Vec<Action> = w
            .deployments
            .iter()
            .map(|d| Action::Wait {
                what: WaitFor::DeploymentAvailable {
                    namespace: namespace_of(&d.metadata),
                    name: name(&d.metadata),
                },
                limit: self.inputs.deadlines.controller,
            })
            .collect();
        trust.extend(run.args.trust.iter().cloned());
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
                    path: r.path.clone(),
                    trust: trust.clone(),
                    echo: false,
                    answer: if r.marked_websocket {
                        RouteAnswer::Upgrade
                    } else {
                        RouteAnswer::UpgradeOrRefusal {
                            proxy_statuses: r.proxy_statuses.clone(),
                        }
                    },
                }),
                limit: self.inputs.deadlines.routes,
            });
        }
        steps.push(Self::step(StepId::WorkloadReady, ready));
        steps.push(Self::step(
            StepId::WorkloadChecks,
            vec![Action::CheckRules(CheckRules {
                rules: rules.iter().filter(|r| !r.regex).cloned().collect(),
                http: self.http_addr.clone(),
                https: self.https_addr.clone(),
                trust,
                max_idle: Duration::from_secs(run.args.max_idle),
                echo: run.args.echo,
                tier: self.tier.clone(),
                rows: self.rows_dir(),
            })],
        ));
        Ok(steps)
    }

    /// Every object the run applies on an existing cluster: the manifests' and the generated
    /// TLS Secrets.
    fn workload_objects(&self, run: &WorkloadRun) -> Vec<ObjectRef> {
        let rules = &run.rules;
        let unused = unused_incomplete_tls(&run.workload, rules);
        let mut v: Vec<ObjectRef> = run
            .workload
            .apply_order()
            .iter()
            .filter(|o| match o {
                Object::Secret(s) => {
                    !unused.contains(&(namespace_of(&s.metadata), name(&s.metadata)))
                }
                _ => true,
            })
            .map(|o| target(o).0)
            .collect();
        for (sns, sname) in wsgate_manifests::tls_secret_hosts(rules).into_keys() {
            let t = ObjectRef::of::<Secret>(Some(&sns), &sname);
            if !v.contains(&t) {
                v.push(t);
            }
        }
        v
    }

    /// On an existing cluster: delete what the run applied (generated Secrets included),
    /// namespaces last.
    pub(super) fn workload_teardown(&self) -> Vec<Action> {
        let Some(run) = &self.inputs.workload else {
            return Vec::new();
        };
        let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut namespaces = Vec::new();
        for t in self.workload_objects(run) {
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
