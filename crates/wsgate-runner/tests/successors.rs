//! `migrate` on a short time scale through the real proxies of Envoy Gateway (egctl's own
//! translation, Envoy 1.39.1) and NGINX Gateway Fabric (rendered, nginx 1.31.3), each beside
//! ingress-nginx's local tier: the echo, idle and heartbeat cases measure what a team moving
//! there would see. The proxies come from `cargo xtask test`'s set-up (PyPI wheels, egctl
//! built from tools/egctl).

mod migrate_support;

use std::time::Duration;

use migrate_support::*;
use wsgate_runner::migrate::cases::{Beat, Measured, VariantKey};
use wsgate_successors::Successor;

#[tokio::test]
async fn envoy_gateway_echoes_and_only_a_stream_idle_policy_brings_back_a_short_read_timeout() {
    let s = Successor::EnvoyGateway;
    let m = run(s).await;
    assert_echoes(&m, s);
    let t = Duration::from_secs(OWN);
    let nginx = get(&m, None, VariantKey::Own, idle);
    assert!(
        cut_near(nginx, t, Duration::from_secs(2)),
        "ingress-nginx: {nginx}\n{}",
        m.report
    );
    // ingress2gateway makes "2" a request timeout of 20 s; Envoy cuts no idle WebSocket then.
    let own = get(&m, Some(s), VariantKey::Own, idle);
    assert!(
        matches!(own, Measured::Survived { .. }),
        "{own}\n{}",
        m.report
    );
    // Envoy's idle timers tick once a second: the cut comes up to 1 s after the timeout.
    let restored = get(&m, Some(s), VariantKey::OwnRestored, idle);
    assert!(
        cut_near(restored, t, Duration::from_millis(2500)),
        "{restored}\n{}",
        m.report
    );
    // Any frame either way resets Envoy's stream idle timer.
    for b in Beat::ALL {
        let got = get(&m, Some(s), VariantKey::OwnRestored, beat(b));
        assert!(
            matches!(got, Measured::Survived { .. }),
            "{b:?}: {got}\n{}",
            m.report
        );
    }
}

#[tokio::test]
async fn nginx_gateway_fabric_renders_no_read_timeout_until_a_proxy_settings_policy_sets_one() {
    let s = Successor::NginxGatewayFabric;
    let m = run(s).await;
    assert_echoes(&m, s);
    let t = Duration::from_secs(OWN);
    let own = get(&m, Some(s), VariantKey::Own, idle);
    assert!(
        matches!(own, Measured::Survived { .. }),
        "{own}\n{}",
        m.report
    );
    let restored = get(&m, Some(s), VariantKey::OwnRestored, idle);
    assert!(
        cut_near(restored, t, Duration::from_secs(2)),
        "{restored}\n{}",
        m.report
    );
    // nginx again: its upgraded-connection handler re-arms on traffic in either direction.
    for b in Beat::ALL {
        let got = get(&m, Some(s), VariantKey::OwnRestored, beat(b));
        assert!(
            matches!(got, Measured::Survived { .. }),
            "{b:?}: {got}\n{}",
            m.report
        );
    }
}
