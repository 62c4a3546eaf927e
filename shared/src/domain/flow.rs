//! The planner's lower bound: the relaxation in which a job's compute-hours may be split
//! across nodes and slots, solved exactly as a min-cost flow.
//!
//! # The relaxation
//!
//! A job is *eligible* when some schedule could place it at all: it passes the planner's
//! screen (allowed region, fits some allowed node, latest start not past) and its run fits
//! the grid. Ineligible jobs are left out of the bound and of every strategy's penalised cost
//! alike. An eligible job's work (`units x fractions`, in compute-hours) may be served in any
//! slot `t < end`, `end` = its latest possible start (deadline, start window, grid) plus its
//! run length, on any node of an allowed region, split any way, with each node-slot holding
//! at most its free units x 1 h. Work not served costs [`penalty_per_chr`] per compute-hour,
//! higher for more urgent priorities.
//!
//! Every schedule maps to a flow of the same cost (its placed work along its slots, the rest
//! on the penalty arcs), so the flow's optimum is a lower bound on
//! `cost + penalty x unserved compute-hours` of every schedule. Because the penalty is above
//! every slot price, the relaxation serves as much work as it can and urgent work first.
//!
//! # The graph (min-cost flow)
//!
//! source -> class (priority, allowed regions, end): the class's compute-hours;
//! class -> sink at the priority's penalty (unserved);
//! class -> (region, end - 1) for each allowed region; (region, t) -> (region, t - 1) free
//! (work due by t may run earlier); (region, t) -> sink once per node of the region, at the
//! node's price in slot t with its free units as capacity.
//! Solved by the primal-dual method: Dijkstra on reduced costs (Bellman-Ford first, since
//! prices may be negative), then a blocking flow (Dinic) on the zero-reduced-cost arcs.

use super::PlanInput;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

const EPS: f64 = 1e-9;

/// USD per compute-hour charged for eligible work a schedule leaves unserved: (11 - p) times
/// the largest absolute slot price in the instance (at least 1 cent), so it always exceeds
/// any slot price and an unserved priority-0 hour costs 11x the dearest slot.
pub fn penalty_per_chr(input: &PlanInput, priority: u8) -> f64 {
    let pmax = input
        .nodes
        .iter()
        .flat_map(|n| n.usd_per_chr.iter())
        .fold(0.01f64, |m, p| m.max(p.abs()));
    f64::from(11u8.saturating_sub(priority.min(10))) * pmax
}

/// Last start slot a schedule could give job `j`, or None when no schedule can place it.
pub fn last_start(input: &PlanInput, j: usize) -> Option<usize> {
    let job = &input.jobs[j];
    let horizon = input.horizon();
    let slots = job.slots();
    if job.latest_start < 0 || slots > horizon || input.starts == 0 {
        return None;
    }
    let ok_node = input.nodes.iter().any(|n| {
        (job.regions.is_empty() || job.regions.contains(&n.region)) && n.capacity_units >= job.units
    });
    if !ok_node {
        return None;
    }
    Some(
        (job.latest_start as usize)
            .min(horizon - slots)
            .min(input.starts - 1),
    )
}

/// The bound and how the relaxation spends it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bound {
    /// Optimum of the relaxation: slot cost plus penalties (USD).
    pub usd: f64,
    /// Of which penalties for unserved work (USD).
    pub penalty_usd: f64,
    /// Eligible work, compute-hours.
    pub demand_chr: f64,
    /// Work the relaxation leaves unserved, compute-hours, by priority 0..9.
    pub unserved_chr: [f64; 10],
}

/// The lower bound over the jobs `include` selects (all eligible jobs for `|_| true`).
pub fn lower_bound_of(input: &PlanInput, include: impl Fn(usize) -> bool) -> Bound {
    let horizon = input.horizon();
    let mut regions: Vec<&str> = input.nodes.iter().map(|n| n.region.as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    let region_ix: HashMap<&str, usize> =
        regions.iter().enumerate().map(|(i, r)| (*r, i)).collect();

    // Demand classes: (priority, allowed region mask as a sorted list, end).
    let mut classes: HashMap<(u8, Vec<usize>, usize), f64> = HashMap::new();
    let mut demand = 0.0;
    for (j, job) in input.jobs.iter().enumerate() {
        if !include(j) {
            continue;
        }
        let Some(last) = last_start(input, j) else {
            continue;
        };
        let mut allowed: Vec<usize> = if job.regions.is_empty() {
            (0..regions.len()).collect()
        } else {
            job.regions
                .iter()
                .filter_map(|r| region_ix.get(r.as_str()).copied())
                .collect()
        };
        allowed.sort_unstable();
        allowed.dedup();
        let chr = f64::from(job.units) * job.fractions.iter().sum::<f64>();
        demand += chr;
        *classes
            .entry((job.priority.get(), allowed, last + job.slots()))
            .or_insert(0.0) += chr;
    }

    // Nodes: 0 source, 1 sink, then region-time, then classes.
    let rt = |r: usize, t: usize| 2 + r * horizon + t;
    let first_class = 2 + regions.len() * horizon;
    let mut g = Graph::new(first_class + classes.len());
    for r in 0..regions.len() {
        for t in 1..horizon {
            g.add(rt(r, t), rt(r, t - 1), f64::INFINITY, 0.0);
        }
    }
    for node in &input.nodes {
        let r = region_ix[node.region.as_str()];
        for t in 0..horizon {
            if node.free[t] > 0 {
                g.add(rt(r, t), 1, f64::from(node.free[t]), node.usd_per_chr[t]);
            }
        }
    }
    let mut class_list: Vec<_> = classes.into_iter().collect();
    class_list.sort_by(|a, b| a.0.cmp(&b.0));
    let mut unserved_arcs = Vec::new();
    for (k, ((prio, allowed, end), chr)) in class_list.iter().enumerate() {
        let c = first_class + k;
        g.add(0, c, *chr, 0.0);
        unserved_arcs.push((*prio, g.add(c, 1, *chr, penalty_per_chr(input, *prio))));
        for &r in allowed {
            g.add(c, rt(r, end - 1), f64::INFINITY, 0.0);
        }
    }
    let usd = g.min_cost_flow(0, 1);
    let mut unserved_chr = [0.0; 10];
    let mut penalty_usd = 0.0;
    for (prio, arc) in unserved_arcs {
        let f = g.flow(arc);
        unserved_chr[usize::from(prio.min(9))] += f;
        penalty_usd += f * penalty_per_chr(input, prio);
    }
    Bound {
        usd,
        penalty_usd,
        demand_chr: demand,
        unserved_chr,
    }
}

/// The lower bound over every eligible job.
pub fn lower_bound(input: &PlanInput) -> Bound {
    lower_bound_of(input, |_| true)
}

struct Arc {
    to: usize,
    cap: f64,
    cost: f64,
}

/// A residual graph: arc `2k` and its reverse `2k + 1`.
struct Graph {
    arcs: Vec<Arc>,
    out: Vec<Vec<usize>>,
    orig_cap: Vec<f64>,
}

#[derive(PartialEq)]
struct Item(f64, usize);
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

impl Graph {
    fn new(n: usize) -> Graph {
        Graph {
            arcs: Vec::new(),
            out: vec![Vec::new(); n],
            orig_cap: Vec::new(),
        }
    }

    fn add(&mut self, from: usize, to: usize, cap: f64, cost: f64) -> usize {
        let k = self.arcs.len();
        self.arcs.push(Arc { to, cap, cost });
        self.arcs.push(Arc {
            to: from,
            cap: 0.0,
            cost: -cost,
        });
        self.out[from].push(k);
        self.out[to].push(k + 1);
        self.orig_cap.push(cap);
        k
    }

    fn flow(&self, arc: usize) -> f64 {
        self.orig_cap[arc / 2] - self.arcs[arc].cap
    }

    /// Sends as much as possible from `s` to `t` at least cost; returns the cost.
    fn min_cost_flow(&mut self, s: usize, t: usize) -> f64 {
        let n = self.out.len();
        // Initial potentials: Bellman-Ford (queue-based) on arcs with room.
        let mut pot = vec![f64::INFINITY; n];
        pot[s] = 0.0;
        let mut queue = std::collections::VecDeque::from([s]);
        let mut inq = vec![false; n];
        inq[s] = true;
        while let Some(u) = queue.pop_front() {
            inq[u] = false;
            for &a in &self.out[u] {
                let arc = &self.arcs[a];
                if arc.cap > EPS && pot[u] + arc.cost < pot[arc.to] - EPS {
                    pot[arc.to] = pot[u] + arc.cost;
                    if !inq[arc.to] {
                        inq[arc.to] = true;
                        queue.push_back(arc.to);
                    }
                }
            }
        }
        for p in &mut pot {
            if !p.is_finite() {
                *p = 0.0;
            }
        }
        let mut total = 0.0;
        let mut dist = vec![f64::INFINITY; n];
        let mut level = vec![u32::MAX; n];
        let mut iter = vec![0usize; n];
        loop {
            // Dijkstra on reduced costs.
            dist.iter_mut().for_each(|d| *d = f64::INFINITY);
            dist[s] = 0.0;
            let mut heap = BinaryHeap::from([Item(0.0, s)]);
            while let Some(Item(d, u)) = heap.pop() {
                if d > dist[u] {
                    continue;
                }
                for &a in &self.out[u] {
                    let arc = &self.arcs[a];
                    if arc.cap <= EPS {
                        continue;
                    }
                    let nd = d + (arc.cost + pot[u] - pot[arc.to]).max(0.0);
                    if nd < dist[arc.to] - EPS {
                        dist[arc.to] = nd;
                        heap.push(Item(nd, arc.to));
                    }
                }
            }
            if !dist[t].is_finite() {
                return total;
            }
            for (p, d) in pot.iter_mut().zip(&dist) {
                if d.is_finite() {
                    *p += d;
                }
            }
            // Blocking flows on the admissible (zero reduced cost) arcs.
            loop {
                level.iter_mut().for_each(|l| *l = u32::MAX);
                level[s] = 0;
                let mut bfs = std::collections::VecDeque::from([s]);
                while let Some(u) = bfs.pop_front() {
                    for &a in &self.out[u] {
                        let arc = &self.arcs[a];
                        if arc.cap > EPS
                            && level[arc.to] == u32::MAX
                            && (arc.cost + pot[u] - pot[arc.to]).abs() <= 1e-7
                        {
                            level[arc.to] = level[u] + 1;
                            bfs.push_back(arc.to);
                        }
                    }
                }
                if level[t] == u32::MAX {
                    break;
                }
                iter.iter_mut().for_each(|i| *i = 0);
                loop {
                    let pushed = self.dfs(s, t, f64::INFINITY, &level, &mut iter, &pot);
                    if pushed <= EPS {
                        break;
                    }
                    total += pushed * (pot[t] - pot[s]);
                }
            }
        }
    }

    fn dfs(
        &mut self,
        u: usize,
        t: usize,
        limit: f64,
        level: &[u32],
        iter: &mut [usize],
        pot: &[f64],
    ) -> f64 {
        if u == t {
            return limit;
        }
        while iter[u] < self.out[u].len() {
            let a = self.out[u][iter[u]];
            let (to, cap, cost) = (self.arcs[a].to, self.arcs[a].cap, self.arcs[a].cost);
            if cap > EPS && level[to] == level[u] + 1 && (cost + pot[u] - pot[to]).abs() <= 1e-7 {
                let d = self.dfs(to, t, limit.min(cap), level, iter, pot);
                if d > EPS {
                    self.arcs[a].cap -= d;
                    self.arcs[a ^ 1].cap += d;
                    return d;
                }
            }
            iter[u] += 1;
        }
        0.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::job::{JobId, Priority};
    use crate::domain::plan::{strategy_by_name, PlanJob, SlotNode, STRATEGY_NAMES};
    use crate::domain::time::Hour;

    /// A tiny deterministic generator, so the tests need no extra crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn random_input(seed: u64, unit_jobs: bool) -> PlanInput {
        let mut r = Lcg(seed);
        let slots = 3 + r.next(3) as usize;
        let nodes = (0..1 + r.next(3))
            .map(|i| {
                let cap = 1 + r.next(3) as u32;
                SlotNode {
                    node_id: format!("n{i}"),
                    region: format!("r{}", r.next(2)),
                    capacity_units: cap,
                    usd_per_chr: (0..slots)
                        .map(|_| (1 + r.next(20)) as f64 / 100.0)
                        .collect(),
                    free: (0..slots)
                        .map(|_| cap.saturating_sub(r.next(2) as u32))
                        .collect(),
                }
            })
            .collect();
        let jobs = (0..1 + r.next(5))
            .map(|i| {
                let (units, len) = if unit_jobs {
                    (1, 1)
                } else {
                    (1 + r.next(2) as u32, 1 + r.next(2) as usize)
                };
                PlanJob {
                    id: JobId::try_from(format!("j{i}")).unwrap(),
                    priority: Priority::try_from(r.next(3) as u8).unwrap(),
                    units,
                    compute_hours: f64::from(units) * len as f64,
                    fractions: vec![1.0; len],
                    latest_start: r.next(slots as u64) as i64,
                    regions: if r.next(3) == 0 {
                        vec![format!("r{}", r.next(2))]
                    } else {
                        vec![]
                    },
                    seq: i,
                }
            })
            .collect();
        PlanInput {
            now: Hour(0),
            starts: slots,
            nodes,
            jobs,
        }
    }

    /// Penalised cost of the best schedule, by enumerating every (node, start) or "unplaced"
    /// for every job.
    fn enumerate_optimum(input: &PlanInput) -> f64 {
        fn go(input: &PlanInput, j: usize, free: &mut Vec<Vec<u32>>) -> f64 {
            if j == input.jobs.len() {
                return 0.0;
            }
            let job = &input.jobs[j];
            let Some(last) = last_start(input, j) else {
                return go(input, j + 1, free);
            };
            let chr = f64::from(job.units) * job.fractions.iter().sum::<f64>();
            let mut best =
                chr * penalty_per_chr(input, job.priority.get()) + go(input, j + 1, free);
            for n in 0..input.nodes.len() {
                let node = &input.nodes[n];
                if !(job.regions.is_empty() || job.regions.contains(&node.region)) {
                    continue;
                }
                for s in 0..=last {
                    if (s..s + job.slots()).all(|t| free[n][t] >= job.units) {
                        for f in &mut free[n][s..s + job.slots()] {
                            *f -= job.units;
                        }
                        let c = input.cost(job, n, s) + go(input, j + 1, free);
                        for f in &mut free[n][s..s + job.slots()] {
                            *f += job.units;
                        }
                        best = best.min(c);
                    }
                }
            }
            best
        }
        let h = input.horizon();
        let mut free = input.nodes.iter().map(|n| n.free[..h].to_vec()).collect();
        go(input, 0, &mut free)
    }

    fn penalised(input: &PlanInput, plan: &crate::domain::plan::Plan) -> f64 {
        let placed: Vec<&JobId> = plan.placements.iter().map(|p| &p.job_id).collect();
        plan.total_cost()
            + (0..input.jobs.len())
                .filter(|&j| last_start(input, j).is_some() && !placed.contains(&&input.jobs[j].id))
                .map(|j| {
                    let job = &input.jobs[j];
                    f64::from(job.units)
                        * job.fractions.iter().sum::<f64>()
                        * penalty_per_chr(input, job.priority.get())
                })
                .sum::<f64>()
    }

    #[test]
    fn bound_is_exact_when_the_relaxation_is_integral() {
        // Unit jobs (one unit, one slot): the relaxation's optimum is a schedule.
        for seed in 0..300 {
            let input = random_input(seed, true);
            let b = lower_bound(&input);
            let opt = enumerate_optimum(&input);
            assert!(
                (b.usd - opt).abs() < 1e-6,
                "seed {seed}: bound {} vs optimum {opt}",
                b.usd
            );
        }
    }

    #[test]
    fn no_schedule_costs_less_than_the_bound() {
        for seed in 0..300 {
            let input = random_input(seed, false);
            let b = lower_bound(&input);
            let opt = enumerate_optimum(&input);
            assert!(
                b.usd <= opt + 1e-6,
                "seed {seed}: bound {} > optimum {opt}",
                b.usd
            );
            for name in STRATEGY_NAMES {
                let plan = strategy_by_name(name).unwrap().plan(&input);
                let c = penalised(&input, &plan);
                assert!(
                    b.usd <= c + 1e-6,
                    "seed {seed} {name}: bound {} > {c}",
                    b.usd
                );
                assert!(opt <= c + 1e-6, "seed {seed} {name}: optimum {opt} > {c}");
            }
        }
    }

    #[test]
    fn a_known_instance() {
        // One node, 2 units; slot prices 3, 1, 2. A job of 2 units x 2 h due by the end and a
        // job of 1 unit x 1 h due after slot 0. Relaxation: the small job takes slot 0 (1 c-hr
        // at 3); the big one 2 c-hr at 1 and 2 c-hr at 2: 3 + 2 + 4 = 9.
        let input = PlanInput {
            now: Hour(0),
            starts: 3,
            nodes: vec![SlotNode {
                node_id: "a".into(),
                region: "r".into(),
                capacity_units: 2,
                usd_per_chr: vec![3.0, 1.0, 2.0],
                free: vec![2, 2, 2],
            }],
            jobs: vec![
                PlanJob {
                    id: JobId::try_from("big".to_string()).unwrap(),
                    priority: Priority::try_from(0).unwrap(),
                    units: 2,
                    compute_hours: 4.0,
                    fractions: vec![1.0, 1.0],
                    latest_start: 1,
                    regions: vec![],
                    seq: 0,
                },
                PlanJob {
                    id: JobId::try_from("small".to_string()).unwrap(),
                    priority: Priority::try_from(0).unwrap(),
                    units: 1,
                    compute_hours: 1.0,
                    fractions: vec![1.0],
                    latest_start: 0,
                    regions: vec![],
                    seq: 1,
                },
            ],
        };
        let b = lower_bound(&input);
        assert!((b.usd - 9.0).abs() < 1e-9, "{b:?}");
        assert_eq!(b.unserved_chr, [0.0; 10]);
        assert!((b.demand_chr - 5.0).abs() < 1e-9);
    }
}
