//! `cargo xtask local-up`: the local tier for a person, up until Ctrl-C (the document's Step 3 by hand).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use wsgate_echo::{EchoConfig, EchoServer};
use wsgate_local::{LocalIngress, LocalIngressSpec, ServiceRef};
use wsgate_manifests::{DOCUMENTED_HOST, Documented, TLS_SECRET_NAME, apply_tls, tls_secret};
use wsgate_tls::TlsMaterial;

use crate::flags::LocalUpArgs;

pub fn run(args: LocalUpArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(up(args))
}

async fn up(args: LocalUpArgs) -> anyhow::Result<()> {
    let documented = Documented::shipped()?;
    let echo = EchoServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), EchoConfig::default())
        .await?
        .spawn();
    let backends = BTreeMap::from([(
        ServiceRef::new(
            wsgate_manifests::DOCUMENTED_NAMESPACE,
            wsgate_manifests::DOCUMENTED_SERVICE,
            wsgate_manifests::DOCUMENTED_PORT.into(),
        ),
        echo.addr(),
    )]);
    // Step 2 as documented (no TLS) ...
    let plain = LocalIngress::start(&LocalIngressSpec {
        ingresses: vec![documented.ingress.clone()],
        backends: backends.clone(),
        ..Default::default()
    })?;
    // ... and after the document's TLS step: Secret + patch.
    let tls = TlsMaterial::self_signed(&[DOCUMENTED_HOST])?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let cert_file = tls.write_to(&out, DOCUMENTED_HOST)?.cert;
    let mut patched = documented.ingress.clone();
    apply_tls(&mut patched, &[DOCUMENTED_HOST], TLS_SECRET_NAME);
    let secure = LocalIngress::start(&LocalIngressSpec {
        ingresses: vec![patched],
        secrets: vec![tls_secret(
            TLS_SECRET_NAME,
            "default",
            tls.cert_pem(),
            tls.key_pem(),
        )],
        backends,
        ..Default::default()
    })?;
    let (http, https) = (plain.http_addr(), secure.https_addr());
    println!(
        "wsgate local tier is up (echo server {}, nginx pids {} and {}).",
        echo.addr(),
        plain.pid(),
        secure.pid()
    );
    println!();
    println!(
        "  ws://{DOCUMENTED_HOST}/   -> dial {http}   (documented Ingress `ws`, read/send timeout 3600 s)"
    );
    println!(
        "  wss://{DOCUMENTED_HOST}/  -> dial {https}  (after the TLS patch; Secret {TLS_SECRET_NAME})"
    );
    println!("  Host / SNI to present: {DOCUMENTED_HOST}");
    println!("  certificate to trust:  {}", cert_file.display());
    println!(
        "  nginx configs:         {} and {}",
        plain.conf_path().display(),
        secure.conf_path().display()
    );
    println!();
    println!("Try it (type a line, it comes back):");
    println!("  websocat --ws-c-uri=ws://{DOCUMENTED_HOST}/ - ws-c:tcp:{http}");
    println!(
        "  websocat -k --ws-c-uri=wss://{DOCUMENTED_HOST}/ - ws-c:tls-c:tcp:{https} --tls-domain {DOCUMENTED_HOST}"
    );
    println!(
        "  curl --cacert {} --resolve {DOCUMENTED_HOST}:{}:127.0.0.1 https://{DOCUMENTED_HOST}:{}/",
        cert_file.display(),
        https.port(),
        https.port()
    );
    println!();
    println!("Ctrl-C stops everything.");
    // Waiting for the person, not for the system: no deadline on purpose.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    println!("stopping");
    drop(secure);
    drop(plain);
    echo.shutdown().await;
    Ok(())
}
