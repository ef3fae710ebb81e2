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
