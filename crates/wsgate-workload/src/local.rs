//! A team's own manifests on the local tier: nginx rendered from their Ingresses, each backend
//! Service port served by the server they name (`--backend`) or by the echo server, TLS from
//! their Secrets (a Secret without data gets a generated certificate, and a note says so).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use rustls_pki_types::CertificateDer;
use wsgate_echo::{EchoConfig, EchoServer, RunningEcho};
use wsgate_local::{LocalIngress, LocalIngressSpec, ServiceRef};
use wsgate_manifests::{Workload, tls_secret};
use wsgate_tls::TlsMaterial;

use crate::checks::{Addrs, Checked};

/// Why the local tier cannot serve the manifests.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Manifest(#[from] wsgate_manifests::ManifestError),
    #[error(transparent)]
    Config(#[from] wsgate_manifests::ControllerConfigError),
    #[error(
        "Ingress {ingress}: backend Service {service} is not in the manifests, and no --backend {service}=HOST:PORT names a server for it"
    )]
    NoBackend {
        ingress: String,
        service: ServiceRef,
    },
    #[error("Ingress {ingress}: Service {service} has no port {port}")]
    NoPort {
        ingress: String,
        service: String,
        port: i32,
    },
    #[error("cannot read the certificate to trust {}", path.display())]
    Trust {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("Secret {secret}: tls.crt is not a PEM certificate")]
    SecretCert {
        secret: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error(transparent)]
    Echo(#[from] wsgate_echo::EchoError),
    #[error(transparent)]
    Tls(#[from] wsgate_tls::TlsError),
    #[error(transparent)]
    Local(#[from] wsgate_local::LocalError),
}

/// The manifests served locally: nginx, the echo server, and what to check.
pub struct LocalWorkload {
    pub nginx: LocalIngress,
    pub echo: RunningEcho,
    pub rules: Vec<Checked>,
    pub addrs: Addrs,
    /// Things the reader must know (generated certificates, unrendered Ingresses).
    pub notes: Vec<String>,
}

/// What `--backend` and `--echo` say.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// Service ports served by a running server.
    pub named: BTreeMap<ServiceRef, SocketAddr>,
    /// The named servers echo, so echo checks run against them too.
    pub echo: bool,
}

/// Starts the local tier for `w`. nginx is started synchronously on this thread: its
/// parent-death signal is tied to the thread that forks it.
pub async fn start(
    w: &Workload,
    backends: &Backends,
    trust_files: &[PathBuf],
) -> Result<LocalWorkload, WorkloadError> {
    let config = w.controller_config()?;
    let rules = w.rules(&config)?;
    let echo = EchoServer::bind(
        "127.0.0.1:0".parse().expect("loopback"),
        EchoConfig::default(),
    )
    .await?
    .spawn();
    let mut notes = Vec::new();
    let mut served: BTreeMap<ServiceRef, SocketAddr> = BTreeMap::new();
    let mut echoing: BTreeSet<ServiceRef> = BTreeSet::new();
    for rule in rules.iter().filter(|r| !r.regex) {
        let sref = ServiceRef::new(&rule.namespace, &rule.service, rule.port);
        if let Some(addr) = backends.named.get(&sref) {
            served.insert(sref.clone(), *addr);
            if backends.echo {
                echoing.insert(sref);
            }
            continue;
        }
        let service =
            w.service(&rule.namespace, &rule.service)
                .ok_or_else(|| WorkloadError::NoBackend {
                    ingress: rule.ingress.clone(),
                    service: sref.clone(),
                })?;
        let has_port = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|ports| ports.iter().any(|p| p.port == rule.port));
        if !has_port {
            return Err(WorkloadError::NoPort {
                ingress: rule.ingress.clone(),
                service: format!("{}/{}", rule.namespace, rule.service),
                port: rule.port,
            });
        }
        served.insert(sref.clone(), echo.addr());
        echoing.insert(sref);
    }
    // TLS: the manifests' Secrets as they are; those without data (or missing) get a
    // generated certificate for the hosts that use them.
    let mut secrets: Vec<Secret> = Vec::new();
    let mut trust: Vec<CertificateDer<'static>> = Vec::new();
    for ((ns, name), hosts) in &wsgate_manifests::tls_secret_hosts(&rules) {
        let given = w.secret(ns, name);
        match (given, given.and_then(wsgate_manifests::tls_pair)) {
            (Some(secret), Some((crt, _))) => {
                trust.extend(wsgate_probe::pem_certificates(crt).map_err(|source| {
                    WorkloadError::SecretCert {
                        secret: format!("{ns}/{name}"),
                        source,
                    }
                })?);
                secrets.push(secret.clone());
            }
            (given, _) => {
                let material = TlsMaterial::self_signed(hosts)?;
                notes.push(format!(
                    "Secret {ns}/{name} {}: the local tier generated a self-signed certificate for {}",
                    if given.is_some() { "has no tls.crt/tls.key" } else { "is not in the manifests" },
                    hosts.join(", ")
                ));
                trust.push(material.cert_der().clone());
                secrets.push(tls_secret(
                    name,
                    ns,
                    material.cert_pem(),
                    material.key_pem(),
                ));
            }
        }
    }
    for path in trust_files {
        trust.extend(wsgate_probe::pem_file_certificates(path).map_err(|source| {
            WorkloadError::Trust {
                path: path.clone(),
                source,
            }
        })?);
    }
    let nginx = LocalIngress::start(&LocalIngressSpec {
        ingresses: w.resolved_ingresses(),
        secrets,
        config,
        backends: served,
    })?;
    notes.extend(nginx.skipped().iter().cloned());
    let addrs = Addrs {
        http: nginx.http_addr().to_string(),
        https: nginx.https_addr().to_string(),
        trust,
    };
    let rules = rules
        .into_iter()
        .filter(|r| !r.regex)
        .map(|rule| Checked {
            echoes: echoing.contains(&ServiceRef::new(&rule.namespace, &rule.service, rule.port)),
            rule,
        })
        .collect();
    Ok(LocalWorkload {
        nginx,
        echo,
        rules,
        addrs,
        notes,
    })
}
