//! Fetch weather and prices for every node from every source, in parallel, and store
//! what passes the checks. One source failing costs only its own data.

use crate::domain::node::Node;
use crate::domain::signal::check_observation;
use crate::ports::{
    Fetched, RawArchive, SignalSource, SignalStore, SourceError, StoreError, Stored,
};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How fetching is bounded.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Requests in flight at once, over all sources and nodes.
    pub concurrency: usize,
    /// Per request; a source that takes longer is counted as failed for that node.
    pub timeout: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            concurrency: 16,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Per source: what came in and what happened to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceReport {
    pub requests: usize,
    pub failed: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Rejections by reason (`duplicate`, `out_of_order`, `out_of_range`, ...).
    pub reasons: BTreeMap<String, usize>,
    pub forecast_points: usize,
    /// Raw payloads archived.
    pub archived: usize,
    /// The failures, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchReport {
    pub sources: BTreeMap<String, SourceReport>,
    /// Nodes whose stored signals changed in this run.
    pub changed_nodes: BTreeSet<String>,
}

impl FetchReport {
    pub fn rejected(&self) -> usize {
        self.sources.values().map(|s| s.rejected).sum()
    }
    pub fn failed(&self) -> usize {
        self.sources.values().map(|s| s.failed).sum()
    }
}

/// Archive key of a raw payload: source / node / date / time, so one day of one feed lists
/// together.
pub fn raw_key(source: &str, node_id: &str, at: DateTime<Utc>, extension: &str) -> String {
    format!(
        "raw/{source}/{node_id}/{}/{}.{extension}",
        at.format("%Y-%m-%d"),
        at.format("%H%M%S")
    )
}

/// Fetches every (source, node) pair with bounded concurrency and stores the results.
pub async fn fetch_signals<S: SignalStore>(
    store: &S,
    sources: &[Arc<dyn SignalSource>],
    nodes: &[Node],
    now: DateTime<Utc>,
    limits: FetchLimits,
    archive: Option<&dyn RawArchive>,
) -> Result<FetchReport, StoreError> {
    let pairs: Vec<(&Arc<dyn SignalSource>, &Node)> = sources
        .iter()
        .flat_map(|s| nodes.iter().map(move |n| (s, n)))
        .collect();
    let results: Vec<(String, String, Result<Fetched, SourceError>)> = stream::iter(pairs)
        .map(|(source, node)| async move {
            let name = source.name().to_string();
            let r = match tokio::time::timeout(limits.timeout, source.fetch(node, now)).await {
                Ok(r) => r,
                Err(_) => Err(SourceError::Timeout {
                    source_name: name.clone(),
                }),
            };
            (name, node.id.clone(), r)
        })
        .buffer_unordered(limits.concurrency.max(1))
        .collect()
        .await;

    let mut report = FetchReport::default();
    for (source, node_id, result) in results {
        let rep = report.sources.entry(source.clone()).or_default();
        rep.requests += 1;
        let fetched = match result {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%source, node = %node_id, error = %e, "fetch failed");
                rep.failed += 1;
                rep.errors.push(format!("{node_id}: {e}"));
                continue;
            }
        };
        if let (Some(archive), Some(raw)) = (archive, &fetched.raw) {
            let key = raw_key(&source, &node_id, now, &raw.extension);
            archive.put(&key, raw).await?;
            rep.archived += 1;
        }
        for why in fetched.malformed {
            rep.rejected += 1;
            *rep.reasons.entry(why.reason().to_string()).or_default() += 1;
        }
        for obs in fetched.observations {
            if obs.node_id != node_id {
                continue;
            }
            let outcome = match check_observation(&obs, now) {
                Err(why) => Stored::Refused(why),
                Ok(()) => store.put_observation(&obs).await?,
            };
            match outcome {
                Stored::Accepted => {
                    rep.accepted += 1;
                    report.changed_nodes.insert(node_id.clone());
                }
                Stored::Refused(why) => {
                    tracing::debug!(%source, node = %node_id, reason = %why, "signal rejected");
                    rep.rejected += 1;
                    *rep.reasons.entry(why.reason().to_string()).or_default() += 1;
                }
            }
        }
        for fc in fetched.forecasts {
            let kept = store.put_forecast(&fc).await?;
            if kept > 0 {
                report.changed_nodes.insert(node_id.clone());
            }
            rep.forecast_points += kept;
        }
    }
    Ok(report)
}
