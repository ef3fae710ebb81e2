//! Each nextest step, run as `cargo nextest list` with the very same arguments, selects the
//! tests it claims. nextest ANDs a profile's `default-filter` with `--filterset` unless told
//! otherwise, and a step that selects nothing exits 4: both have broken the kind tier before.

use std::path::PathBuf;

use clap::Parser;
use wsgate_e2e::Phase;
use xtask::action::{Action, Nextest, NextestMode};
use xtask::flags::{Cli, Command};
use xtask::kind::exec::listed_tests;
use xtask::kind::plan::{Plan, StepId};

fn root() -> PathBuf {
    xtask::workspace_root()
}

/// `(binary::test, selected)` for every e2e test, as `cargo nextest list` reports them.
fn list(n: &Nextest) -> Vec<(String, bool)> {
    let out = n
        .cmd(NextestMode::List)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    listed_tests(&out).unwrap()
}

fn binary(test: &str) -> &str {
    test.split("::").next().unwrap()
}

/// Asserts that exactly the tests of `binaries` are selected (minus those `except` names).
fn selects_exactly(listed: &[(String, bool)], binaries: &[&str], except: &[&str], what: &str) {
    let selected: Vec<&String> = listed.iter().filter(|(_, s)| *s).map(|(t, _)| t).collect();
    assert!(!selected.is_empty(), "{what} selects no test");
    for (test, sel) in listed {
        let want = binaries.contains(&binary(test)) && !except.iter().any(|e| test.contains(e));
        assert_eq!(*sel, want, "{what}: {test} selected={sel}, expected {want}");
    }
}

fn kind_plan(profile: &str, flags: &[&str]) -> Plan {
    let cli = Cli::try_parse_from(["cargo-xtask", "e2e"].iter().chain(flags)).unwrap();
    let Command::E2e(args) = cli.command else {
        unreachable!()
    };
    Plan::for_machine(&args.kind, profile, &root()).unwrap()
}

fn check_kind_plan(profile: &str) {
    let plan = kind_plan(profile, &[]);
    let steps = plan.nextest_actions();
    assert_eq!(steps.len(), 3);
    for (step, n) in steps {
        let listed = list(n);
        match step {
            StepId::Tests(Phase::Plain) => {
                selects_exactly(&listed, &["cluster", "plain"], &[], "phase 1");
                for t in [
                    "cluster::documented_deployment_becomes_ready",
                    "cluster::documented_ingress_gets_an_endpoint",
                    "plain::ws_echoes_text_and_binary_unchanged",
                    "plain::long_idle::ws_idle_connection_is_cut_at_default_read_timeout",
                ] {
                    assert!(listed.contains(&(t.into(), true)), "phase 1 misses {t}");
                }
            }
            StepId::Tests(Phase::Tls) => {
                selects_exactly(&listed, &["tls"], &[], "phase 2");
                assert!(
                    listed
                        .contains(&("tls::wss_echoes_with_the_certificate_verified".into(), true))
                );
            }
            StepId::Faults => selects_exactly(&listed, &["faults"], &[], "faults"),
            other => panic!("unexpected nextest step {other:?}"),
        }
    }
}

#[test]
fn kind_steps_select_their_tests_under_the_ci_profile() {
    check_kind_plan("ci");
}

#[test]
fn kind_steps_select_their_tests_under_the_default_profile() {
    check_kind_plan("default");
}

#[test]
fn an_existing_cluster_selects_the_same_tests() {
    let plan = kind_plan("ci", &["--kubeconfig", "/k", "--ingress-address", "lb"]);
    let kind = kind_plan("ci", &[]);
    let filters = |p: &Plan| -> Vec<(String, bool)> {
        p.nextest_actions()
            .iter()
            .map(|(_, n)| (n.filterset.clone(), n.ignore_default_filter))
            .collect()
    };
    assert_eq!(filters(&plan), filters(&kind));
}

#[test]
fn local_selects_the_local_tier_and_never_the_cluster_or_container_binaries() {
    for (profile, except) in [("default", &["long_reload::"][..]), ("ci", &[][..])] {
        let actions = xtask::local::actions(&root(), profile);
        let Some(Action::Nextest(n)) = actions.iter().find(|a| matches!(a, Action::Nextest(_)))
        else {
            panic!("the local plan runs nextest");
        };
        let listed = list(n);
        selects_exactly(
            &listed,
            &["plain", "tls", "behaviour", "harness", "wsgate_e2e"],
            except,
            &format!("--local ({profile})"),
        );
    }
}
