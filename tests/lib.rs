//! Shared helpers for the integration tests: fixed worlds and invariant checks.

pub mod dashboard;

use chrono::{DateTime, TimeZone, Utc};
use grd::adapters::sqlite::SqliteStore;
use grd::domain::dispatch::JobStatus;
use grd::ports::{Backlog, NodeStore};
use std::collections::HashMap;

/// A fixed start, so every run of a test sees the same weather and prices.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Checks what must hold in any store at any time; returns the jobs by status.
///
/// - every dispatched or completed job has exactly one dispatch record, no other job has one;
/// - the units reserved in each node-hour are exactly the units of the dispatches that
///   cover it (nothing reserved twice, nothing orphaned), and never over the capacity the
///   reservation was checked against, nor over the node's nameplate.
pub async fn check_invariants(store: &SqliteStore) -> HashMap<JobStatus, usize> {
    let jobs = store.all_jobs().await.expect("jobs");
    let nodes: HashMap<String, u32> = store
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .map(|s| (s.node.id.clone(), s.node.capacity_units))
        .collect();
    let mut by_status = HashMap::new();
    let mut expected: HashMap<(String, i64), u32> = HashMap::new();
    for r in &jobs {
        *by_status.entry(r.status).or_insert(0) += 1;
        let should_have = matches!(r.status, JobStatus::Dispatched | JobStatus::Completed);
        assert_eq!(
            r.dispatch.is_some(),
            should_have,
            "job {} is {} with dispatch {:?}",
            r.job.id,
            r.status,
            r.dispatch
        );
        if let Some(d) = &r.dispatch {
            for (hour, units) in d.reservations() {
                *expected.entry((d.node_id.clone(), hour.0)).or_insert(0) += units;
            }
        }
        if matches!(r.status, JobStatus::Rejected | JobStatus::Expired) {
            assert!(
                r.reason.is_some(),
                "job {} is {} without a reason",
                r.job.id,
                r.status
            );
        }
    }
    let rows = store.reservation_rows().expect("reservations");
    let mut actual: HashMap<(String, i64), u32> = HashMap::new();
    for (node, hour, units, capacity) in rows {
        assert!(
            units <= capacity,
            "{node} {hour}: {units} reserved over capacity {capacity}"
        );
        assert!(
            units <= nodes[&node],
            "{node} {hour}: {units} reserved over nameplate"
        );
        if units > 0 {
            actual.insert((node, hour.0), units);
        }
    }
    assert_eq!(actual, expected, "reservations match dispatches exactly");
    by_status
}

#[cfg(feature = "aws-endpoint")]
#[path = "aws.rs"]
pub mod aws;
