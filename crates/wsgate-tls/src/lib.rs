//! Certificates: self-signed ones for the suite's hosts (the document's `openssl req -x509 …
//! -days 365`), and a certificate authority for a cluster's own PKI (serving and client
//! certificates it signs).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

/// How long the generated certificate is valid, as in the document's `-days 365`.
pub const VALIDITY_DAYS: i64 = 365;

/// Errors while making or writing TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a certificate for hosts {hosts:?}")]
    Generate {
        hosts: Vec<String>,
        #[source]
        source: rcgen::Error,
    },
    #[error("a certificate needs at least one host name")]
    NoHosts,
    #[error(transparent)]
    Write(#[from] wsgate_fs::PathError),
}

/// A self-signed certificate and its private key.
///
/// `Debug` never prints the key: material ends up in logs through `{:?}` more often than by intent.
#[derive(Clone)]
pub struct TlsMaterial {
    hosts: Vec<String>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("hosts", &self.hosts)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Where [`TlsMaterial::write_to`] put the files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsMaterial {
    /// A certificate whose CN is the first host and whose SANs are all of them, valid for
    /// [`VALIDITY_DAYS`] from now (ECDSA P-256; the document's RSA 2048 only changes the key type).
    pub fn self_signed<S: AsRef<str>>(hosts: &[S]) -> Result<Self, TlsError> {
        let hosts: Vec<String> = hosts.iter().map(|h| h.as_ref().to_owned()).collect();
        let first = hosts.first().ok_or(TlsError::NoHosts)?.clone();
        let generate = |source| TlsError::Generate {
            hosts: hosts.clone(),
            source,
        };
        let mut params = CertificateParams::new(hosts.clone()).map_err(generate)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, first);
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(VALIDITY_DAYS);
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.self_signed(&key).map_err(generate)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            hosts,
        })
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate in DER, what a client adds to its trust store.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The private key in PEM. Callers must not log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes `<stem>.crt` (0644) and `<stem>.key` (0600) into `dir`.
    pub fn write_to(&self, dir: &Path, stem: &str) -> Result<TlsFiles, TlsError> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        wsgate_fs::write_with_mode(&cert, self.cert_pem.as_bytes(), 0o644)?;
        wsgate_fs::write_private(&key, self.key_pem.as_bytes())?;
        Ok(TlsFiles { cert, key })
    }
}

/// A certificate authority (ECDSA P-256, [`VALIDITY_DAYS`]): what a cluster's components trust,
/// and what signs their serving and client certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

impl Ca {
    pub fn new(common_name: &str) -> Result<Self, TlsError> {
        let generate = |source| TlsError::Generate {
            hosts: vec![common_name.to_owned()],
            source,
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.self_signed(&key).map_err(generate)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's private key in PEM (a controller-manager signs with it). Callers must not log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate for `names` (DNS names or IP addresses), CN the first.
    pub fn serving<S: AsRef<str>>(&self, names: &[S]) -> Result<TlsMaterial, TlsError> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
        let cn = names.first().ok_or(TlsError::NoHosts)?.clone();
        self.leaf(names, &cn, &[], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate: CN is the user, each O a group (`system:masters`).
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<TlsMaterial, TlsError> {
        self.leaf(
            Vec::new(),
            user,
            groups,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn leaf(
        &self,
        names: Vec<String>,
        cn: &str,
        groups: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> Result<TlsMaterial, TlsError> {
        let generate = |source| TlsError::Generate {
            hosts: vec![cn.to_owned()],
            source,
        };
        let mut params = CertificateParams::new(names.clone()).map_err(generate)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![purpose];
        validity(&mut params);
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok(TlsMaterial {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            hosts: names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_is_private_and_cert_file_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let m = TlsMaterial::self_signed(&["test.example.com"]).unwrap();
        let files = m.write_to(dir.path(), "ws").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.cert), 0o644);
        assert!(
            fs::read_to_string(&files.key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert!(
            fs::read_to_string(&files.cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }

    #[test]
    fn existing_world_readable_key_file_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ws.key");
        fs::write(&key, "old").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        TlsMaterial::self_signed(&["test.example.com"])
            .unwrap()
            .write_to(dir.path(), "ws")
            .unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn debug_output_never_contains_the_key() {
        let m = TlsMaterial::self_signed(&["test.example.com"]).unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("test.example.com"));
    }

    #[test]
    fn no_hosts_is_an_error() {
        let none: [&str; 0] = [];
        assert!(matches!(
            TlsMaterial::self_signed(&none),
            Err(TlsError::NoHosts)
        ));
    }

    #[test]
    fn a_ca_signs_serving_and_client_certificates_that_verify_against_it() {
        let ca = Ca::new("wsgate-bare-ca").unwrap();
        let server = ca
            .serving(&["127.0.0.1", "kubernetes.default.svc"])
            .unwrap();
        let client = ca.client("wsgate-admin", &["system:masters"]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let now = rustls_pki_types::UnixTime::now();
        for name in ["127.0.0.1", "kubernetes.default.svc"] {
            verifier
                .verify_server_cert(
                    server.cert_der(),
                    &[],
                    &rustls_pki_types::ServerName::try_from(name).unwrap(),
                    &[],
                    now,
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(client.key_pem().contains("PRIVATE KEY"));
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }
}
