//! Dispatch planning: which job runs on which node, starting which hour.
//!
//! The planner sees a grid of hourly slots per node (price per compute-hour and free
//! units per slot) and the pending jobs. A strategy returns placements (the ones that
//! start now are committed; the rest stay tentative and are re-planned) and the jobs it
//! could not place, each with a reason.

use super::job::{Job, JobId, Priority};
use super::time::{hours_f, Hour};
use serde::{Deserialize, Serialize};

#[path = "flow.rs"]
pub mod flow;
pub use flow::{lower_bound, lower_bound_of, penalty_per_chr, Bound};

/// One node's view for planning: price and free units per slot from `PlanInput::now`.
/// A slot the node cannot take work in (stale, drained, unknown price) has `free` 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotNode {
    pub node_id: String,
    pub region: String,
    /// Full capacity, for telling "too large" from "no room".
    pub capacity_units: u32,
    pub usd_per_chr: Vec<f64>,
    pub free: Vec<u32>,
}

/// A job as the planner needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanJob {
    pub id: JobId,
    pub priority: Priority,
    pub units: u32,
    pub compute_hours: f64,
    /// Slots it occupies and the fraction of each it runs.
    pub fractions: Vec<f64>,
    /// Latest start as a slot index from `now` (negative: it can no longer finish in time).
    pub latest_start: i64,
    pub regions: Vec<String>,
    /// Submission order, for ties.
    pub seq: u64,
}

impl PlanJob {
    pub fn new(job: &Job, now: Hour, seq: u64) -> PlanJob {
        let slots = job.slots();
        let fractions = (0..slots).map(|k| job.slot_fraction(k)).collect();
        // Start at hour s finishes at s + duration; it must not pass the deadline.
        let latest = (hours_f(job.deadline) - job.duration_hours() + 1e-9).floor() as i64;
        PlanJob {
            id: job.id.clone(),
            priority: job.priority,
            units: job.units,
            compute_hours: job.compute_hours,
            fractions,
            latest_start: latest - now.0,
            regions: job.regions.clone(),
            seq,
        }
    }

    pub fn slots(&self) -> usize {
        self.fractions.len()
    }

    fn allows(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub now: Hour,
    /// Slots in which a job may start (the priced horizon); a run may extend past them.
    pub starts: usize,
    pub nodes: Vec<SlotNode>,
    pub jobs: Vec<PlanJob>,
}

impl PlanInput {
    pub fn horizon(&self) -> usize {
        self.nodes.iter().map(|n| n.free.len()).min().unwrap_or(0)
    }

    /// Cost in USD of running `job` on node `n` from slot `start`.
    pub fn cost(&self, job: &PlanJob, n: usize, start: usize) -> f64 {
        let prices = &self.nodes[n].usd_per_chr[start..start + job.slots()];
        f64::from(job.units)
            * prices
                .iter()
                .zip(&job.fractions)
                .map(|(p, f)| p * f)
                .sum::<f64>()
    }
}

/// Another place the job could have gone, for explaining a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub node_id: String,
    pub start: Hour,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub job_id: JobId,
    pub node_id: String,
    pub start: Hour,
    pub slots: u32,
    pub units: u32,
    /// Planned cost at the prices the plan saw.
    pub cost_usd: f64,
    /// Best option on another node (or, failing that, another hour).
    pub runner_up: Option<Alternative>,
}

/// Why a job has no placement in this plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Unplaced {
    #[error("no node in an allowed region")]
    NoAllowedRegion,
    #[error("needs more units than any allowed node has")]
    TooLarge,
    #[error("can no longer finish before its deadline")]
    PastDeadline,
    #[error("no capacity before its deadline within the planning horizon")]
    NoCapacityBeforeDeadline,
    #[error("no node has room now")]
    NoRoomNow,
}

impl Unplaced {
    /// True when waiting cannot help: the job should leave the queue.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Unplaced::NoAllowedRegion | Unplaced::TooLarge | Unplaced::PastDeadline
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub placements: Vec<Placement>,
    pub unplaced: Vec<(JobId, Unplaced)>,
}

impl Plan {
    /// Placements that start in the current hour: the ones to commit now.
    pub fn starting_now(&self, now: Hour) -> impl Iterator<Item = &Placement> {
        self.placements.iter().filter(move |p| p.start == now)
    }

    pub fn total_cost(&self) -> f64 {
        self.placements.iter().map(|p| p.cost_usd).sum()
    }
}

/// A dispatch strategy. Later strategies plug in here by name.
pub trait Strategy: Send + Sync {
    fn name(&self) -> &'static str;
    fn plan(&self, input: &PlanInput) -> Plan;
}

pub const STRATEGY_NAMES: [&str; 3] = ["optimized", "greedy-time-aware", "baseline-2019"];

pub fn strategy_by_name(name: &str) -> Option<Box<dyn Strategy>> {
    match name {
        "baseline-2019" => Some(Box::new(Baseline2019)),
        "greedy-time-aware" => Some(Box::new(GreedyTimeAware)),
        "optimized" => Some(Box::new(Optimized)),
        _ => None,
    }
}

/// Urgent first; among equals the earliest deadline, then first come.
fn priority_order(jobs: &[PlanJob]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (jobs[i].priority, jobs[i].latest_start, jobs[i].seq));
    order
}

/// The mutable grid a strategy fills in.
#[derive(Clone)]
struct Grid {
    free: Vec<Vec<u32>>,
    /// `prefix[n][s]`: sum of node n's prices over slots 0..s, for O(1) run costs.
    prefix: Vec<Vec<f64>>,
}

impl Grid {
    fn new(input: &PlanInput) -> Grid {
        let h = input.horizon();
        Grid {
            free: input.nodes.iter().map(|n| n.free[..h].to_vec()).collect(),
            prefix: input
                .nodes
                .iter()
                .map(|n| {
                    let mut acc = 0.0;
                    std::iter::once(0.0)
                        .chain(n.usd_per_chr[..h].iter().map(|p| {
                            acc += p;
                            acc
                        }))
                        .collect()
                })
                .collect(),
        }
    }

    /// Cost of `job` on node `n` from `start`: whole slots from the prefix sums, the
    /// partial last slot at its fraction.
    fn cost(&self, input: &PlanInput, job: &PlanJob, n: usize, start: usize) -> f64 {
        let k = job.slots();
        let last = job.fractions[k - 1];
        if job.fractions[..k - 1].iter().all(|&f| f == 1.0) {
            let p = &self.prefix[n];
            f64::from(job.units)
                * (p[start + k - 1] - p[start] + last * input.nodes[n].usd_per_chr[start + k - 1])
        } else {
            input.cost(job, n, start)
        }
    }

    fn release(&mut self, n: usize, start: usize, job: &PlanJob) {
        for f in &mut self.free[n][start..start + job.slots()] {
            *f += job.units;
        }
    }

    /// `run[s]`: consecutive slots from `s` with at least `units` free.
    fn runs(&self, n: usize, units: u32) -> Vec<usize> {
        let free = &self.free[n];
        let mut run = vec![0; free.len() + 1];
        for s in (0..free.len()).rev() {
            run[s] = if free[s] >= units { run[s + 1] + 1 } else { 0 };
        }
        run
    }

    fn reserve(&mut self, n: usize, start: usize, job: &PlanJob) {
        for f in &mut self.free[n][start..start + job.slots()] {
            *f -= job.units;
        }
    }
}

/// Screens a job before searching: reasons that do not depend on the grid's state.
fn screen(input: &PlanInput, job: &PlanJob) -> Result<Vec<usize>, Unplaced> {
    let allowed: Vec<usize> = (0..input.nodes.len())
        .filter(|&n| job.allows(&input.nodes[n].region))
        .collect();
    if allowed.is_empty() {
        return Err(Unplaced::NoAllowedRegion);
    }
    let fits: Vec<usize> = allowed
        .into_iter()
        .filter(|&n| input.nodes[n].capacity_units >= job.units)
        .collect();
    if fits.is_empty() {
        return Err(Unplaced::TooLarge);
    }
    if job.latest_start < 0 {
        return Err(Unplaced::PastDeadline);
    }
    Ok(fits)
}

/// The 2019 prototype's rule: jobs in priority order, each to the node that is cheapest
/// right now and has room right now; never deferred to a cheaper hour.
pub struct Baseline2019;

impl Strategy for Baseline2019 {
    fn name(&self) -> &'static str {
        "baseline-2019"
    }

    fn plan(&self, input: &PlanInput) -> Plan {
        let mut grid = Grid::new(input);
        let horizon = input.horizon();
        let mut plan = Plan::default();
        for i in priority_order(&input.jobs) {
            let job = &input.jobs[i];
            let nodes = match screen(input, job) {
                Ok(n) => n,
                Err(why) => {
                    plan.unplaced.push((job.id.clone(), why));
                    continue;
                }
            };
            let best = nodes
                .into_iter()
                .filter(|&n| {
                    input.starts > 0
                        && job.slots() <= horizon
                        && grid.runs(n, job.units)[0] >= job.slots()
                })
                .min_by(|&a, &b| {
                    input.nodes[a].usd_per_chr[0].total_cmp(&input.nodes[b].usd_per_chr[0])
                });
            match best {
                Some(n) => {
                    grid.reserve(n, 0, job);
                    plan.placements.push(placement(input, job, n, 0, None));
                }
                None => plan.unplaced.push((job.id.clone(), Unplaced::NoRoomNow)),
            }
        }
        plan
    }
}

/// Hours of slack a deferred job keeps before its latest start.
pub const DEFER_SLACK_HOURS: i64 = 3;

/// Time-aware greedy: jobs in priority order, each to the cheapest (node, start hour)
/// over the horizon that has room for its whole run and meets its deadline. A job may
/// wait for a cheaper hour; a less urgent job only ever gets what more urgent ones left.
pub struct GreedyTimeAware;

impl Strategy for GreedyTimeAware {
    fn name(&self) -> &'static str {
        "greedy-time-aware"
    }

    fn plan(&self, input: &PlanInput) -> Plan {
        let mut grid = Grid::new(input);
        let mut plan = Plan::default();
        for i in priority_order(&input.jobs) {
            place_cheapest(input, &mut grid, i, &mut plan);
        }
        plan
    }
}

/// (cost, start, node) of a candidate spot.
type Spot = (f64, usize, usize);

/// The cheapest spot for job `i` on the grid as it stands, and the best spot per node.
fn cheapest_spots(input: &PlanInput, grid: &Grid, nodes: &[usize], i: usize) -> Vec<Spot> {
    let job = &input.jobs[i];
    let horizon = input.horizon();
    let slots = job.slots();
    let mut best_per_node: Vec<Spot> = Vec::new();
    if slots > horizon || input.starts == 0 {
        return best_per_node;
    }
    let last_start = (job.latest_start as usize)
        .min(horizon - slots)
        .min(input.starts - 1);
    for &n in nodes {
        let run = grid.runs(n, job.units);
        let mut node_best: Option<Spot> = None;
        for (s, &room) in run.iter().enumerate().take(last_start + 1) {
            // Waiting is a bet on the forecast: keep a few hours of slack so a stale feed
            // or a more urgent arrival at the chosen hour does not cost the deadline.
            if room < slots || (s > 0 && s as i64 + DEFER_SLACK_HOURS > job.latest_start) {
                continue;
            }
            let c = grid.cost(input, job, n, s);
            if node_best.is_none_or(|(bc, _, _)| c < bc - 1e-12) {
                node_best = Some((c, s, n));
            }
        }
        best_per_node.extend(node_best);
    }
    best_per_node
}

/// Cheapest first; ties go to the earlier start, then the first node.
fn pick(spots: &[Spot]) -> Option<Spot> {
    let mut best: Option<Spot> = None;
    for &nb in spots {
        if best.is_none_or(|(bc, bs, _)| nb.0 < bc - 1e-12 || (nb.0 <= bc + 1e-12 && nb.1 < bs)) {
            best = Some(nb);
        }
    }
    best
}

/// Places job `i` at its cheapest spot (or records why it cannot be placed).
fn place_cheapest(input: &PlanInput, grid: &mut Grid, i: usize, plan: &mut Plan) -> bool {
    let job = &input.jobs[i];
    let nodes = match screen(input, job) {
        Ok(n) => n,
        Err(why) => {
            plan.unplaced.push((job.id.clone(), why));
            return false;
        }
    };
    let spots = cheapest_spots(input, grid, &nodes, i);
    match pick(&spots) {
        Some((_, s, n)) => {
            let runner_up = spots
                .iter()
                .filter(|(_, _, m)| *m != n)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|&(c, s2, m)| Alternative {
                    node_id: input.nodes[m].node_id.clone(),
                    start: input.now.plus(s2 as i64),
                    cost_usd: c,
                });
            grid.reserve(n, s, job);
            plan.placements.push(placement(input, job, n, s, runner_up));
            true
        }
        None => {
            plan.unplaced
                .push((job.id.clone(), Unplaced::NoCapacityBeforeDeadline));
            false
        }
    }
}

/// `optimized`: priority level by priority level (most urgent first), the level's jobs are
/// placed greedily (cheapest spot each, as `greedy-time-aware`) in several orders, and the
/// level keeps the order that leaves the least work unplaced, then costs least; then a
/// local search moves single jobs of that level to a cheaper spot while one opens up. A level's outcome depends only on the grid the more urgent levels left and on
/// its own jobs, so a less urgent job never displaces a more urgent one.
pub struct Optimized;

/// Orders tried per priority level.
const ORDERS: usize = 4;
/// Rounds of the local search per level.
const LOCAL_SEARCH_ROUNDS: usize = 2;

impl Strategy for Optimized {
    fn name(&self) -> &'static str {
        "optimized"
    }

    fn plan(&self, input: &PlanInput) -> Plan {
        let mut grid = Grid::new(input);
        let mut plan = Plan::default();
        let order = priority_order(&input.jobs);
        let mut lo = 0;
        while lo < order.len() {
            let prio = input.jobs[order[lo]].priority;
            let hi = lo + order[lo..].partition_point(|&i| input.jobs[i].priority == prio);
            let level = &order[lo..hi];
            let mut best: Option<(f64, f64, Grid, Plan)> = None;
            for k in 0..ORDERS {
                let ordered = level_order(input, &grid, level, k);
                let mut g = grid.clone();
                let mut p = Plan::default();
                for &i in &ordered {
                    place_cheapest(input, &mut g, i, &mut p);
                }
                let unplaced_chr: f64 = p
                    .unplaced
                    .iter()
                    .filter(|(_, why)| !why.is_final())
                    .map(|(id, _)| {
                        level
                            .iter()
                            .find(|&&i| &input.jobs[i].id == id)
                            .map_or(0.0, |&i| chr(&input.jobs[i]))
                    })
                    .sum();
                let cost = p.total_cost();
                if best.as_ref().is_none_or(|(bu, bc, _, _)| {
                    unplaced_chr < bu - 1e-9 || (unplaced_chr <= bu + 1e-9 && cost < bc - 1e-9)
                }) {
                    best = Some((unplaced_chr, cost, g, p));
                }
            }
            if let Some((_, _, mut g, mut p)) = best {
                local_search(input, &mut g, &mut p);
                grid = g;
                plan.placements.extend(p.placements);
                plan.unplaced.extend(p.unplaced);
            }
            lo = hi;
        }
        plan
    }
}

fn chr(job: &PlanJob) -> f64 {
    f64::from(job.units) * job.fractions.iter().sum::<f64>()
}

/// The k-th order tried for one priority level.
fn level_order(input: &PlanInput, grid: &Grid, level: &[usize], k: usize) -> Vec<usize> {
    let jobs = &input.jobs;
    let mut v = level.to_vec();
    match k {
        // Earliest deadline first (greedy-time-aware's order).
        0 => {}
        // Biggest first: large runs are the hardest to fit.
        1 => v.sort_by(|&a, &b| {
            chr(&jobs[b])
                .total_cmp(&chr(&jobs[a]))
                .then(jobs[a].latest_start.cmp(&jobs[b].latest_start))
                .then(jobs[a].seq.cmp(&jobs[b].seq))
        }),
        // Most to lose first: regret = second-best node's cost minus the best, per c-hr.
        2 => {
            let regret: Vec<f64> = v
                .iter()
                .map(|&i| {
                    let nodes = screen(input, &jobs[i]).unwrap_or_default();
                    let mut c: Vec<f64> = cheapest_spots(input, grid, &nodes, i)
                        .iter()
                        .map(|s| s.0)
                        .collect();
                    c.sort_by(f64::total_cmp);
                    match c.len() {
                        0 => f64::INFINITY,
                        1 => 1e6,
                        _ => c[1] - c[0],
                    }
                })
                .collect();
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| {
                regret[b]
                    .total_cmp(&regret[a])
                    .then(jobs[v[a]].seq.cmp(&jobs[v[b]].seq))
            });
            v = idx.into_iter().map(|a| v[a]).collect();
        }
        // Least freedom first: shortest window per slot of run, then the widest.
        _ => v.sort_by(|&a, &b| {
            let fa = jobs[a].latest_start - jobs[a].slots() as i64;
            let fb = jobs[b].latest_start - jobs[b].slots() as i64;
            fa.cmp(&fb)
                .then(jobs[b].units.cmp(&jobs[a].units))
                .then(jobs[a].seq.cmp(&jobs[b].seq))
        }),
    }
    v
}

/// Moves single placed jobs to a cheaper spot when one opened (after another move); keeps
/// every change that lowers the cost.
fn local_search(input: &PlanInput, grid: &mut Grid, plan: &mut Plan) {
    let index: std::collections::HashMap<&JobId, usize> = input
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (&j.id, i))
        .collect();
    let node_ix: std::collections::HashMap<&str, usize> = input
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node_id.as_str(), i))
        .collect();
    // Placed: (job index, node, start).
    let mut placed: Vec<(usize, usize, usize)> = plan
        .placements
        .iter()
        .map(|p| {
            (
                index[&p.job_id],
                node_ix[p.node_id.as_str()],
                input.now.until(p.start) as usize,
            )
        })
        .collect();
    for _ in 0..LOCAL_SEARCH_ROUNDS {
        let mut improved = false;
        for slot in placed.iter_mut() {
            let (i, n, s) = *slot;
            let job = &input.jobs[i];
            let here = grid.cost(input, job, n, s);
            grid.release(n, s, job);
            let nodes = screen(input, job).unwrap_or_default();
            let best = pick(&cheapest_spots(input, grid, &nodes, i));
            match best {
                Some((c, s2, n2)) if c < here - 1e-9 => {
                    grid.reserve(n2, s2, job);
                    *slot = (i, n2, s2);
                    improved = true;
                }
                _ => grid.reserve(n, s, job),
            }
        }
        if !improved {
            break;
        }
    }
    let by_job: std::collections::HashMap<usize, (usize, usize)> =
        placed.iter().map(|&(i, n, s)| (i, (n, s))).collect();
    for p in &mut plan.placements {
        let i = index[&p.job_id];
        let (n, s) = by_job[&i];
        let moved = node_ix[p.node_id.as_str()] != n || input.now.until(p.start) as usize != s;
        if moved {
            let runner_up = p
                .runner_up
                .take()
                .filter(|r| r.node_id != input.nodes[n].node_id);
            *p = placement(input, &input.jobs[i], n, s, runner_up);
        }
    }
}

fn placement(
    input: &PlanInput,
    job: &PlanJob,
    n: usize,
    start: usize,
    runner_up: Option<Alternative>,
) -> Placement {
    Placement {
        job_id: job.id.clone(),
        node_id: input.nodes[n].node_id.clone(),
        start: input.now.plus(start as i64),
        slots: job.slots() as u32,
        units: job.units,
        cost_usd: input.cost(job, n, start),
        runner_up,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn job(id: &str, prio: u8, units: u32, hours: usize, latest_start: i64, seq: u64) -> PlanJob {
        PlanJob {
            id: JobId::try_from(id.to_string()).unwrap(),
            priority: Priority::try_from(prio).unwrap(),
            units,
            compute_hours: (units as usize * hours) as f64,
            fractions: vec![1.0; hours],
            latest_start,
            regions: vec![],
            seq,
        }
    }

    fn node(id: &str, region: &str, cap: u32, prices: &[f64]) -> SlotNode {
        SlotNode {
            node_id: id.into(),
            region: region.into(),
            capacity_units: cap,
            usd_per_chr: prices.to_vec(),
            free: vec![cap; prices.len()],
        }
    }

    #[test]
    fn baseline_takes_the_cheapest_node_now_and_never_waits() {
        let input = PlanInput {
            now: Hour(100),
            starts: 6,
            nodes: vec![
                node("a", "r", 4, &[0.05, 0.01, 0.02, 0.05, 0.05, 0.05]),
                node("b", "r", 4, &[0.04, 0.09, 0.09, 0.09, 0.09, 0.09]),
            ],
            jobs: vec![job("j", 1, 2, 1, 5, 0), job("soon", 1, 2, 1, 2, 1)],
        };
        let plan = Baseline2019.plan(&input);
        assert!(plan
            .placements
            .iter()
            .all(|p| p.node_id == "b" && p.start == Hour(100)));
        let opt = GreedyTimeAware.plan(&input);
        let of = |id: &str| {
            opt.placements
                .iter()
                .find(|p| p.job_id.as_str() == id)
                .unwrap()
        };
        assert_eq!(
            of("j").start,
            Hour(101),
            "optimized waits for the cheap hour"
        );
        assert_eq!(
            of("soon").start,
            Hour(100),
            "but not when waiting would leave under DEFER_SLACK_HOURS before the latest start"
        );
        assert!(opt.total_cost() < plan.total_cost());
        let ru = of("j").runner_up.as_ref().unwrap();
        assert_eq!(ru.node_id, "b");
    }

    #[test]
    fn optimized_respects_deadline_and_capacity() {
        let input = PlanInput {
            now: Hour(0),
            starts: 4,
            nodes: vec![node("a", "r", 4, &[0.09, 0.08, 0.01, 0.01])],
            jobs: vec![job("tight", 0, 4, 2, 1, 0), job("loose", 1, 4, 2, 2, 1)],
        };
        let plan = Optimized.plan(&input);
        let tight = plan
            .placements
            .iter()
            .find(|p| p.job_id.as_str() == "tight")
            .unwrap();
        assert!(tight.start.0 <= 1);
        let loose = plan
            .placements
            .iter()
            .find(|p| p.job_id.as_str() == "loose");
        // "tight" must take slots 0-1 or 1-2; loose then fits only at 2-3 if tight took 0-1.
        if let Some(l) = loose {
            assert!(l.start.0 + 2 <= tight.start.0 || tight.start.0 + 2 <= l.start.0);
        }
    }

    #[test]
    fn reasons_for_jobs_that_cannot_be_placed() {
        let mut eu = job("eu", 0, 1, 1, 5, 0);
        eu.regions = vec!["eu".into()];
        let input = PlanInput {
            now: Hour(0),
            starts: 4,
            nodes: vec![node("a", "us", 4, &[0.1; 4])],
            jobs: vec![
                eu,
                job("big", 0, 8, 1, 3, 1),
                job("late", 0, 1, 1, -1, 2),
                job("long", 0, 1, 9, 20, 3),
            ],
        };
        for plan in [Optimized.plan(&input), Baseline2019.plan(&input)] {
            let why = |id: &str| {
                plan.unplaced
                    .iter()
                    .find(|(j, _)| j.as_str() == id)
                    .map(|(_, w)| w.clone())
            };
            assert_eq!(why("eu"), Some(Unplaced::NoAllowedRegion));
            assert_eq!(why("big"), Some(Unplaced::TooLarge));
            assert_eq!(why("late"), Some(Unplaced::PastDeadline));
            assert!(why("long").is_some());
        }
    }

    #[test]
    fn plan_job_latest_start_meets_the_deadline() {
        use chrono::TimeZone;
        let deadline = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 10, 30, 0).unwrap();
        let j = Job {
            id: JobId::try_from("x".to_string()).unwrap(),
            priority: Priority::MOST_URGENT,
            compute_hours: 5.0,
            units: 2,
            deadline,
            regions: vec![],
        };
        let now = Hour::containing(deadline).plus(-5);
        let pj = PlanJob::new(&j, now, 0);
        // 2.5 h from a whole hour: latest start 08:00 (ends 10:30).
        assert_eq!(now.plus(pj.latest_start).to_string(), "2026-01-01T08:00Z");
        assert_eq!(pj.fractions, vec![1.0, 1.0, 0.5]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as Gen;

    fn arb_input() -> impl Gen<Value = PlanInput> {
        let nodes = prop::collection::vec(
            (
                0..2usize,
                1..9u32,
                prop::collection::vec((1..100u32, 0..5u32), 8),
            ),
            1..5,
        );
        let jobs = prop::collection::vec(
            (
                0..10u8,
                1..9u32,
                1..5usize,
                1..5u8,
                -1..10i64,
                prop::option::of(0..2usize),
            ),
            0..16,
        );
        (nodes, jobs, 1..8usize).prop_map(|(nodes, jobs, starts)| PlanInput {
            now: Hour(1000),
            starts,
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(i, (region, cap, slots))| SlotNode {
                    node_id: format!("n{i}"),
                    region: format!("r{region}"),
                    capacity_units: cap,
                    usd_per_chr: slots.iter().map(|(p, _)| f64::from(*p) / 100.0).collect(),
                    free: slots
                        .iter()
                        .map(|(_, taken)| cap.saturating_sub(*taken))
                        .collect(),
                })
                .collect(),
            jobs: jobs
                .into_iter()
                .enumerate()
                .map(|(i, (prio, units, slots, last_quarters, latest, region))| {
                    let mut fractions = vec![1.0; slots];
                    fractions[slots - 1] = f64::from(last_quarters.min(4)) / 4.0;
                    PlanJob {
                        id: JobId::try_from(format!("j{i}")).unwrap(),
                        priority: Priority::try_from(prio).unwrap(),
                        units,
                        compute_hours: f64::from(units) * fractions.iter().sum::<f64>(),
                        fractions,
                        latest_start: latest,
                        regions: region.map(|r| vec![format!("r{r}")]).unwrap_or_default(),
                        seq: i as u64,
                    }
                })
                .collect(),
        })
    }

    fn check_feasible(input: &PlanInput, plan: &Plan) -> Result<(), TestCaseError> {
        let mut used: Vec<Vec<u32>> = input.nodes.iter().map(|n| vec![0; n.free.len()]).collect();
        for p in &plan.placements {
            let job = input.jobs.iter().find(|j| j.id == p.job_id).unwrap();
            let n = input
                .nodes
                .iter()
                .position(|n| n.node_id == p.node_id)
                .unwrap();
            let s = input.now.until(p.start);
            prop_assert!(
                s >= 0 && (s as usize) < input.starts,
                "starts inside the window"
            );
            prop_assert!(s <= job.latest_start, "meets the deadline");
            prop_assert!(job.allows(&input.nodes[n].region), "allowed region");
            prop_assert_eq!(p.units, job.units);
            for k in 0..job.slots() {
                used[n][s as usize + k] += job.units;
            }
        }
        for (n, node) in input.nodes.iter().enumerate() {
            for (slot, &u) in used[n].iter().enumerate() {
                prop_assert!(
                    u <= node.free[slot],
                    "node {} slot {slot}: {u} > {}",
                    node.node_id,
                    node.free[slot]
                );
            }
        }
        let mut seen: Vec<&JobId> = plan
            .placements
            .iter()
            .map(|p| &p.job_id)
            .chain(plan.unplaced.iter().map(|(j, _)| j))
            .collect();
        seen.sort();
        let mut all: Vec<&JobId> = input.jobs.iter().map(|j| &j.id).collect();
        all.sort();
        prop_assert_eq!(seen, all, "every job placed or unplaced exactly once");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn no_plan_exceeds_capacity_deadline_or_region(input in arb_input()) {
            for strategy in STRATEGY_NAMES {
                let plan = strategy_by_name(strategy).unwrap().plan(&input);
                check_feasible(&input, &plan)?;
            }
            let base = super::Strategy::plan(&Baseline2019, &input);
            prop_assert!(base.placements.iter().all(|p| p.start == input.now), "baseline never defers");
        }

        /// A less urgent job never takes a more urgent one's place: what jobs of priority
        /// <= p get is the same whether or not less urgent jobs are in the queue.
        #[test]
        fn priorities_are_respected(input in arb_input(), cut in 0..10u8) {
            for strategy in STRATEGY_NAMES {
                let s = strategy_by_name(strategy).unwrap();
                let full = s.plan(&input);
                let mut urgent_only = input.clone();
                urgent_only.jobs.retain(|j| j.priority.get() <= cut);
                let alone = s.plan(&urgent_only);
                let keep = |p: &Plan| {
                    let mut v: Vec<(String, String, i64)> = p
                        .placements
                        .iter()
                        .filter(|pl| urgent_only.jobs.iter().any(|j| j.id == pl.job_id))
                        .map(|pl| (pl.job_id.to_string(), pl.node_id.clone(), pl.start.0))
                        .collect();
                    v.sort();
                    v
                };
                prop_assert_eq!(keep(&full), keep(&alone), "strategy {}", strategy);
            }
        }
    }
}
