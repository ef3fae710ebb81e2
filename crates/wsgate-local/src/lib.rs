//! The local tier: nginx configured from the suite's Ingress objects, run as a child process.

mod process;
mod render;

pub use process::{
    LocalError, LocalIngress, LocalIngressSpec, READY_DEADLINE, STOP_DEADLINE, find_nginx,
};
pub use render::{CertFiles, RenderContext, RenderError, Rendered, ServiceRef, render};
