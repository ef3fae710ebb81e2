//! `cargo xtask test`: what the tests need (nginx, a Docker daemon, cargo-nextest), checked in
//! well under a second, installed and started when this machine allows it, then the tests.
//!
//! Installing works on Debian/Ubuntu as root or with passwordless sudo; anywhere else the
//! command stops at once and prints the exact commands to run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wsgate_wait::{Check, Wait};

use crate::flags::TestArgs;
use wsgate_runner::action::Cmd;
use wsgate_runner::exit::{RunError, nextest_exit};
use wsgate_runner::tools::which;

/// The cargo-nextest a machine without one gets (`cargo install cargo-nextest@…`; it must be
/// at least `wsgate_runner::plan::NEXTEST_MIN`).
const NEXTEST_VERSION: &str = "0.9.151";

/// How long a freshly started dockerd may take to answer.
const DOCKERD_DEADLINE: Duration = Duration::from_secs(60);

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub nginx: Option<PathBuf>,
    /// The daemon's version when one answers.
    pub docker_daemon: Option<String>,
    pub docker_cli: bool,
    pub dockerd: Option<PathBuf>,
    pub nextest: Option<String>,
}

impl Found {
    /// Debian packages that would provide what is missing.
    pub fn packages(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.nginx.is_none() {
            v.push("nginx");
        }
        if self.docker_daemon.is_none() && (!self.docker_cli || self.dockerd.is_none()) {
            v.push("docker.io");
        }
        v
    }
}

fn first_line(out: &[u8]) -> Option<String> {
    String::from_utf8_lossy(out)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// Checks nginx, Docker and cargo-nextest (each a file lookup or one short command).
pub fn check(search: &std::ffi::OsStr) -> Found {
    // The two probes run side by side: each is mostly process start-up.
    let spawn = |mut cmd: std::process::Command| {
        cmd.stderr(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .ok()
    };
    let docker = which("docker", search);
    let mut daemon = std::process::Command::new(&docker);
    daemon.args(["version", "--format", "{{.Server.Version}}"]);
    let mut cargo = std::process::Command::new(which("cargo", search));
    cargo.args(["nextest", "--version"]);
    let (daemon, cargo) = (spawn(daemon), spawn(cargo));
    let finish = |child: Option<std::process::Child>| {
        child
            .and_then(|c| c.wait_with_output().ok())
            .filter(|o| o.status.success())
            .and_then(|o| first_line(&o.stdout))
    };
    let (docker_daemon, nextest) = (finish(daemon), finish(cargo));
    let sbin = std::env::join_paths(
        std::env::split_paths(search).chain([PathBuf::from("/usr/sbin"), "/usr/local/sbin".into()]),
    )
    .unwrap_or_default();
    let dockerd = which("dockerd", &sbin);
    Found {
        nginx: wsgate_local::find_nginx().ok(),
        docker_daemon,
        docker_cli: docker.is_absolute(),
        dockerd: dockerd.is_absolute().then_some(dockerd),
        nextest,
    }
}

/// How this process may install packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Privilege {
    Root,
    Sudo,
}

fn privilege() -> Option<Privilege> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(Privilege::Root);
    }
    let sudo = std::process::Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    sudo.then_some(Privilege::Sudo)
}

fn as_admin(p: Privilege, program: &str) -> Cmd {
    match p {
        Privilege::Root => Cmd::new(program),
        Privilege::Sudo => Cmd::new("sudo").args(["-n", program]),
    }
}

/// The commands that would set this machine up, for a person to run.
fn manual(found: &Found) -> String {
    let mut lines = Vec::new();
    let packages = found.packages();
    if !packages.is_empty() {
        lines.push("sudo apt-get update".to_owned());
        lines.push(format!(
            "sudo apt-get install -y --no-install-recommends {}",
            packages.join(" ")
        ));
    }
    if found.docker_daemon.is_none() {
        lines.push(
            "sudo systemctl start docker   # without systemd: sudo dockerd > /tmp/dockerd.log 2>&1 &"
                .into(),
        );
    }
    if found.nextest.is_none() {
        lines.push(format!(
            "cargo install cargo-nextest@{NEXTEST_VERSION} --locked"
        ));
    }
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").is_file()
        && which("apt-get", &std::env::var_os("PATH").unwrap_or_default()).is_absolute()
}

fn run(cmd: &Cmd) -> anyhow::Result<()> {
    eprintln!("  $ {cmd}");
    Ok(cmd.run()?)
}

fn install(found: &Found, packages: &[&str]) -> anyhow::Result<()> {
    let Some(p) = privilege().filter(|_| is_debian()) else {
        bail!(
            "missing: {}. This command installs them only on Debian/Ubuntu as root or with passwordless sudo. Run:\n{}\nthen run `cargo xtask test` again",
            packages.join(", "),
            manual(found)
        );
    };
    eprintln!("installing {}", packages.join(" "));
    run(&as_admin(p, "apt-get").args(["update", "-qq"]))?;
    run(&as_admin(p, "apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages))?;
    if packages.contains(&"nginx") {
        quiet_system_nginx(p);
    }
    Ok(())
}

/// The package starts a system nginx on :80 and enables it at boot. The tests run their own on
/// free ports, and `cargo xtask e2e` needs :80 for kind, after a reboot too: stop and disable
/// the one this command caused.
fn quiet_system_nginx(p: Privilege) {
    let (stop, disable) = if Path::new("/run/systemd/system").is_dir() {
        (
            as_admin(p, "systemctl").args(["stop", "nginx"]),
            as_admin(p, "systemctl").args(["disable", "nginx"]),
        )
    } else {
        (
            as_admin(p, "service").args(["nginx", "stop"]),
            as_admin(p, "update-rc.d").args(["nginx", "disable"]),
        )
    };
    for (cmd, did, what) in [(stop, "stopped", "stop"), (disable, "disabled", "disable")] {
        let ok = cmd.output().is_ok();
        eprintln!(
            "  {} the nginx service the package started (`{cmd}`; the tests start their own; kind needs :80)",
            if ok {
                did.to_owned()
            } else {
                format!("could not {what}")
            }
        );
    }
}

/// The version in `cargo nextest --version`'s first line (`cargo-nextest 0.9.151 (...)`).
fn nextest_version(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or_default()
}

fn docker_answers() -> Option<String> {
    check(&std::env::var_os("PATH").unwrap_or_default()).docker_daemon
}

/// Starts a Docker daemon: through systemd when it runs this machine, else dockerd itself,
/// detached, logging to `log`; waits for it with a deadline.
fn start_docker(found: &Found, log: &Path) -> anyhow::Result<String> {
    let systemd = Path::new("/run/systemd/system").is_dir();
    let p = privilege();
    match (systemd, p) {
        (true, Some(p)) => run(&as_admin(p, "systemctl").args(["start", "docker"]))?,
        (false, Some(Privilege::Root)) => {
            let dockerd = found
                .dockerd
                .clone()
                .context("dockerd is not installed (Debian: apt-get install docker.io)")?;
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let out = std::fs::File::create(log)
                .with_context(|| format!("creating {}", log.display()))?;
            eprintln!("  $ {} > {} 2>&1 &", dockerd.display(), log.display());
            use std::os::unix::process::CommandExt;
            // Its own session: the daemon outlives this command and ignores its Ctrl-C.
            std::process::Command::new(&dockerd)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", dockerd.display()))?;
        }
        _ => bail!(
            "no Docker daemon answers and this command cannot start one without root. Run:\n{}",
            manual(found)
        ),
    }
    let wait = Wait::new("the Docker daemon to answer", DOCKERD_DEADLINE)
        .every(Duration::from_millis(500));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait.until(|| async {
        match docker_answers() {
            Some(v) => Check::Done(v),
            None => Check::Pending("no answer"),
        }
    }))
    .map_err(|e| {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(20).collect();
        anyhow::anyhow!(
            "{e}\n--- {} (last lines) ---\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })
}

/// Whether `go version` runs.
fn go_available() -> bool {
    std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes this machine ready for the tests; returns what it did, one line each.
pub fn prepare(root: &Path) -> anyhow::Result<()> {
    let search = std::env::var_os("PATH").unwrap_or_default();
    let start = Instant::now();
    // The Go builds (minutes when cold: the bare tier's components, then Envoy Gateway's egctl
    // for the successors) run beside the rest of the set-up: apt and Docker wait on the
    // network and the disk, and the compilers share the cores.
    let bare_ok = match wsgate_runner::bare::unavailable() {
        None => true,
        Some(why) => {
            eprintln!("the bare tier cannot run here: {why}");
            false
        }
    };
    let go = go_available().then(|| {
        let root = root.to_owned();
        std::thread::spawn(move || {
            let start = Instant::now();
            let say = &mut |line: &str| eprintln!("{line}");
            let bare = bare_ok.then(|| wsgate_bare::ensure_built(&root, say));
            let egctl = wsgate_runner::migrate::build_egctl(&root, say);
            (bare, egctl, start.elapsed())
        })
    });
    let mut found = check(&search);
    eprintln!(
        "checked in {} ms: nginx {}, Docker daemon {}, cargo-nextest {}",
        start.elapsed().as_millis(),
        found
            .nginx
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "missing".into()),
        found.docker_daemon.as_deref().unwrap_or("not answering"),
        found.nextest.as_deref().unwrap_or("missing")
    );
    let packages = found.packages();
    if !packages.is_empty() {
        install(&found, &packages)?;
        found = check(&search);
        if let Some(still) = found.packages().first() {
            bail!("{still} is still missing after apt-get install");
        }
    }
    let min = wsgate_runner::plan::NEXTEST_MIN;
    let too_old = found
        .nextest
        .as_deref()
        .is_some_and(|v| !wsgate_runner::exec::version_at_least(nextest_version(v), min));
    if found.nextest.is_none() || too_old {
        eprintln!(
            "installing cargo-nextest {}(a few minutes of compiling)",
            if too_old {
                format!("(the one here is older than {min}) ")
            } else {
                String::new()
            }
        );
        run(&Cmd::new(which("cargo", &search)).args([
            "install",
            &format!("cargo-nextest@{NEXTEST_VERSION}"),
            "--locked",
        ]))?;
    }
    if found.docker_daemon.is_none() {
        let log = root.join("target/wsgate/dockerd.log");
        let version = start_docker(&found, &log)?;
        eprintln!("Docker daemon {version} answers (log: {})", log.display());
    }
    // Built once here, so that the container tests do not each wait on a release build while
    // holding their shared lock.
    let image = wsgate_image::ensure_image_for_server(root)?;
    // The successors' proxies, from PyPI (pinned by hash), for `migrate` and its tests.
    wsgate_runner::migrate::install_proxies(root, &mut |line| eprintln!("{line}"))?;
    match go {
        Some(build) => {
            let (bare, egctl, took) = build
                .join()
                .map_err(|_| anyhow::anyhow!("the Go build thread panicked"))?;
            if let Some(b) = bare {
                eprintln!("bare tier's components ready in {}", b?.dir.display());
            }
            eprintln!(
                "egctl ready at {} (Go builds: {:.1} s)",
                egctl?.display(),
                took.as_secs_f64()
            );
        }
        None => eprintln!(
            "Go is not on PATH: the bare tier and Envoy Gateway's egctl are not built (these machines carry Go 1.26)"
        ),
    }
    eprintln!(
        "echo image {} {} ({:.1} MB, {})",
        image.reference(),
        if image.built { "built" } else { "up to date" },
        image.size as f64 / 1e6,
        image.builder
    );
    Ok(())
}

/// `cargo xtask test`: set up, then `cargo nextest run --workspace` with the given arguments.
/// A set-up failure exits 3, failing tests 1 (as `cargo xtask e2e` does).
pub fn run_tests(args: &TestArgs, root: &Path) -> Result<(), RunError> {
    prepare(root).map_err(RunError::setup)?;
    if args.setup_only {
        return Ok(());
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    let cargo = which("cargo", &search);
    let nextest = Cmd::new(&cargo)
        .args(["nextest", "run", "--workspace", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(&args.nextest);
    eprintln!("  $ {nextest}");
    let main = nextest.run().map_err(|e| {
        RunError::new(
            nextest_exit(e.exit_code()),
            anyhow::Error::from(e).context("tests failed"),
        )
    });
    keep_junit(root, "tests");
    // The bare tier's step: the tests that need a real API server, against one started now.
    // Arguments for nextest select tests of the run above, so they leave this step out.
    let bare = if !args.nextest.is_empty() {
        eprintln!("bare tier: skipped (nextest arguments were given)");
        Ok(())
    } else if let Some(why) = wsgate_runner::bare::unavailable() {
        eprintln!("bare tier: skipped, {why}");
        Ok(())
    } else {
        let profile = std::env::var("NEXTEST_PROFILE").unwrap_or_else(|_| "default".into());
        let r = wsgate_runner::bare::test_step(root, &cargo, &profile);
        keep_junit(root, "bare");
        r
    };
    main.and(bare)
}

/// Each run's JUnit file (the `ci` profile writes one per run, to the same path) kept under its
/// own name.
fn keep_junit(root: &Path, name: &str) {
    let profile = std::env::var("NEXTEST_PROFILE").unwrap_or_else(|_| "default".into());
    let junit = root.join("target/nextest").join(&profile).join("junit.xml");
    if junit.is_file() {
        let _ = std::fs::copy(&junit, junit.with_file_name(format!("junit-{name}.xml")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> Found {
        Found {
            nginx: Some("/usr/sbin/nginx".into()),
            docker_daemon: Some("20.10.24".into()),
            docker_cli: true,
            dockerd: Some("/usr/sbin/dockerd".into()),
            nextest: Some("cargo-nextest 0.9.143".into()),
        }
    }

    #[test]
    fn nothing_missing_installs_nothing() {
        assert!(found().packages().is_empty());
        assert_eq!(manual(&found()), "");
    }

    #[test]
    fn a_stopped_daemon_needs_starting_not_installing() {
        let f = Found {
            docker_daemon: None,
            ..found()
        };
        assert!(f.packages().is_empty());
        assert!(manual(&f).contains("dockerd"), "{}", manual(&f));
    }

    #[test]
    fn a_fresh_machine_gets_the_exact_commands() {
        let f = Found {
            nginx: None,
            docker_daemon: None,
            docker_cli: false,
            dockerd: None,
            nextest: None,
        };
        assert_eq!(f.packages(), ["nginx", "docker.io"]);
        let m = manual(&f);
        for line in [
            "sudo apt-get update",
            "sudo apt-get install -y --no-install-recommends nginx docker.io",
            "cargo install cargo-nextest@0.9.151 --locked",
        ] {
            assert!(m.contains(line), "{line} missing from\n{m}");
        }
    }

    #[test]
    fn the_check_is_well_under_a_second() {
        let start = Instant::now();
        check(&std::env::var_os("PATH").unwrap_or_default());
        // ~0.1 s on an idle machine, up to ~0.8 s seen under the suite's full parallel load;
        // anything touching the network (apt, a registry) takes seconds.
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "checking took {} ms (tolerance 1500 ms)",
            start.elapsed().as_millis()
        );
    }
}
