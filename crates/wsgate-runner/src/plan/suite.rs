//! The document's steps as the plan runs them: manifests, routes, test phases, the TLS step.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use wsgate_cluster::{ObjectRef, apply_body};
use wsgate_contract::{
    ENV_CONTEXT, ENV_HTTP_ADDR, ENV_HTTPS_ADDR, ENV_KUBECONFIG, ENV_NAMESPACE, ENV_PHASE,
    ENV_REPORT_DIR, ENV_TARGET, ENV_TIER, ENV_TRUST, Phase,
};
use wsgate_manifests::{
    DOCUMENTED_HOST, DOCUMENTED_NAMESPACE, DOCUMENTED_SERVICE, DOCUMENTED_TLS_PATCH,
    TLS_SECRET_NAME, tls_patch,
};
use wsgate_manifests::{VARIANTS_TLS_SECRET, derived_hosts};
use wsgate_probe::Scheme;

use super::builder::Builder;
use super::{FAULTS_FILTER, Mode, ROLLOUT_FILTER, Step, StepId, test_filter};
use crate::action::{Action, ApiBody, ApiCall, ApiVerb, Cmd, Nextest, Route, RouteAnswer, WaitFor};
use crate::options::EchoImage;

impl Builder<'_> {
    pub(super) fn ns(&self) -> Option<&str> {
        Some(&self.namespace)
    }

    pub(super) fn manifests(&self) -> Step {
        let mut actions = Vec::new();
        let owns_namespace = self.namespace != DOCUMENTED_NAMESPACE;
        if self.mode == Mode::Existing {
            // Teardown deletes the namespace (or the objects): first make sure it is no one else's.
            actions.push(Action::ExpectAbsent {
                targets: if owns_namespace {
                    vec![ObjectRef::of::<Namespace>(None, &self.namespace)]
                } else {
                    self.owned_objects()
                },
                hint: "choose a namespace of the suite's own with --namespace (it is created and deleted), or delete the objects named if an earlier run left them".into(),
                limit: self.inputs.deadlines.controller,
            });
        }
        if owns_namespace {
            let mut ns = Namespace::default();
            ns.metadata.name = Some(self.namespace.clone());
            ns.metadata.labels =
                Some([("app.kubernetes.io/managed-by".into(), "wsgate".into())].into());
            actions.push(self.apply(
                ObjectRef::of::<Namespace>(None, &self.namespace),
                apply_body(&ns, None),
                None,
            ));
        }
        let mut deployment: Deployment = self.documented.deployment.clone();
        if self.echo_image() == EchoImage::Built
            && let Some(spec) = deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
        {
            spec.containers[0].image = Some(self.inputs.image.clone());
        }
        let name = |o: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            o.name.clone().unwrap_or_default()
        };
        let deployment_ref = ObjectRef::of::<Deployment>(self.ns(), &name(&deployment.metadata));
        let body = apply_body(&deployment, self.ns());
        actions.push(Action::Api(ApiCall {
            verb: ApiVerb::ServerSideApply,
            target: deployment_ref.clone(),
            body: match self.echo_image() {
                // On a reused cluster the same tag may hold a new binary (a dirty tree):
                // its ID in the pod template rolls the pods exactly when it changed.
                EchoImage::Built => ApiBody::WithImageId {
                    body,
                    inspect: Cmd::new(&self.tools().docker)
                        .args(["image", "inspect", "--format", "{{.Id}}"])
                        .arg(&self.inputs.image),
                },
                EchoImage::Documented => ApiBody::Json(body),
            },
            webhook_retry: None,
        }));
        let service: &Service = &self.documented.service;
        actions.push(self.apply(
            ObjectRef::of::<Service>(self.ns(), &name(&service.metadata)),
            apply_body(service, self.ns()),
            None,
        ));
        for v in &self.variants {
            let ing = v.ingress(&self.documented.ingress);
            actions.push(self.apply(
                ObjectRef::of::<Ingress>(self.ns(), &v.name),
                apply_body(&ing, self.ns()),
                Some(self.inputs.deadlines.webhook),
            ));
        }
        // New pods (or rolled ones, after a new image) Ready before any route is tried.
        actions.push(Action::Wait {
            what: WaitFor::RolloutComplete {
                namespace: self.namespace.clone(),
                name: deployment_ref.name.clone(),
            },
            limit: self.inputs.deadlines.controller,
        });
        Step {
            id: StepId::Manifests,
            actions,
            // On an existing cluster, once nothing there is someone else's, the suite owns
            // objects there.
            arms_teardown: (self.mode == Mode::Existing).then_some(1),
            reaches_cluster: (self.mode == Mode::Existing).then_some(1),
        }
    }

    /// `--reuse` after `--keep`: the TLS step's merge patch added `spec.tls` under an Update
    /// entry of managedFields, which a later server-side apply does not remove, and the TLS
    /// Secrets stay. The controller would answer plain ws with 308 on every host. The suite's
    /// Ingresses and TLS Secrets are deleted first, so the run starts where the document does.
    pub(super) fn reset_reused(&self) -> Step {
        let mut actions = vec![Action::Note(
            "an earlier run's spec.tls survives a server-side apply (the merge patch owns it): delete the suite's Ingresses and TLS Secrets, then apply them afresh".into(),
        )];
        let leftovers = self
            .variants
            .iter()
            .map(|v| ObjectRef::of::<Ingress>(self.ns(), &v.name))
            .chain(
                [TLS_SECRET_NAME, VARIANTS_TLS_SECRET]
                    .map(|name| ObjectRef::of::<Secret>(self.ns(), name)),
            );
        actions.extend(leftovers.map(|target| {
            Action::Api(ApiCall {
                verb: ApiVerb::Delete,
                target,
                body: ApiBody::None,
                webhook_retry: None,
            })
        }));
        Self::step(StepId::ResetReused, actions)
    }

    pub(super) fn apply(
        &self,
        target: ObjectRef,
        body: serde_json::Value,
        webhook_retry: Option<Duration>,
    ) -> Action {
        Action::Api(ApiCall {
            verb: ApiVerb::ServerSideApply,
            target,
            body: ApiBody::Json(body),
            webhook_retry,
        })
    }

    pub(super) fn wait_routes(&self, phase: Phase) -> Step {
        let (scheme, addr, trust) = match phase {
            Phase::Plain => (Scheme::Ws, &self.http_addr, vec![]),
            Phase::Tls => (Scheme::Wss, &self.https_addr, self.trust_files()),
        };
        let actions = self
            .variants
            .iter()
            .map(|v| Action::Wait {
                what: WaitFor::Route(Route {
                    scheme,
                    addr: addr.clone(),
                    host: v.host.clone(),
                    path: "/".into(),
                    trust: trust.clone(),
                    echo: true,
                    answer: RouteAnswer::Upgrade,
                }),
                limit: self.inputs.deadlines.routes,
            })
            .collect();
        Self::step(StepId::WaitRoutes(phase), actions)
    }

    /// The environment the e2e tests read in `phase`.
    pub(super) fn test_env(&self, phase: Phase) -> Vec<(String, String)> {
        let mut env = vec![
            (ENV_TARGET.to_owned(), "cluster".to_owned()),
            (ENV_PHASE.to_owned(), phase.as_str().to_owned()),
            (ENV_TIER.to_owned(), self.tier.clone()),
            (ENV_HTTP_ADDR.to_owned(), self.http_addr.clone()),
            (ENV_HTTPS_ADDR.to_owned(), self.https_addr.clone()),
            (
                ENV_KUBECONFIG.to_owned(),
                self.kubeconfig.display().to_string(),
            ),
            (ENV_NAMESPACE.to_owned(), self.namespace.clone()),
            (
                ENV_REPORT_DIR.to_owned(),
                self.rows_dir().display().to_string(),
            ),
        ];
        if let Some(c) = &self.args.context {
            env.push((ENV_CONTEXT.to_owned(), c.clone()));
        }
        if phase == Phase::Tls {
            let joined: Vec<String> = self
                .trust_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            env.push((ENV_TRUST.to_owned(), joined.join(":")));
        }
        env
    }

    pub(super) fn tests(&self, id: StepId, phase: Phase, label: &str) -> Step {
        let filterset = match id {
            StepId::Faults => FAULTS_FILTER,
            StepId::Rollout => ROLLOUT_FILTER,
            _ => test_filter(phase),
        };
        // nextest writes one JUnit file per profile; each step keeps its own copy, and the
        // previous step's file is removed first so that a run that writes none hands on nothing.
        let junit = self
            .inputs
            .root
            .join("target/nextest")
            .join(&self.inputs.profile)
            .join("junit.xml");
        Self::step(
            id,
            vec![
                Action::Reset {
                    path: junit.clone(),
                    recreate: false,
                },
                Action::Nextest(Nextest {
                    cargo: self.tools().cargo.clone(),
                    manifest_path: self.inputs.root.join("Cargo.toml"),
                    packages: Vec::new(),
                    profile: self.inputs.profile.clone(),
                    filterset: filterset.into(),
                    ignore_default_filter: true,
                    env: self.test_env(phase),
                }),
                Action::CopyIfExists {
                    from: junit,
                    to: self.work.join(format!("junit-{label}.xml")),
                },
            ],
        )
    }

    pub(super) fn tls(&self) -> Step {
        let mut actions = Vec::new();
        let (cert, key) = self.cert_files(DOCUMENTED_HOST);
        actions.push(Action::GenerateCert {
            hosts: vec![DOCUMENTED_HOST.into()],
            cert: cert.clone(),
            key: key.clone(),
        });
        let mut secrets = vec![(TLS_SECRET_NAME, cert, key)];
        let derived: Vec<String> = derived_hosts(&self.variants)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !derived.is_empty() {
            let (cert, key) = self.cert_files("variants");
            actions.push(Action::GenerateCert {
                hosts: derived,
                cert: cert.clone(),
                key: key.clone(),
            });
            secrets.push((VARIANTS_TLS_SECRET, cert, key));
        }
        for (name, cert, key) in secrets {
            actions.push(Action::Api(ApiCall {
                verb: ApiVerb::ServerSideApply,
                target: ObjectRef::of::<Secret>(self.ns(), name),
                body: ApiBody::TlsSecret { cert, key },
                webhook_retry: None,
            }));
        }
        for v in &self.variants {
            let body = if v.is_documented() {
                serde_json::from_str(DOCUMENTED_TLS_PATCH).expect("the documented patch is JSON")
            } else {
                tls_patch(&[&v.host], VARIANTS_TLS_SECRET)
            };
            actions.push(Action::Api(ApiCall {
                verb: ApiVerb::MergePatch,
                target: ObjectRef::of::<Ingress>(self.ns(), &v.name),
                body: ApiBody::Json(body),
                webhook_retry: None,
            }));
        }
        Self::step(StepId::Tls, actions)
    }

    /// The objects the suite creates in the namespace.
    pub(super) fn owned_objects(&self) -> Vec<ObjectRef> {
        let ns = self.ns();
        let mut v = vec![
            ObjectRef::of::<Deployment>(ns, DOCUMENTED_SERVICE),
            ObjectRef::of::<Service>(ns, DOCUMENTED_SERVICE),
        ];
        v.extend(
            self.variants
                .iter()
                .map(|x| ObjectRef::of::<Ingress>(ns, &x.name)),
        );
        v.push(ObjectRef::of::<Secret>(ns, TLS_SECRET_NAME));
        v.push(ObjectRef::of::<Secret>(ns, VARIANTS_TLS_SECRET));
        v
    }
}
