//! `cargo xtask bare-up`: the bare tier's control plane for a person (the real kube-apiserver,
//! etcd, controller-manager and scheduler, kwok for the node), up until Ctrl-C or SIGTERM,
//! supervised: if a component dies, everything stops and the command fails saying which.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use wsgate_bare::{ControlPlane, Options};

/// `cargo xtask bare-up` (`root` is the workspace, whose `tools/` pins what is built).
pub fn run(root: &Path) -> anyhow::Result<()> {
    // One thread: the components' parent-death signal is tied to the thread that spawns them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(up(root))
}

async fn up(root: &Path) -> anyhow::Result<()> {
    let mut stops = crate::stops::watch()?;
    let binaries = wsgate_bare::ensure_built(root, &mut |line| eprintln!("{line}"))?;
    let kubectl = binaries.path("kubectl");
    let mut plane = ControlPlane::start(&Options::new(binaries)).await?;
    println!(
        "wsgate bare tier is up: Kubernetes {} at {} (process group {}); state and logs in {}",
        plane.version(),
        plane.server(),
        plane.pgid(),
        plane.dir().display()
    );
    println!(
        "  the addresses {} are routed to a blackhole while it runs: nothing leaves the machine",
        plane.blackholed().join(", ")
    );
    println!();
    println!("Try it:");
    let kc = plane.kubeconfig().display().to_string();
    let k = kubectl.display();
    println!("  export KUBECONFIG={kc}");
    println!("  {k} version");
    println!("  {k} get nodes -o wide");
    println!("  {k} create deployment web --image=nginx --replicas=2");
    println!("  {k} rollout status deployment/web && {k} get pods -o wide");
    println!();
    println!("Ctrl-C stops everything.");
    let why = supervise(&mut stops, &mut plane).await;
    println!("stopping");
    plane.stop();
    match why {
        Ok(signal) => {
            println!("stopped ({signal})");
            Ok(())
        }
        Err(problem) => bail!(problem),
    }
}

async fn supervise(
    stops: &mut crate::stops::Stops,
    plane: &mut ControlPlane,
) -> Result<&'static str, String> {
    // Waiting for the person, not for the system: no deadline on purpose.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            signal = stops.next() => return Ok(signal),
            _ = tick.tick() => {
                if let Some(e) = plane.exited() {
                    return Err(format!("{e}; stopping the rest"));
                }
            }
        }
    }
}
