//! Nothing a cluster address names may leave the machine: its Service range and pod range (and
//! the node's address) are routed to a blackhole for as long as the control plane runs, so a
//! packet to an address no network namespace of the run serves is dropped here, not sent to the
//! default gateway.
//!
//! Each control plane adds its own routes (protocol [`PROTO`], metric = its process group), so
//! two of them never remove each other's; routes of a plane whose group is gone (its owner was
//! killed) are swept by the next one.

use std::process::Command;

use crate::BareError;

/// The routing protocol number wsgate's routes carry (private use).
pub const PROTO: &str = "249";

/// Routes this control plane added; removed on drop.
#[derive(Debug, Default)]
pub(crate) struct Blackholes {
    cidrs: Vec<String>,
    metric: u32,
}

fn ip(args: &[&str]) -> Result<String, BareError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| BareError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: format!("{e} (Debian: apt-get install iproute2)"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BareError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// wsgate's routes now: (cidr, metric), from `ip -j route show proto PROTO`.
fn ours() -> Vec<(String, u32)> {
    let Ok(json) = ip(&["-j", "route", "show", "proto", PROTO]) else {
        return Vec::new();
    };
    serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            Some((
                r["dst"].as_str()?.to_owned(),
                r["metric"].as_u64().unwrap_or(0) as u32,
            ))
        })
        .collect()
}

fn del(cidr: &str, metric: u32) {
    let m = metric.to_string();
    let _ = ip(&[
        "route",
        "del",
        "blackhole",
        cidr,
        "proto",
        PROTO,
        "metric",
        &m,
    ]);
}

impl Blackholes {
    /// Routes each of `cidrs` to a blackhole for the control plane whose group is `metric`,
    /// after sweeping routes of planes that are gone.
    pub(crate) fn add(cidrs: &[&str], metric: u32) -> Result<Self, BareError> {
        for (cidr, m) in ours() {
            if wsgate_proc::group_members(m).is_empty() {
                del(&cidr, m);
            }
        }
        let mut routes = Self {
            cidrs: Vec::new(),
            metric,
        };
        let m = metric.to_string();
        for c in cidrs {
            ip(&[
                "route",
                "replace",
                "blackhole",
                c,
                "proto",
                PROTO,
                "metric",
                &m,
            ])?;
            routes.cidrs.push((*c).to_owned());
        }
        Ok(routes)
    }

    pub(crate) fn cidrs(&self) -> &[String] {
        &self.cidrs
    }
}

impl Drop for Blackholes {
    fn drop(&mut self) {
        for c in std::mem::take(&mut self.cidrs) {
            del(&c, self.metric);
        }
    }
}
