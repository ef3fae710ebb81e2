//! Any string as a timeout annotation value or controller ConfigMap value: no panic, and a
//! value accepted is exactly a plain non-negative integer.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use wsgate_manifests::{ControllerConfig, parse_seconds};

fuzz_target!(|value: &str| {
    if let Ok(n) = parse_seconds(value) {
        let digits = value.strip_prefix('+').unwrap_or(value);
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "accepted {value:?}");
        assert_eq!(digits.parse::<u64>().ok(), Some(n));
    }
    for key in ["proxy-read-timeout", "worker-shutdown-timeout", "ssl-redirect", "keep-alive"] {
        let data = BTreeMap::from([(key.to_string(), value.to_string())]);
        let _ = ControllerConfig::default().with_configmap(&data);
    }
});
