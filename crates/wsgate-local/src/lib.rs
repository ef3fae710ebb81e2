//! The local tier: nginx configured from Ingress objects the way ingress-nginx renders them,
//! run as a child process that never outlives its owner.

mod conf;
mod error;
pub mod fidelity;
mod ingress;
mod model;
mod prefix;
mod process;
mod render;

pub use error::LocalError;
pub use ingress::{LocalIngress, LocalIngressSpec, READY_DEADLINE, Shutdown, find_nginx};
pub use model::{
    CertFiles, Location, Match, Model, NginxVersion, RenderContext, RenderError, Server, ServiceRef,
};
pub use process::{STOP_DEADLINE, group_members};
pub use render::{Rendered, render};

/// How early an idle cut may come: nginx skips re-arming a timer when the new expiry is less
/// than 300 ms (`NGX_TIMER_LAZY_DELAY`) from the old one, so the handshake and the first echo,
/// a few ms apart, share one expiry that can precede "last traffic" seen by the client.
pub const LAZY_TIMER_EARLY: std::time::Duration = std::time::Duration::from_millis(300);
