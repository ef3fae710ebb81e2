//! Why the local ingress could not start or change.

use std::path::PathBuf;

use crate::model::RenderError;

/// Why the local ingress could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "nginx not found ({looked}). Install it (Debian/Ubuntu: `sudo apt-get install nginx`, or run `cargo xtask test`) or set NGINX_BIN=/path/to/nginx"
    )]
    NginxMissing { looked: String },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("Secret {name:?}: {problem}")]
    Secret { name: String, problem: String },
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
    #[error("cannot make the local ingress's certificates")]
    Tls(#[from] wsgate_tls::TlsError),
    #[error("nginx rejected the rendered configuration {}:\n{output}", conf.display())]
    ConfigTest { conf: PathBuf, output: String },
    #[error("nginx did not become ready on {addrs}: {problem}\n--- nginx error log ---\n{log}")]
    NotReady {
        addrs: String,
        problem: String,
        log: String,
    },
    #[error("nginx reload failed: {problem}\n--- nginx error log ---\n{log}")]
    Reload { problem: String, log: String },
}
