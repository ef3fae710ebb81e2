//! A nextest step: `run` and `list` built from the very same selection arguments, and what a
//! `cargo nextest list --message-format json` output selects.

use std::path::PathBuf;

use anyhow::Context;

use super::Cmd;

/// How a nextest action is run: for real, or only listed (a rehearsal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextestMode {
    Run,
    List,
}

/// A nextest run of the e2e tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nextest {
    pub cargo: PathBuf,
    pub manifest_path: PathBuf,
    /// The packages built and listed (`--package` each); none means `--workspace`, the same
    /// build as the README's test command, so listing needs no rebuild.
    pub packages: Vec<String>,
    pub profile: String,
    pub filterset: String,
    /// nextest ANDs a profile's `default-filter` with `--filterset` unless this is set.
    pub ignore_default_filter: bool,
    pub env: Vec<(String, String)>,
}

impl Nextest {
    /// The command for `mode`: `run` and `list` take the very same selection arguments.
    pub fn cmd(&self, mode: NextestMode) -> Cmd {
        let mut c = Cmd::new(&self.cargo)
            .arg("nextest")
            .arg(match mode {
                NextestMode::Run => "run",
                NextestMode::List => "list",
            })
            .arg("--manifest-path")
            .arg(&self.manifest_path)
            .args(if self.packages.is_empty() {
                vec!["--workspace"]
            } else {
                self.packages
                    .iter()
                    .flat_map(|p| ["--package", p.as_str()])
                    .collect()
            })
            .args(["--profile", &self.profile]);
        if self.ignore_default_filter {
            c = c.arg("--ignore-default-filter");
        }
        c = c.args(["--filterset", &self.filterset]);
        if mode == NextestMode::List {
            c = c.args(["--message-format", "json"]);
        }
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        c
    }
}

/// One test as `cargo nextest list --message-format json` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// `package::binary` (`wsgate-e2e::plain`).
    pub binary_id: String,
    pub name: String,
    /// Whether the filters select it.
    pub selected: bool,
}

/// Every test a `cargo nextest list --message-format json` output names, read with nextest's
/// own schema (`nextest-metadata`), sorted by binary and name.
pub fn listed(json: &str) -> anyhow::Result<Vec<Listed>> {
    let summary = nextest_metadata::TestListSummary::parse_json(json)
        .context("reading `cargo nextest list --message-format json`")?;
    let mut out: Vec<Listed> = summary
        .rust_suites
        .iter()
        .flat_map(|(binary_id, suite)| {
            suite.test_cases.iter().map(move |(name, case)| Listed {
                binary_id: binary_id.to_string(),
                name: name.to_string(),
                selected: case.filter_match.is_match(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.binary_id, &a.name).cmp(&(&b.binary_id, &b.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(packages: &[&str]) -> Nextest {
        Nextest {
            cargo: "cargo".into(),
            manifest_path: "/repo/Cargo.toml".into(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            profile: "ci".into(),
            filterset: "package(wsgate-e2e) and (binary(cluster) | binary(plain))".into(),
            ignore_default_filter: true,
            env: vec![("WSGATE_TRUST".into(), "/a b/c.crt:/d.crt".into())],
        }
    }

    #[test]
    fn a_filterset_with_spaces_and_parentheses_is_quoted_once() {
        assert_eq!(
            n(&[]).cmd(NextestMode::Run).to_string(),
            "WSGATE_TRUST='/a b/c.crt:/d.crt' cargo nextest run --manifest-path /repo/Cargo.toml \
             --workspace --profile ci --ignore-default-filter --filterset \
             'package(wsgate-e2e) and (binary(cluster) | binary(plain))'"
        );
        assert!(
            n(&["a", "b"])
                .cmd(NextestMode::Run)
                .to_string()
                .contains(" --package a --package b ")
        );
    }

    #[test]
    fn list_and_run_select_with_the_same_arguments() {
        let n = n(&[]);
        let run = n.cmd(NextestMode::Run).args;
        let list = n.cmd(NextestMode::List).args;
        assert_eq!(run[2..], list[2..run.len()]);
        assert_eq!(&list[run.len()..], ["--message-format", "json"]);
    }

    #[test]
    fn a_listing_names_each_test_with_its_binary_and_selection() {
        // What `cargo nextest list --message-format json` prints, trimmed to one binary.
        let json = include_str!("../../tests/data/nextest-list.json");
        let got = listed(json).unwrap();
        assert_eq!(got.len(), 2);
        let (sel, unsel): (Vec<_>, Vec<_>) = got.iter().partition(|t| t.selected);
        assert_eq!(
            (sel[0].binary_id.as_str(), sel[0].name.as_str()),
            (
                "wsgate-e2e::plain",
                "ws_echoes_text_binary_and_large_messages"
            )
        );
        assert!(unsel[0].name.starts_with("long_idle::"));
        assert!(listed("{}").is_err(), "not a listing");
    }
}
