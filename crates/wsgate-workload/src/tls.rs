//! The TLS phase's material: the documented Secret for `test.example.com`, and one more for the
//! derived variants' hosts (the documented certificate covers only `test.example.com`).

use k8s_openapi::api::core::v1::Secret;
use rustls_pki_types::CertificateDer;
use wsgate_manifests::{
    DOCUMENTED_HOST, TLS_SECRET_NAME, VARIANTS_TLS_SECRET, Variant, derived_hosts, tls_secret,
};
use wsgate_tls::TlsMaterial;

/// The certificates of the TLS phase.
pub struct TlsSetup {
    pub documented: TlsMaterial,
    pub variants: Option<TlsMaterial>,
}

impl TlsSetup {
    pub fn generate(variants: &[Variant]) -> Result<Self, wsgate_tls::TlsError> {
        let hosts = derived_hosts(variants);
        Ok(Self {
            documented: TlsMaterial::self_signed(&[DOCUMENTED_HOST])?,
            variants: if hosts.is_empty() {
                None
            } else {
                Some(TlsMaterial::self_signed(&hosts)?)
            },
        })
    }

    pub fn secrets(&self, namespace: &str) -> Vec<Secret> {
        std::iter::once((TLS_SECRET_NAME, &self.documented))
            .chain(self.variants.iter().map(|v| (VARIANTS_TLS_SECRET, v)))
            .map(|(name, m)| tls_secret(name, namespace, m.cert_pem(), m.key_pem()))
            .collect()
    }

    pub fn certs(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(&self.documented)
            .chain(&self.variants)
            .map(|m| m.cert_der().clone())
            .collect()
    }
}
