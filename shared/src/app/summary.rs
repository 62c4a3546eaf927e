//! Totals for operators: jobs and compute-hours by status, and cost settled on the prices
//! each hour actually had.

use crate::domain::dispatch::{JobRecord, JobStatus};
use crate::domain::time::Hour;
use crate::ports::{Backlog, NodeStore, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub jobs: BTreeMap<String, usize>,
    pub compute_hours: BTreeMap<String, f64>,
    /// Cost of every dispatched or completed job at the prices its hours actually had
    /// (the observed price of each hour; the forecast for hours still to come).
    pub cost_usd: f64,
    /// Cost at the prices the planner expected when it decided.
    pub planned_cost_usd: f64,
    /// Compute-hours that cost applies to.
    pub dispatched_chr: f64,
    pub usd_per_chr: f64,
    /// Accepted jobs that could not run before their deadline.
    pub deadline_misses: usize,
}

/// Cost of one dispatched job at the prices in `prices` (node, hour) -> USD per c-hr.
fn settled_cost(r: &JobRecord, prices: &HashMap<(String, i64), f64>) -> Option<f64> {
    let d = r.dispatch.as_ref()?;
    let planned_avg = d.planned_cost_usd / r.job.compute_hours.max(1e-9);
    let mut cost = 0.0;
    for k in 0..d.slots {
        let hour = d.start.plus(i64::from(k));
        let p = prices
            .get(&(d.node_id.clone(), hour.0))
            .copied()
            .unwrap_or(planned_avg);
        cost += f64::from(d.units) * r.job.slot_fraction(k) * p;
    }
    Some(cost)
}

pub async fn summary<S: Backlog + NodeStore>(store: &S) -> Result<Summary, StoreError> {
    let jobs = store.all_jobs().await?;
    let mut s = Summary::default();
    for st in JobStatus::ALL {
        s.jobs.insert(st.as_str().to_string(), 0);
        s.compute_hours.insert(st.as_str().to_string(), 0.0);
    }
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for r in &jobs {
        *s.jobs.entry(r.status.as_str().to_string()).or_default() += 1;
        *s.compute_hours
            .entry(r.status.as_str().to_string())
            .or_default() += r.job.compute_hours;
        if let Some(d) = &r.dispatch {
            first = first.min(d.start.0);
            last = last.max(d.end().0);
        }
    }
    let prices: HashMap<(String, i64), f64> = if first <= last {
        store
            .prices(Hour(first), Hour(last))
            .await?
            .into_iter()
            .map(|p| ((p.node_id, p.hour.0), p.usd_per_chr))
            .collect()
    } else {
        HashMap::new()
    };
    for r in &jobs {
        if let (Some(cost), Some(d)) = (settled_cost(r, &prices), &r.dispatch) {
            s.cost_usd += cost;
            s.planned_cost_usd += d.planned_cost_usd;
            s.dispatched_chr += r.job.compute_hours;
        }
        if r.status == JobStatus::Expired {
            s.deadline_misses += 1;
        }
    }
    s.usd_per_chr = if s.dispatched_chr > 0.0 {
        s.cost_usd / s.dispatched_chr
    } else {
        0.0
    };
    Ok(s)
}
