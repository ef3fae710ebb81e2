//! Every pinned version and checksum of the kind tier, in one place.
//!
//! Checksums were taken from upstream release records (see the README); a download that does
//! not match fails the run and says what it got, so a wrong pin is noticed, never trusted.

/// kind release.
pub const KIND_VERSION: &str = "v0.32.0";
/// kind v0.32.0's default node image (Kubernetes v1.36.1), by digest as kind's release notes ask.
pub const KIND_NODE_IMAGE: &str =
    "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5";
/// ingress-nginx's last release.
pub const INGRESS_NGINX_VERSION: &str = "controller-v1.15.1";
/// kubectl matching the node image's Kubernetes version.
pub const KUBECTL_VERSION: &str = "v1.36.1";

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

pub const KIND_LINUX_AMD64: Pinned = Pinned {
    name: "kind",
    version: KIND_VERSION,
    url: "https://github.com/kubernetes-sigs/kind/releases/download/v0.32.0/kind-linux-amd64",
    sha256: "50030de23cf40a18505f20426f6a8506bedf13c6e509244bd1fa9463721b0f54",
    manual: "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or `go install sigs.k8s.io/kind@v0.32.0`)",
};

pub const KUBECTL_LINUX_AMD64: Pinned = Pinned {
    name: "kubectl",
    version: KUBECTL_VERSION,
    url: "https://dl.k8s.io/release/v1.36.1/bin/linux/amd64/kubectl",
    sha256: "629d3f410e09bf49b64ae7079f7f0bda1191efed311f7d37fdbab0ad5b0ec2b7",
    manual: "https://kubernetes.io/docs/tasks/tools/#kubectl",
};

pub const INGRESS_NGINX_KIND_MANIFEST: Pinned = Pinned {
    name: "ingress-nginx kind manifest",
    version: INGRESS_NGINX_VERSION,
    url: "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.15.1/deploy/static/provider/kind/deploy.yaml",
    sha256: "2a3ae008c8786431115502644e77ab398fdebfb721a5d1195ed3089cde3299df",
    manual: "https://github.com/kubernetes/ingress-nginx/blob/controller-v1.15.1/deploy/static/provider/kind/deploy.yaml",
};

/// The pinned binary for this machine, if there is one.
pub fn binary_for_host(tool: &str) -> Option<Pinned> {
    match (tool, std::env::consts::OS, std::env::consts::ARCH) {
        ("kind", "linux", "x86_64") => Some(KIND_LINUX_AMD64),
        ("kubectl", "linux", "x86_64") => Some(KUBECTL_LINUX_AMD64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_full_sha256_and_match_their_versions() {
        for p in [
            KIND_LINUX_AMD64,
            KUBECTL_LINUX_AMD64,
            INGRESS_NGINX_KIND_MANIFEST,
        ] {
            assert_eq!(p.sha256.len(), 64, "{}", p.name);
            assert!(
                p.sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(
                p.url.contains(p.version),
                "{} url must name {}",
                p.name,
                p.version
            );
        }
        assert!(
            KIND_NODE_IMAGE.contains("@sha256:"),
            "node image pinned by digest"
        );
    }
}
