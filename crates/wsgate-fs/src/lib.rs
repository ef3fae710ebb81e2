//! Files the suite writes: an I/O error that names what failed on which path, and files
//! created with their mode already set, so that a key is never readable by others.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An I/O operation on a path failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {}", path.display())]
pub struct PathError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Maps an `io::Error` of `what` on `path` into a [`PathError`]: `.map_err(at("read", p))`.
pub fn at(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PathError {
    let path = path.to_owned();
    move |source| PathError { what, path, source }
}

/// Creates (or truncates) `path` with `mode` set at creation, and writes `contents`.
pub fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), PathError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(at("create", path))?;
    // An existing file keeps its old mode through open(); set it explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(at("chmod", path))?;
    f.write_all(contents).map_err(at("write", path))
}

/// A file only its owner can read (private keys).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PathError> {
    write_with_mode(path, contents, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_0600_even_when_it_existed_wider() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"secret").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
    }

    #[test]
    fn an_error_names_the_operation_and_the_path() {
        let e = write_private(Path::new("/nonexistent/dir/k.key"), b"x").unwrap_err();
        assert_eq!(e.to_string(), "cannot create /nonexistent/dir/k.key");
    }
}
