//! The bare tier's binaries, built from the Go modules pinned in `tools/kube` and `tools/kwok`
//! (go.mod and go.sum committed) into `target/wsgate/bare/bin-<key>`, where the key is the
//! checksum of those files and of the build recipe: a changed pin builds anew, an unchanged one
//! is used as it is. Nothing built is committed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::BareError;

/// The Kubernetes release the control plane is built at (the minor of the kind node pin).
pub const KUBERNETES_VERSION: &str = "v1.35.4";
/// The release's publish time on the module proxy, as `buildDate` (the proxy records no commit).
pub const KUBERNETES_BUILD_DATE: &str = "2026-04-15T18:01:22Z";

/// What `go build` makes of the Kubernetes module: (package, binary name). etcd's main package
/// is the root of `go.etcd.io/etcd/server/v3` (go names that binary `server`).
const KUBE: [(&str, &str); 5] = [
    ("go.etcd.io/etcd/server/v3", "etcd"),
    ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    (
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-controller-manager",
    ),
    ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
    ("k8s.io/kubernetes/cmd/kubectl", "kubectl"),
];
const KWOK: (&str, &str) = ("sigs.k8s.io/kwok/cmd/kwok", "kwok");

/// The version ldflags: without them the server says `v0.0.0-master`, and clients that check
/// the version (the ingress-nginx controller does, and exits) refuse it.
fn version_ldflags() -> String {
    let (major, minor) = ("1", KUBERNETES_VERSION.split('.').nth(1).unwrap_or("0"));
    let mut flags = String::from("-s -w");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (k, v) in [
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", KUBERNETES_BUILD_DATE),
        ] {
            flags.push_str(&format!(" -X {pkg}.{k}={v}"));
        }
    }
    flags
}

/// Where the built binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    /// The kwok module's stage configurations (in the Go module cache).
    pub kwok_stages: Vec<PathBuf>,
}

impl Binaries {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The tools folder of the workspace at `root`.
fn modules(root: &Path) -> [PathBuf; 2] {
    [root.join("tools/kube"), root.join("tools/kwok")]
}

/// The checksum that names a build: both modules' go.mod and go.sum, and the recipe.
pub fn key(root: &Path) -> Result<String, BareError> {
    let mut h = Sha256::new();
    for m in modules(root) {
        for f in ["go.mod", "go.sum"] {
            let p = m.join(f);
            h.update(std::fs::read(&p).map_err(wsgate_fs::at("read", &p))?);
        }
    }
    h.update(version_ldflags());
    Ok(h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `target/wsgate/bare/bin-<key>`.
pub fn bin_dir(root: &Path) -> Result<PathBuf, BareError> {
    Ok(root
        .join("target/wsgate/bare")
        .join(format!("bin-{}", key(root)?)))
}

fn names() -> impl Iterator<Item = &'static str> {
    KUBE.iter().map(|(_, n)| *n).chain([KWOK.1])
}

fn go() -> Command {
    let mut cmd = Command::new("go");
    // The go line of a module must not fetch another toolchain: the machine's Go builds it.
    cmd.env("GOTOOLCHAIN", "local");
    cmd
}

fn run(mut cmd: Command, dir: &Path) -> Result<String, BareError> {
    cmd.current_dir(dir);
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| BareError::NoGo {
        why: format!("cannot run go: {e}"),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BareError::Build {
            command: shown,
            dir: dir.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The stage files kwok plays (node initialise and heartbeat, pod ready, complete, delete),
/// from its module in the Go module cache (not copied into the repo).
fn kwok_stages(root: &Path) -> Result<Vec<PathBuf>, BareError> {
    let dir = root.join("tools/kwok");
    let mut cmd = go();
    cmd.args(["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"]);
    let module = PathBuf::from(run(cmd, &dir)?.trim());
    let stages = [
        "kustomize/stage/node/fast/node-initialize.yaml",
        "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "kustomize/stage/pod/fast/pod-ready.yaml",
        "kustomize/stage/pod/fast/pod-complete.yaml",
        "kustomize/stage/pod/fast/pod-delete.yaml",
    ]
    .map(|s| module.join(s));
    for s in &stages {
        if !s.is_file() {
            return Err(BareError::Missing { path: s.clone() });
        }
    }
    Ok(stages.to_vec())
}

/// The built binaries, if all are there; else an error naming what is missing.
pub fn built(root: &Path) -> Result<Binaries, BareError> {
    let dir = bin_dir(root)?;
    if let Some(missing) = names().map(|n| dir.join(n)).find(|p| !p.is_file()) {
        return Err(BareError::Missing { path: missing });
    }
    Ok(Binaries {
        dir,
        kwok_stages: kwok_stages(root)?,
    })
}

/// Builds whatever is missing (each line of progress goes to `say`), then returns the binaries.
/// A cold build on a 2-core machine takes several minutes; a warm one, none.
pub fn ensure_built(root: &Path, say: &mut dyn FnMut(&str)) -> Result<Binaries, BareError> {
    if let Ok(b) = built(root) {
        return Ok(b);
    }
    let version = {
        let mut cmd = go();
        cmd.arg("version");
        run(cmd, root)?
    };
    say(&format!(
        "building the bare tier's components with {} (Kubernetes {KUBERNETES_VERSION}: {}; kwok)",
        version.trim(),
        KUBE.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
    ));
    let dir = bin_dir(root)?;
    // Built beside, then renamed: an interrupted build never looks complete.
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(wsgate_fs::at("create", &partial))?;
    let [kube, kwok] = modules(root);
    let start = Instant::now();
    let mut cmd = go();
    cmd.args(["build", "-ldflags", &version_ldflags(), "-o"])
        .arg(format!("{}/", partial.display()))
        .args(KUBE.iter().map(|(p, _)| *p));
    run(cmd, &kube)?;
    let server = partial.join("server");
    std::fs::rename(&server, partial.join("etcd")).map_err(wsgate_fs::at("rename", &server))?;
    say(&format!(
        "  built {} in {:.0} s",
        KUBE.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", "),
        start.elapsed().as_secs_f64()
    ));
    let start = Instant::now();
    let mut cmd = go();
    cmd.args(["build", "-ldflags", "-s -w", "-o"])
        .arg(format!("{}/", partial.display()))
        .arg(KWOK.0);
    run(cmd, &kwok)?;
    say(&format!(
        "  built kwok in {:.0} s",
        start.elapsed().as_secs_f64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir).map_err(wsgate_fs::at("rename", &partial))?;
    built(root)
}

/// One more Go program built from a module pinned under `tools/` (another tier's translator,
/// such as Envoy Gateway's egctl), into `target/wsgate/go/<name>-<key>/<name>`, keyed like the
/// bare tier's binaries by the module's go.mod, go.sum and the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTool {
    /// The module folder, relative to the workspace root (`tools/egctl`).
    pub module: &'static str,
    /// The main package to build.
    pub package: &'static str,
    /// The binary's name.
    pub name: &'static str,
    pub ldflags: &'static str,
}

impl GoTool {
    fn key(&self, root: &Path) -> Result<String, BareError> {
        let mut h = Sha256::new();
        for f in ["go.mod", "go.sum"] {
            let p = root.join(self.module).join(f);
            h.update(std::fs::read(&p).map_err(wsgate_fs::at("read", &p))?);
        }
        h.update(self.package);
        h.update(self.ldflags);
        Ok(h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Where the binary is (or will be).
    pub fn path(&self, root: &Path) -> Result<PathBuf, BareError> {
        Ok(root
            .join("target/wsgate/go")
            .join(format!("{}-{}", self.name, self.key(root)?))
            .join(self.name))
    }

    /// The built binary, or an error naming what is missing.
    pub fn built(&self, root: &Path) -> Result<PathBuf, BareError> {
        let bin = self.path(root)?;
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(BareError::Missing { path: bin })
        }
    }

    /// Builds it unless it is built, then returns the binary.
    pub fn ensure_built(
        &self,
        root: &Path,
        say: &mut dyn FnMut(&str),
    ) -> Result<PathBuf, BareError> {
        if let Ok(bin) = self.built(root) {
            return Ok(bin);
        }
        let bin = self.path(root)?;
        let dir = bin.parent().expect("a binary has a folder").to_owned();
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(wsgate_fs::at("create", &partial))?;
        say(&format!(
            "building {} from {} ({})",
            self.name, self.package, self.module
        ));
        let start = Instant::now();
        let mut cmd = go();
        cmd.args(["build", "-ldflags", self.ldflags, "-o"])
            .arg(partial.join(self.name))
            .arg(self.package);
        run(cmd, &root.join(self.module))?;
        say(&format!(
            "  built {} in {:.0} s",
            self.name,
            start.elapsed().as_secs_f64()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).map_err(wsgate_fs::at("rename", &partial))?;
        self.built(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_ldflags_name_the_release_for_the_server_and_its_clients() {
        let f = version_ldflags();
        for pkg in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            assert!(f.contains(&format!("-X {pkg}.gitVersion=v1.35.4")), "{f}");
            assert!(f.contains(&format!("-X {pkg}.gitMinor=35")), "{f}");
        }
    }

    #[test]
    fn the_build_key_changes_with_the_pins() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let a = key(&root).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for m in ["tools/kube", "tools/kwok"] {
            std::fs::create_dir_all(dir.path().join(m)).unwrap();
            for f in ["go.mod", "go.sum"] {
                std::fs::copy(root.join(m).join(f), dir.path().join(m).join(f)).unwrap();
            }
        }
        assert_eq!(key(dir.path()).unwrap(), a, "the same pins, the same key");
        std::fs::write(dir.path().join("tools/kwok/go.sum"), "changed").unwrap();
        assert_ne!(key(dir.path()).unwrap(), a);
    }
}
