//! Prerequisites of the kind tier, checked in well under a second, each missing one named with
//! how to get it; kind and kubectl are downloaded (pinned, sha256-checked) when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::pins::{self, Pinned};

/// The tools the run uses.
#[derive(Debug, Clone)]
pub struct Tools {
    pub kind: PathBuf,
    pub kubectl: PathBuf,
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
pub fn offline_message(p: &Pinned, curl_exit: Option<i32>, stderr: &str) -> String {
    let why = match curl_exit {
        // curl: 6 could not resolve host, 7 could not connect, 28 timeout, 35 TLS connect error.
        Some(6 | 7 | 28 | 35) => "there is no network route to it".to_owned(),
        Some(22) => "the server answered with an HTTP error".to_owned(),
        Some(code) => format!("curl exited with {code}"),
        None => "curl is not installed".to_owned(),
    };
    format!(
        "cannot download {} {} from {}: {why} ({}). Install it yourself: {} and put it on PATH",
        p.name,
        p.version,
        p.url,
        stderr.trim(),
        p.manual
    )
}

/// The message for a download whose checksum is not the pinned one.
pub fn checksum_message(p: &Pinned, got: &str) -> String {
    format!(
        "{} {} from {} has sha256 {got}, but {} is pinned in xtask/src/kind/pins.rs. The file was not used. \
         If upstream really changed it, check the new file and update the pin.",
        p.name, p.version, p.url, p.sha256
    )
}

/// Downloads `p` to `dest` (via a temporary file) and checks its sha256.
pub fn download(p: &Pinned, dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension("download");
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    eprintln!("  downloading {} {} from {}", p.name, p.version, p.url);
    let out = Command::new("curl")
        .args([
            "--fail",
            "--location",
            "--silent",
            "--show-error",
            "--connect-timeout",
            "20",
            "--max-time",
            "300",
            "--output",
        ])
        .arg(&tmp)
        .arg(p.url)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(_) => bail!(offline_message(p, None, "")),
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(offline_message(
            p,
            out.status.code(),
            &String::from_utf8_lossy(&out.stderr)
        ));
    }
    let got = wsgate_image::sha256_file(&tmp)?;
    if got != p.sha256 {
        let _ = std::fs::remove_file(&tmp);
        bail!(checksum_message(p, &got));
    }
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("moving the download to {}", dest.display()))?;
    Ok(())
}

fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Finds `tool`: the pinned copy in `tools_dir`, else PATH, else downloads the pinned release.
pub fn find_or_fetch(tool: &str, tools_dir: &Path) -> anyhow::Result<PathBuf> {
    let cached = tools_dir.join(tool);
    if cached.is_file() {
        return Ok(cached);
    }
    if let Some(p) = on_path(tool) {
        return Ok(p);
    }
    let Some(pin) = pins::binary_for_host(tool) else {
        bail!(
            "{tool} is not on PATH and no pinned download exists for {}/{}: install {tool} yourself",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    };
    download(&pin, &cached)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cached, std::fs::Permissions::from_mode(0o755))?;
    Ok(cached)
}

/// Checks Docker (for kind) and finds kind and kubectl.
pub fn check(tools_dir: &Path, need_kind: bool) -> anyhow::Result<Tools> {
    if need_kind {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => bail!(docker_message(
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("no answer")
            )),
            Err(e) => bail!(docker_message(&format!("cannot run `docker`: {e}"))),
        }
    }
    let kind = if need_kind {
        find_or_fetch("kind", tools_dir)?
    } else {
        PathBuf::from("kind")
    };
    let kubectl = find_or_fetch("kubectl", tools_dir)?;
    if need_kind {
        let v = Command::new(&kind)
            .arg("version")
            .output()
            .context("running `kind version`")?;
        let v = String::from_utf8_lossy(&v.stdout);
        if !v.contains(pins::KIND_VERSION) {
            eprintln!(
                "  warning: {} is `{}`, the suite is pinned to kind {}; remove it from PATH to use the pinned download",
                kind.display(),
                v.trim(),
                pins::KIND_VERSION
            );
        }
    }
    Ok(Tools { kind, kubectl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_message_says_no_network_and_how_to_install() {
        let m = offline_message(
            &pins::KIND_LINUX_AMD64,
            Some(6),
            "Could not resolve host: github.com",
        );
        assert!(m.contains("no network route"), "{m}");
        assert!(
            m.contains("kind v0.32.0") && m.contains("go install sigs.k8s.io/kind@v0.32.0"),
            "{m}"
        );
    }

    #[test]
    fn checksum_message_shows_both_hashes() {
        let m = checksum_message(&pins::INGRESS_NGINX_KIND_MANIFEST, "00ff");
        assert!(
            m.contains("00ff") && m.contains(pins::INGRESS_NGINX_KIND_MANIFEST.sha256),
            "{m}"
        );
    }

    #[test]
    fn docker_message_offers_the_existing_cluster_route() {
        let m = docker_message("Cannot connect to the Docker daemon");
        assert!(
            m.contains("--ingress-address") && m.contains("dockerd"),
            "{m}"
        );
    }

    #[test]
    fn a_failing_download_never_leaves_a_file() {
        let dir = tempfile_dir();
        let bogus = Pinned {
            url: "http://127.0.0.1:9/nothing",
            ..pins::KIND_LINUX_AMD64
        };
        let dest = dir.join("kind");
        let err = download(&bogus, &dest).unwrap_err().to_string();
        assert!(err.contains("cannot download kind"), "{err}");
        assert!(!dest.exists() && !dest.with_extension("download").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("wsgate-prereq-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
