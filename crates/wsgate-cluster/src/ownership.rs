//! Whose an object is before the suite touches it: absent, being deleted, left by an earlier
//! wsgate run, or someone else's (which a run must neither change nor delete).

use std::time::Duration;

use kube::Client;

use crate::apply::{FIELD_MANAGER, ObjectRef};
use crate::error::{ClusterError, api_err};

/// Whether an object is on the cluster, and whether an earlier wsgate run put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Absent,
    /// Being deleted (a namespace a moment ago torn down with `--wait=false`): gone soon.
    Terminating,
    /// Only wsgate changes it (every manager but those of the `status` subresource is
    /// wsgate's field manager): left by an earlier run that could not tear down.
    LeftByWsgate,
    /// Someone else's: the suite must neither change nor delete it.
    Foreign {
        managers: Vec<String>,
    },
}

/// Looks `target` up (a GET) and tells whose it is.
pub async fn presence(client: &Client, target: &ObjectRef) -> Result<Presence, ClusterError> {
    let found = target
        .api(client)
        .get_opt(&target.name)
        .await
        .map_err(api_err("get", target))?;
    let Some(obj) = found else {
        return Ok(Presence::Absent);
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Presence::Terminating);
    }
    let managers: Vec<String> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() != Some("status"))
        // A client that names no manager is someone, just not wsgate.
        .map(|m| m.manager.clone().unwrap_or_else(|| "(unnamed)".into()))
        .collect();
    Ok(
        if !managers.is_empty() && managers.iter().all(|m| m == FIELD_MANAGER) {
            Presence::LeftByWsgate
        } else {
            Presence::Foreign { managers }
        },
    )
}

/// The objects of `targets` that exist and are not wsgate's, as `Kind namespace/name (managers)`.
/// One being deleted is waited for, until `limit`: applying into a terminating namespace fails.
pub async fn foreign_objects(
    client: &Client,
    targets: &[ObjectRef],
    limit: Duration,
) -> Result<Vec<String>, ClusterError> {
    let mut out = Vec::new();
    for t in targets {
        let mut found = presence(client, t).await?;
        if found == Presence::Terminating {
            found = wsgate_wait::Wait::new(format!("{t} deleted"), limit)
                .every(Duration::from_secs(1))
                .until(move || async move {
                    match presence(client, t).await {
                        Ok(Presence::Terminating) => wsgate_wait::Check::Pending("terminating"),
                        done => wsgate_wait::Check::Done(done),
                    }
                })
                .await??;
        }
        if let Presence::Foreign { managers } = found {
            let by = if managers.is_empty() {
                "no field manager".to_owned()
            } else {
                managers.join(", ")
            };
            out.push(format!("{t} (managed by {by})"));
        }
    }
    Ok(out)
}
