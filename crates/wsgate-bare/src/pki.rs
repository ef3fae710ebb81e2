//! The control plane's certificates: a CA, the API server's serving certificate (for
//! 127.0.0.1 and the `kubernetes` Service's names and address), an admin client certificate in
//! group `system:masters`, and the service-account signing key. Keys are written 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use wsgate_tls::Ca;

use crate::BareError;

/// Where the files are.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub apiserver: PathBuf,
    pub apiserver_key: PathBuf,
    pub admin: PathBuf,
    pub admin_key: PathBuf,
    /// The service-account signing key (private) and its public half.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

pub(crate) fn generate(dir: &Path, service_ip: IpAddr) -> Result<Pki, BareError> {
    std::fs::create_dir_all(dir).map_err(wsgate_fs::at("create", dir))?;
    let ca = Ca::new("wsgate-bare-ca")?;
    let ca_crt = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    wsgate_fs::write_with_mode(&ca_crt, ca.cert_pem().as_bytes(), 0o644)?;
    wsgate_fs::write_private(&ca_key, ca.key_pem().as_bytes())?;
    let service_ip = service_ip.to_string();
    let serving = ca
        .serving(&[
            "127.0.0.1",
            "localhost",
            &service_ip,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ])?
        .write_to(dir, "apiserver")?;
    let admin = ca
        .client("wsgate-admin", &["system:masters"])?
        .write_to(dir, "admin")?;
    let sa = rcgen::KeyPair::generate().map_err(|source| wsgate_tls::TlsError::Generate {
        hosts: vec!["service-account".into()],
        source,
    })?;
    let sa_key = dir.join("sa.key");
    let sa_pub = dir.join("sa.pub");
    wsgate_fs::write_private(&sa_key, sa.serialize_pem().as_bytes())?;
    wsgate_fs::write_with_mode(&sa_pub, sa.public_key_pem().as_bytes(), 0o644)?;
    Ok(Pki {
        ca: ca_crt,
        ca_key,
        apiserver: serving.cert,
        apiserver_key: serving.key,
        admin: admin.cert,
        admin_key: admin.key,
        sa_key,
        sa_pub,
    })
}

/// A kubeconfig for `server` with the admin certificate.
pub(crate) fn kubeconfig(pki: &Pki, server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bare\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: wsgate-admin\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n\
         contexts:\n- name: bare\n  context:\n    cluster: bare\n    user: wsgate-admin\ncurrent-context: bare\n",
        ca = pki.ca.display(),
        crt = pki.admin.display(),
        key = pki.admin_key.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn every_key_is_private_and_the_kubeconfig_names_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate(dir.path(), "10.96.0.1".parse().unwrap()).unwrap();
        for key in [&pki.ca_key, &pki.apiserver_key, &pki.admin_key, &pki.sa_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let kc = kubeconfig(&pki, "https://127.0.0.1:6443");
        assert!(kc.contains(&pki.admin.display().to_string()));
        assert!(
            !kc.contains("PRIVATE KEY"),
            "the kubeconfig names files, holds no key"
        );
    }
}
