//! `--workload` on the local tier: a team's own Ingresses served by local nginx, each rule
//! checked (handshake, liveness, echo where it echoes, idle, traffic), the report written, the
//! exit code non-zero when any expectation fails.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use wsgate_manifests::Workload;
use wsgate_probe::chain;
use wsgate_workload::{Backends, Settings, check_all, start};

use crate::exit::RunError;
use crate::options::{E2eArgs, WorkloadArgs};
use crate::report;

/// The manifests' controller settings; a broken ConfigMap is named with its files.
pub fn controller_config(w: &Workload) -> anyhow::Result<wsgate_manifests::ControllerConfig> {
    w.controller_config()
        .with_context(|| format!("the controller ConfigMap in {}", w.files.join(", ")))
}

/// The manifests, and what the controller and the local tier ignore in them (printed once).
pub fn load(workload_args: &WorkloadArgs) -> anyhow::Result<(Workload, Vec<String>)> {
    let w = Workload::load(&workload_args.paths)?;
    let config = controller_config(&w)?;
    let notices = w.notices(&config).iter().map(ToString::to_string).collect();
    Ok((w, notices))
}

/// What `--dry-run` shows: each rule with its timeouts and their sources, and the notices.
pub fn describe(
    w: &Workload,
    notices: &[String],
    workload_args: &WorkloadArgs,
) -> anyhow::Result<String> {
    let config = w.controller_config()?;
    let mut out = format!("manifests: {}\n", w.files.join(", "));
    for r in w.rules(&config)? {
        out.push_str(&format!(
            "  rule {} {} -> Service {}/{}:{}{}{}; read {}, send {}\n",
            r.ingress,
            r.target(),
            r.namespace,
            r.service,
            r.port,
            r.tls_secret
                .as_ref()
                .map(|s| format!(", TLS Secret {s}"))
                .unwrap_or_default(),
            if r.regex {
                ", regex path: not checked"
            } else {
                ""
            },
            r.timeouts.read,
            r.timeouts.send
        ));
    }
    for (svc, addr) in &workload_args.backends {
        out.push_str(&format!("  backend {svc} served by {addr}\n"));
    }
    for n in notices {
        out.push_str(&format!("  notice: {n}\n"));
    }
    out.push_str(&format!(
        "checks per rule: handshake, ping/pong liveness, echo (where it echoes), idle (up to {} s), traffic\n",
        workload_args.max_idle
    ));
    Ok(out)
}

/// `--strict` refuses manifests with anything ignored or not modelled.
pub fn check_strict(strict: bool, notices: &[String]) -> anyhow::Result<()> {
    if strict && !notices.is_empty() {
        return Err(crate::exit::BadInput(format!(
            "--strict: {} annotation(s) ignored by ingress-nginx or not modelled by the local tier:\n{}",
            notices.len(),
            notices.join("\n")
        ))
        .into());
    }
    Ok(())
}

/// `cargo xtask e2e --local --workload ...`.
pub fn run_local(args: &E2eArgs, root: &Path) -> Result<(), RunError> {
    let workload_args = &args.workload;
    let (w, notices) = load(workload_args).map_err(RunError::input)?;
    check_strict(args.cluster.strict, &notices).map_err(RunError::input)?;
    let dir = root.join("target/wsgate/local");
    let rows_dir = dir.join("rows");
    let _ = std::fs::remove_dir_all(&rows_dir);
    let backends = Backends {
        named: workload_args.backends.iter().cloned().collect(),
        echo: workload_args.echo,
    };
    let settings = Settings {
        max_idle: Duration::from_secs(workload_args.max_idle),
        ..Settings::default()
    };
    let start_at = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::setup)?;
    let (rows, mut notes) = rt
        .block_on(async {
            let local = start(&w, &backends, &workload_args.trust)
                .await
                .map_err(|e| anyhow::anyhow!(chain(&e)))?;
            eprintln!(
                "local nginx serves {} rule(s) on {} (ws) and {} (wss); checking (idle holds up to {} s)",
                local.rules.len(),
                local.addrs.http,
                local.addrs.https,
                workload_args.max_idle
            );
            let rows = check_all(&local.rules, &local.addrs, &settings).await;
            anyhow::Ok((rows, local.notes))
        })
        .map_err(RunError::setup)?;
    for r in &rows {
        r.record_in(&rows_dir).map_err(RunError::setup)?;
    }
    notes.extend(notices.iter().map(|n| format!("notice: {n}")));
    let timings = vec![(
        "your workload's rules (local tier)".to_owned(),
        start_at.elapsed(),
    )];
    report::write(&dir, &rows_dir, &timings, &notes).map_err(RunError::setup)?;
    let failed = wsgate_report::failures(&rows).len();
    if failed > 0 {
        return Err(RunError::promise(anyhow::anyhow!(
            "{failed} of {} checks failed; the table above says which",
            rows.len()
        )));
    }
    Ok(())
}

/// The checks of `--workload` on a cluster (the plan's `CheckRules` action): the plan's rules
/// through the ingress address, trusting the plan's certificate files (the manifests' TLS
/// Secrets' and the given ones); rows recorded into the plan's report directory.
pub async fn check_on_cluster(
    c: &crate::action::CheckRules,
) -> anyhow::Result<Vec<wsgate_report::Row>> {
    let mut trust = Vec::new();
    for p in &c.trust {
        trust.extend(
            wsgate_probe::pem_file_certificates(p)
                .with_context(|| format!("reading certificates from {}", p.display()))?,
        );
    }
    let rules: Vec<wsgate_workload::Checked> = c
        .rules
        .iter()
        .map(|rule| wsgate_workload::Checked {
            rule: rule.clone(),
            echoes: c.echo,
        })
        .collect();
    let addrs = wsgate_workload::Addrs {
        http: c.http.clone(),
        https: c.https.clone(),
        trust,
    };
    let settings = Settings {
        max_idle: c.max_idle,
        tier: c.tier.clone(),
        ..Settings::default()
    };
    let rows = check_all(&rules, &addrs, &settings).await;
    for r in &rows {
        r.record_in(&c.rows)?;
    }
    Ok(rows)
}
