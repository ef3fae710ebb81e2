//! Each nextest step, run as `cargo nextest list` with the very same arguments, selects the
//! tests it claims. nextest ANDs a profile's `default-filter` with `--filterset` unless told
//! otherwise, and a step that selects nothing exits 4: both have broken the kind tier before.

use std::path::PathBuf;

use clap::Parser;
use wsgate_contract::Phase;
use wsgate_runner::action::{Action, Listed, Nextest, NextestMode, listed};
use wsgate_runner::options::E2eArgs;
use wsgate_runner::plan::{Plan, StepId};

/// `cargo xtask`'s command line, as far as `e2e` goes.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    E2e(Box<E2eArgs>),
}

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// Every workspace test, as `cargo nextest list` with the step's own arguments reports it.
fn list(n: &Nextest) -> Vec<Listed> {
    // The test harness's own CARGO_PKG_* variables would make cargo rebuild; a person's shell
    // (and xtask, which drops them at start) has none.
    let mut cmd = n.cmd(NextestMode::List).command();
    for k in wsgate_runner::cargo_run_vars() {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    listed(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// Asserts that exactly the tests of `binaries` (binary ids) are selected, minus those whose
/// name contains one of `except`.
fn selects_exactly(listed: &[Listed], binaries: &[&str], except: &[&str], what: &str) {
    assert!(listed.iter().any(|t| t.selected), "{what} selects no test");
    for t in listed {
        let want =
            binaries.contains(&t.binary_id.as_str()) && !except.iter().any(|e| t.name.contains(e));
        assert_eq!(
            t.selected, want,
            "{what}: {} {} selected={}, expected {want}",
            t.binary_id, t.name, t.selected
        );
    }
}

fn has(listed: &[Listed], binary_id: &str, name: &str) -> bool {
    listed
        .iter()
        .any(|t| t.binary_id == binary_id && t.name == name && t.selected)
}

fn kind_plan(profile: &str, flags: &[&str]) -> Plan {
    let cli = Cli::try_parse_from(["cargo-xtask", "e2e"].iter().chain(flags)).unwrap();
    let Command::E2e(args) = cli.command;
    Plan::for_machine(&args.cluster, &args.workload, profile, &root()).unwrap()
}

fn check_kind_plan(profile: &str) {
    let plan = kind_plan(profile, &[]);
    let steps = plan.nextest_actions();
    assert_eq!(steps.len(), 4);
    for (step, n) in steps {
        let listed = list(n);
        match step {
            StepId::Tests(Phase::Plain) => {
                selects_exactly(
                    &listed,
                    &["wsgate-e2e::cluster_plain", "wsgate-e2e::any_plain"],
                    &[],
                    "phase 1",
                );
                for (b, t) in [
                    ("cluster_plain", "documented_deployment_becomes_ready"),
                    ("cluster_plain", "documented_ingress_gets_an_endpoint"),
                    ("any_plain", "ws_echoes_text_and_binary_unchanged"),
                    (
                        "any_plain",
                        "long_idle::ws_idle_connection_is_cut_at_default_read_timeout",
                    ),
                ] {
                    assert!(
                        has(&listed, &format!("wsgate-e2e::{b}"), t),
                        "phase 1 misses {b} {t}"
                    );
                }
            }
            StepId::Tests(Phase::Tls) => {
                selects_exactly(&listed, &["wsgate-e2e::any_tls"], &[], "phase 2");
                assert!(has(
                    &listed,
                    "wsgate-e2e::any_tls",
                    "wss_echoes_with_the_certificate_verified"
                ));
            }
            StepId::Faults => {
                selects_exactly(&listed, &["wsgate-e2e::cluster_faults"], &[], "faults")
            }
            StepId::Rollout => {
                selects_exactly(&listed, &["wsgate-e2e::cluster_rollout"], &[], "rollout")
            }
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
            .filter(|(id, _)| *id != StepId::Rollout)
            .map(|(_, n)| (n.filterset.clone(), n.ignore_default_filter))
            .collect()
    };
    // The same, but for the controller restart: the suite never restarts a controller it did
    // not install.
    assert_eq!(filters(&plan), filters(&kind));
    assert!(plan.step(StepId::Rollout).is_none());
}

#[test]
fn local_selects_the_local_tier_and_never_the_cluster_or_container_binaries() {
    for (profile, except) in [("default", &["long_reload::"][..]), ("ci", &[][..])] {
        let cargo =
            wsgate_runner::tools::which("cargo", &std::env::var_os("PATH").unwrap_or_default());
        let actions = wsgate_runner::local::actions(&root(), &cargo, profile);
        let Some(Action::Nextest(n)) = actions.iter().find(|a| matches!(a, Action::Nextest(_)))
        else {
            panic!("the local plan runs nextest");
        };
        let listed = list(n);
        selects_exactly(
            &listed,
            &[
                "wsgate-e2e::any_plain",
                "wsgate-e2e::any_tls",
                "wsgate-e2e::local_behaviour",
                "wsgate-e2e::local_cleanup",
                "wsgate-e2e::local_load",
                "wsgate-e2e::local_workload",
                "wsgate-e2e::local_http2",
                "wsgate-e2e::local_heartbeats",
                "wsgate-e2e::local_shutdown",
                "wsgate-echo::bad_input",
            ],
            except,
            &format!("--local ({profile})"),
        );
    }
}

/// What `.config/nextest.toml` says a profile's threads and load cases take.
fn threads(profile: &str) -> (i64, i64) {
    let path = root().join(".config/nextest.toml");
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let p = |name: &str| &config["profile"][name];
    let test_threads = p(profile)
        .get("test-threads")
        .or_else(|| p("default").get("test-threads"))
        .and_then(|t| t.as_integer())
        .expect("test-threads");
    let load = [profile, "default"]
        .iter()
        .flat_map(|name| p(name).get("overrides").and_then(|o| o.as_array()).cloned())
        .flatten()
        .find(|o| o["filter"].as_str() == Some("test(/load::/)"))
        .and_then(|o| o.get("threads-required").and_then(|t| t.as_integer()))
        .expect("the load cases' threads-required");
    (test_threads, load)
}

#[test]
fn the_long_waits_and_the_load_cases_fill_every_thread_so_no_short_timing_case_runs_beside_them() {
    for profile in ["default", "ci"] {
        let cargo =
            wsgate_runner::tools::which("cargo", &std::env::var_os("PATH").unwrap_or_default());
        let n = Nextest {
            cargo,
            manifest_path: root().join("Cargo.toml"),
            packages: Vec::new(),
            profile: profile.into(),
            filterset: "all()".into(),
            ignore_default_filter: false,
            env: Vec::new(),
        };
        let long = list(&n)
            .iter()
            .filter(|t| {
                t.selected && (t.name.contains("long_idle::") || t.name.contains("long_reload::"))
            })
            .count() as i64;
        let (test_threads, load) = threads(profile);
        // The long ones start first (priority 100); the load cases next (priority 90) need the
        // rest: with one thread more, a short case could start beside them.
        assert_eq!(
            long + load,
            test_threads,
            "{profile}: {long} long cases + {load} threads for load = {test_threads} test threads?"
        );
    }
}
