//! rustls client configurations: trust exactly the given certificates, or (only when asked) none.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Which server certificates the probe accepts.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Only certificates that chain to one of these (self-signed ones are their own root).
    Certificates(Vec<CertificateDer<'static>>),
    /// Accept any certificate, like `websocat -k`. Never the default.
    SkipVerification,
}

impl Trust {
    pub fn only(cert: CertificateDer<'static>) -> Self {
        Self::Certificates(vec![cert])
    }
}

/// Every certificate of a PEM text (a leaf and its chain, or CAs): trusting the chain's
/// issuers is what lets a CA-issued leaf verify. At least one is required.
pub fn pem_certificates(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(rustls_pki_types::pem::Error::NoItemsFound);
    }
    Ok(certs)
}

/// [`pem_certificates`] of a file.
pub fn pem_file_certificates(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error> {
    let pem = std::fs::read(path).map_err(rustls_pki_types::pem::Error::Io)?;
    pem_certificates(&pem)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, rustls::Error> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::Certificates(certs) => {
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots.add(cert.clone())?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::SkipVerification => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
            .with_no_client_auth(),
    };
    // WebSockets over TLS speak HTTP/1.1; say so, so that an h2-enabled proxy does not pick h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    use super::*;

    /// A leaf for `chat.example.org` issued by a CA: the leaf's DER and PEM, the CA's PEM.
    fn issued() -> (CertificateDer<'static>, String, String) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf = CertificateParams::new(vec!["chat.example.org".to_owned()])
            .unwrap()
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap();
        (leaf.der().clone(), leaf.pem(), ca.pem())
    }

    fn verifies(trusted: &str, leaf: &CertificateDer<'_>) -> bool {
        let mut roots = RootCertStore::empty();
        for c in pem_certificates(trusted.as_bytes()).unwrap() {
            roots.add(c).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_server_cert(
                leaf,
                &[],
                &ServerName::try_from("chat.example.org").unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    #[test]
    fn a_ca_issued_leaf_verifies_when_its_chain_is_trusted_not_the_leaf_alone() {
        let (leaf, leaf_pem, ca_pem) = issued();
        assert_eq!(
            pem_certificates(format!("{leaf_pem}{ca_pem}").as_bytes())
                .unwrap()
                .len(),
            2,
            "every certificate of a tls.crt with its chain is read"
        );
        assert!(verifies(&format!("{leaf_pem}{ca_pem}"), &leaf));
        assert!(verifies(&ca_pem, &leaf), "--trust naming the CA");
        assert!(
            !verifies(&leaf_pem, &leaf),
            "a CA-issued leaf is no trust anchor for itself"
        );
    }

    #[test]
    fn pem_without_a_certificate_is_an_error() {
        assert!(matches!(
            pem_certificates(b"not pem"),
            Err(rustls_pki_types::pem::Error::NoItemsFound)
        ));
    }
}
