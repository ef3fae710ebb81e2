//! ingress-nginx controller defaults (v1.15.1) and their ConfigMap overrides.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The controller settings the suite renders; defaults from `internal/ingress/controller/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    pub proxy_connect_timeout: u64,
    pub proxy_read_timeout: u64,
    pub proxy_send_timeout: u64,
    /// How long old workers keep upgraded connections after a reload.
    pub worker_shutdown_timeout: Duration,
    /// Plain http to a host with TLS is redirected (308).
    pub ssl_redirect: bool,
    /// Client keepalive (`keep-alive`), seconds.
    pub keep_alive: u64,
    /// HTTP/2 on TLS servers (`use-http2`, on by default): ALPN offers `h2`.
    pub use_http2: bool,
    /// The ConfigMap keys that set the values above (the others are controller defaults).
    pub from_configmap: BTreeSet<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            proxy_connect_timeout: 5,
            proxy_read_timeout: 60,
            proxy_send_timeout: 60,
            worker_shutdown_timeout: Duration::from_secs(240),
            ssl_redirect: true,
            keep_alive: 75,
            use_http2: true,
            from_configmap: BTreeSet::new(),
        }
    }
}

/// A ConfigMap key the suite cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("controller ConfigMap key {key}={value:?}: {reason}")]
pub struct ControllerConfigError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl ControllerConfig {
    /// Applies the keys of an `ingress-nginx-controller` ConfigMap's `data` that the suite knows;
    /// other keys are ignored, as they don't change what the suite renders.
    pub fn with_configmap(
        mut self,
        data: &BTreeMap<String, String>,
    ) -> Result<Self, ControllerConfigError> {
        for (key, value) in data {
            let err = |reason: String| ControllerConfigError {
                key: key.clone(),
                value: value.clone(),
                reason,
            };
            let secs = || crate::parse_seconds(value).map_err(|r| err(r.to_owned()));
            match key.as_str() {
                "proxy-connect-timeout" => self.proxy_connect_timeout = secs()?,
                "proxy-read-timeout" => self.proxy_read_timeout = secs()?,
                "proxy-send-timeout" => self.proxy_send_timeout = secs()?,
                "keep-alive" => self.keep_alive = secs()?,
                "worker-shutdown-timeout" => {
                    self.worker_shutdown_timeout = parse_nginx_duration(value).ok_or_else(|| {
                        err("not an nginx duration such as \"240s\" or \"10\"".into())
                    })?
                }
                "ssl-redirect" => {
                    self.ssl_redirect = boolean(value).ok_or_else(|| err(BOOL.into()))?
                }
                "use-http2" => self.use_http2 = boolean(value).ok_or_else(|| err(BOOL.into()))?,
                _ => continue,
            }
            self.from_configmap.insert(key.clone());
        }
        Ok(self)
    }

    /// Where a proxy timeout default comes from: the ConfigMap key, or the controller.
    pub fn source_of(&self, key: &str) -> crate::Source {
        if self.from_configmap.contains(key) {
            crate::Source::ConfigMap
        } else {
            crate::Source::Default
        }
    }
}

const BOOL: &str = "use \"true\" or \"false\"";

fn boolean(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `240s`, `10`, `500ms`, `4m` (the forms nginx accepts for a time value in this role).
fn parse_nginx_duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_controller_v1_15_1() {
        let c = ControllerConfig::default();
        assert_eq!(
            (
                c.proxy_connect_timeout,
                c.proxy_read_timeout,
                c.proxy_send_timeout
            ),
            (5, 60, 60)
        );
        assert_eq!(c.worker_shutdown_timeout, Duration::from_secs(240));
        assert!(c.ssl_redirect && c.use_http2);
    }

    #[test]
    fn configmap_overrides_known_keys() {
        let data = BTreeMap::from([
            ("proxy-read-timeout".to_string(), "120".to_string()),
            ("worker-shutdown-timeout".to_string(), "2s".to_string()),
            ("use-gzip".to_string(), "true".to_string()),
        ]);
        let c = ControllerConfig::default().with_configmap(&data).unwrap();
        assert_eq!(c.proxy_read_timeout, 120);
        assert_eq!(c.worker_shutdown_timeout, Duration::from_secs(2));
        assert_eq!(c.source_of("proxy-read-timeout"), crate::Source::ConfigMap);
        assert_eq!(c.source_of("proxy-send-timeout"), crate::Source::Default);
        assert!(
            !c.from_configmap.contains("use-gzip"),
            "unknown keys change nothing"
        );
    }

    #[test]
    fn use_http2_false_turns_http2_off_and_a_typo_is_refused() {
        let off = BTreeMap::from([("use-http2".to_string(), "false".to_string())]);
        assert!(
            !ControllerConfig::default()
                .with_configmap(&off)
                .unwrap()
                .use_http2
        );
        let typo = BTreeMap::from([("use-http2".to_string(), "no".to_string())]);
        assert!(ControllerConfig::default().with_configmap(&typo).is_err());
    }

    #[test]
    fn huge_durations_are_refused_not_overflowed() {
        let data = BTreeMap::from([(
            "worker-shutdown-timeout".to_string(),
            format!("{}h", u64::MAX),
        )]);
        assert!(ControllerConfig::default().with_configmap(&data).is_err());
    }

    #[test]
    fn bad_configmap_value_names_key_and_value() {
        let data = BTreeMap::from([("proxy-send-timeout".to_string(), "1h".to_string())]);
        let e = ControllerConfig::default()
            .with_configmap(&data)
            .unwrap_err();
        assert!(e.to_string().contains("proxy-send-timeout=\"1h\""), "{e}");
    }
}
