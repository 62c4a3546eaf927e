//! Reproducible planner benchmarks: generated instances, a runner that gives every strategy
//! the same instance and reports cost, the lower bound, the gap, deadline misses and solve
//! time, a JSON export other solvers can check, and a backtest on recorded price series.
//!
//! # Export schema (`grd bench --export DIR`)
//!
//! `DIR/instance.json` is a [`PlanInput`](crate::domain::plan::PlanInput) as JSON:
//! `now` (hour index since the epoch), `starts` (slots a job may start in), `nodes[]`
//! (`node_id`, `region`, `capacity_units`, `usd_per_chr[t]`, `free[t]` units per slot) and
//! `jobs[]` (`id`, `priority` 0 = most urgent, `units`, `compute_hours`, `fractions[k]` share
//! of run slot k, `latest_start` slot, `regions` allowed, empty = any, `seq`), plus
//! `penalty_usd_per_chr_by_priority[p]`. A schedule puts job j on one node of an allowed
//! region from a start s with 0 <= s <= min(latest_start, starts - 1), using `units` in slots
//! s..s + len(fractions) (each within `free`) and costs `units * sum_k usd_per_chr[s+k] *
//! fractions[k]`. `DIR/solution-<strategy>.json`: `placements[]` (`job_id`, `node_id`,
//! `start` hour index, `slots`, `units`, `cost_usd`), `unplaced[]` (job id, reason) and the
//! summary. `DIR/bound.json`: the relaxation's value ([`Bound`](crate::domain::plan::Bound)).

pub mod backtest;
pub mod instance;
pub mod run;
