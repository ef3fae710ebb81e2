//! What the controller ignores and what the local tier does not model, each named with its
//! consequence for the results.

use k8s_openapi::api::networking::v1::Ingress;

use super::{ANNOTATION_PREFIX, Workload, object_id};
use crate::annotations::TIMEOUT_ANNOTATIONS;
use crate::{ControllerConfig, ProxyTimeouts};

/// Something the controller or the local tier ignores, named with its consequence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    pub ingress: String,
    pub annotation: String,
    pub value: String,
    pub consequence: String,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ingress {}: {}={:?}: {}",
            self.ingress, self.annotation, self.value, self.consequence
        )
    }
}

impl Workload {
    /// Every value the controller ignores and every annotation the local tier does not model,
    /// each with its consequence.
    pub fn notices(&self, config: &ControllerConfig) -> Vec<Notice> {
        let mut out = Vec::new();
        for ing in &self.ingresses {
            let ingress = object_id(&ing.metadata);
            let (_, ignored) = ProxyTimeouts::for_ingress(ing, config);
            out.extend(ignored.into_iter().map(|w| Notice {
                ingress: w.ingress.clone(),
                annotation: w.annotation.clone(),
                value: w.value.clone(),
                consequence: format!(
                    "{}; ingress-nginx ignores it and uses {} s",
                    w.reason, w.fallback
                ),
            }));
            out.extend(uncovered_tls_hosts(ing).into_iter().map(|host| Notice {
                ingress: ingress.clone(),
                annotation: "spec.tls".into(),
                value: host,
                consequence: format!(
                    "the Ingress has a tls section but no entry lists this host with a secretName: ingress-nginx serves it its default certificate (unless a TLS Secret of the Ingress covers the host){}; list the host under spec.tls[].hosts with a secretName",
                    if config.ssl_redirect {
                        ", and redirects http to https (ssl-redirect)"
                    } else {
                        ""
                    }
                ),
            }));
            for (key, value) in ing.metadata.annotations.iter().flatten() {
                if !key.starts_with(ANNOTATION_PREFIX)
                    || TIMEOUT_ANNOTATIONS.contains(&key.as_str())
                {
                    continue;
                }
                out.push(Notice {
                    ingress: ingress.clone(),
                    annotation: key.clone(),
                    value: value.clone(),
                    consequence: unmodeled(key.trim_start_matches(ANNOTATION_PREFIX)),
                });
            }
        }
        out
    }
}

/// The rule hosts of an Ingress with a tls section that no tls entry with a secretName lists.
fn uncovered_tls_hosts(ing: &Ingress) -> Vec<String> {
    let Some(spec) = ing
        .spec
        .as_ref()
        .filter(|s| s.tls.as_ref().is_some_and(|t| !t.is_empty()))
    else {
        return Vec::new();
    };
    let covered = |h: &str| {
        spec.tls.iter().flatten().any(|t| {
            t.secret_name.as_deref().is_some_and(|n| !n.is_empty())
                && t.hosts.iter().flatten().any(|x| x == h)
        })
    };
    let mut out: Vec<String> = Vec::new();
    for rule in spec.rules.iter().flatten() {
        if let Some(h) = rule.host.as_deref()
            && !covered(h)
            && !out.iter().any(|o| o == h)
        {
            out.push(h.to_owned());
        }
    }
    out
}

/// What an annotation the local tier does not model means for the results.
fn unmodeled(key: &str) -> String {
    let what = match key {
        k if k.starts_with("affinity") || k.starts_with("session-cookie") => "sticky sessions",
        "use-regex" | "rewrite-target" => "a regular-expression path",
        k if k.starts_with("auth-") => "authentication",
        k if k.starts_with("limit-") => "rate limits",
        k if k.contains("ssl") || k.contains("tls") => "TLS handling",
        _ => "this setting",
    };
    format!(
        "the local tier does not model {what}: the local nginx runs without it, so its results may differ from the controller's (on a cluster the controller applies it)"
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{chat, chat_with};
    use super::*;

    #[test]
    fn unmodeled_annotations_are_named_with_their_consequence() {
        let w = chat();
        let notices = w.notices(&w.controller_config().unwrap());
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(
            notices[0].annotation,
            "nginx.ingress.kubernetes.io/affinity"
        );
        assert!(
            notices[0].consequence.contains("sticky sessions"),
            "{}",
            notices[0]
        );
    }

    #[test]
    fn ignored_values_are_notices_too() {
        let w = chat_with("proxy-read-timeout: \"4\"", "proxy-read-timeout: \"4s\"");
        let notices = w.notices(&w.controller_config().unwrap());
        assert!(
            notices
                .iter()
                .any(|n| n.value == "4s" && n.consequence.contains("uses 20 s")),
            "{notices:?}"
        );
    }

    #[test]
    fn a_host_the_tls_section_leaves_out_is_named_with_what_the_controller_does() {
        let w = chat_with(
            "  - host: chat.example.org\n",
            "  - host: chat.example.org\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: chat, port: {number: 8080}}}}]}\n  - host: other.example.org\n",
        );
        let notices = w.notices(&w.controller_config().unwrap());
        let tls: Vec<&Notice> = notices
            .iter()
            .filter(|n| n.annotation == "spec.tls")
            .collect();
        assert_eq!(tls.len(), 1, "{notices:#?}");
        assert_eq!(tls[0].value, "other.example.org");
        assert!(
            tls[0].consequence.contains("redirects http to https"),
            "{}",
            tls[0]
        );
    }
}
