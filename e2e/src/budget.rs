//! Time budgets of the cluster tests: each must end, pass or fail, before nextest's
//! slow-timeout kills it (`.config/nextest.toml`), so that a slow cluster reads as a failure
//! with a message rather than a killed process.

use std::time::{Duration, Instant};

/// What a cluster test (readiness, endpoint, faults) may spend in all.
pub const CLUSTER_TEST_BUDGET: Duration = Duration::from_secs(300);

/// A test's budget: waits take what is left of it.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    start: Instant,
    total: Duration,
}

impl Budget {
    pub fn new(total: Duration) -> Self {
        Self {
            start: Instant::now(),
            total,
        }
    }

    /// The cluster tests' budget.
    pub fn cluster_test() -> Self {
        Self::new(CLUSTER_TEST_BUDGET)
    }

    /// Time left, at most `cap` (a wait that should not take the whole budget).
    pub fn left(&self, cap: Duration) -> Duration {
        self.total.saturating_sub(self.start.elapsed()).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nextest's kill time for a test matched by the first override of `profile` whose filter
    /// mentions `binary`, else the profile's (or the default profile's) slow-timeout.
    fn kill_after(config: &toml::Value, profile: &str, binary: &str) -> Duration {
        let secs = |t: &toml::Value| {
            let period: u64 = t["period"]
                .as_str()
                .and_then(|p| p.strip_suffix('s'))
                .and_then(|p| p.parse().ok())
                .expect("period like \"60s\"");
            period
                * t.get("terminate-after")
                    .and_then(|n| n.as_integer())
                    .unwrap_or(1) as u64
        };
        let profiles = &config["profile"];
        for name in [profile, "default"] {
            let p = &profiles[name];
            for o in p
                .get("overrides")
                .and_then(|o| o.as_array())
                .into_iter()
                .flatten()
            {
                if o["filter"].as_str().is_some_and(|f| f.contains(binary))
                    && let Some(t) = o.get("slow-timeout")
                {
                    return Duration::from_secs(secs(t));
                }
            }
        }
        for name in [profile, "default"] {
            if let Some(t) = profiles[name].get("slow-timeout") {
                return Duration::from_secs(secs(t));
            }
        }
        panic!("no slow-timeout for {binary} in profile {profile}");
    }

    #[test]
    fn cluster_tests_end_before_nextest_kills_them() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.config/nextest.toml");
        let config: toml::Value =
            toml::from_str(&std::fs::read_to_string(path).expect("nextest config"))
                .expect("valid TOML");
        for profile in ["default", "ci"] {
            // Every cluster-only binary (`cluster_*`) shares one override.
            let binary = "binary(/^cluster_/)";
            let kill = kill_after(&config, profile, binary);
            assert!(
                CLUSTER_TEST_BUDGET + Duration::from_secs(30) <= kill,
                "{profile}: {binary} is killed after {} s, its budget is {} s (+30 s margin)",
                kill.as_secs(),
                CLUSTER_TEST_BUDGET.as_secs()
            );
        }
    }
}
