//! The echo server image: a static binary for the Docker server's platform, a `FROM scratch`
//! image, tagged from the crate version and the git sha.

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
    #[error(
        "cannot build the echo server for {platform}: {why}. Pass --echo-image documented to run the document's image instead"
    )]
    Unsupported { platform: String, why: String },
    #[error(transparent)]
    Io(#[from] wsgate_fs::PathError),
}

/// An operating system and architecture as Go and Docker name them (`linux/arm64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: &'static str,
    pub arch: &'static str,
}

impl Platform {
    pub const LINUX_AMD64: Self = Self {
        os: "linux",
        arch: "amd64",
    };
    pub const LINUX_ARM64: Self = Self {
        os: "linux",
        arch: "arm64",
    };

    /// This machine (`macos`/`aarch64` is `darwin/arm64`), if Go and Docker have a name for it.
    pub fn host() -> Option<Self> {
        Self::from_rust(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// From Rust's names for an OS and an architecture.
    pub fn from_rust(os: &str, arch: &str) -> Option<Self> {
        let os = match os {
            "macos" => "darwin",
            other => Self::known_os(other)?,
        };
        let arch = match arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            _ => return None,
        };
        Some(Self { os, arch })
    }

    fn known_os(os: &str) -> Option<&'static str> {
        ["linux", "darwin", "windows"]
            .into_iter()
            .find(|k| *k == os)
    }

    /// From `OS/ARCH` as `docker version --format '{{.Server.Os}}/{{.Server.Arch}}'` prints it.
    pub fn parse(text: &str) -> Option<Self> {
        let (os, arch) = text.trim().split_once('/')?;
        let arch = [
            "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64",
        ]
        .into_iter()
        .find(|a| *a == arch)?;
        Some(Self {
            os: Self::known_os(os)?,
            arch,
        })
    }

    /// The static Linux target the echo server is built for on this platform.
    pub fn rust_target(self) -> &'static str {
        match (self.os, self.arch) {
            ("linux", "amd64") => "x86_64-unknown-linux-musl",
            ("linux", "arm64") => "aarch64-unknown-linux-musl",
            _ => "(none)",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
            .ok_or_else(|| format!("{s:?}: expected OS/ARCH, e.g. linux/amd64 or linux/arm64"))
    }
}

/// How the echo binary is built for a platform, on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryBuild {
    pub platform: Platform,
    /// The Rust target triple.
    pub triple: String,
    /// The linker for a cross build (`rust-lld`, shipped with Rust; the musl targets carry
    /// their own C runtime), or none for the host's own.
    pub linker: Option<&'static str>,
}

impl BinaryBuild {
    /// For `platform`: the host's own triple, statically linked, when the host is that
    /// platform; else the platform's musl target, linked by `rust-lld`. The echo server has no
    /// C dependency, so no C cross compiler is needed.
    pub fn for_platform(platform: Platform) -> Result<Self, ImageError> {
        let unsupported = |why: String| ImageError::Unsupported {
            platform: platform.to_string(),
            why,
        };
        if platform.os != "linux" {
            return Err(unsupported(format!(
                "the Docker server runs {} containers; the image is a Linux binary FROM scratch",
                platform.os
            )));
        }
        if !matches!(platform.arch, "amd64" | "arm64") {
            return Err(unsupported(format!(
                "no static target for {} is set up here (linux/amd64 and linux/arm64 are)",
                platform.arch
            )));
        }
        let host = host_triple()?;
        if Platform::host() == Some(platform) && host.ends_with("-linux-gnu") {
            return Ok(Self {
                platform,
                triple: host,
                linker: None,
            });
        }
        Ok(Self {
            platform,
            triple: platform.rust_target().to_owned(),
            linker: Some("rust-lld"),
        })
    }

    /// Whether the Rust standard library for this target is installed.
    pub fn installed(&self) -> bool {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        Command::new(rustc)
            .args(["--print", "target-libdir", "--target", &self.triple])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .is_some_and(|dir| has_std(&dir))
    }
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    })
}

/// The Docker server's platform (`docker version --format '{{.Server.Os}}/{{.Server.Arch}}'`),
/// which a built image must match: on a Mac it is the Linux VM's, not the Mac's.
pub fn docker_server_platform(docker: &Path) -> Result<Platform, ImageError> {
    let mut cmd = Command::new(docker);
    cmd.args(["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]);
    let out = cmd.output().map_err(|e| ImageError::DockerUnreachable {
        detail: format!("cannot run {}: {e}", docker.display()),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(ImageError::DockerUnreachable {
            detail: String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Platform::parse(&text).ok_or_else(|| ImageError::Command {
        command: format!(
            "{} version --format {{{{.Server.Os}}}}/{{{{.Server.Arch}}}}",
            docker.display()
        ),
        detail: format!("printed {:?}, not OS/ARCH", text.trim()),
    })
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

/// Builds the echo server as a statically linked release binary for `target` and returns its
/// path. `cargo` is the cargo to run (`$CARGO` under cargo, else `cargo`).
pub fn build_static_binary(root: &Path, target: &BinaryBuild) -> Result<PathBuf, ImageError> {
    let triple = target.triple.as_str();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let var = |what: &str| {
        format!(
            "CARGO_TARGET_{}_{what}",
            triple.to_uppercase().replace('-', "_")
        )
    };
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "wsgate-echo",
            "--bin",
            "wsgate-echo",
            "--target",
            triple,
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        // Outer flags win over target flags; drop them so the static link applies to this build only.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(var("RUSTFLAGS"), "-C target-feature=+crt-static");
    if let Some(linker) = target.linker {
        cmd.env(var("LINKER"), linker);
    }
    run(&mut cmd)?;
    Ok(root
        .join("target")
        .join(triple)
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

/// [`ensure_image`] for the platform of the Docker server the `docker` on PATH talks to.
pub fn ensure_image_for_server(root: &Path) -> Result<Image, ImageError> {
    let platform = docker_server_platform(Path::new("docker"))?;
    ensure_image(root, &BinaryBuild::for_platform(platform)?)
}

/// Builds the binary for `target`, then the image unless one with the same tag and binary is
/// already there.
pub fn ensure_image(root: &Path, target: &BinaryBuild) -> Result<Image, ImageError> {
    docker_server_version()?;
    let platform = target.platform;
    if !target.installed() {
        return Err(ImageError::Unsupported {
            platform: platform.to_string(),
            why: format!(
                "the Rust target {} is not installed (`rustup target add {}`)",
                target.triple, target.triple
            ),
        });
    }
    let binary = build_static_binary(root, target)?;
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
        // The image is for the server's own platform unless asked otherwise (the legacy
        // builder of old engines knows no --platform).
        if docker_server_platform(Path::new("docker")).ok() != Some(platform) {
            cmd.arg(format!("--platform={platform}"));
        }
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
    fn platforms_read_as_docker_prints_them_and_map_to_static_linux_targets() {
        assert_eq!(
            Platform::parse("linux/arm64\n"),
            Some(Platform::LINUX_ARM64)
        );
        assert_eq!(
            Platform::LINUX_ARM64.rust_target(),
            "aarch64-unknown-linux-musl"
        );
        assert_eq!(
            Platform::LINUX_AMD64.rust_target(),
            "x86_64-unknown-linux-musl"
        );
        assert_eq!(
            Platform::from_rust("macos", "aarch64").unwrap().to_string(),
            "darwin/arm64"
        );
        for bad in ["linux", "plan9/amd64", "linux/sparc", ""] {
            assert_eq!(Platform::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_windows_or_exotic_docker_server_names_the_documented_image() {
        for p in ["windows/amd64", "linux/s390x"] {
            let e = BinaryBuild::for_platform(Platform::parse(p).unwrap()).unwrap_err();
            assert!(e.to_string().contains("--echo-image documented"), "{e}");
        }
    }

    #[test]
    fn another_architecture_is_a_musl_cross_build_linked_by_rust_lld() {
        let other = if Platform::host() == Some(Platform::LINUX_ARM64) {
            Platform::LINUX_AMD64
        } else {
            Platform::LINUX_ARM64
        };
        let t = BinaryBuild::for_platform(other).unwrap();
        assert_eq!(
            (t.triple.as_str(), t.linker),
            (other.rust_target(), Some("rust-lld"))
        );
    }

    #[test]
    fn docker_unreachable_message_says_how_to_start_it() {
        let e = ImageError::DockerUnreachable { detail: "x".into() };
        assert!(e.to_string().contains("dockerd"));
    }
}
