//! What failed on the cluster side, on which object; the cause is kept as the error's source.

use std::path::PathBuf;

/// A cluster operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load kubeconfig {} (context {})", path.display(), context.as_deref().unwrap_or("current"))]
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{verb} {object} failed")]
    Api {
        verb: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    TimedOut(#[from] wsgate_wait::TimedOut),
    /// An object reached a state it will not leave (a Job that failed).
    #[error("{object} failed: {why}")]
    Failed { object: String, why: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClusterError {
    /// The HTTP status the API server answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { source, .. } => api_status(source).map(|s| s.code),
            _ => None,
        }
    }
}

/// The API server's `Status` for a refused request.
pub fn api_status(e: &kube::Error) -> Option<&kube::core::Status> {
    match e {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

pub(crate) fn api_err(
    verb: &'static str,
    object: impl std::fmt::Display,
) -> impl FnOnce(kube::Error) -> ClusterError {
    let object = object.to_string();
    move |source| ClusterError::Api {
        verb,
        object,
        source: Box::new(source),
    }
}
