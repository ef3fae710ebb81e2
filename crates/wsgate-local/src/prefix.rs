//! nginx's prefix on disk (modes, Secrets written with keys 0600) and what nginx needs from
//! the machine (free ports, the open-file limit).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;

use crate::error::LocalError;
use crate::model::CertFiles;

/// An I/O error on `path` as the local ingress reports it.
pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocalError {
    let at = wsgate_fs::at(what, path);
    move |e| LocalError::Io(at(e))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), LocalError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", path))
}

pub(crate) fn write_secret(
    s: &Secret,
    dir: &Path,
) -> Result<((String, String), CertFiles), LocalError> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let ns = wsgate_manifests::namespace_of(&s.metadata);
    let problem = |p: &str| LocalError::Secret {
        name: format!("{ns}/{name}"),
        problem: p.to_owned(),
    };
    if s.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err(problem("is not of type kubernetes.io/tls"));
    }
    let data = s.data.as_ref().ok_or_else(|| problem("has no data"))?;
    let get = |k: &str| {
        data.get(k)
            .map(|b| b.0.clone())
            .ok_or_else(|| problem(&format!("has no {k}")))
    };
    let (crt, key) = (get("tls.crt")?, get("tls.key")?);
    let files = CertFiles {
        cert: dir.join(format!("{ns}-{name}.crt")),
        key: dir.join(format!("{ns}-{name}.key")),
    };
    std::fs::write(&files.cert, crt).map_err(io_err("write", &files.cert))?;
    wsgate_fs::write_private(&files.key, &key)?;
    Ok(((ns, name), files))
}

/// The hard open-file limit, which a root nginx master can raise its workers to.
pub(crate) fn nofile_hard_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_max
    } else {
        1024
    }
}

/// The CPUs this process may run on, counted as Go's `runtime.NumCPU()` counts them
/// (`sched_getaffinity`): the controller's `worker-processes` default.
pub(crate) fn cpus_allowed() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            (libc::CPU_COUNT(&set) as usize).max(1)
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

pub(crate) fn free_port() -> Result<u16, LocalError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("bind a probe port on", Path::new("127.0.0.1")))?;
    Ok(l.local_addr()
        .map_err(io_err("read the address of", Path::new("127.0.0.1")))?
        .port())
}
