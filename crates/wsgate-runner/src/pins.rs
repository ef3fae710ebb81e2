//! Every pinned version and checksum of the kind tier, in one place, each with where it came
//! from.
//!
//! A download that does not match its pin fails the run and says what it got, so a wrong pin
//! is noticed, never trusted. The release pages themselves cannot be reached from the machines
//! this was written on; each value below was read from copies that name the release they copy,
//! and is used only when two agree.

/// kind release.
pub const KIND_VERSION: &str = "v0.32.0";

/// The Kubernetes minor the suite runs: ingress-nginx controller-v1.15.1 supports 1.31-1.35
/// (the support matrix of its README at that tag; its own CI ends at v1.35.1), while kind
/// v0.32.0's default node is v1.36.1. kubectl, the node image and k8s-openapi's `v1_35`
/// feature (workspace `Cargo.toml`) share this minor.
pub const KUBERNETES_MINOR: &str = "v1.35";

/// The node image: kind v0.32.0's prebuilt v1.35 node, by its multi-platform index digest.
pub const KIND_NODE_IMAGE: &str =
    "kindest/node:v1.35.5@sha256:ce977ae6d65918d0b58a5f8b5e940429c2ce42fa3a5619ec2bbc60b949c0ac95";
/// Where [`KIND_NODE_IMAGE`]'s digest came from (printed by `--dry-run`).
pub const KIND_NODE_IMAGE_SOURCE: &str = "the image list of kind v0.32.0's release notes \
(https://github.com/kubernetes-sigs/kind/releases/tag/v0.32.0), as copied by \
siqiaawa/volcano-performance-guard-v4 config/versions.tsv and rogerwesterbo/createlocalk8s \
(kindNodeImages); its amd64/arm64 manifests 397bcc4a.../625f4633... match cert-manager/makefile-modules \
modules/kind/00_kind_image_versions.mk, generated from the same release";

/// ingress-nginx's last release.
pub const INGRESS_NGINX_VERSION: &str = "controller-v1.15.1";
/// kubectl of [`KUBERNETES_MINOR`] (the patch the bare tier's components are built at).
pub const KUBECTL_VERSION: &str = "v1.35.4";
/// Where the kubectl and kind checksums came from.
pub const BINARY_SOURCES: &str = "kind: cert-manager/makefile-modules modules/tools/00_mod.mk \
(kind=v0.32.0, commit b903033), the same values in other repositories pinning v0.32.0; kubectl: \
the same file at commit 962eeff (kubectl=v1.35.4), from dl.k8s.io's .sha256 files";

/// A file fetched over the network and checked against a pinned sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    pub name: &'static str,
    pub version: &'static str,
    pub url: &'static str,
    pub sha256: &'static str,
    /// Where to get it by hand when it cannot be downloaded.
    pub manual: &'static str,
}

/// An operating system and architecture, as Go and Docker name them (`linux/amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub arch: &'static str,
}

impl Platform {
    /// This machine, from Rust's names (`macos`/`aarch64` becomes `darwin`/`arm64`).
    pub fn host() -> Option<Self> {
        Self::from_rust(std::env::consts::OS, std::env::consts::ARCH)
    }

    pub fn from_rust(os: &str, arch: &str) -> Option<Self> {
        let os = match os {
            "linux" => "linux",
            "macos" => "darwin",
            _ => return None,
        };
        let arch = match arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            _ => return None,
        };
        Some(Self { os, arch })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

const KIND_MANUAL: &str = "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or `go install sigs.k8s.io/kind@v0.32.0`)";
const KUBECTL_MANUAL: &str = "https://kubernetes.io/docs/tasks/tools/#kubectl";

macro_rules! kind_pin {
    ($os:literal, $arch:literal, $sha:literal) => {
        Pinned {
            name: "kind",
            version: KIND_VERSION,
            url: concat!(
                "https://github.com/kubernetes-sigs/kind/releases/download/v0.32.0/kind-",
                $os,
                "-",
                $arch
            ),
            sha256: $sha,
            manual: KIND_MANUAL,
        }
    };
}

macro_rules! kubectl_pin {
    ($os:literal, $arch:literal, $sha:literal) => {
        Pinned {
            name: "kubectl",
            version: KUBECTL_VERSION,
            url: concat!(
                "https://dl.k8s.io/release/v1.35.4/bin/",
                $os,
                "/",
                $arch,
                "/kubectl"
            ),
            sha256: $sha,
            manual: KUBECTL_MANUAL,
        }
    };
}

/// kind v0.32.0 for each platform it is released for.
pub const KIND: [(Platform, Pinned); 4] = [
    (
        Platform {
            os: "linux",
            arch: "amd64",
        },
        kind_pin!(
            "linux",
            "amd64",
            "50030de23cf40a18505f20426f6a8506bedf13c6e509244bd1fa9463721b0f54"
        ),
    ),
    (
        Platform {
            os: "linux",
            arch: "arm64",
        },
        kind_pin!(
            "linux",
            "arm64",
            "b92cd615e97585de8ddade28ed5cd7feb4248d717c233eea5b03c37298900f5d"
        ),
    ),
    (
        Platform {
            os: "darwin",
            arch: "amd64",
        },
        kind_pin!(
            "darwin",
            "amd64",
            "295ac6d0d634c9819c9907df45e3017d1f13166bd13c3404c45e79f7faa47498"
        ),
    ),
    (
        Platform {
            os: "darwin",
            arch: "arm64",
        },
        kind_pin!(
            "darwin",
            "arm64",
            "dca67911095a110c2b5c36e26df6cac860c602033e456c0db47be498cdef1ebb"
        ),
    ),
];

/// kubectl v1.35.4 for the same platforms.
pub const KUBECTL: [(Platform, Pinned); 4] = [
    (
        Platform {
            os: "linux",
            arch: "amd64",
        },
        kubectl_pin!(
            "linux",
            "amd64",
            "b529430df69a688fd61b64ad2299edb5fd71cb58be2a4779dba624c7d3510efd"
        ),
    ),
    (
        Platform {
            os: "linux",
            arch: "arm64",
        },
        kubectl_pin!(
            "linux",
            "arm64",
            "6a5a4cc4e396d7626a7a693a3044b51c75520f81db30fe6816c2554e53be336f"
        ),
    ),
    (
        Platform {
            os: "darwin",
            arch: "amd64",
        },
        kubectl_pin!(
            "darwin",
            "amd64",
            "dddb01bddb96f78e48e33105ccfa2feedff585a8b2e3b812f5d0f64c7403710a"
        ),
    ),
    (
        Platform {
            os: "darwin",
            arch: "arm64",
        },
        kubectl_pin!(
            "darwin",
            "arm64",
            "ec644a2473b64b486987f695dfb1867963ce6d42d267b86e944585a546f92b5d"
        ),
    ),
];

pub const INGRESS_NGINX_KIND_MANIFEST: Pinned = Pinned {
    name: "ingress-nginx kind manifest",
    version: INGRESS_NGINX_VERSION,
    url: "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.15.1/deploy/static/provider/kind/deploy.yaml",
    sha256: "2a3ae008c8786431115502644e77ab398fdebfb721a5d1195ed3089cde3299df",
    manual: "https://github.com/kubernetes/ingress-nginx/blob/controller-v1.15.1/deploy/static/provider/kind/deploy.yaml",
};

/// The pinned `tool` (`kind` or `kubectl`) for `platform`, if there is one.
pub fn binary_for(tool: &str, platform: Option<Platform>) -> Option<Pinned> {
    let table: &[(Platform, Pinned)] = match tool {
        "kind" => &KIND,
        "kubectl" => &KUBECTL,
        _ => return None,
    };
    let platform = platform?;
    table
        .iter()
        .find(|(p, _)| *p == platform)
        .map(|(_, pin)| *pin)
}

/// The pinned binary for this machine, if there is one.
pub fn binary_for_host(tool: &str) -> Option<Pinned> {
    binary_for(tool, Platform::host())
}

/// Whether a kubectl version is of the pinned minor (`v1.35.0` ... `v1.35.99`): kubectl's
/// skew policy is about minors, so a runner's newer patch is as good as the pin.
pub fn kubectl_acceptable(version: &str) -> bool {
    version
        .strip_prefix(KUBERNETES_MINOR)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_full_sha256_and_match_their_versions_and_platforms() {
        let all = KIND
            .iter()
            .chain(&KUBECTL)
            .map(|(p, pin)| (Some(*p), *pin))
            .chain([(None, INGRESS_NGINX_KIND_MANIFEST)]);
        let mut seen = std::collections::HashSet::new();
        for (platform, p) in all {
            assert_eq!(p.sha256.len(), 64, "{}", p.name);
            assert!(
                p.sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(seen.insert(p.sha256), "{} repeats a checksum", p.url);
            assert!(
                p.url.contains(p.version),
                "{} url must name {}",
                p.name,
                p.version
            );
            if let Some(platform) = platform {
                assert!(
                    p.url.contains(platform.os) && p.url.contains(platform.arch),
                    "{} is not for {platform}",
                    p.url
                );
            }
        }
        assert!(
            KIND_NODE_IMAGE.contains("@sha256:"),
            "node image pinned by digest"
        );
    }

    #[test]
    fn node_image_kubectl_and_k8s_openapi_share_one_minor() {
        let node = KIND_NODE_IMAGE
            .split_once(':')
            .and_then(|(_, t)| t.split_once('@'))
            .map(|(tag, _)| tag)
            .unwrap();
        assert!(kubectl_acceptable(node), "node {node}");
        assert!(kubectl_acceptable(KUBECTL_VERSION));
        let cargo = include_str!("../../../Cargo.toml");
        let feature = format!("\"v1_{}\"", KUBERNETES_MINOR.trim_start_matches("v1."));
        assert!(
            cargo
                .lines()
                .any(|l| l.starts_with("k8s-openapi") && l.contains(&feature)),
            "the workspace's k8s-openapi must enable {feature}"
        );
    }

    #[test]
    fn a_patch_of_the_pinned_minor_is_acceptable_and_nothing_else() {
        for ok in ["v1.35.0", "v1.35.4", "v1.35.12"] {
            assert!(kubectl_acceptable(ok), "{ok}");
        }
        for no in [
            "v1.36.3",
            "v1.3.5",
            "v1.350.1",
            "v1.35",
            "v1.35.",
            "v1.35.4-dispatcher",
            "",
        ] {
            assert!(!kubectl_acceptable(no), "{no}");
        }
    }

    #[test]
    fn every_released_platform_has_a_pin() {
        for (os, arch) in [
            ("linux", "x86_64"),
            ("linux", "aarch64"),
            ("macos", "x86_64"),
            ("macos", "aarch64"),
        ] {
            let p = Platform::from_rust(os, arch);
            assert!(binary_for("kind", p).is_some(), "kind for {os}/{arch}");
            assert!(
                binary_for("kubectl", p).is_some(),
                "kubectl for {os}/{arch}"
            );
        }
        assert_eq!(Platform::from_rust("windows", "x86_64"), None);
    }
}
