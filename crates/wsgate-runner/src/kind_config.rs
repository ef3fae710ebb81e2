//! The kind cluster config with the chosen host ports, and `HOST[:PORT]` parsing.

/// `manifests/kind-config.yaml`, compiled in (cargo rebuilds xtask when it changes).
pub const KIND_CONFIG_TEMPLATE: &str = include_str!("../../../manifests/kind-config.yaml");

/// `host[:port]` with a default port; IPv6 literals in brackets.
pub fn split_host_port(s: &str, default: u16) -> anyhow::Result<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow::anyhow!("--ingress-address {s:?}: unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow::anyhow!("--ingress-address {s:?}: bad port {p:?}"))?,
            None => default,
        };
        return Ok((format!("[{host}]"), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse()
                .map_err(|_| anyhow::anyhow!("--ingress-address {s:?}: bad port {port:?}"))?;
            Ok((host.to_owned(), port))
        }
        _ if s.is_empty() => anyhow::bail!("--ingress-address is empty"),
        _ => Ok((s.to_owned(), default)),
    }
}

/// The kind config from `template` with the host ports replaced.
pub fn kind_config(template: &str, http_port: u16, https_port: u16) -> anyhow::Result<String> {
    let mut doc: serde_json::Value = serde_saphyr::from_str(template)
        .map_err(|e| anyhow::anyhow!("manifests/kind-config.yaml: {e}"))?;
    let mappings = doc
        .pointer_mut("/nodes/0/extraPortMappings")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| {
            anyhow::anyhow!("manifests/kind-config.yaml: nodes[0].extraPortMappings is missing")
        })?;
    let mut seen = (false, false);
    for m in mappings {
        match m.get("containerPort").and_then(|p| p.as_u64()) {
            Some(80) => {
                m["hostPort"] = http_port.into();
                seen.0 = true;
            }
            Some(443) => {
                m["hostPort"] = https_port.into();
                seen.1 = true;
            }
            _ => {}
        }
    }
    anyhow::ensure!(
        seen == (true, true),
        "manifests/kind-config.yaml: needs extraPortMappings for containerPort 80 and 443"
    );
    serde_saphyr::to_string(&doc).map_err(|e| anyhow::anyhow!("rendering the kind config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            split_host_port("1.2.3.4", 80).unwrap(),
            ("1.2.3.4".into(), 80)
        );
        assert_eq!(split_host_port("lb:8080", 80).unwrap(), ("lb".into(), 8080));
        assert_eq!(
            split_host_port("[::1]:81", 80).unwrap(),
            ("[::1]".into(), 81)
        );
        assert!(split_host_port("lb:http", 80).is_err());
    }

    #[test]
    fn kind_config_maps_the_chosen_host_ports() {
        let out = kind_config(KIND_CONFIG_TEMPLATE, 8080, 8443).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&out).unwrap();
        let m = &v["nodes"][0]["extraPortMappings"];
        assert_eq!(
            (m[0]["containerPort"].as_u64(), m[0]["hostPort"].as_u64()),
            (Some(80), Some(8080))
        );
        assert_eq!(
            (m[1]["containerPort"].as_u64(), m[1]["hostPort"].as_u64()),
            (Some(443), Some(8443))
        );
        assert_eq!(m[0]["listenAddress"], "127.0.0.1");
        assert_eq!(v["kind"], "Cluster");
    }

    #[test]
    fn kind_config_without_port_mappings_is_refused() {
        let e = kind_config("kind: Cluster\nnodes:\n- role: control-plane\n", 80, 443).unwrap_err();
        assert!(e.to_string().contains("extraPortMappings"), "{e}");
    }
}
