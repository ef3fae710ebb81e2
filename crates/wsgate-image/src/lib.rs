//! The echo server image: static binary, `FROM scratch` image, tag from crate version and git sha.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The image repository name.
pub const REPOSITORY: &str = "wsgate-echo";
/// Label holding the sha256 of the binary inside, so a stale image is noticed even when the
/// git sha has not changed (uncommitted edits).
pub const BINARY_LABEL: &str = "dev.wsgate.binary-sha256";

/// Why the image could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "Docker is not reachable ({detail}). Start it: `sudo systemctl start docker`, or on a machine without systemd `sudo dockerd > /tmp/dockerd.log 2>&1 &`; install it with `sudo apt-get install docker.io`. DOCKER_HOST is honoured."
    )]
    DockerUnreachable { detail: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repository: String,
    pub tag: String,
    /// Size as Docker reports it, in bytes.
    pub size: u64,
    /// Whether this call built it (false: an up-to-date image was already there).
    pub built: bool,
    /// Which builder built it (or would have).
    pub builder: Builder,
}

/// How `docker build` is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// BuildKit through buildx, with provenance and SBOM attestations off: a single-platform
    /// image without an attestation index, which `kind load` can import from Docker's
    /// containerd image store (kind#3795).
    Buildx,
    /// The legacy builder (Docker without buildx, e.g. Debian's docker.io 20.10).
    Legacy,
}

impl std::fmt::Display for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Buildx => "docker buildx build --provenance=false --sbom=false",
            Self::Legacy => "docker build (legacy builder)",
        })
    }
}

/// buildx when the CLI has it, else the legacy builder.
pub fn builder() -> Builder {
    let buildx = Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if buildx {
        Builder::Buildx
    } else {
        Builder::Legacy
    }
}

impl Image {
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

fn run(cmd: &mut Command) -> Result<Output, ImageError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| ImageError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ImageError::Command {
            command: shown,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Checks that a Docker daemon answers; returns its version.
pub fn docker_server_version() -> Result<String, ImageError> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| ImageError::DockerUnreachable {
            detail: format!("cannot run the docker CLI: {e}"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(ImageError::DockerUnreachable {
            detail: String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// The host's target triple (`rustc -vV`).
fn host_triple() -> Result<String, ImageError> {
    let out =
        run(Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())).arg("-vV"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| ImageError::Command {
            command: "rustc -vV".into(),
            detail: "no `host:` line".into(),
        })
}

/// The short git sha of `root`'s HEAD, with `-dirty` when there are uncommitted changes;
/// `nogit` outside a repository.
pub fn git_sha(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(sha) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{sha}-dirty") } else { sha }
        }
        None => "nogit".into(),
    }
}

/// The image tag: `<crate version>-<git sha>`, never `latest`.
pub fn tag(version: &str, sha: &str) -> String {
    format!("{version}-{sha}")
}

/// Builds the echo server as a statically linked release binary for the host triple and returns
/// its path. `cargo` is the cargo to run (`$CARGO` under cargo, else `cargo`).
pub fn build_static_binary(root: &Path) -> Result<PathBuf, ImageError> {
    let triple = host_triple()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        triple.to_uppercase().replace('-', "_")
    );
    run(Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "wsgate-echo",
            "--bin",
            "wsgate-echo",
            "--target",
            &triple,
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        // Outer flags win over target flags; drop them so the static link applies to this build only.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(var, "-C target-feature=+crt-static"))?;
    Ok(root
        .join("target")
        .join(&triple)
        .join("release")
        .join("wsgate-echo"))
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let bytes = std::fs::read(path).map_err(wsgate_fs::at("read", path))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn inspect(reference: &str, format: &str) -> Option<String> {
    Command::new("docker")
        .args(["image", "inspect", "--format", format, reference])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// The image reference `ensure_image` builds for the workspace at `root`:
/// `wsgate-echo:<version>-<git sha>[-dirty]`.
pub fn reference_for(root: &Path) -> String {
    format!(
        "{REPOSITORY}:{}",
        tag(env!("CARGO_PKG_VERSION"), &git_sha(root))
    )
}

/// Builds the binary, then the image unless one with the same tag and binary is already there.
pub fn ensure_image(root: &Path) -> Result<Image, ImageError> {
    docker_server_version()?;
    let binary = build_static_binary(root)?;
    let digest = sha256_file(&binary)?;
    let tag = tag(env!("CARGO_PKG_VERSION"), &git_sha(root));
    let reference = format!("{REPOSITORY}:{tag}");
    let label = format!("{{{{index .Config.Labels \"{BINARY_LABEL}\"}}}}");
    let built = inspect(&reference, &label).as_deref() != Some(digest.as_str());
    let builder = builder();
    if built {
        let context = root.join("target").join("wsgate").join("image");
        let io = wsgate_fs::at;
        std::fs::create_dir_all(&context).map_err(io("create", &context))?;
        std::fs::copy(&binary, context.join("wsgate-echo"))
            .map_err(io("copy the binary into", &context))?;
        let dockerfile = root.join("crates").join("wsgate-echo").join("Dockerfile");
        let mut cmd = Command::new("docker");
        match builder {
            Builder::Buildx => cmd.args([
                "buildx",
                "build",
                "--load",
                "--provenance=false",
                "--sbom=false",
            ]),
            Builder::Legacy => cmd.arg("build"),
        };
        run(cmd
            .args(["--quiet", "--tag", &reference, "--label"])
            .arg(format!("{BINARY_LABEL}={digest}"))
            .arg("--file")
            .arg(&dockerfile)
            .arg(&context))?;
    }
    let size = inspect(&reference, "{{.Size}}")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Image {
        repository: REPOSITORY.into(),
        tag,
        size,
        built,
        builder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_version_and_sha_never_latest() {
        assert_eq!(tag("0.1.0", "0123456789ab"), "0.1.0-0123456789ab");
        assert_ne!(tag("0.1.0", "x"), "latest");
    }

    #[test]
    fn git_sha_outside_a_repository_is_nogit() {
        assert_eq!(git_sha(Path::new("/")), "nogit");
    }

    #[test]
    fn docker_unreachable_message_says_how_to_start_it() {
        let e = ImageError::DockerUnreachable { detail: "x".into() };
        assert!(e.to_string().contains("dockerd"));
    }
}
