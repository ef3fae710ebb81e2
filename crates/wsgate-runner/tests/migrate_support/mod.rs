//! `migrate` on a short time scale for one successor, and how its tests pick measurements.
#![allow(dead_code)] // each test binary uses some of these

use std::path::Path;
use std::time::Duration;

use wsgate_probe::Scheme;
use wsgate_runner::migrate::cases::{Beat, Case, Kind, Measured, VariantKey};

use wsgate_runner::migrate::{Measurements, MigrateArgs, installed_binaries, measure_all};
use wsgate_successors::Successor;

/// The own timeout of these runs: cuts come after 2 s, holds last 6 s.
pub const OWN: u64 = 2;

pub fn args(to: Successor) -> MigrateArgs {
    MigrateArgs {
        to: vec![to],
        paths: Vec::new(),
        backends: Vec::new(),
        idle: 4,
        max_idle: 5,
        own_timeout: OWN,
        upgrade_delay: 1,
        out: "target/wsgate/migrate/test".into(),
    }
}

pub async fn run(to: Successor) -> Measurements {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bins = installed_binaries(&root, &[to]).unwrap_or_else(|e| panic!("{e:#}"));
    measure_all(&args(to), &root, &bins)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// What `column` measured in the case of `kind` (by variant and scheme), with the report on
/// failure.
pub fn get(
    m: &Measurements,
    column: Option<Successor>,
    variant: VariantKey,
    pick: impl Fn(&Case) -> bool,
) -> &Measured {
    m.table
        .measured(column, |c| c.variant == variant && pick(c))
        .unwrap_or_else(|| panic!("no such case in\n{}", m.report))
}

pub fn cut_near(m: &Measured, at: Duration, late: Duration) -> bool {
    matches!(m, Measured::Cut { after, .. } if *after + Duration::from_millis(500) >= at && *after <= at + late)
}

pub fn beat(b: Beat) -> impl Fn(&Case) -> bool {
    move |c| matches!(c.kind, Kind::Heartbeat(x, _, _) if x == b)
}

pub fn idle(c: &Case) -> bool {
    matches!(c.kind, Kind::Idle(_))
}

pub fn echo(scheme: Scheme) -> impl Fn(&Case) -> bool {
    move |c| c.kind == Kind::Echo && c.scheme == scheme
}

/// The cases every successor must pass as ingress-nginx does: ws and wss echo.
pub fn assert_echoes(m: &Measurements, s: Successor) {
    for (variant, scheme) in [
        (VariantKey::Written, Scheme::Ws),
        (VariantKey::Tls, Scheme::Wss),
    ] {
        let got = get(m, Some(s), variant, echo(scheme));
        assert_eq!(got, &Measured::Echoed, "{s} {scheme:?}\n{}", m.report);
    }
}
