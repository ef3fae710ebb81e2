//! The bare tier: the real kube-apiserver, etcd, kube-controller-manager and kube-scheduler,
//! built from their Go modules (`tools/kube`), and kwok (`tools/kwok`) for nodes and pod status
//! (no kubelet runs here), started as processes of one group on 127.0.0.1 and torn down like
//! the local tier's nginx: nothing outlives the owner.
//!
//! `tools.rs` builds the binaries into `target/` (keyed by the Go modules' checksums),
//! `pki.rs` makes the cluster's certificates, `plane.rs` runs and stops the control plane,
//! `net.rs` keeps cluster addresses from leaving the machine, `pod.rs` gives a server a pod
//! address in a network namespace of its own.

mod net;
mod pki;
mod plane;
pub mod pod;
pub mod tools;

use std::path::PathBuf;

pub use plane::{ControlPlane, Options};
pub use pod::PodNet;
pub use tools::{Binaries, KUBERNETES_VERSION, ensure_built};

/// Why the bare tier could not be built, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BareError {
    #[error(
        "Go is needed to build the bare tier's components ({why}); these machines carry Go 1.26: put `go` on PATH"
    )]
    NoGo { why: String },
    #[error("`{command}` failed in {}: {detail}", dir.display())]
    Build {
        command: String,
        dir: PathBuf,
        detail: String,
    },
    #[error(
        "{} is missing: build the bare tier's components first (`cargo xtask test` does, or `cargo xtask bare-up`)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error(
        "the bare tier needs root: it routes the cluster's address ranges to a blackhole so that nothing leaves the machine (run it as root, e.g. `sudo -E cargo xtask bare-up`)"
    )]
    NotRoot,
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("cannot start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{component} exited ({status}) while the control plane {when}; last lines of {}:\n{tail}", log.display())]
    Exited {
        component: String,
        status: String,
        when: &'static str,
        log: PathBuf,
        tail: String,
    },
    #[error("the control plane did not come up: {what}; last lines of {}:\n{tail}", log.display())]
    NotReady {
        what: String,
        log: PathBuf,
        tail: String,
    },
    #[error(transparent)]
    Cluster(#[from] wsgate_cluster::ClusterError),
    #[error(transparent)]
    Tls(#[from] wsgate_tls::TlsError),
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
}
