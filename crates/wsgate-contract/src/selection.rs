//! Which test binaries each step of a run selects, as nextest filtersets over tier-prefixed
//! binary names: `any_plain*`/`any_tls*` run on every tier, `cluster_*` only on a cluster
//! (`cluster_plain*` in phase 1, `cluster_tls*` in phase 2, `cluster_faults` and
//! `cluster_rollout` alone), `local_*` only on the local tier, `container_*` under Docker. A new
//! binary with one of these prefixes is selected without an edit here.

use crate::Phase;

/// The e2e tests' package.
pub const E2E_PACKAGE: &str = "wsgate-e2e";

// One regex per step: nextest refuses a `binary()` that matches no binary, and there may be
// no `cluster_tls*` binary yet.

/// A cluster run's test step for `phase`: phase 1 (before the TLS patch) runs the cluster-only
/// readiness and endpoint tests and every tier's plain tests; phase 2 the TLS ones.
pub fn phase_filter(phase: Phase) -> &'static str {
    match phase {
        Phase::Plain => "package(wsgate-e2e) and binary(/^(cluster|any)_plain/)",
        Phase::Tls => "package(wsgate-e2e) and binary(/^(cluster|any)_tls/)",
    }
}

/// The echo pod deleted under an open connection: alone, since it disturbs every connection.
pub const FAULTS_FILTER: &str = "package(wsgate-e2e) and binary(cluster_faults)";

/// The controller restarted under an open connection.
pub const ROLLOUT_FILTER: &str = "package(wsgate-e2e) and binary(cluster_rollout)";

/// The local tier's selection: every tier's binaries and the local-only ones (not the
/// cluster's, nor the container tier's, which needs Docker), and the echo server's bad-input rows.
pub const LOCAL_FILTER: &str =
    "(package(wsgate-e2e) and binary(/^(any|local)_/)) | binary_id(wsgate-echo::bad_input)";

/// The bare tier's test step: the binaries that need a real API server (`bare_*`, in any
/// package) and the cluster tier's pod-readiness promise, which the bare control plane answers
/// for real (the endpoint needs the controller, which does not run there).
pub const BARE_FILTER: &str = "binary(/^bare_/) | (package(wsgate-e2e) and binary(cluster_plain) and test(documented_deployment_becomes_ready))";
