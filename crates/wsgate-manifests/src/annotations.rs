//! The three proxy timeout annotations, read the way ingress-nginx reads them, with loud warnings.

use std::fmt;

use k8s_openapi::api::networking::v1::Ingress;

use crate::ControllerConfig;

pub const PROXY_CONNECT_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-connect-timeout";
pub const PROXY_READ_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-read-timeout";
pub const PROXY_SEND_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-send-timeout";
pub const TIMEOUT_ANNOTATIONS: [&str; 3] = [
    PROXY_CONNECT_TIMEOUT,
    PROXY_READ_TIMEOUT,
    PROXY_SEND_TIMEOUT,
];

/// Parses an annotation value as ingress-nginx does (`strconv.Atoi`: optional sign, ASCII digits,
/// nothing else), and also refuses negatives, which render as `-1s` and fail `nginx -t`.
pub fn parse_seconds(value: &str) -> Result<u64, &'static str> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if value.is_empty() {
        return Err("is empty");
    }
    if let Some(rest) = value.strip_prefix('-') {
        return if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            Err(
                "is negative (nginx rejects a negative timeout, so the controller's admission check refuses the Ingress)",
            )
        } else {
            Err("is not an integer number of seconds")
        };
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "is not an integer number of seconds (units such as \"s\" or \"h\" are not accepted)",
        );
    }
    digits.parse::<u64>().map_err(|_| "is out of range")
}

/// An annotation value the controller silently ignores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AnnotationWarning {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    pub annotation: String,
    pub value: String,
    pub reason: String,
    /// The seconds the controller uses instead.
    pub fallback: u64,
}

impl fmt::Display for AnnotationWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ingress {}: annotation {}={:?} {}; ingress-nginx ignores it and uses {} s. Write a plain number of seconds, e.g. \"3600\".",
            self.ingress, self.annotation, self.value, self.reason, self.fallback
        )
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The Ingress's own annotation.
    Annotation,
    /// The controller ConfigMap.
    ConfigMap,
    /// The controller's built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Annotation => "annotation",
            Self::ConfigMap => "ConfigMap",
            Self::Default => "controller default",
        })
    }
}

/// One effective timeout, in seconds, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    pub seconds: u64,
    pub source: Source,
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s ({})", self.seconds, self.source)
    }
}

/// Effective proxy timeouts of an Ingress's locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProxyTimeouts {
    pub connect: Effective,
    pub read: Effective,
    pub send: Effective,
}

impl ProxyTimeouts {
    /// The controller's defaults (ConfigMap, else built in) before any annotation.
    pub fn defaults(config: &ControllerConfig) -> Self {
        let of = |seconds, key| Effective {
            seconds,
            source: config.source_of(key),
        };
        Self {
            connect: of(config.proxy_connect_timeout, "proxy-connect-timeout"),
            read: of(config.proxy_read_timeout, "proxy-read-timeout"),
            send: of(config.proxy_send_timeout, "proxy-send-timeout"),
        }
    }

    /// The timeouts the controller renders for `ingress` given its defaults, and a warning for
    /// each annotation it would ignore.
    pub fn for_ingress(
        ingress: &Ingress,
        config: &ControllerConfig,
    ) -> (Self, Vec<AnnotationWarning>) {
        let mut timeouts = Self::defaults(config);
        let mut warnings = Vec::new();
        let Some(annotations) = ingress.metadata.annotations.as_ref() else {
            return (timeouts, warnings);
        };
        let id = crate::object_id(&ingress.metadata);
        for (key, slot) in [
            (PROXY_CONNECT_TIMEOUT, &mut timeouts.connect),
            (PROXY_READ_TIMEOUT, &mut timeouts.read),
            (PROXY_SEND_TIMEOUT, &mut timeouts.send),
        ] {
            let Some(value) = annotations.get(key) else {
                continue;
            };
            match parse_seconds(value) {
                Ok(seconds) => {
                    *slot = Effective {
                        seconds,
                        source: Source::Annotation,
                    }
                }
                Err(reason) => warnings.push(AnnotationWarning {
                    ingress: id.clone(),
                    annotation: key.to_owned(),
                    value: value.clone(),
                    reason: reason.to_owned(),
                    fallback: slot.seconds,
                }),
            }
        }
        (timeouts, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Documented;

    #[test]
    fn plain_integers_are_seconds() {
        assert_eq!(parse_seconds("3600"), Ok(3600));
        assert_eq!(parse_seconds("+5"), Ok(5));
        assert_eq!(parse_seconds("0"), Ok(0));
    }

    #[test]
    fn values_the_controller_ignores_are_errors() {
        for bad in [
            "3600s", "1h", "abc", "", " 60", "60 ", "-1", "-", "+", "1.5",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(parse_seconds("-1").unwrap_err().contains("negative"));
    }

    #[test]
    fn documented_ingress_gets_3600_and_no_warning() {
        let d = Documented::shipped().unwrap();
        let (t, w) = ProxyTimeouts::for_ingress(&d.ingress, &ControllerConfig::default());
        let secs = |e: Effective| (e.seconds, e.source);
        assert_eq!(secs(t.connect), (5, Source::Default));
        assert_eq!(secs(t.read), (3600, Source::Annotation));
        assert_eq!(secs(t.send), (3600, Source::Annotation));
        assert!(w.is_empty());
    }

    #[test]
    fn invalid_value_falls_back_to_the_default_and_warns_with_names() {
        let mut ing = Documented::shipped().unwrap().ingress;
        ing.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(PROXY_READ_TIMEOUT.into(), "3600s".into());
        let (t, w) = ProxyTimeouts::for_ingress(&ing, &ControllerConfig::default());
        assert_eq!((t.read.seconds, t.read.source), (60, Source::Default));
        assert_eq!(t.send.seconds, 3600);
        assert_eq!(w.len(), 1);
        let text = w[0].to_string();
        assert!(
            text.contains("default/ws")
                && text.contains(PROXY_READ_TIMEOUT)
                && text.contains("\"3600s\""),
            "{text}"
        );
        assert!(text.contains("uses 60 s"), "{text}");
    }

    #[test]
    fn no_annotations_means_controller_defaults() {
        let mut ing = Documented::shipped().unwrap().ingress;
        ing.metadata.annotations = None;
        let config = ControllerConfig::default()
            .with_configmap(&[("proxy-read-timeout".to_owned(), "30".to_owned())].into())
            .unwrap();
        let (t, _) = ProxyTimeouts::for_ingress(&ing, &config);
        let secs = |e: Effective| (e.seconds, e.source);
        assert_eq!(secs(t.connect), (5, Source::Default));
        assert_eq!(secs(t.read), (30, Source::ConfigMap));
        assert_eq!(secs(t.send), (60, Source::Default));
    }
}
