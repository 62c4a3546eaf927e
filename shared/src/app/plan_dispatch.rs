//! Plan and dispatch: complete finished runs, plan the pending jobs, commit what starts
//! now (dispatch record and capacity reservation in one transaction), close the jobs that
//! can never run.

use crate::domain::dispatch::{Dispatch, JobStatus};
use crate::domain::job::JobId;
use crate::domain::plan::{Plan, PlanInput, PlanJob, SlotNode, Strategy, Unplaced};
use crate::domain::time::Hour;
use crate::ports::{Backlog, Committed, DispatchLog, NodeStore, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Longest run the planner will look ahead for, in hours (a month).
pub const MAX_GRID_HOURS: usize = 24 * 31;

/// What one planning round did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanReport {
    pub hour: Option<Hour>,
    pub completed: usize,
    pub committed: Vec<Dispatch>,
    /// Placed in a later hour: kept pending and re-planned next round.
    pub deferred: usize,
    /// No room yet; still pending.
    pub waiting: usize,
    pub rejected: Vec<(JobId, String)>,
    pub expired: Vec<(JobId, String)>,
    /// Commits refused because another planner took the capacity first (re-planned next round).
    pub conflicts: usize,
    /// Commits skipped because the job was no longer pending (a retry or another planner).
    pub already_done: usize,
}

/// Builds the planner's view: pending jobs and a slot grid from prices and reservations.
pub async fn plan_input<S: Backlog + DispatchLog + NodeStore>(
    store: &S,
    now: DateTime<Utc>,
    horizon: u32,
) -> Result<PlanInput, StoreError> {
    let hour = Hour::containing(now);
    let pending = store.jobs_with_status(JobStatus::Pending).await?;
    let jobs: Vec<PlanJob> = pending
        .iter()
        .map(|r| PlanJob::new(&r.job, hour, r.seq))
        .collect();
    let horizon = horizon as usize;
    let longest = jobs.iter().map(PlanJob::slots).max().unwrap_or(0);
    let len = horizon.max(longest).min(MAX_GRID_HOURS);
    let end = hour.plus(len as i64);

    let mut priced: HashMap<(String, i64), (f64, u32)> = HashMap::new();
    for p in store.prices(hour, end).await? {
        priced.insert(
            (p.node_id.clone(), p.hour.0),
            (p.usd_per_chr, p.dispatchable_units()),
        );
    }
    let mut reserved: HashMap<(String, i64), u32> = HashMap::new();
    for (node, h, units) in store.reservations(hour, end).await? {
        reserved.insert((node, h.0), units);
    }

    let mut nodes = Vec::new();
    for state in store.nodes().await? {
        let node = state.node;
        let mut usd_per_chr = Vec::with_capacity(len);
        let mut free = Vec::with_capacity(len);
        let known: Vec<f64> = (0..horizon)
            .filter_map(|k| {
                priced
                    .get(&(node.id.clone(), hour.0 + k as i64))
                    .map(|p| p.0)
            })
            .collect();
        // Past the priced horizon a run may continue (not start) at the forecast mean.
        let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
        for k in 0..len {
            let key = (node.id.clone(), hour.0 + k as i64);
            let taken = reserved.get(&key).copied().unwrap_or(0);
            let (price, capacity) = match priced.get(&key) {
                Some(&(p, cap)) => (p, cap),
                None if k >= horizon && !known.is_empty() => (mean, node.capacity_units),
                None => (0.0, 0),
            };
            usd_per_chr.push(price);
            free.push(if state.drained {
                0
            } else {
                capacity.saturating_sub(taken)
            });
        }
        nodes.push(SlotNode {
            node_id: node.id,
            region: node.region,
            capacity_units: node.capacity_units,
            usd_per_chr,
            free,
        });
    }
    Ok(PlanInput {
        now: hour,
        starts: horizon,
        nodes,
        jobs,
    })
}

/// One planning round at `now`.
pub async fn plan_dispatch<S: Backlog + DispatchLog + NodeStore>(
    store: &S,
    strategy: &dyn Strategy,
    now: DateTime<Utc>,
    horizon: u32,
) -> Result<PlanReport, StoreError> {
    let hour = Hour::containing(now);
    let mut report = PlanReport {
        hour: Some(hour),
        completed: store.complete_due(hour, now).await?,
        ..Default::default()
    };
    let input = plan_input(store, now, horizon).await?;
    let plan: Plan = strategy.plan(&input);

    for p in &plan.placements {
        if p.start != hour {
            tracing::debug!(job = %p.job_id, node = %p.node_id, start = %p.start, "job deferred");
            report.deferred += 1;
            continue;
        }
        let d = Dispatch {
            job_id: p.job_id.clone(),
            node_id: p.node_id.clone(),
            start: p.start,
            slots: p.slots,
            units: p.units,
            planned_cost_usd: p.cost_usd,
            strategy: strategy.name().to_string(),
            decided_at: now,
            runner_up: p.runner_up.clone(),
        };
        match store.commit(&d).await? {
            Committed::Committed => report.committed.push(d),
            Committed::NoCapacity { hour } => {
                tracing::info!(job = %d.job_id, node = %d.node_id, %hour, "capacity taken meanwhile; re-planning later");
                report.conflicts += 1;
            }
            Committed::NotPending(_) | Committed::UnknownJob => report.already_done += 1,
        }
    }
    for (id, why) in &plan.unplaced {
        let status = match why {
            Unplaced::PastDeadline => JobStatus::Expired,
            Unplaced::NoAllowedRegion | Unplaced::TooLarge => JobStatus::Rejected,
            Unplaced::NoCapacityBeforeDeadline | Unplaced::NoRoomNow => {
                tracing::debug!(job = %id, reason = %why, "job waits");
                report.waiting += 1;
                continue;
            }
        };
        if store
            .close_pending(id, status, &why.to_string(), now)
            .await?
        {
            let entry = (id.clone(), why.to_string());
            match status {
                JobStatus::Expired => report.expired.push(entry),
                _ => report.rejected.push(entry),
            }
        }
    }
    Ok(report)
}
