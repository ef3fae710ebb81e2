//! The cluster side of the suite (kube-rs): apply and patch, waits with deadlines, diagnostics.

mod apply;
mod conditions;
mod diagnostics;
mod error;
mod ownership;
mod wait;

use std::path::Path;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use apply::{
    FIELD_MANAGER, ObjectRef, apply_body, apply_when_webhook_answers, delete_object, delete_pods,
    is_webhook_unavailable, merge_patch, restart_deployment, server_side_apply,
};
pub use conditions::{
    LbAddress, deployment_available, describe_deployment, pod_ready, rollout_complete,
};
pub use diagnostics::collect_diagnostics;
pub use error::{ClusterError, api_status};
/// The client type, re-exported so callers need not depend on kube themselves.
pub use kube::Client;
pub use kube::core::ApiResource;
pub use ownership::{Presence, foreign_objects, presence};
pub use wait::{
    wait_deployment_available, wait_exists, wait_for, wait_ingress_address, wait_job_done,
    wait_nodes_ready, wait_pods_ready, wait_rollout_complete, wait_rollout_of_current,
};

/// The label selector of the ingress-nginx controller pod.
pub const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/component=controller";
/// The namespace of ingress-nginx.
pub const INGRESS_NGINX_NAMESPACE: &str = "ingress-nginx";
/// The controller Deployment of the ingress-nginx manifest.
pub const CONTROLLER_DEPLOYMENT: &str = "ingress-nginx-controller";
/// The Secret the admission Jobs write the webhook's certificate into (`--secret-name`).
pub const ADMISSION_SECRET: &str = "ingress-nginx-admission";
/// The admission Jobs of the ingress-nginx manifest.
pub const ADMISSION_JOBS: [&str; 2] = [
    "ingress-nginx-admission-create",
    "ingress-nginx-admission-patch",
];

/// The API server's `/readyz` body (`ok` once it serves; a list of failing checks before).
pub async fn readyz(client: &Client) -> Result<String, ClusterError> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("a static request");
    client
        .request_text(request)
        .await
        .map_err(error::api_err("GET", "/readyz"))
}

/// A client for `kubeconfig` (and `context`, else its current one).
pub async fn connect(kubeconfig: &Path, context: Option<&str>) -> Result<Client, ClusterError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| ClusterError::Kubeconfig {
        path: kubeconfig.to_owned(),
        context: context.map(str::to_owned),
        source,
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.into()))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| err(e.into()))?;
    Client::try_from(config).map_err(|e| err(e.into()))
}
