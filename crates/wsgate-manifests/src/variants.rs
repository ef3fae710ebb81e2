//! Ingress variants derived in code from the documented one, each on its own host so they never collide.

use k8s_openapi::api::networking::v1::Ingress;

use crate::{DOCUMENTED_HOST, DOCUMENTED_INGRESS, PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT};

/// One Ingress the suite serves: the documented one, or a copy with other annotations and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The Ingress name (`ws` for the documented one).
    pub name: String,
    /// The host the Ingress routes (`test.example.com` for the documented one).
    pub host: String,
    /// Annotation changes on top of the documented ones: `Some` sets, `None` removes.
    pub annotations: Vec<(String, Option<String>)>,
    /// What this variant is for, for reports.
    pub describe: String,
}

impl Variant {
    /// The documented Ingress, unchanged.
    pub fn documented() -> Self {
        Self {
            name: DOCUMENTED_INGRESS.into(),
            host: DOCUMENTED_HOST.into(),
            annotations: Vec::new(),
            describe: "documented (read/send 3600)".into(),
        }
    }

    /// A copy on `<label>.test.example.com` named `ws-<label>` with the given annotation changes.
    pub fn derived(label: &str, describe: &str, annotations: &[(&str, Option<&str>)]) -> Self {
        Self {
            name: format!("{DOCUMENTED_INGRESS}-{label}"),
            host: format!("{label}.{DOCUMENTED_HOST}"),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
            describe: describe.into(),
        }
    }

    /// The documented Ingress without its two timeout annotations: controller defaults apply.
    pub fn without_annotations() -> Self {
        Self::derived(
            "no-annotations",
            "no timeout annotations (defaults 60)",
            &[(PROXY_READ_TIMEOUT, None), (PROXY_SEND_TIMEOUT, None)],
        )
    }

    /// Both timeout annotations set, on `<label>.test.example.com`.
    pub fn with_timeouts(label: &str, read: &str, send: &str) -> Self {
        Self::derived(
            label,
            &format!("read {read} / send {send}"),
            &[
                (PROXY_READ_TIMEOUT, Some(read)),
                (PROXY_SEND_TIMEOUT, Some(send)),
            ],
        )
    }

    /// Both timeouts set to `seconds` (a fast time scale for the same behaviour).
    pub fn short(seconds: u64) -> Self {
        let s = seconds.to_string();
        let mut v = Self::with_timeouts(&format!("short-{seconds}"), &s, &s);
        v.describe = format!("read/send {seconds}");
        v
    }

    /// Read timeout 3 s, send timeout 3600 s: shows which of the two cuts an idle connection.
    pub fn short_read_only() -> Self {
        Self::with_timeouts("short-read", "3", "3600")
    }

    /// Read timeout 3600 s, send timeout 3 s.
    pub fn short_send_only() -> Self {
        Self::with_timeouts("short-send", "3600", "3")
    }

    /// The Ingress variants the suite deploys on every tier, each on its own host.
    pub fn suite() -> Vec<Self> {
        vec![
            Self::documented(),
            Self::without_annotations(),
            Self::short(3),
            Self::short_read_only(),
            Self::short_send_only(),
        ]
    }

    pub fn is_documented(&self) -> bool {
        self.name == DOCUMENTED_INGRESS && self.annotations.is_empty()
    }

    /// Builds this variant's Ingress from the documented one.
    pub fn ingress(&self, documented: &Ingress) -> Ingress {
        derive_ingress(documented, &self.name, &self.host, &self.annotations)
    }
}

/// Copies `base`, renames it, points every rule (and TLS entry) at `host`, and applies the
/// annotation changes. Status and server-set metadata are dropped: this is a new object.
pub fn derive_ingress(
    base: &Ingress,
    name: &str,
    host: &str,
    annotations: &[(String, Option<String>)],
) -> Ingress {
    let mut ing = base.clone();
    ing.status = None;
    ing.metadata.name = Some(name.to_owned());
    ing.metadata.resource_version = None;
    ing.metadata.uid = None;
    ing.metadata.creation_timestamp = None;
    ing.metadata.managed_fields = None;
    let ann = ing
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    for (key, value) in annotations {
        match value {
            Some(v) => ann.insert(key.clone(), v.clone()),
            None => ann.remove(key),
        };
    }
    if ann.is_empty() {
        ing.metadata.annotations = None;
    }
    if let Some(spec) = ing.spec.as_mut() {
        for rule in spec.rules.iter_mut().flatten() {
            rule.host = Some(host.to_owned());
        }
        for tls in spec.tls.iter_mut().flatten() {
            tls.hosts = Some(vec![host.to_owned()]);
        }
    }
    ing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Documented;

    #[test]
    fn documented_variant_is_the_documented_ingress() {
        let d = Documented::shipped().unwrap();
        assert_eq!(Variant::documented().ingress(&d.ingress), d.ingress);
        assert!(Variant::documented().is_documented());
    }

    #[test]
    fn without_annotations_drops_both_timeouts_and_moves_host() {
        let d = Documented::shipped().unwrap();
        let v = Variant::without_annotations();
        let ing = v.ingress(&d.ingress);
        assert_eq!(ing.metadata.name.as_deref(), Some("ws-no-annotations"));
        assert_eq!(ing.metadata.annotations, None);
        let rule = &ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        assert_eq!(
            rule.host.as_deref(),
            Some("no-annotations.test.example.com")
        );
        // Everything else is the document's.
        assert_eq!(
            ing.spec.as_ref().unwrap().ingress_class_name.as_deref(),
            Some("nginx")
        );
        assert_eq!(
            rule.http,
            d.ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0].http
        );
    }

    #[test]
    fn short_variant_sets_both_annotations() {
        let d = Documented::shipped().unwrap();
        let ing = Variant::short(3).ingress(&d.ingress);
        let ann = ing.metadata.annotations.unwrap();
        assert_eq!(ann[PROXY_READ_TIMEOUT], "3");
        assert_eq!(ann[PROXY_SEND_TIMEOUT], "3");
        assert_eq!(ing.metadata.name.as_deref(), Some("ws-short-3"));
    }

    #[test]
    fn variants_never_share_a_host_or_name() {
        let vs = Variant::suite();
        for (i, a) in vs.iter().enumerate() {
            for b in &vs[i + 1..] {
                assert_ne!(a.host, b.host);
                assert_ne!(a.name, b.name);
            }
        }
    }
}
