//! The programs the kind tier runs. kind and kubectl are used from PATH (or the tools folder)
//! only at their pinned versions; otherwise the plan downloads the pinned, sha256-checked release.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::pins::{self, Pinned};

/// kind or kubectl: where it is, and whether the plan must download it there first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub path: PathBuf,
    /// `Some` when no copy at the pinned version was found: the plan fetches it to `path`.
    pub fetch: Option<Pinned>,
    /// What was found instead, for the plan's notes (`kubectl v1.32.4 on PATH: not the pin`).
    pub passed_over: Vec<String>,
}

/// Every program the plan runs, resolved once when the plan is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub docker: PathBuf,
    pub kind: Tool,
    pub kubectl: Tool,
    pub cargo: PathBuf,
    pub curl: PathBuf,
}

/// The first `name` on `search` (a PATH-style list), else the bare name (so that running it
/// fails with the name in the message).
pub fn which(name: &str, search: &OsStr) -> PathBuf {
    std::env::split_paths(search)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `kind version` prints `kind v0.32.0 go1.24.2 linux/amd64`.
fn kind_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// `kubectl version --client -o json` prints `{"clientVersion": {"gitVersion": "v1.36.1", ..}}`.
fn kubectl_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.pointer("/clientVersion/gitVersion")?
        .as_str()
        .map(str::to_owned)
}

fn pinned_tool(
    pin: Pinned,
    probe: fn(&Path) -> Option<String>,
    tools_dir: &Path,
    search: &OsStr,
) -> Tool {
    let cached = tools_dir.join(pin.name);
    let mut seen = std::collections::HashSet::new();
    // The same file reached twice (`/bin` is often `/usr/bin`) is probed once.
    let candidates = std::iter::once(cached.clone())
        .chain(std::env::split_paths(search).map(|d| d.join(pin.name)))
        .filter(|p| p.is_file())
        .filter(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));
    let mut passed_over = Vec::new();
    for candidate in candidates {
        match probe(&candidate) {
            Some(v) if v == pin.version => {
                return Tool {
                    path: candidate,
                    fetch: None,
                    passed_over,
                };
            }
            other => passed_over.push(format!(
                "{} is {}, not the pinned {}",
                candidate.display(),
                other.as_deref().unwrap_or("of unknown version"),
                pin.version
            )),
        }
    }
    Tool {
        path: cached,
        fetch: Some(pin),
        passed_over,
    }
}

/// Resolves every tool against `search` (PATH) and the pinned copies in `tools_dir`.
pub fn resolve(search: &OsStr, tools_dir: &Path) -> Tools {
    // No pinned download for this platform: PATH's copy is all there is.
    let unpinned = |tool: &str| Tool {
        path: which(tool, search),
        fetch: None,
        passed_over: vec![format!(
            "no pinned {tool} for {}/{}: using PATH's",
            std::env::consts::OS,
            std::env::consts::ARCH
        )],
    };
    let kind = match pins::binary_for_host("kind") {
        Some(pin) => pinned_tool(pin, kind_version, tools_dir, search),
        None => unpinned("kind"),
    };
    let kubectl = match pins::binary_for_host("kubectl") {
        Some(pin) => pinned_tool(pin, kubectl_version, tools_dir, search),
        None => unpinned("kubectl"),
    };
    Tools {
        docker: which("docker", search),
        kind,
        kubectl,
        cargo: which("cargo", search),
        curl: which("curl", search),
    }
}

/// What to do about a missing Docker daemon.
pub fn docker_message(detail: &str) -> String {
    format!(
        "no Docker daemon answers ({detail}). kind runs its nodes as containers: start Docker \
         (`sudo systemctl start docker`, Docker Desktop, or `sudo dockerd &`), or run against an existing \
         cluster with --kubeconfig/--context/--ingress-address"
    )
}

/// What to do when a download cannot happen.
pub fn offline_message(what: &str, url: &str, curl_exit: Option<i32>, stderr: &str) -> String {
    let why = match curl_exit {
        // curl: 6 could not resolve host, 7 could not connect, 28 timeout, 35 TLS connect error.
        Some(6 | 7 | 28 | 35) => "there is no network route to it".to_owned(),
        Some(22) => "the server answered with an HTTP error".to_owned(),
        Some(code) => format!("curl exited with {code}"),
        None => "curl could not be run (is it installed?)".to_owned(),
    };
    format!(
        "cannot download {what} from {url}: {why} ({}). Put the pinned version on PATH yourself, or retry with network access",
        stderr.trim()
    )
}

/// The message for a download whose checksum is not the pinned one.
pub fn checksum_message(what: &str, url: &str, want: &str, got: &str) -> String {
    format!(
        "{what} from {url} has sha256 {got}, but {want} is pinned in xtask/src/kind/pins.rs. The file was not used. \
         If upstream really changed it, check the new file and update the pin."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stub(dir: &Path, name: &str, stdout: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\ncat <<'EOF'\n{stdout}\nEOF\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_tool_on_path_at_another_version_is_passed_over_for_the_pinned_download() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(&bin).unwrap();
        stub(&bin, "kind", "kind v0.20.0 go1.21 linux/amd64");
        stub(
            &bin,
            "kubectl",
            r#"{"clientVersion": {"gitVersion": "v1.36.1"}}"#,
        );
        let t = resolve(bin.as_os_str(), &tools);
        if pins::binary_for_host("kind").is_none() {
            return; // Not linux/amd64: nothing is pinned.
        }
        assert_eq!(t.kind.path, tools.join("kind"));
        assert_eq!(t.kind.fetch, Some(pins::KIND_LINUX_AMD64));
        assert!(t.kind.passed_over[0].contains("v0.20.0"), "{t:?}");
        assert_eq!(t.kubectl.path, bin.join("kubectl"));
        assert_eq!(t.kubectl.fetch, None);
    }

    #[test]
    fn a_pinned_copy_in_the_tools_folder_wins_over_path() {
        let dir = tempfile::tempdir().unwrap();
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        stub(&tools, "kind", "kind v0.32.0 go1.24 linux/amd64");
        let t = resolve(OsStr::new(""), &tools);
        if pins::binary_for_host("kind").is_none() {
            return;
        }
        assert_eq!((t.kind.path, t.kind.fetch), (tools.join("kind"), None));
    }

    #[test]
    fn offline_message_says_no_network_and_what_to_do() {
        let m = offline_message(
            "kind v0.32.0",
            pins::KIND_LINUX_AMD64.url,
            Some(6),
            "Could not resolve host: github.com",
        );
        assert!(
            m.contains("no network route") && m.contains("kind v0.32.0"),
            "{m}"
        );
    }

    #[test]
    fn checksum_message_shows_both_hashes() {
        let p = pins::INGRESS_NGINX_KIND_MANIFEST;
        let m = checksum_message(p.name, p.url, p.sha256, "00ff");
        assert!(m.contains("00ff") && m.contains(p.sha256), "{m}");
    }

    #[test]
    fn docker_message_offers_the_existing_cluster_route() {
        let m = docker_message("Cannot connect to the Docker daemon");
        assert!(
            m.contains("--ingress-address") && m.contains("dockerd"),
            "{m}"
        );
    }
}
