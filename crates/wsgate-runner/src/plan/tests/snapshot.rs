//! What `cargo xtask e2e --dry-run` prints for the main flag combinations, stored: any change
//! to a printed line fails here until the snapshot is reviewed (`cargo insta review`, or
//! `INSTA_UPDATE=always`). Made from fixed inputs, so the same on every machine.

use clap::Parser;

use crate::options::E2eArgs;

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

/// The dry run for `flags`, from the plan tests' fixed inputs.
fn dry_run(flags: &[&str]) -> String {
    let cli = Cli::try_parse_from(
        ["cargo-xtask", "e2e", "--dry-run"]
            .into_iter()
            .chain(flags.iter().copied()),
    )
    .unwrap();
    let Command::E2e(args) = cli.command;
    let mut inputs = super::inputs();
    inputs.profile = args.profile.clone();
    if !args.workload.paths.is_empty() {
        let w = wsgate_manifests::Workload::load(&args.workload.paths).unwrap();
        inputs.workload = Some(super::super::WorkloadRun::new(args.workload.clone(), w).unwrap());
    }
    crate::dry_run(&args, &inputs).unwrap()
}

const CHAT: &str = "../../manifests/examples/chat";

#[test]
fn dry_runs_print_what_they_printed_before() {
    let cases: [(&str, &[&str]); 6] = [
        ("kind_default", &[]),
        ("kind_reuse", &["--reuse"]),
        (
            "existing_cluster",
            &[
                "--kubeconfig",
                "/home/u/.kube/config",
                "--context",
                "prod",
                "--ingress-address",
                "203.0.113.10",
            ],
        ),
        ("kind_workload", &["--workload", CHAT]),
        ("local", &["--local"]),
        (
            "local_workload",
            &[
                "--local",
                "--manifests",
                CHAT,
                "--backend",
                "default/chat:8080=127.0.0.1:9000",
            ],
        ),
    ];
    for (name, flags) in cases {
        insta::with_settings!({
            snapshot_path => "snapshots",
            prepend_module_to_snapshot => false,
            description => format!("cargo xtask e2e --dry-run {}", flags.join(" ")),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, dry_run(flags));
        });
    }
}
