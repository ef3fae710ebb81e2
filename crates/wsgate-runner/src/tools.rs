//! The programs the kind tier runs. kind and kubectl are used from PATH (or the tools folder)
//! only at their pinned versions; otherwise the plan downloads the pinned, sha256-checked release.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pins::{self, Pinned};

/// kind or kubectl: where it is, and whether the plan must download it there first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub path: PathBuf,
    /// `Some` when no acceptable copy was found: the plan fetches the pin to `path`.
    pub fetch: Option<Pinned>,
    /// What was found and which copy is used, for the plan's notes
    /// (`/usr/bin/kubectl is v1.32.4, not of v1.35: passed over`).
    pub notes: Vec<String>,
    /// Why no copy can be used at all: no pin for this platform and none on PATH at the pinned
    /// version. The plan refuses to run with it rather than use another version silently.
    pub unusable: Option<String>,
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

/// `kubectl version --client -o json` prints `{"clientVersion": {"gitVersion": "v1.35.4", ..}}`.
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

/// How a tool is looked for: its name, how its version is read, which versions are accepted
/// (and how that is said), and its pin for this platform.
struct Wanted {
    name: &'static str,
    version: fn(&Path) -> Option<String>,
    accept: fn(&str) -> bool,
    accepted: String,
    pin: Option<Pinned>,
}

fn find_tool(w: &Wanted, tools_dir: &Path, search: &OsStr) -> Tool {
    let cached = tools_dir.join(w.name);
    let mut seen = std::collections::HashSet::new();
    // The pinned copy first; the same file reached twice (`/bin` is often `/usr/bin`) is
    // probed once.
    let candidates = std::iter::once(cached.clone())
        .chain(std::env::split_paths(search).map(|d| d.join(w.name)))
        .filter(|p| p.is_file())
        .filter(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));
    let mut notes = Vec::new();
    for candidate in candidates {
        match (w.version)(&candidate) {
            Some(v) if (w.accept)(&v) => {
                if w.pin.is_some_and(|p| p.version != v) || candidate != cached {
                    notes.push(format!(
                        "{} {v}: {} (accepted: {})",
                        w.name,
                        candidate.display(),
                        w.accepted
                    ));
                }
                return Tool {
                    path: candidate,
                    fetch: None,
                    notes,
                    unusable: None,
                };
            }
            other => notes.push(format!(
                "{} is {}, not {}: passed over",
                candidate.display(),
                other.as_deref().unwrap_or("of unknown version"),
                w.accepted
            )),
        }
    }
    match w.pin {
        Some(pin) => Tool {
            path: cached,
            fetch: Some(pin),
            notes,
            unusable: None,
        },
        None => Tool {
            path: which(w.name, search),
            fetch: None,
            unusable: Some(format!(
                "no pinned {} for {}/{} and none on PATH is {}: install it on PATH ({})",
                w.name,
                std::env::consts::OS,
                std::env::consts::ARCH,
                w.accepted,
                match w.name {
                    "kind" => pins::KIND[0].1.manual,
                    _ => pins::KUBECTL[0].1.manual,
                }
            )),
            notes,
        },
    }
}

/// Resolves every tool against `search` (PATH) and the pinned copies in `tools_dir`.
pub fn resolve(search: &OsStr, tools_dir: &Path) -> Tools {
    let kind = find_tool(
        &Wanted {
            name: "kind",
            version: kind_version,
            accept: |v| v == pins::KIND_VERSION,
            accepted: pins::KIND_VERSION.to_owned(),
            pin: pins::binary_for_host("kind"),
        },
        tools_dir,
        search,
    );
    let kubectl = find_tool(
        &Wanted {
            name: "kubectl",
            version: kubectl_version,
            accept: pins::kubectl_acceptable,
            accepted: format!("a {} release", pins::KUBERNETES_MINOR),
            pin: pins::binary_for_host("kubectl"),
        },
        tools_dir,
        search,
    );
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
        "{what} from {url} has sha256 {got}, but {want} is pinned in crates/wsgate-runner/src/pins.rs. The file was not used. \
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
        // A runner's kubectl: another patch of the pinned minor.
        stub(
            &bin,
            "kubectl",
            r#"{"clientVersion": {"gitVersion": "v1.35.9"}}"#,
        );
        let t = resolve(bin.as_os_str(), &tools);
        let Some(pin) = pins::binary_for_host("kind") else {
            return; // No release for this platform: nothing is pinned.
        };
        assert_eq!(t.kind.path, tools.join("kind"));
        assert_eq!(t.kind.fetch, Some(pin));
        assert!(t.kind.notes[0].contains("v0.20.0"), "{t:?}");
        assert_eq!(t.kubectl.path, bin.join("kubectl"));
        assert_eq!(t.kubectl.fetch, None);
        assert!(
            t.kubectl.notes[0].contains("kubectl v1.35.9") && t.kubectl.notes[0].contains("v1.35"),
            "the plan says which kubectl it uses: {:?}",
            t.kubectl.notes
        );
    }

    #[test]
    fn a_kubectl_of_another_minor_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        stub(
            dir.path(),
            "kubectl",
            r#"{"clientVersion": {"gitVersion": "v1.36.3"}}"#,
        );
        let t = resolve(dir.path().as_os_str(), &dir.path().join("tools"));
        if pins::binary_for_host("kubectl").is_none() {
            assert!(t.kubectl.unusable.is_some(), "{t:?}");
            return;
        }
        assert!(t.kubectl.fetch.is_some(), "{t:?}");
        assert!(t.kubectl.notes[0].contains("v1.36.3"), "{t:?}");
    }

    #[test]
    fn without_a_pin_a_kind_of_another_version_is_unusable_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let kind = stub(dir.path(), "kind", "kind v0.20.0 go1.21 windows/amd64");
        let t = find_tool(
            &Wanted {
                name: "kind",
                version: kind_version,
                accept: |v| v == pins::KIND_VERSION,
                accepted: pins::KIND_VERSION.into(),
                pin: None,
            },
            &dir.path().join("tools"),
            dir.path().as_os_str(),
        );
        assert_eq!(t.path, kind);
        let why = t.unusable.expect("refused");
        assert!(why.contains("v0.32.0") && why.contains("install"), "{why}");
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
            pins::KIND[0].1.url,
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
