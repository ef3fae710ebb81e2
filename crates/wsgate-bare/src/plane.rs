//! The control plane's processes: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok, one process group listening on 127.0.0.1 only, each waited for with
//! a named deadline. Stopped API server before etcd (in that order both exit in about a
//! second), then the whole group is killed: nothing is left running or listening.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use wsgate_cluster::{Client, ObjectRef};
use wsgate_wait::{Check, Wait};

use crate::BareError;
use crate::net::Blackholes;
use crate::pki::{self, Pki};
use crate::tools::Binaries;

/// etcd accepting connections (a fresh data directory).
const ETCD_DEADLINE: Duration = Duration::from_secs(30);
/// The API server's `/readyz` says ok (about 4 s here when warm; a first start is slower).
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// kwok marks the nodes Ready, the controller-manager makes the default ServiceAccount.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// How long each component gets to exit after SIGTERM before the group is killed.
const TERM_DEADLINE: Duration = Duration::from_secs(10);

/// What to run, and where.
#[derive(Debug, Clone)]
pub struct Options {
    pub binaries: Binaries,
    /// Where etcd's data, the certificates, the logs and the kubeconfig go; a temporary
    /// directory (removed on stop) when `None`.
    pub dir: Option<PathBuf>,
    /// ClusterIPs. Kept apart from the pods' range; both are blackholed.
    pub service_cidr: String,
    /// kwok's pod addresses.
    pub pod_cidr: String,
    /// The node's address (kwok reports it as the node's InternalIP).
    pub node_cidr: String,
    pub node_ip: String,
}

impl Options {
    pub fn new(binaries: Binaries) -> Self {
        Self {
            binaries,
            dir: None,
            service_cidr: "10.96.0.0/16".into(),
            pod_cidr: "10.244.0.0/16".into(),
            node_cidr: "10.243.0.0/24".into(),
            node_ip: "10.243.0.1".into(),
        }
    }
}

/// The name of the one node.
pub const NODE: &str = "bare-node-0";

struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A running control plane; stopped on drop (also on panic), with every process of its group.
pub struct ControlPlane {
    components: Vec<Component>,
    pgid: u32,
    kubeconfig: PathBuf,
    server: String,
    version: String,
    dir: PathBuf,
    stopped: bool,
    // Dropped after the processes are stopped, in this order: routes, then the directory.
    routes: Blackholes,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("kubeconfig", &self.kubeconfig)
            .field("pgid", &self.pgid)
            .finish_non_exhaustive()
    }
}

fn free_port() -> Result<u16, BareError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(wsgate_fs::at(
        "bind a probe port on",
        Path::new("127.0.0.1"),
    ))?;
    Ok(l.local_addr()
        .map_err(wsgate_fs::at("read the address of", Path::new("127.0.0.1")))?
        .port())
}

/// Whether a process still runs (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The last `n` lines of a log file.
fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first address of a CIDR, plus one: the `kubernetes` Service's ClusterIP.
fn first_host(cidr: &str) -> Ipv4Addr {
    let base: Ipv4Addr = cidr
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(Ipv4Addr::new(10, 96, 0, 0));
    Ipv4Addr::from(u32::from(base) + 1)
}

/// Removes the directories of earlier control planes whose owner was killed before it could
/// clean up (their process group is empty).
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let ours = e.file_name().to_string_lossy().starts_with("wsgate-bare-");
        let pgid = std::fs::read_to_string(dir.join("pgid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let (true, Some(pgid)) = (ours, pgid)
            && wsgate_proc::group_members(pgid).is_empty()
        {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl ControlPlane {
    /// Starts everything and waits until the API server is ready, the node is Ready and the
    /// controller-manager has made the default ServiceAccount. The processes are spawned on
    /// the calling thread, which must outlive them (their parent-death signal is tied to it).
    pub async fn start(opts: &Options) -> Result<Self, BareError> {
        if !is_root() {
            return Err(BareError::NotRoot);
        }
        sweep_stale(&std::env::temp_dir());
        let (temp, dir) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(wsgate_fs::at("create", d))?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("wsgate-bare-")
                    .tempdir()
                    .map_err(wsgate_fs::at("create a temp dir in", &std::env::temp_dir()))?;
                let d = t.path().to_owned();
                (Some(t), d)
            }
        };
        for sub in ["logs", "etcd"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(wsgate_fs::at("create", &dir))?;
        }
        let service_ip = first_host(&opts.service_cidr);
        let pki = pki::generate(&dir.join("pki"), service_ip.into())?;
        let [etcd_port, peer_port, api_port, cm_port, sched_port] = [
            free_port()?,
            free_port()?,
            free_port()?,
            free_port()?,
            free_port()?,
        ];
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        let kc = pki::kubeconfig(&pki, &server);
        std::fs::write(&kubeconfig, kc).map_err(wsgate_fs::at("write", &kubeconfig))?;
        let mut plane = Self {
            components: Vec::new(),
            pgid: 0,
            kubeconfig,
            server,
            version: String::new(),
            dir,
            stopped: false,
            routes: Blackholes::default(),
            _temp: temp,
        };
        plane
            .boot(
                opts,
                &pki,
                [etcd_port, peer_port, api_port, cm_port, sched_port],
            )
            .await?;
        Ok(plane)
    }

    async fn boot(
        &mut self,
        opts: &Options,
        pki: &Pki,
        [etcd_port, peer_port, api_port, cm_port, sched_port]: [u16; 5],
    ) -> Result<(), BareError> {
        let bin = |n: &str| opts.binaries.path(n);
        let p = |path: &Path| path.display().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        self.spawn(
            "etcd",
            &bin("etcd"),
            &[
                "--name=bare".into(),
                format!("--data-dir={}", p(&self.dir.join("etcd"))),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=bare={peer_url}"),
                // A test cluster: its data dies with it, so durability buys nothing.
                "--unsafe-no-fsync=true".into(),
            ],
        )?;
        // The routes carry the group's id, known now: before anything could dial a cluster
        // address.
        self.routes = Blackholes::add(
            &[&opts.service_cidr, &opts.pod_cidr, &opts.node_cidr],
            self.pgid,
        )?;
        self.wait_port("etcd", etcd_port).await?;
        self.spawn(
            "kube-apiserver",
            &bin("kube-apiserver"),
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--tls-cert-file={}", p(&pki.apiserver)),
                format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
                format!("--client-ca-file={}", p(&pki.ca)),
                format!("--service-cluster-ip-range={}", opts.service_cidr),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p(&pki.sa_pub)),
                format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
                "--authorization-mode=Node,RBAC".into(),
                "--allow-privileged=true".into(),
                // Webhooks and aggregated APIs are called at their endpoints (no kube-proxy
                // runs to make a ClusterIP reachable).
                "--enable-aggregator-routing=true".into(),
                "--profiling=false".into(),
            ],
        )?;
        let client = self.wait_ready().await?;
        self.version = client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_default();
        let kubeconfig = p(&self.kubeconfig);
        self.spawn(
            "kube-controller-manager",
            &bin("kube-controller-manager"),
            &[
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={cm_port}"),
                "--leader-elect=false".into(),
                format!("--service-account-private-key-file={}", p(&pki.sa_key)),
                format!("--root-ca-file={}", p(&pki.ca)),
                format!("--cluster-signing-cert-file={}", p(&pki.ca)),
                format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
                "--use-service-account-credentials=true".into(),
                format!("--service-cluster-ip-range={}", opts.service_cidr),
            ],
        )?;
        let sched = self.dir.join("kube-scheduler.yaml");
        std::fs::write(
            &sched,
            format!(
                "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
                 clientConnection:\n  kubeconfig: {kubeconfig}\nleaderElection:\n  leaderElect: false\n"
            ),
        )
        .map_err(wsgate_fs::at("write", &sched))?;
        self.spawn(
            "kube-scheduler",
            &bin("kube-scheduler"),
            &[
                format!("--config={}", p(&sched)),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={sched_port}"),
            ],
        )?;
        let mut kwok = vec![
            format!("--kubeconfig={kubeconfig}"),
            "--manage-all-nodes=true".into(),
            format!("--cidr={}", opts.pod_cidr),
            format!("--node-ip={}", opts.node_ip),
        ];
        kwok.extend(
            opts.binaries
                .kwok_stages
                .iter()
                .map(|s| format!("--config={}", p(s))),
        );
        self.spawn("kwok", &bin("kwok"), &kwok)?;
        let node = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {
                    "kubernetes.io/hostname": NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok"
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"}
            }
        });
        wsgate_cluster::server_side_apply(&client, &ObjectRef::of::<Node>(None, NODE), &node)
            .await?;
        self.settle(&client).await
    }

    /// Starts a component in the control plane's process group (etcd, the first, leads it),
    /// its output in `logs/<name>.log`.
    fn spawn(&mut self, name: &'static str, bin: &Path, args: &[String]) -> Result<(), BareError> {
        if !bin.is_file() {
            return Err(BareError::Missing {
                path: bin.to_owned(),
            });
        }
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let out = std::fs::File::create(&log).map_err(wsgate_fs::at("create", &log))?;
        let err = out.try_clone().map_err(wsgate_fs::at("open", &log))?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        // Killed outright if the owner dies without stopping it: a graceful API server outlives
        // its etcd by half a minute, still listening.
        let child = wsgate_proc::in_group_dying_by(&mut cmd, self.pgid, libc::SIGKILL)
            .spawn()
            .map_err(|source| BareError::Spawn {
                what: format!("{name} ({})", bin.display()),
                source,
            })?;
        if self.pgid == 0 {
            self.pgid = child.id();
            // Lets a later run tell this directory is stale once the group is gone.
            let mark = self.dir.join("pgid");
            std::fs::write(&mark, self.pgid.to_string()).map_err(wsgate_fs::at("write", &mark))?;
        }
        self.components.push(Component { name, child, log });
        Ok(())
    }

    /// A component that is no longer running, as an error saying which and why.
    fn dead(&mut self, when: &'static str) -> Option<BareError> {
        self.components.iter_mut().find_map(|c| {
            wsgate_proc::exited(&mut c.child).map(|status| BareError::Exited {
                component: c.name.into(),
                status: status.to_string(),
                when,
                log: c.log.clone(),
                tail: tail(&c.log, 20),
            })
        })
    }

    /// The pids of the components, for checks inside waits.
    fn pids(&self) -> Vec<u32> {
        self.components.iter().map(|c| c.child.id()).collect()
    }

    fn log_of(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    async fn wait_port(&mut self, name: &'static str, port: u16) -> Result<(), BareError> {
        let pids = self.pids();
        let result = Wait::new(
            format!("{name} accepting on 127.0.0.1:{port}"),
            ETCD_DEADLINE,
        )
        .every(Duration::from_millis(50))
        .until(|| {
            let pids = pids.clone();
            async move {
                if !pids.iter().all(|p| alive(*p)) {
                    return Check::Done(false);
                }
                match TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
                    Ok(_) => Check::Done(true),
                    Err(e) => Check::Pending(e.to_string()),
                }
            }
        })
        .await;
        self.settled(name, result.map(|up| up.then_some(())))
    }

    /// A wait's end: done, a component that died (said as such), or a timeout with the log.
    fn settled<T>(
        &mut self,
        name: &str,
        result: Result<Option<T>, wsgate_wait::TimedOut>,
    ) -> Result<T, BareError> {
        match result {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.dead("was starting").unwrap_or(BareError::NotReady {
                what: format!("{name} stopped"),
                log: self.log_of(name),
                tail: tail(&self.log_of(name), 20),
            })),
            Err(timed_out) => Err(self.dead("was starting").unwrap_or(BareError::NotReady {
                what: timed_out.to_string(),
                log: self.log_of(name),
                tail: tail(&self.log_of(name), 20),
            })),
        }
    }

    async fn wait_ready(&mut self) -> Result<Client, BareError> {
        let client = wsgate_cluster::connect(&self.kubeconfig, None).await?;
        let pids = self.pids();
        let c = &client;
        let result = Wait::new("kube-apiserver /readyz to say ok", READY_DEADLINE)
            .every(Duration::from_millis(200))
            .until(|| {
                let pids = pids.clone();
                async move {
                    if !pids.iter().all(|p| alive(*p)) {
                        return Check::Done(false);
                    }
                    match wsgate_cluster::readyz(c).await {
                        Ok(body) if body.trim() == "ok" => Check::Done(true),
                        Ok(body) => Check::Pending(body),
                        Err(e) => Check::Pending(wsgate_probe_chain(&e)),
                    }
                }
            })
            .await;
        self.settled("kube-apiserver", result.map(|up| up.then_some(())))?;
        Ok(client)
    }

    /// The node Ready (kwok) and the default ServiceAccount made (the controller-manager's
    /// token and service-account controllers work).
    async fn settle(&mut self, client: &Client) -> Result<(), BareError> {
        let waited = async {
            wsgate_cluster::wait_nodes_ready(client, SETTLE_DEADLINE).await?;
            wsgate_cluster::wait_exists(
                client,
                &ObjectRef::of::<ServiceAccount>(Some("default"), "default"),
                SETTLE_DEADLINE,
            )
            .await
        }
        .await;
        match waited {
            Ok(()) => Ok(()),
            Err(e) => Err(self.dead("settled").unwrap_or(BareError::Cluster(e))),
        }
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The version the API server reports (`v1.35.4`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the state and the logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blackholed address ranges.
    pub fn blackholed(&self) -> &[String] {
        self.routes.cidrs()
    }

    /// The process group's id (etcd's pid).
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// A component that has exited, as an error naming it with its log's last lines (for a
    /// supervisor).
    pub fn exited(&mut self) -> Option<BareError> {
        self.dead("was running")
    }

    /// Stops every component, the API server before etcd, then kills the group.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        for c in self.components.iter_mut().rev() {
            wsgate_proc::terminate(&mut c.child, TERM_DEADLINE);
        }
        if self.pgid != 0 {
            let mut children: Vec<&mut Child> =
                self.components.iter_mut().map(|c| &mut c.child).collect();
            wsgate_proc::kill_group_and_wait(self.pgid, &mut children);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An error and its causes on one line.
fn wsgate_probe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_service_ip_is_the_first_of_the_range() {
        assert_eq!(first_host("10.96.0.0/16"), Ipv4Addr::new(10, 96, 0, 1));
    }
}
