//! Which test binaries each step of a run selects, as nextest filtersets. The tests' side of
//! the contract is their binaries' names; a step and the binaries it runs change together here.

use crate::Phase;

/// The e2e tests' package.
pub const E2E_PACKAGE: &str = "wsgate-e2e";

/// A cluster run's test step for `phase`: phase 1 (before the TLS patch) runs the cluster-only
/// readiness and endpoint tests and the plain tier tests; phase 2 the TLS ones.
pub fn phase_filter(phase: Phase) -> &'static str {
    match phase {
        Phase::Plain => "package(wsgate-e2e) and (binary(cluster) | binary(plain))",
        Phase::Tls => "package(wsgate-e2e) and binary(tls)",
    }
}

/// The echo pod deleted under an open connection: alone, since it disturbs every connection.
pub const FAULTS_FILTER: &str = "package(wsgate-e2e) and binary(faults)";

/// The controller restarted under an open connection.
pub const ROLLOUT_FILTER: &str = "package(wsgate-e2e) and binary(rollout)";

/// The local tier's selection: every e2e binary but the cluster-only ones and the container
/// tier's (which needs Docker, not nginx), and the echo server's bad-input rows.
pub const LOCAL_FILTER: &str = "(package(wsgate-e2e) and not (binary(cluster) | binary(faults) | binary(rollout) | binary(container))) | binary_id(wsgate-echo::bad_input)";
