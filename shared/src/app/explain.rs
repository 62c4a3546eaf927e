//! Why a job is where it is: for a dispatch, the chosen node and hour against the
//! runner-up (the next-cheapest feasible node and start at the stored prices) and what
//! the choice saved; for a job still waiting or closed, why.

use crate::domain::dispatch::{JobRecord, JobStatus};
use crate::domain::job::Job;
use crate::domain::node::Node;
use crate::domain::plan::Alternative;
use crate::domain::price::NodePrice;
use crate::domain::time::{hours_f, Hour};
use crate::ports::{Backlog, DispatchLog, NodeStore, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Start hours looked at, from the hour of the decision (the default planning horizon).
pub const EXPLAIN_HORIZON: u32 = 48;

/// What the store knows about one node-hour, for costing a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotView {
    pub usd_per_chr: f64,
    /// Units a run could use in that hour.
    pub free: u32,
}

/// Every feasible (node, start) for `job` with starts in [from, from + starts), cheapest
/// first: the node is in an allowed region and large enough, every hour of the run is
/// priced with room for the job's units, and the run ends by the deadline.
pub fn feasible_options(
    job: &Job,
    nodes: &[Node],
    slots: &HashMap<(String, i64), SlotView>,
    from: Hour,
    starts: u32,
) -> Vec<Alternative> {
    let latest = (hours_f(job.deadline) - job.duration_hours() + 1e-9).floor() as i64;
    let mut out = Vec::new();
    for node in nodes {
        if !job.allows_region(&node.region) || node.capacity_units < job.units {
            continue;
        }
        'start: for s in 0..i64::from(starts) {
            let start = from.plus(s);
            if start.0 > latest {
                break;
            }
            let mut cost = 0.0;
            for k in 0..job.slots() {
                match slots.get(&(node.id.clone(), start.0 + i64::from(k))) {
                    Some(v) if v.free >= job.units => {
                        cost += f64::from(job.units) * job.slot_fraction(k) * v.usd_per_chr
                    }
                    _ => continue 'start,
                }
            }
            out.push(Alternative {
                node_id: node.id.clone(),
                start,
                cost_usd: cost,
            });
        }
    }
    out.sort_by(|a, b| {
        a.cost_usd
            .total_cmp(&b.cost_usd)
            .then(a.start.cmp(&b.start))
            .then(a.node_id.cmp(&b.node_id))
    });
    out
}

/// The runner-up to `(node, start)`: the cheapest option on another node, or failing
/// that, another hour on the same node.
pub fn runner_up<'a>(
    options: &'a [Alternative],
    node: &str,
    start: Hour,
) -> Option<&'a Alternative> {
    options
        .iter()
        .find(|o| o.node_id != node)
        .or_else(|| options.iter().find(|o| o.start != start))
}

/// A job's explanation, for people (`summary`) and scripts (the rest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub job_id: String,
    pub status: JobStatus,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Alternative>,
    /// The chosen run costed at the stored prices (the prices its hours have now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_at_stored_prices_usd: Option<f64>,
    /// For a dispatch: the alternative the planner recorded when it decided, at the prices
    /// it saw; if it recorded none, the next-cheapest feasible run at the stored prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<Alternative>,
    /// Runner-up cost minus chosen cost, on the same basis (`saving_basis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saving_usd: Option<f64>,
    /// `planned` (both at the prices the planner saw) or `stored` (both at today's stored
    /// prices for those hours).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saving_basis: Option<&'static str>,
    /// The alternative the planner itself recorded when it decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_runner_up: Option<Alternative>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Explains the job with id `id` from what is in `store` at time `now`; None when the store
/// holds no such job.
pub async fn explain_id<S: Backlog + DispatchLog + NodeStore>(
    store: &S,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Explanation>, StoreError> {
    let jobs = store.all_jobs().await?;
    match jobs.iter().find(|r| r.job.id.as_str() == id) {
        Some(record) => explain(store, record, now).await.map(Some),
        None => Ok(None),
    }
}

/// Explains one job from what is in `store` at simulated time `now`.
pub async fn explain<S: Backlog + DispatchLog + NodeStore>(
    store: &S,
    record: &JobRecord,
    now: DateTime<Utc>,
) -> Result<Explanation, StoreError> {
    let states = store.nodes().await?;
    let drained: HashMap<String, bool> = states
        .iter()
        .map(|s| (s.node.id.clone(), s.drained))
        .collect();
    let nodes: Vec<Node> = states.into_iter().map(|s| s.node).collect();
    let job = &record.job;
    let mut e = Explanation {
        job_id: job.id.to_string(),
        status: record.status,
        summary: String::new(),
        chosen: None,
        chosen_at_stored_prices_usd: None,
        runner_up: None,
        saving_usd: None,
        saving_basis: None,
        planner_runner_up: None,
        reason: record.reason.clone(),
    };
    let window = |from: Hour| from.plus(i64::from(EXPLAIN_HORIZON + job.slots()));
    if let Some(d) = &record.dispatch {
        // At the hour of the decision, with the capacity each hour was priced at. Hours
        // after the decision were repriced from their observations since, and an hour whose
        // observation later went stale was still forecast-priced when the planner looked:
        // its heat-derated capacity counts, not the later staleness.
        let from = Hour::containing(d.decided_at);
        let prices: Vec<NodePrice> = store
            .prices(from, window(from))
            .await?
            .into_iter()
            .map(|p| NodePrice {
                stale: p.stale && p.hour == from,
                ..p
            })
            .collect();
        let slots = slot_views(&prices, |_, _| 0);
        let options = feasible_options(job, &nodes, &slots, from, EXPLAIN_HORIZON);
        let chosen_cost = options
            .iter()
            .find(|o| o.node_id == d.node_id && o.start == d.start)
            .map(|o| o.cost_usd);
        let stored_ru = runner_up(&options, &d.node_id, d.start).cloned();
        e.chosen = Some(Alternative {
            node_id: d.node_id.clone(),
            start: d.start,
            cost_usd: d.planned_cost_usd,
        });
        e.chosen_at_stored_prices_usd = chosen_cost;
        let (ru, saving, basis) = match (&d.runner_up, &stored_ru, chosen_cost) {
            (Some(p), _, _) => (
                Some(p.clone()),
                Some(p.cost_usd - d.planned_cost_usd),
                "planned",
            ),
            (None, Some(r), Some(c)) => (Some(r.clone()), Some(r.cost_usd - c), "stored"),
            (None, r, _) => (r.clone(), None, "stored"),
        };
        e.saving_usd = saving;
        e.saving_basis = saving.map(|_| basis);
        e.planner_runner_up = d.runner_up.clone();
        e.runner_up = ru.clone();
        e.summary = match (&ru, e.saving_usd) {
            (Some(r), Some(s)) => format!(
                "{} on {} from {} for ${:.2} (planned); runner-up {} from {} at ${:.2}: saved ${s:.2}",
                record.status, d.node_id, d.start, d.planned_cost_usd, r.node_id, r.start, r.cost_usd
            ),
            (Some(r), None) => format!(
                "{} on {} from {} for ${:.2} (planned); runner-up {} from {} at ${:.2}",
                record.status, d.node_id, d.start, d.planned_cost_usd, r.node_id, r.start, r.cost_usd
            ),
            (None, _) => format!(
                "{} on {} from {} for ${:.2} (planned); no other feasible node or hour at the stored prices",
                record.status, d.node_id, d.start, d.planned_cost_usd
            ),
        };
        return Ok(e);
    }
    let hour = Hour::containing(now);
    e.summary = match record.status {
        JobStatus::Pending => {
            let prices = store.prices(hour, window(hour)).await?;
            let mut reserved: HashMap<(String, i64), u32> = HashMap::new();
            for (n, h, u) in store.reservations(hour, window(hour)).await? {
                reserved.insert((n, h.0), u);
            }
            let slots = slot_views(&prices, |node, h| {
                if drained.get(node).copied().unwrap_or(false) {
                    u32::MAX
                } else {
                    reserved.get(&(node.to_string(), h)).copied().unwrap_or(0)
                }
            });
            let options = feasible_options(job, &nodes, &slots, hour, EXPLAIN_HORIZON);
            pending_reason(job, &nodes, &options, hour)
        }
        JobStatus::Held => "held by an operator: not planned until released".to_string(),
        other => format!(
            "{other}: {}",
            record.reason.as_deref().unwrap_or("no reason recorded")
        ),
    };
    if record.status == JobStatus::Pending {
        let prices = store.prices(hour, window(hour)).await?;
        let slots = slot_views(&prices, |_, _| 0);
        e.runner_up = feasible_options(job, &nodes, &slots, hour, EXPLAIN_HORIZON)
            .into_iter()
            .next();
    }
    Ok(e)
}

/// Stored prices as slots; `taken(node, hour)` units are already reserved.
fn slot_views(
    prices: &[NodePrice],
    taken: impl Fn(&str, i64) -> u32,
) -> HashMap<(String, i64), SlotView> {
    prices
        .iter()
        .map(|p| {
            (
                (p.node_id.clone(), p.hour.0),
                SlotView {
                    usd_per_chr: p.usd_per_chr,
                    free: p
                        .dispatchable_units()
                        .saturating_sub(taken(&p.node_id, p.hour.0)),
                },
            )
        })
        .collect()
}

/// Why a pending job has not been dispatched yet, from its feasible options now.
pub fn pending_reason(job: &Job, nodes: &[Node], options: &[Alternative], now: Hour) -> String {
    let allowed: Vec<&Node> = nodes
        .iter()
        .filter(|n| job.allows_region(&n.region))
        .collect();
    if allowed.is_empty() {
        return format!(
            "pending: no node in an allowed region ({})",
            job.regions.join(", ")
        );
    }
    if allowed.iter().all(|n| n.capacity_units < job.units) {
        return format!(
            "pending: needs {} units, more than any allowed node has",
            job.units
        );
    }
    let latest = (hours_f(job.deadline) - job.duration_hours() + 1e-9).floor() as i64;
    if latest < now.0 {
        return "pending: can no longer finish before its deadline (expires at the next planning round)".into();
    }
    let Some(best) = options.first() else {
        return "pending: no priced capacity with room for it before its deadline within the horizon".into();
    };
    let now_best = options.iter().find(|o| o.start == now);
    match now_best {
        Some(n) if best.start == now => format!(
            "pending: can start now on {} for ${:.2}; dispatched at the next planning round unless more urgent work takes the room",
            n.node_id, n.cost_usd
        ),
        Some(n) => format!(
            "pending: waiting for a cheaper hour: {} on {} for ${:.2} vs ${:.2} on {} now (saves ${:.2})",
            best.start,
            best.node_id,
            best.cost_usd,
            n.cost_usd,
            n.node_id,
            n.cost_usd - best.cost_usd
        ),
        None => format!(
            "pending: no node has room now; cheapest feasible start {} on {} for ${:.2}",
            best.start, best.node_id, best.cost_usd
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::node::default_fleet;

    fn job(units: u32, chr: f64, deadline_h: i64, regions: &str) -> Job {
        Job::parse_line(&format!(
            r#"{{"id":"j","priority":1,"compute_hours":{chr},"units":{units},"deadline":"{}"{regions}}}"#,
            Hour(deadline_h).start().to_rfc3339()
        ))
        .unwrap()
    }

    /// Two nodes over 6 hours; node 0 is cheap at hour 2, node 1 flat.
    fn grid(nodes: &[Node], h: Hour) -> HashMap<(String, i64), SlotView> {
        let mut m = HashMap::new();
        for k in 0..6 {
            let a = if k == 2 { 0.1 } else { 0.5 };
            m.insert(
                (nodes[0].id.clone(), h.0 + k),
                SlotView {
                    usd_per_chr: a,
                    free: 8,
                },
            );
            m.insert(
                (nodes[1].id.clone(), h.0 + k),
                SlotView {
                    usd_per_chr: 0.3,
                    free: if k == 0 { 0 } else { 8 },
                },
            );
        }
        m
    }

    #[test]
    fn options_are_feasible_and_cheapest_first() {
        let nodes = default_fleet(2);
        let h = Hour(500_000);
        let j = job(2, 2.0, h.0 + 100, "");
        let opts = feasible_options(&j, &nodes, &grid(&nodes, h), h, 10);
        assert_eq!(opts[0].node_id, nodes[0].id);
        assert_eq!(opts[0].start, h.plus(2));
        assert!((opts[0].cost_usd - 0.2).abs() < 1e-9);
        // Node 1 has no room in its first hour; nothing starts past the priced hours.
        assert!(!opts
            .iter()
            .any(|o| o.node_id == nodes[1].id && o.start == h));
        assert_eq!(opts.len(), 6 + 5);
        let ru = runner_up(&opts, &nodes[0].id, h.plus(2)).unwrap();
        assert_eq!(ru.node_id, nodes[1].id);
        assert!((ru.cost_usd - 0.6).abs() < 1e-9);
        // Too large, wrong region, deadline: no option.
        assert!(
            feasible_options(&job(9, 9.0, h.0 + 100, ""), &nodes, &grid(&nodes, h), h, 10)
                .is_empty()
        );
        let only = job(2, 2.0, h.0 + 100, r#","regions":["nowhere"]"#);
        assert!(feasible_options(&only, &nodes, &grid(&nodes, h), h, 10).is_empty());
        assert!(pending_reason(&only, &nodes, &[], h).contains("allowed region"));
        let soon = job(2, 2.0, h.0 + 2, "");
        let o = feasible_options(&soon, &nodes, &grid(&nodes, h), h, 10);
        assert!(o.iter().all(|o| o.start <= h.plus(1)), "{o:?}");
    }

    #[test]
    fn pending_reasons_name_the_wait() {
        let nodes = default_fleet(2);
        let h = Hour(500_000);
        let j = job(2, 2.0, h.0 + 100, "");
        let opts = feasible_options(&j, &nodes, &grid(&nodes, h), h, 10);
        let why = pending_reason(&j, &nodes, &opts, h);
        assert!(why.contains("waiting for a cheaper hour"), "{why}");
        assert!(why.contains("saves $0.80"), "{why}");
        let late = job(2, 2.0, h.0 - 5, "");
        assert!(pending_reason(&late, &nodes, &[], h).contains("deadline"));
        let big = job(10_000, 10_000.0, h.0 + 100, "");
        assert!(pending_reason(&big, &nodes, &[], h).contains("more than any allowed node"));
    }
}
