//! The document's manifests on the local tier: its Ingress (and the suite's derived variants of
//! it) rendered for nginx in front of an echo server, as after the document's step 2 or after
//! its TLS step. Written once here for the tests' local target and for `local-up`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use wsgate_contract::Phase;
use wsgate_local::{LocalIngressSpec, ServiceRef};
use wsgate_manifests::{ControllerConfig, Documented, Variant, apply_tls, secret_for};

use crate::local::WorkloadError;
use crate::tls::TlsSetup;

/// What nginx serves for the document in a phase, and (after the TLS step) the certificates.
pub struct DocumentedSpec {
    pub spec: LocalIngressSpec,
    /// `Some` in [`Phase::Tls`]: the generated certificates, for the client to trust.
    pub tls: Option<TlsSetup>,
}

/// `variants` of the documented Ingress with `config`, its Service served by `echo`: as after
/// step 2 ([`Phase::Plain`]), or after the TLS step ([`Phase::Tls`]: certificates generated,
/// stored as the document's Secrets, and `spec.tls` set as the document's patch sets it).
pub fn spec(
    phase: Phase,
    variants: &[Variant],
    config: &ControllerConfig,
    echo: SocketAddr,
) -> Result<DocumentedSpec, WorkloadError> {
    let documented = Documented::shipped()?;
    let mut ingresses: Vec<_> = variants
        .iter()
        .map(|v| v.ingress(&documented.ingress))
        .collect();
    let mut spec = LocalIngressSpec {
        config: config.clone(),
        backends: BTreeMap::from([(
            ServiceRef::new(
                wsgate_manifests::DOCUMENTED_NAMESPACE,
                wsgate_manifests::DOCUMENTED_SERVICE,
                wsgate_manifests::DOCUMENTED_PORT.into(),
            ),
            echo,
        )]),
        ..Default::default()
    };
    let tls = match phase {
        Phase::Plain => None,
        Phase::Tls => {
            let tls = TlsSetup::generate(variants)?;
            for (ing, v) in ingresses.iter_mut().zip(variants) {
                apply_tls(ing, &[&v.host], secret_for(v));
            }
            spec.secrets = tls.secrets(wsgate_manifests::DOCUMENTED_NAMESPACE);
            Some(tls)
        }
    };
    spec.ingresses = ingresses;
    Ok(DocumentedSpec { spec, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_tls_step_every_variant_names_a_secret_that_is_there() {
        let variants = Variant::suite();
        let echo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let plain = spec(Phase::Plain, &variants, &ControllerConfig::default(), echo).unwrap();
        assert!(plain.tls.is_none() && plain.spec.secrets.is_empty());
        let tls = spec(Phase::Tls, &variants, &ControllerConfig::default(), echo).unwrap();
        let names: Vec<_> = tls
            .spec
            .secrets
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        for ing in &tls.spec.ingresses {
            let wanted = ing.spec.as_ref().unwrap().tls.as_ref().unwrap()[0]
                .secret_name
                .clone()
                .unwrap();
            assert!(names.contains(&wanted), "{wanted} not in {names:?}");
        }
        assert_eq!(tls.tls.unwrap().certs().len(), 2);
    }
}
