//! The document's TLS step: the Secret `nginx-ingress-tls` and the `kubectl patch` body.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressTLS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The Secret name the document uses.
pub const TLS_SECRET_NAME: &str = "nginx-ingress-tls";

/// The Secret the suite uses for the derived variants' hosts (the document's certificate
/// covers only `test.example.com`).
pub const VARIANTS_TLS_SECRET: &str = "wsgate-variants-tls";

/// The document's patch, byte for byte:
/// `kubectl patch ingress ws -p '{"spec":{"tls":[{"hosts":["test.example.com"],"secretName":"nginx-ingress-tls"}]}}'`.
pub const DOCUMENTED_TLS_PATCH: &str =
    r#"{"spec":{"tls":[{"hosts":["test.example.com"],"secretName":"nginx-ingress-tls"}]}}"#;

/// A merge-patch body that sets `spec.tls` to one entry (the shape of the document's patch).
pub fn tls_patch(hosts: &[&str], secret: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"tls": [{"hosts": hosts, "secretName": secret}]}})
}

/// Applies the patch locally: a JSON merge patch replaces the `tls` list as a whole.
pub fn apply_tls(ingress: &mut Ingress, hosts: &[&str], secret: &str) {
    let spec = ingress.spec.get_or_insert_with(Default::default);
    spec.tls = Some(vec![IngressTLS {
        hosts: Some(hosts.iter().map(|h| (*h).to_owned()).collect()),
        secret_name: Some(secret.to_owned()),
    }]);
}

/// A `kubernetes.io/tls` Secret, what `kubectl create secret tls NAME --cert --key` creates.
pub fn tls_secret(name: &str, namespace: &str, cert_pem: &str, key_pem: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".into(),
                "wsgate".into(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".into(), ByteString(cert_pem.as_bytes().to_vec())),
            ("tls.key".into(), ByteString(key_pem.as_bytes().to_vec())),
        ])),
        ..Default::default()
    }
}

/// The Secret that covers `variant`'s host.
pub fn secret_for(variant: &crate::Variant) -> &'static str {
    if variant.host == crate::DOCUMENTED_HOST {
        TLS_SECRET_NAME
    } else {
        VARIANTS_TLS_SECRET
    }
}

/// The hosts other than the documented one, which share the variants' certificate.
pub fn derived_hosts(variants: &[crate::Variant]) -> Vec<&str> {
    variants
        .iter()
        .filter(|v| v.host != crate::DOCUMENTED_HOST)
        .map(|v| v.host.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_body_is_exactly_the_documented_one() {
        let body =
            serde_json::to_string(&tls_patch(&["test.example.com"], TLS_SECRET_NAME)).unwrap();
        assert_eq!(body, DOCUMENTED_TLS_PATCH);
    }

    #[test]
    fn applying_the_patch_sets_one_tls_entry() {
        let mut ing = crate::Documented::shipped().unwrap().ingress;
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        apply_tls(&mut ing, &["test.example.com"], TLS_SECRET_NAME);
        let tls = ing.spec.unwrap().tls.unwrap();
        assert_eq!(tls.len(), 1);
        assert_eq!(tls[0].secret_name.as_deref(), Some("nginx-ingress-tls"));
    }

    #[test]
    fn secret_has_the_tls_type_and_keys() {
        let s = tls_secret(TLS_SECRET_NAME, "default", "CERT", "KEY");
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = s.data.unwrap();
        assert_eq!(data["tls.crt"].0, b"CERT");
        assert_eq!(data["tls.key"].0, b"KEY");
    }
}
