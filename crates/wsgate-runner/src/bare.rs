//! The bare tier's test step (`cargo xtask test` runs it after the other tests): the real
//! control plane up, the document's Deployment and Service applied, the tests that need a real
//! API server run against it, and everything torn down. Every verdict there comes from the
//! real kube-apiserver, etcd, controller-manager and scheduler; kwok plays the node.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use wsgate_bare::{ControlPlane, Options};
use wsgate_cluster::{ObjectRef, apply_body};
use wsgate_contract::selection::BARE_FILTER;
use wsgate_contract::{
    DOCUMENTED_NAMESPACE, ENV_KUBECONFIG, ENV_NAMESPACE, ENV_REPORT_DIR, ENV_TARGET, ENV_TIER,
};
use wsgate_manifests::Documented;

use crate::action::{Nextest, NextestMode};
use crate::exit::{RunError, nextest_exit};

/// What rows and report rows call this tier.
pub const TIER: &str = "bare";

/// The bare step's nextest run, against the control plane at `kubeconfig`.
pub fn nextest(
    cargo: &Path,
    root: &Path,
    profile: &str,
    kubeconfig: &Path,
    rows: &Path,
) -> Nextest {
    Nextest {
        cargo: cargo.to_owned(),
        manifest_path: root.join("Cargo.toml"),
        packages: Vec::new(),
        profile: profile.to_owned(),
        filterset: BARE_FILTER.into(),
        ignore_default_filter: true,
        env: vec![
            (ENV_TARGET.into(), "cluster".into()),
            (ENV_TIER.into(), TIER.into()),
            (ENV_KUBECONFIG.into(), kubeconfig.display().to_string()),
            (ENV_NAMESPACE.into(), DOCUMENTED_NAMESPACE.into()),
            (ENV_REPORT_DIR.into(), rows.display().to_string()),
        ],
    }
}

/// Why the bare step cannot run on this machine, if it cannot (it needs root and Go).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("it needs root (run `sudo -E cargo xtask test`)".into());
    }
    let go = std::process::Command::new("go").arg("version").output();
    if !go.is_ok_and(|o| o.status.success()) {
        return Some("it needs Go on PATH to build its components".into());
    }
    None
}

/// Runs the step: up, apply, test, down. The tests' output is nextest's own.
pub fn test_step(root: &Path, cargo: &Path, profile: &str) -> Result<(), RunError> {
    // One thread: the components' parent-death signal is tied to the thread that spawns them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::setup)?;
    rt.block_on(async {
        let binaries = wsgate_bare::tools::built(root).map_err(RunError::setup)?;
        let start = std::time::Instant::now();
        let mut plane = ControlPlane::start(&Options::new(binaries))
            .await
            .map_err(RunError::setup)?;
        eprintln!(
            "bare tier: Kubernetes {} up at {} in {:.1} s (kubeconfig {})",
            plane.version(),
            plane.server(),
            start.elapsed().as_secs_f64(),
            plane.kubeconfig().display()
        );
        apply_documented(&plane).await.map_err(RunError::setup)?;
        let rows: PathBuf = root.join("target/wsgate/bare/rows");
        let _ = std::fs::remove_dir_all(&rows);
        let run = nextest(cargo, root, profile, plane.kubeconfig(), &rows).cmd(NextestMode::Run);
        eprintln!("  $ {run}");
        let result = run.run();
        let problem = plane.exited();
        plane.stop();
        if let Some(e) = problem {
            return Err(RunError::setup(anyhow::Error::from(e).context(
                "the bare control plane stopped during its tests; they could not judge",
            )));
        }
        result.map_err(|e| {
            RunError::new(
                nextest_exit(e.exit_code()),
                anyhow::Error::from(e).context("the bare tier's tests failed"),
            )
        })
    })
}

/// The document's Deployment (its own image: nothing runs in a kwok pod) and Service, applied
/// where the cluster tier's pod-readiness test looks for them.
async fn apply_documented(plane: &ControlPlane) -> anyhow::Result<()> {
    let client = wsgate_cluster::connect(plane.kubeconfig(), None).await?;
    let d = Documented::shipped()?;
    let ns = Some(DOCUMENTED_NAMESPACE);
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().unwrap_or_default()
    };
    wsgate_cluster::server_side_apply(
        &client,
        &ObjectRef::of::<Deployment>(ns, &name(&d.deployment.metadata)),
        &apply_body(&d.deployment, ns),
    )
    .await?;
    wsgate_cluster::server_side_apply(
        &client,
        &ObjectRef::of::<Service>(ns, &name(&d.service.metadata)),
        &apply_body(&d.service, ns),
    )
    .await?;
    Ok(())
}
