//! A local ingress: nginx serving rendered Ingresses on free loopback ports, with its own
//! prefix (config, logs, keys) that goes away with it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use wsgate_manifests::{AnnotationWarning, ControllerConfig};
use wsgate_tls::TlsMaterial;
use wsgate_wait::{Check, Wait};

use crate::error::LocalError;
use crate::model::{CertFiles, NginxVersion, RenderContext, Server, ServiceRef};
use crate::prefix::{cpus_allowed, free_port, io_err, nofile_hard_limit, set_mode, write_secret};
use crate::process;
use crate::render::{Rendered, render};

/// How long nginx may take to accept connections on both ports, or to reload.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Attempts at finding two free ports (another process may take a probed port first).
const PORT_ATTEMPTS: usize = 5;

/// How nginx is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `SIGTERM`: what a pod deletion with `terminationGracePeriodSeconds: 0` amounts to.
    Fast,
    /// `SIGQUIT` (`nginx -s quit`): what the controller does on a graceful stop.
    Graceful,
}

/// What to serve.
#[derive(Debug, Clone, Default)]
pub struct LocalIngressSpec {
    pub ingresses: Vec<Ingress>,
    /// `kubernetes.io/tls` Secrets the Ingresses' `spec.tls` refer to.
    pub secrets: Vec<Secret>,
    pub config: ControllerConfig,
    /// Where each backend Service port is served on this machine.
    pub backends: BTreeMap<ServiceRef, SocketAddr>,
}

/// Finds the nginx binary: `NGINX_BIN`, else `nginx` on PATH, else `/usr/sbin/nginx`
/// (Debian installs it there, and a non-root PATH often lacks `/usr/sbin`).
pub fn find_nginx() -> Result<PathBuf, LocalError> {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        let p = PathBuf::from(bin);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(LocalError::NginxMissing {
                looked: format!("NGINX_BIN={} is not a file", p.display()),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .ok_or_else(|| LocalError::NginxMissing {
            looked: "NGINX_BIN unset; no nginx on PATH, /usr/sbin or /usr/local/sbin".into(),
        })
}

/// A running nginx serving the spec's Ingresses on loopback. Stopped on drop (also on panic),
/// with every process of its group.
pub struct LocalIngress {
    child: Child,
    bin: PathBuf,
    // Held for its Drop: the prefix (config, logs, keys) goes away with the ingress.
    dir: tempfile::TempDir,
    ctx: RenderContext,
    conf_path: PathBuf,
    rendered: Rendered,
}

impl std::fmt::Debug for LocalIngress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIngress")
            .field("pid", &self.child.id())
            .field("http", &self.http_addr())
            .field("https", &self.https_addr())
            .field("prefix", &self.dir.path())
            .finish()
    }
}

impl LocalIngress {
    /// Renders the spec, checks it with `nginx -t`, starts nginx on two free loopback ports and
    /// waits until both accept connections. Ignored annotation values are in
    /// [`LocalIngress::warnings`]; printing them is the caller's choice.
    pub fn start(spec: &LocalIngressSpec) -> Result<Self, LocalError> {
        let bin = find_nginx()?;
        let dir = tempfile::Builder::new()
            .prefix("wsgate-nginx-")
            .tempdir()
            .map_err(io_err("create a temp dir in", &std::env::temp_dir()))?;
        let prefix = dir.path().to_owned();
        // Workers may run as another user (when started as root): let them reach the temp paths.
        set_mode(&prefix, 0o755)?;
        for sub in ["tmp", "secrets"] {
            std::fs::create_dir(prefix.join(sub)).map_err(io_err("create", &prefix.join(sub)))?;
        }
        // Keys are read by the master only; keep the directory private.
        set_mode(&prefix.join("secrets"), 0o700)?;
        let fake = TlsMaterial::self_signed(&["Kubernetes Ingress Controller Fake Certificate"])?;
        let fake = fake.write_to(&prefix.join("secrets"), "default-fake-certificate")?;
        let mut secrets = BTreeMap::new();
        for s in &spec.secrets {
            let (key, files) = write_secret(s, &prefix.join("secrets"))?;
            secrets.insert(key, files);
        }
        let mut ctx = RenderContext {
            config: spec.config.clone(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 0,
            https_port: 0,
            backends: spec.backends.clone(),
            secrets,
            default_cert: CertFiles {
                cert: fake.cert,
                key: fake.key,
            },
            prefix: prefix.clone(),
            nofile: nofile_hard_limit().min(65536),
            workers: cpus_allowed(),
            nginx_version: nginx_version(&bin)?,
        };
        let conf_path = prefix.join("nginx.conf");
        let mut last_problem = String::new();
        for _ in 0..PORT_ATTEMPTS {
            (ctx.http_port, ctx.https_port) = (free_port()?, free_port()?);
            let rendered = render(&spec.ingresses, &ctx)?;
            std::fs::write(&conf_path, &rendered.conf).map_err(io_err("write", &conf_path))?;
            config_test(&bin, &prefix, &conf_path)?;
            let mut child =
                process::spawn(&bin, &prefix, &conf_path).map_err(io_err("start", &bin))?;
            let addrs = [ctx.http_addr(), ctx.https_addr()];
            match wait_ready(&mut child, &addrs, ctx.workers) {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        bin,
                        dir,
                        ctx,
                        conf_path,
                        rendered,
                    });
                }
                Err(problem) => {
                    let log = read_log(&prefix);
                    process::stop(&mut child);
                    if !log.contains("Address already in use") {
                        return Err(LocalError::NotReady {
                            addrs: format!("{} and {}", addrs[0], addrs[1]),
                            problem,
                            log,
                        });
                    }
                    // Lost a race for a probed port: try two others.
                    last_problem = problem;
                    let _ = std::fs::remove_file(prefix.join("error.log"));
                }
            }
        }
        Err(LocalError::NotReady {
            addrs: format!("{} and {}", ctx.http_addr(), ctx.https_addr()),
            problem: format!(
                "no free port pair after {PORT_ATTEMPTS} attempts; last: {last_problem}"
            ),
            log: String::new(),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.ctx.http_addr()
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.ctx.https_addr()
    }

    /// The master's process id (and its process group's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    /// What the rendered configuration serves: hosts, locations, effective timeouts.
    pub fn servers(&self) -> &[Server] {
        &self.rendered.servers
    }

    /// The annotation values that were ignored.
    pub fn warnings(&self) -> &[AnnotationWarning] {
        &self.rendered.warnings
    }

    /// The Ingresses the local tier did not render, with why.
    pub fn skipped(&self) -> &[String] {
        &self.rendered.skipped
    }

    /// nginx's error log so far (attach it to any failure).
    pub fn error_log(&self) -> String {
        read_log(self.dir.path())
    }

    /// The last `n` lines of the error log.
    pub fn error_log_tail(&self, n: usize) -> String {
        let log = self.error_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// How the master ended, if it has (for a supervisor).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        process::exited(&mut self.child)
    }

    /// Re-renders with new Ingresses and/or controller config on the same ports and reloads
    /// (`SIGHUP`, what the controller does on every Ingress change). Old workers keep their
    /// connections until `worker_shutdown_timeout`.
    pub fn reload(
        &mut self,
        ingresses: &[Ingress],
        config: &ControllerConfig,
    ) -> Result<(), LocalError> {
        let mut ctx = self.ctx.clone();
        ctx.config = config.clone();
        let rendered = render(ingresses, &ctx)?;
        std::fs::write(&self.conf_path, &rendered.conf)
            .map_err(io_err("write", &self.conf_path))?;
        config_test(&self.bin, self.dir.path(), &self.conf_path)?;
        let before = self.error_log().len();
        process::signal(self.child.id(), libc::SIGHUP);
        // The reload is done when the master logs that it started new workers.
        Wait::new("new nginx workers after SIGHUP", READY_DEADLINE)
            .every(Duration::from_millis(20))
            .until_blocking(|| {
                let log = self.error_log();
                if log
                    .get(before..)
                    .unwrap_or_default()
                    .contains("start worker process")
                {
                    Check::Done(())
                } else {
                    Check::Pending("no new worker yet")
                }
            })
            .map_err(|e| LocalError::Reload {
                problem: e.to_string(),
                log: self.error_log(),
            })?;
        self.ctx = ctx;
        self.rendered = rendered;
        Ok(())
    }

    /// Signals the master as the controller's pod lifecycle would: fast shutdown (`SIGTERM`:
    /// workers close their connections at once) or graceful (`SIGQUIT`: workers finish what is
    /// open, upgraded connections included, up to `worker_shutdown_timeout`).
    pub fn shut_down(&self, how: Shutdown) {
        process::signal(
            self.child.id(),
            match how {
                Shutdown::Fast => libc::SIGTERM,
                Shutdown::Graceful => libc::SIGQUIT,
            },
        );
    }

    /// Stops nginx and every process of its group (see [`process`]).
    pub fn stop(&mut self) {
        process::stop(&mut self.child);
    }
}

impl Drop for LocalIngress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `nginx -v` (it prints to stderr): `nginx version: nginx/1.22.1`.
fn nginx_version(bin: &Path) -> Result<NginxVersion, LocalError> {
    let out = std::process::Command::new(bin)
        .arg("-v")
        .output()
        .map_err(io_err("run", bin))?;
    let text = String::from_utf8_lossy(&out.stderr);
    NginxVersion::parse(&text).ok_or_else(|| LocalError::ConfigTest {
        conf: bin.to_owned(),
        output: format!(
            "cannot read the version from `{} -v`: {text}",
            bin.display()
        ),
    })
}

fn read_log(prefix: &Path) -> String {
    std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
}

/// Ready means both ports accept and every worker exists. The master binds the ports (with
/// `reuseport`, one socket per worker) before it forks, so connections queue in the backlog
/// while no worker runs yet: the ports alone say nothing about the workers.
fn wait_ready(child: &mut Child, addrs: &[SocketAddr], workers: usize) -> Result<(), String> {
    let pgid = child.id();
    Wait::new(
        format!("nginx accepting on both ports with its {workers} worker(s)"),
        READY_DEADLINE,
    )
    .every(Duration::from_millis(20))
    .until_blocking(|| {
        if let Ok(Some(status)) = child.try_wait() {
            return Check::Done(Err(format!("nginx exited with {status}")));
        }
        // The master and its workers (no cache manager: nothing is cached).
        let members = process::group_members(pgid).len();
        if members < 1 + workers {
            return Check::Pending(format!(
                "{} of {workers} worker(s) started",
                members.saturating_sub(1)
            ));
        }
        let refused: Vec<String> = addrs
            .iter()
            .filter(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err())
            .map(ToString::to_string)
            .collect();
        if refused.is_empty() {
            Check::Done(Ok(()))
        } else {
            Check::Pending(format!("refused on {}", refused.join(", ")))
        }
    })
    .map_err(|e| e.to_string())?
}

fn config_test(bin: &Path, prefix: &Path, conf: &Path) -> Result<(), LocalError> {
    let out = process::base_command(bin, prefix, conf)
        .arg("-t")
        .arg("-q")
        .output()
        .map_err(io_err("run", bin))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalError::ConfigTest {
            conf: conf.to_owned(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
