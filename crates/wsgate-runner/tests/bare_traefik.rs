//! `migrate` on a short time scale through Traefik 3.7.15, its kubernetesIngressNGINX
//! provider reading the Ingress from the bare tier's real API server, beside ingress-nginx's
//! local tier. Needs root (the control plane's routes, the pods' network namespaces):
//! `cargo xtask test` runs it in its bare step.

mod migrate_support;

use std::time::Duration;

use migrate_support::*;
use wsgate_runner::migrate::cases::{Beat, Measured, VariantKey};
use wsgate_successors::Successor;

#[tokio::test]
async fn traefik_honours_the_read_timeout_but_only_traffic_from_the_backend_keeps_a_connection() {
    let s = Successor::Traefik;
    let m = run(s).await;
    assert_echoes(&m, s);
    let t = Duration::from_secs(OWN);
    let own = get(&m, Some(s), VariantKey::Own, idle);
    assert!(
        cut_near(own, t, Duration::from_secs(2)),
        "{own}\n{}",
        m.report
    );
    // The read timeout is a deadline on the backend connection, moved by the backend's data:
    // pongs to the client's pings, the backend's own pings and messages keep it; the client's
    // messages to a backend that does not answer do not (ingress-nginx keeps all four).
    for b in [Beat::ClientPings, Beat::BackendPings, Beat::BackendData] {
        let got = get(&m, Some(s), VariantKey::OwnRestored, beat(b));
        assert!(
            matches!(got, Measured::Survived { .. }),
            "{b:?}: {got}\n{}",
            m.report
        );
    }
    let data = get(&m, Some(s), VariantKey::OwnRestored, beat(Beat::ClientData));
    assert!(
        cut_near(data, t, Duration::from_secs(2)),
        "client data alone: {data}\n{}",
        m.report
    );
    let nginx = get(&m, None, VariantKey::OwnRestored, beat(Beat::ClientData));
    assert!(
        matches!(nginx, Measured::Survived { .. }),
        "ingress-nginx: {nginx}\n{}",
        m.report
    );
}
