//! `cargo xtask local-up`: the local tier for a person (the document's Step 3 by hand), up
//! until Ctrl-C or SIGTERM, supervised: if nginx or the echo server dies, everything stops and
//! the command fails saying which. Everything it prints comes from what was rendered.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use wsgate_contract::Phase;
use wsgate_echo::{EchoConfig, EchoServer, RunningEcho};
use wsgate_local::LocalIngress;
use wsgate_manifests::{ControllerConfig, DOCUMENTED_HOST, Variant};

use crate::options::LocalUpArgs;

pub fn run(args: LocalUpArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.paths.is_empty() {
        rt.block_on(up(args))
    } else {
        rt.block_on(up_workload(args))
    }
}

/// `local-up --workload`: a team's own Ingresses, their backends where `--backend` names
/// them and the echo server elsewhere.
async fn up_workload(args: LocalUpArgs) -> anyhow::Result<()> {
    let mut stops = crate::stops::watch()?;
    let workload_args = crate::options::WorkloadArgs {
        paths: args.paths.clone(),
        backends: args.backends.clone(),
        ..Default::default()
    };
    let (w, notices) = crate::workload::load(&workload_args)?;
    let backends = wsgate_workload::Backends {
        named: workload_args.backends.iter().cloned().collect(),
        echo: false,
    };
    let local = wsgate_workload::start(&w, &backends, &[])
        .await
        .map_err(|e| anyhow::anyhow!(wsgate_probe::chain(&e)))?;
    let mut nginx = local.nginx;
    println!(
        "wsgate local tier is up with your workload ({}): echo server {}; nginx pid {}; ws on {}, wss on {}",
        w.files.join(", "),
        local.echo.addr(),
        nginx.pid(),
        nginx.http_addr(),
        nginx.https_addr()
    );
    println!();
    let mut table = timeouts_table();
    rows(&mut table, None, &nginx);
    println!("{table}");
    for n in local.notes.iter().chain(&notices) {
        println!("  note: {n}");
    }
    println!();
    println!("Try it:");
    for s in nginx.servers() {
        for l in &s.locations {
            let (scheme, addr) = if s.has_tls() {
                ("wss", nginx.https_addr())
            } else {
                ("ws", nginx.http_addr())
            };
            let tls = if s.has_tls() { "tls-c:" } else { "" };
            let k = if s.has_tls() { "-k " } else { "" };
            println!(
                "  websocat {k}--ws-c-uri={scheme}://{h}{p} - ws-c:{tls}tcp:{addr}",
                h = s.host,
                p = l.path
            );
        }
    }
    println!();
    println!("Ctrl-C stops everything.");
    let why = supervise(&mut stops, &local.echo, &mut [("nginx", &mut nginx)]).await;
    println!("stopping");
    drop(nginx);
    local.echo.shutdown().await;
    match why {
        Ok(signal) => {
            println!("stopped ({signal})");
            Ok(())
        }
        Err(problem) => bail!(problem),
    }
}

/// The banner's table: one row per host and path, with the timeouts and their sources.
fn timeouts_table() -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header([
            "host and path",
            "scheme",
            "dial",
            "read timeout",
            "send timeout",
        ]);
    table
}

/// The banner's rows for one nginx: each host and path as it serves them, over `scheme` (or,
/// when `None`, wss for hosts with TLS and ws for the others).
fn rows(table: &mut comfy_table::Table, scheme: Option<&str>, nginx: &LocalIngress) {
    for s in nginx.servers() {
        let scheme = scheme.unwrap_or(if s.has_tls() { "wss" } else { "ws" });
        let addr = if scheme == "wss" {
            nginx.https_addr()
        } else {
            nginx.http_addr()
        };
        for l in &s.locations {
            table.add_row([
                format!("{}{}", s.host, l.path),
                scheme.to_owned(),
                addr.to_string(),
                l.timeouts.read.to_string(),
                l.timeouts.send.to_string(),
            ]);
        }
    }
}

async fn up(args: LocalUpArgs) -> anyhow::Result<()> {
    let mut stops = crate::stops::watch()?;
    // The document's Ingress, and the same without its annotations (the 60 s default) beside it.
    let variants = [Variant::documented(), Variant::without_annotations()];
    let echo = EchoServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), EchoConfig::default())
        .await?
        .spawn();
    let config = ControllerConfig::default();
    // Step 2 as documented (no TLS) ...
    let plain = wsgate_workload::documented::spec(Phase::Plain, &variants, &config, echo.addr())?;
    let mut plain = LocalIngress::start(&plain.spec)?;
    // ... and after the document's TLS step: Secret + patch.
    let secure = wsgate_workload::documented::spec(Phase::Tls, &variants, &config, echo.addr())?;
    let tls = secure
        .tls
        .as_ref()
        .context("the TLS phase has certificates")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let mut trust = vec![tls.documented.write_to(&out, DOCUMENTED_HOST)?.cert];
    if let Some(v) = &tls.variants {
        trust.push(v.write_to(&out, "variants")?.cert);
    }
    let mut secure = LocalIngress::start(&secure.spec)?;
    banner(&echo, &plain, &secure, &trust);
    let why = supervise(
        &mut stops,
        &echo,
        &mut [("nginx (ws)", &mut plain), ("nginx (wss)", &mut secure)],
    )
    .await;
    println!("stopping");
    drop(secure);
    drop(plain);
    echo.shutdown().await;
    match why {
        Ok(signal) => {
            println!("stopped ({signal})");
            Ok(())
        }
        Err(problem) => bail!(problem),
    }
}

fn banner(
    echo: &RunningEcho,
    plain: &LocalIngress,
    secure: &LocalIngress,
    trust: &[impl AsRef<Path>],
) {
    println!(
        "wsgate local tier is up: echo server {}; nginx pids {} {}; ws on {}, wss on {}",
        echo.addr(),
        plain.pid(),
        secure.pid(),
        plain.http_addr(),
        secure.https_addr()
    );
    println!();
    let mut table = timeouts_table();
    // ws as after the document's Step 2, wss as after its TLS step.
    rows(&mut table, Some("ws"), plain);
    rows(&mut table, Some("wss"), secure);
    println!("{table}");
    // Each ignored annotation value once, though both nginx render the same Ingresses.
    let mut warnings: Vec<String> = plain
        .warnings()
        .iter()
        .chain(secure.warnings())
        .map(ToString::to_string)
        .collect();
    warnings.sort();
    warnings.dedup();
    for w in &warnings {
        println!("  warning: {w}");
    }
    println!();
    println!("  the Host / SNI to present is the host; certificates to trust:");
    for t in trust {
        println!("    {}", t.as_ref().display());
    }
    println!();
    println!(
        "Try it (type a line, it comes back; stay idle to watch a timeout cut the connection):"
    );
    let (http, https) = (plain.http_addr(), secure.https_addr());
    for s in plain.servers() {
        println!(
            "  websocat --ws-c-uri=ws://{h}/ - ws-c:tcp:{http}",
            h = s.host
        );
    }
    for s in secure.servers() {
        println!(
            "  websocat -k --ws-c-uri=wss://{h}/ - ws-c:tls-c:tcp:{https} --tls-domain {h}",
            h = s.host
        );
        let cert = if s.host == DOCUMENTED_HOST {
            &trust[0]
        } else {
            trust.last().expect("a certificate")
        };
        println!(
            "  curl --cacert {} --resolve {h}:{p}:127.0.0.1 https://{h}:{p}/",
            cert.as_ref().display(),
            h = s.host,
            p = https.port()
        );
    }
    println!();
    println!("Ctrl-C stops everything.");
}

async fn supervise(
    stops: &mut crate::stops::Stops,
    echo: &RunningEcho,
    nginxes: &mut [(&str, &mut LocalIngress)],
) -> Result<&'static str, String> {
    // Waiting for the person, not for the system: no deadline on purpose.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            signal = stops.next() => return Ok(signal),
            _ = tick.tick() => {
                for (name, nginx) in nginxes.iter_mut() {
                    if let Some(status) = nginx.exited() {
                        return Err(format!(
                            "{name}, pid {}, exited ({status}); stopping the rest. Last lines of its error log ({}):\n{}",
                            nginx.pid(),
                            nginx.prefix().join("error.log").display(),
                            nginx.error_log_tail(10)
                        ));
                    }
                }
                if echo.is_finished() {
                    return Err(format!("the echo server on {} stopped; stopping the rest", echo.addr()));
                }
            }
        }
    }
}
