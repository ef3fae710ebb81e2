//! The workspace's architecture invariants, checked (as rust-analyzer's tidy does): which crate
//! may depend on which, and every source file says what it is in a `//!` line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

/// The workspace's packages and the resolved graph: package name -> (normal or build
/// dependency names, every dependency name of any kind).
struct Graph {
    normal: BTreeMap<String, BTreeSet<String>>,
    any: BTreeMap<String, BTreeSet<String>>,
    workspace: BTreeSet<String>,
}

fn graph() -> Graph {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<String, String> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let workspace = v["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].clone())
        .collect();
    let (mut normal, mut any) = (BTreeMap::new(), BTreeMap::new());
    for node in v["resolve"]["nodes"].as_array().unwrap() {
        let name = name_of[node["id"].as_str().unwrap()].clone();
        let (mut n, mut a) = (BTreeSet::new(), BTreeSet::new());
        for dep in node["deps"].as_array().unwrap() {
            let dep_name = name_of[dep["pkg"].as_str().unwrap()].clone();
            let kinds = dep["dep_kinds"].as_array().unwrap();
            if kinds.iter().any(|k| k["kind"] != "dev") {
                n.insert(dep_name.clone());
            }
            a.insert(dep_name);
        }
        normal.insert(name.clone(), n);
        any.insert(name, a);
    }
    Graph {
        normal,
        any,
        workspace,
    }
}

impl Graph {
    /// Everything `package` pulls into a build of its library or binaries (no dev-dependencies).
    fn closure(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![package.to_owned()];
        while let Some(p) = todo.pop() {
            for d in self.normal.get(&p).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }
}

#[test]
fn nothing_but_its_own_tests_depends_on_the_e2e_test_crate() {
    let g = graph();
    let users: Vec<&String> = g
        .any
        .iter()
        .filter(|(_, deps)| deps.contains("wsgate-e2e"))
        .map(|(p, _)| p)
        .collect();
    assert!(
        users.is_empty(),
        "wsgate-e2e is test support, a leaf: {users:?} depend on it"
    );
}

#[test]
fn the_probe_echo_tls_fs_wait_contract_and_report_crates_know_nothing_of_kubernetes() {
    let g = graph();
    for package in [
        "wsgate-probe",
        "wsgate-echo",
        "wsgate-tls",
        "wsgate-fs",
        "wsgate-wait",
        "wsgate-contract",
        "wsgate-report",
    ] {
        let closure = g.closure(package);
        let k8s: Vec<&String> = closure
            .iter()
            .filter(|d| {
                matches!(
                    d.as_str(),
                    "kube" | "kube-client" | "k8s-openapi" | "wsgate-cluster" | "wsgate-manifests"
                )
            })
            .collect();
        assert!(k8s.is_empty(), "{package} pulls in {k8s:?}");
    }
}

#[test]
fn the_contract_between_runner_and_tests_depends_on_no_workspace_crate() {
    let g = graph();
    let inner: Vec<&String> = g.normal["wsgate-contract"]
        .iter()
        .filter(|d| g.workspace.contains(*d))
        .collect();
    assert!(inner.is_empty(), "wsgate-contract depends on {inner:?}");
}

#[test]
fn xtask_is_parsing_dispatch_and_set_up_not_the_product() {
    let g = graph();
    let product: BTreeSet<&str> = g.normal["xtask"]
        .iter()
        .filter(|d| g.workspace.contains(*d))
        .map(String::as_str)
        .collect();
    // The runner does the work; set-up needs the image, the bare tier's build, the nginx lookup
    // and the one way to wait.
    let allowed = BTreeSet::from([
        "wsgate-runner",
        "wsgate-bare",
        "wsgate-image",
        "wsgate-local",
        "wsgate-wait",
    ]);
    assert!(
        product.is_subset(&allowed),
        "xtask depends on {:?} beyond {allowed:?}",
        product.difference(&allowed).collect::<Vec<_>>()
    );
    let lines: usize = rust_files(&root().join("xtask/src"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert!(lines < 1000, "xtask/src has {lines} lines (under 1,000)");
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == "snapshots" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn every_source_file_opens_with_a_line_saying_what_it_is() {
    let r = root();
    let mut missing = Vec::new();
    for dir in ["crates", "e2e", "xtask"] {
        for f in rust_files(&r.join(dir)) {
            let text = std::fs::read_to_string(&f).unwrap();
            if !text.starts_with("//!") && !text.starts_with("#![") {
                missing.push(f.strip_prefix(&r).unwrap().display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no `//!` first line in: {}",
        missing.join(", ")
    );
}
