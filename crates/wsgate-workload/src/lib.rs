//! A workload under test: the document's manifests or a team's own (`--manifests`), served on
//! the local tier with echo servers behind it (`local`, `documented`), and every Ingress rule
//! checked through an ingress, local or on a cluster (`checks`).

pub mod checks;
pub mod documented;
pub mod local;
pub mod tls;

pub use checks::{Addrs, Checked, Settings, check_all, check_rule};
pub use local::{Backends, LocalWorkload, WorkloadError, start};
pub use tls::TlsSetup;
