//! Ruin and recreate, the last step of `optimized`. Each round lifts a few placed jobs off
//! the grid and puts them back, each at its cheapest spot, in a shuffled order, together
//! with up to [`OPEN_TRIES`] jobs still without a place that could use the room (most urgent
//! first). In half the rounds "cheapest" is judged at congestion prices (the capacity
//! prices of the whole-instance packings, when `optimized` computed them), so a big run
//! leaves a cheap node to many small ones; the round is always costed at the real prices.
//! The jobs lifted are either
//! - a few that sit close together: on one node around one job's run, or on the nodes that
//!   job may use around its hours, or anywhere (on short queues a quarter of these rounds
//!   lift many more, see [`WIDE_LIFT`]); or
//! - the jobs in the way of a job without a place at one of the [`ROOM_SPOTS`] spots it
//!   could run in that are shortest of room (the spot where they weigh least, least urgent
//!   and smallest lifted first); that job then goes back first, at that spot.
//!
//! A lifted job that finds no place starts an ejection chain: it takes a spot from jobs less
//! urgent than itself (the lightest of the spots shortest of room), and those look for a place in
//! turn, at most [`CHAIN_LINKS`] links a round.
//!
//! A round where every lifted job found a place again is kept when the cost plus the penalty
//! of the jobs left out (the total) did not rise, or rose by less than the annealing
//! allows: a rise r is kept with probability exp(-r / T), T falling geometrically from
//! [`TEMPERATURE`] times the mean run's cost to a thousandth of that over the rounds. A round
//! where some did not is kept only when, besides, each of those is less urgent than a job
//! that gained a place in the round, or of the same priority as at least as many jobs that
//! gained one as lost one. Otherwise the grid is put back as it was. So a job loses its
//! place only to one at least as urgent, and the jobs of a priority left out never grow in
//! number for jobs of that priority (a bigger job may take a smaller one's place). The plan
//! returned is the one with the lowest total seen among those that keep that rule against
//! the plan given (or an earlier plan the caller names), which is never above the plan given.
//!
//! The shuffles come from a fixed seed: the same input always gives the same plan.

use super::{
    cheapest_spots_at, chr, flow, make_room, pick, screen, sort_lift_first, Grid, Level, PlanInput,
    PlanJob, Prices, Priority, Spot, Unplaced,
};
use std::rc::Rc;

/// A job where it stands: (job, node, start).
type At = (usize, usize, usize);

/// splitmix64: small, fast and good enough to shuffle with.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Most jobs lifted in one round, but see [`WIDE_LIFT`].
const MAX_LIFT: usize = 12;
/// On queues of up to [`WIDE_QUEUE`] jobs a quarter of the rounds that lift a seed job and
/// jobs close to it lift up to this many instead of [`MAX_LIFT`] (on `small`, every job): the
/// wide ruins let the search leave a plan whose improvements all need many jobs to move at
/// once. On `small`, seeds 1-16, three shuffle seeds each, the summed penalised cost fell by
/// 0.84 % at load 0.6 and 1.4 % at 0.9 (0.2 % at 0.3, one shuffle seed), for 35 to 50 %
/// more planning time.
const WIDE_LIFT: usize = 100;
/// Queues longer than this get no wide ruins: on `medium` (1,000 jobs, seeds 1-3, two shuffle
/// seeds) lifting up to 100 or 40 jobs changed the cost by -1.0 to +1.2 % (within the spread
/// between shuffle seeds) for 25 to 40 % more planning time, and lifting every job changed
/// it by -0.1 to +1.3 % in three times the time.
const WIDE_QUEUE: usize = 500;
/// The search stops after this many rounds in a row without a new best plan, once the
/// annealing has cooled below [`STALL_COOL`] of its starting temperature.
const STALL_ROUNDS: usize = 5_000;
/// Share of the starting temperature below which a stall ends the search: while it is
/// hotter, rounds without a new best plan say nothing about convergence (stopping there
/// left small at load 0.9, seed 3, at 19.7 % above the bound against 4.9 %).
const STALL_COOL: f64 = 0.01;
/// Most jobs without a place tried in one round.
const OPEN_TRIES: usize = 8;

/// Spots weighed per "make room" round or ejection-chain link: those shortest of room (the
/// units missing, summed over the run's hours; ties drawn at random). Against 4 spots drawn
/// at random (summed penalised cost, `--defer-slack 0`): `medium` seeds 1-3 -0.1 / -1.9 %
/// at load 0.6 / 0.9, seeds 4-6 -0.5 / -1.0 %; `large` seeds 1-2 -0.6 / -1.0 % at 0.6 and
/// -0.2 / -0.1 % at 0.9, 0 at 0.3; `small` seeds 1-16 within 0.3 %. Planning time: medium
/// up to 23 % more; where jobs left out cannot start in time (3 h of slack, criterion's
/// small) twice as long, as every spot weighed is now one the job may start in.
const ROOM_SPOTS: usize = 8;
/// Most links of an ejection chain in one round.
const CHAIN_LINKS: usize = 4;
/// Starting temperature of the annealing, as a share of the mean placed run's cost.
const TEMPERATURE: f64 = 0.1;

/// The best plan seen: its total, its cost, where each job was and the jobs left out that
/// a schedule could place.
struct Best {
    total: f64,
    cost: f64,
    at: Vec<Option<(usize, usize)>>,
    runner_up: Vec<Option<Spot>>,
    open: Vec<usize>,
}

/// What stays the same over the rounds.
struct Fixed<'a> {
    input: &'a PlanInput,
    slack: i64,
    /// The nodes each job may use, to draw from; `may_use` holds the same fact as a
    /// job x node table, to look up.
    nodes_of: Vec<Vec<usize>>,
    /// `may_use[j * nodes + n]`: job j may use node n.
    may_use: Vec<bool>,
    /// The last start a schedule could give each job (None: it cannot be placed).
    last: Vec<Option<usize>>,
    /// USD per compute-hour left out, by priority (computed once: it scans every price).
    per_chr: Vec<f64>,
    /// Run-cost tables of the real prices (the grid's).
    real: Rc<Prices>,
    /// The instance at congestion prices and its run-cost tables, if any.
    congested: Option<(&'a PlanInput, Prices)>,
}

impl<'a> Fixed<'a> {
    /// The facts of `input` (whose run-cost tables are `real`) for rounds with `slack` hours
    /// of deferral slack; `priced` is the instance at congestion prices, if any.
    fn new(
        input: &'a PlanInput,
        slack: i64,
        real: Rc<Prices>,
        priced: Option<&'a PlanInput>,
    ) -> Fixed<'a> {
        let jobs = &input.jobs;
        let nodes_of: Vec<Vec<usize>> = jobs
            .iter()
            .map(|j| screen(input, j).unwrap_or_default())
            .collect();
        let width = input.nodes.len();
        let mut may_use = vec![false; jobs.len() * width];
        for (j, nodes) in nodes_of.iter().enumerate() {
            nodes.iter().for_each(|&n| may_use[j * width + n] = true);
        }
        Fixed {
            input,
            slack,
            nodes_of,
            may_use,
            per_chr: (0..=10).map(|p| flow::penalty_per_chr(input, p)).collect(),
            last: (0..jobs.len())
                .map(|i| flow::last_start(input, i))
                .collect(),
            real,
            congested: priced.map(|p| (p, Prices::new(p))),
        }
    }

    /// Penalty of leaving job `i` out.
    fn penalty(&self, i: usize) -> f64 {
        let job = &self.input.jobs[i];
        chr(job) * self.per_chr[usize::from(job.priority.get().min(10))]
    }

    /// The prices spots are chosen at: congestion prices when asked and known.
    fn prices(&self, congested: bool) -> (&PlanInput, &Prices) {
        match &self.congested {
            Some((p, tables)) if congested => (p, tables),
            _ => (self.input, &self.real),
        }
    }
}

/// What one round changed.
#[derive(Default)]
struct Round {
    /// Runs lifted off the grid.
    lifted: Vec<At>,
    /// Runs put down.
    put: Vec<At>,
    /// Jobs that had a place before the round and have none now.
    dropped: Vec<usize>,
    /// Change in cost (real prices).
    delta: f64,
    /// Penalty of the jobs that gained a place, less that of the jobs that lost one.
    gained: f64,
}

impl Round {
    /// Empty, keeping the buffers.
    fn clear(&mut self) {
        self.lifted.clear();
        self.put.clear();
        self.dropped.clear();
        self.delta = 0.0;
        self.gained = 0.0;
    }

    /// Puts job `j` at its cheapest spot, judged at `prices` and costed at the real ones;
    /// `had` says whether it had a place before the round: if so and it finds none, it is
    /// dropped.
    fn reinsert(
        &mut self,
        fx: &Fixed,
        prices: (&PlanInput, &Prices),
        grid: &mut Grid,
        j: usize,
        had: bool,
    ) {
        let job = &fx.input.jobs[j];
        let spots = cheapest_spots_at(prices, grid, &fx.nodes_of[j], j, fx.slack);
        match pick(&spots) {
            Some((_, s, n)) => {
                grid.reserve(n, s, job);
                self.delta += fx.real.cost(fx.input, job, n, s);
                self.put.push((j, n, s));
                if !had {
                    self.gained += fx.penalty(j);
                }
            }
            None if had => {
                self.dropped.push(j);
                self.gained -= fx.penalty(j);
            }
            None => {}
        }
    }
}

/// The runs `here` (job, node, start) on node `n` to lift so that job `o` fits from `st`:
/// the least urgent and smallest first, as few as needed; with their weight (compute-hours x
/// (11 - priority)). None when even all of them would not make room.
fn in_the_way(
    input: &PlanInput,
    grid: &Grid,
    here: impl Iterator<Item = At>,
    o: usize,
    (n, st): (usize, usize),
) -> Option<(f64, Vec<At>)> {
    let jobs = &input.jobs;
    let mut over: Vec<(At, usize, usize)> = here.map(|a| (a, a.0, a.2)).collect();
    over.sort_by_key(|a| a.1);
    sort_lift_first(jobs, &mut over);
    let way = make_room(input, &grid.free[n], &jobs[o], st, over)?;
    let weight = way
        .iter()
        .map(|&(j, _, _)| chr(&jobs[j]) * f64::from(11 - jobs[j].priority.get().min(10)))
        .sum();
    Some((weight, way))
}

/// Of the [`ROOM_SPOTS`] spots (node, start) job `o` could run in that are shortest of room,
/// the one where the runs in its way (among those `on(n)` gives for node n) weigh least,
/// with those runs.
fn lightest_spot<I: Iterator<Item = At>>(
    fx: &Fixed,
    grid: &Grid,
    rng: &mut Rng,
    o: usize,
    on: impl Fn(usize) -> I,
) -> Option<((usize, usize), Vec<At>)> {
    let job = &fx.input.jobs[o];
    let last = fx.last[o]?;
    let mut best: Option<(f64, (usize, usize), Vec<At>)> = None;
    // Units missing at each start, summed over the run's hours: a sliding window per node.
    let len = job.slots();
    let mut spots: Vec<(u32, u64, usize, usize)> = Vec::new();
    for &n in &fx.nodes_of[o] {
        let free = &grid.free[n];
        let short = |t: usize| job.units.saturating_sub(free[t]);
        let mut missing: u32 = (0..len).map(short).sum();
        for st in 0..=last {
            if st > 0 {
                missing = missing - short(st - 1) + short(st + len - 1);
            }
            if job.may_start(st, fx.slack) {
                spots.push((missing, rng.next(), n, st));
            }
        }
    }
    if spots.len() > ROOM_SPOTS {
        spots.select_nth_unstable(ROOM_SPOTS - 1);
        spots.truncate(ROOM_SPOTS);
    }
    for (_, _, n, st) in spots {
        if let Some((w, way)) = in_the_way(fx.input, grid, on(n), o, (n, st)) {
            if best.as_ref().is_none_or(|b| w < b.0) {
                best = Some((w, (n, st), way));
            }
        }
    }
    best.map(|(_, spot, way)| (spot, way))
}

/// Whether a plan (where each job is, `at`) leaves out jobs the starting plan placed
/// (`start`) only as a round may: each for a more urgent job that gained a place, or where
/// at least as many jobs of its priority gained a place as lost one. Each round keeps this
/// rule, but a chain of rounds need not: a job may lose its place to a more urgent one that
/// later gives it up to a less urgent one.
pub(super) fn fair_to(jobs: &[PlanJob], start: &[bool], at: &[Option<(usize, usize)>]) -> bool {
    let mut gained = [0usize; 256];
    let mut lost = [0usize; 256];
    for ((job, &was), now) in jobs.iter().zip(start).zip(at) {
        let p = usize::from(job.priority.get());
        match (was, now.is_some()) {
            (true, false) => lost[p] += 1,
            (false, true) => gained[p] += 1,
            _ => {}
        }
    }
    let most_urgent_gain = gained.iter().position(|&g| g > 0).unwrap_or(usize::MAX);
    (0..256).all(|p| lost[p] == 0 || most_urgent_gain < p || gained[p] >= lost[p])
}

/// Runs up to `rounds` rounds of ruin and recreate on the plan `all` (placed on `grid`), fewer
/// when [`STALL_ROUNDS`] in a row find no plan better than the best so far after the
/// annealing has cooled (see [`STALL_COOL`]); `priced` is the input at congestion prices, if
/// any. The plan returned leaves out jobs placed in `from` (by default, in the plan given)
/// only as a round may (see `fair_to`).
pub(super) fn ruin_recreate(
    input: &PlanInput,
    grid: &mut Grid,
    all: &mut Level,
    slack: i64,
    rounds: usize,
    priced: Option<&PlanInput>,
    from: Option<&[bool]>,
) {
    let jobs = &input.jobs;
    if all.placed.is_empty() || rounds == 0 {
        return;
    }
    let width = input.nodes.len();
    let fx = Fixed::new(input, slack, Rc::clone(&grid.prices), priced);
    // The end of the hours each job could run in.
    let ends: Vec<usize> = (0..jobs.len())
        .map(|i| fx.last[i].map_or(0, |l| l + jobs[i].slots()))
        .collect();
    // Where each job is (node, start), and its runner-up for explaining the decision.
    let mut at: Vec<Option<(usize, usize)>> = vec![None; jobs.len()];
    let mut runner_up: Vec<Option<Spot>> = vec![None; jobs.len()];
    for &(i, n, s, r) in &all.placed {
        at[i] = Some((n, s));
        runner_up[i] = r;
    }
    // Jobs left out that a schedule could place, most urgent first.
    let mut open: Vec<usize> = all
        .unplaced
        .iter()
        .filter(|(_, why)| !why.is_final())
        .map(|(i, _)| *i)
        .collect();
    open.sort_by_key(|&i| (jobs[i].priority, jobs[i].latest_start, jobs[i].seq));
    let mut on_node: Vec<Vec<usize>> = vec![Vec::new(); input.nodes.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(all.placed.len());
    for &(i, n, _, _) in &all.placed {
        on_node[n].push(i);
        placed.push(i);
    }
    let mut rng = Rng(0x6772_645f_6c6e_7321 ^ jobs.len() as u64);
    let wide = jobs.len() <= WIDE_QUEUE;
    let mut round = Round::default();
    let mut order: Vec<(f64, usize)> = Vec::new();
    let mut stall = 0;
    // The plan's total (cost plus the penalty of the jobs left out), and the best plan seen.
    let mut total = all.cost + open.iter().map(|&i| fx.penalty(i)).sum::<f64>();
    // Which jobs the starting plan (or `from`) places: the plan returned may leave one of
    // those out only as a round may (see `fair_to`), however many rounds led to it.
    let start: Vec<bool> = from.map_or_else(
        || at.iter().map(Option::is_some).collect(),
        <[bool]>::to_vec,
    );
    let mut at_best = true;
    let mut best = Best {
        total,
        cost: all.cost,
        at: at.clone(),
        runner_up: runner_up.clone(),
        open: open.clone(),
    };
    // Annealing: a round that costs more is kept with probability exp(-rise / temperature);
    // the temperature falls geometrically from a share of the mean run's cost to a
    // thousandth of that.
    let t0 = TEMPERATURE * all.cost / placed.len() as f64;
    let cooling = (1e-3f64).powf(1.0 / rounds as f64);
    let mut temperature = t0;
    for _ in 0..rounds {
        if stall >= STALL_ROUNDS && temperature < STALL_COOL * t0 {
            break;
        }
        stall += 1;
        temperature *= cooling;
        round.clear();
        // Ruin: the jobs to lift, and maybe a job without a place to put first.
        let mut first: Option<At> = None;
        if !open.is_empty() && rng.below(2) == 0 {
            // Make room: a job without a place takes one of a few spots it could
            // run in, the one where the jobs in the way weigh least, and those are lifted.
            let o = open[rng.below(open.len())];
            let on = |n: usize| {
                let at = &at;
                on_node[n]
                    .iter()
                    .filter_map(move |&j| at[j].map(|(_, s)| (j, n, s)))
            };
            let Some(((n, st), way)) = lightest_spot(&fx, grid, &mut rng, o, on) else {
                continue;
            };
            round.lifted.extend(way);
            first = Some((o, n, st));
        } else {
            // A seed job and jobs close to it.
            let seed = placed[rng.below(placed.len())];
            let (n0, s0) = at[seed].unwrap_or_default();
            let len0 = jobs[seed].slots();
            let most = if wide && rng.below(4) == 0 {
                WIDE_LIFT
            } else {
                MAX_LIFT
            };
            let want = 2 + rng.below(most - 1);
            let mut pool: Vec<usize> = match rng.below(3) {
                // Around the seed's run on its node.
                0 => {
                    let (a, b) = (s0.saturating_sub(len0), s0 + 2 * len0);
                    on_node[n0]
                        .iter()
                        .copied()
                        .filter(|&j| {
                            let (_, s) = at[j].unwrap_or_default();
                            s < b && a < s + jobs[j].slots()
                        })
                        .collect()
                }
                // Around the seed's run on the nodes it may use.
                1 => fx.nodes_of[seed]
                    .iter()
                    .flat_map(|&n| on_node[n].iter().copied())
                    .filter(|&j| {
                        let (_, s) = at[j].unwrap_or_default();
                        s < s0 + len0 && s0 < s + jobs[j].slots()
                    })
                    .collect(),
                // Anywhere.
                _ => (0..want).map(|_| placed[rng.below(placed.len())]).collect(),
            };
            pool.retain(|&j| j != seed);
            pool.sort_unstable();
            pool.dedup();
            round.lifted.push((seed, n0, s0));
            while round.lifted.len() < want && !pool.is_empty() {
                let j = pool.swap_remove(rng.below(pool.len()));
                let (n, s) = at[j].unwrap_or_default();
                round.lifted.push((j, n, s));
            }
        }
        for &(j, n, s) in &round.lifted {
            grid.release(n, s, &jobs[j]);
            round.delta -= fx.real.cost(input, &jobs[j], n, s);
        }
        if let Some((o, n, st)) = first {
            let job = &jobs[o];
            if (st..st + job.slots()).all(|t| grid.free[n][t] >= job.units) {
                grid.reserve(n, st, job);
                round.delta += fx.real.cost(input, job, n, st);
                round.gained += fx.penalty(o);
                round.put.push((o, n, st));
            }
        }
        let lost = first.is_some() && round.put.is_empty();
        // Recreate: the lifted jobs in a shuffled order; the open ones most urgent first,
        // before or after them.
        order.clear();
        let noise = 0.5 + rng.unit();
        for &(j, _, _) in &round.lifted {
            // Big and tightly bound first, each weight shuffled by up to `noise`.
            let w = chr(&jobs[j]) / (1.0 + jobs[j].latest_start.max(0) as f64).powf(noise);
            order.push((-w * (1.0 + noise * rng.unit()), j));
        }
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let open_first = rng.below(2) == 0;
        // The open jobs that could use the room lifted (a node and hours of it), at most
        // OPEN_TRIES of them, most urgent first.
        let rest = open
            .iter()
            .copied()
            .filter(|&o| first.is_none_or(|f| f.0 != o))
            .filter(|&o| {
                round
                    .lifted
                    .iter()
                    .any(|&(_, n, s)| s < ends[o] && fx.may_use[o * width + n])
            })
            .take(OPEN_TRIES);
        let lifted_order = order.iter().map(|x| x.1);
        let seq: Vec<usize> = if open_first {
            rest.chain(lifted_order).collect()
        } else {
            lifted_order.chain(rest).collect()
        };
        // Half the rounds choose spots at congestion prices (costed at the real ones).
        let prices = fx.prices(rng.below(2) == 0);
        for &j in &seq {
            if lost {
                break;
            }
            round.reinsert(&fx, prices, grid, j, at[j].is_some());
        }
        // Ejection chain: a job that lost its place takes one from less urgent jobs at the
        // lightest of a few spots short of room, and those look for a place in turn (at most
        // CHAIN_LINKS times a round; each link goes down in urgency).
        let mut link = 0;
        while !lost && link < round.dropped.len() && link < CHAIN_LINKS {
            let d = round.dropped[link];
            link += 1;
            // The runs on node n as the round left them, of jobs less urgent than d.
            let (lifted, put) = (&round.lifted, &round.put);
            let on = |n: usize| {
                let at = &at;
                on_node[n]
                    .iter()
                    .filter(move |&&j| lifted.iter().all(|l| l.0 != j))
                    .filter_map(move |&j| at[j].map(|(_, s)| (j, n, s)))
                    .chain(put.iter().copied().filter(move |p| p.1 == n))
                    .filter(move |a| jobs[a.0].priority > jobs[d].priority)
            };
            let Some(((n, st), way)) = lightest_spot(&fx, grid, &mut rng, d, on) else {
                continue;
            };
            for &(j, jn, js) in &way {
                grid.release(jn, js, &jobs[j]);
                round.delta -= fx.real.cost(input, &jobs[j], jn, js);
                if let Some(k) = round.put.iter().position(|p| p.0 == j) {
                    round.put.swap_remove(k);
                    if at[j].is_none() {
                        round.gained -= fx.penalty(j);
                    }
                } else {
                    round.lifted.push((j, jn, js));
                }
            }
            grid.reserve(n, st, &jobs[d]);
            round.delta += fx.real.cost(input, &jobs[d], n, st);
            round.gained += fx.penalty(d);
            round.put.push((d, n, st));
            round.dropped[link - 1] = usize::MAX;
            for &(j, _, _) in &way {
                round.reinsert(&fx, fx.prices(false), grid, j, at[j].is_some());
            }
        }
        round.dropped.retain(|&j| j != usize::MAX);
        let Round {
            lifted,
            put,
            dropped,
            delta,
            gained,
        } = &round;
        // A job may lose its place only to a more urgent one that gains one, or to one of
        // its own priority when as many of that priority gain a place as lose one.
        let gains: Vec<Priority> = put
            .iter()
            .filter(|p| at[p.0].is_none())
            .map(|p| jobs[p.0].priority)
            .collect();
        let fair = dropped.iter().all(|&j| {
            let pj = jobs[j].priority;
            gains.iter().any(|&g| g < pj)
                || gains.iter().filter(|&&g| g == pj).count()
                    >= dropped.iter().filter(|&&d| jobs[d].priority == pj).count()
        });
        let rise = delta - gained;
        let allowed = -temperature * (1.0 - rng.unit()).ln();
        let keep = if dropped.is_empty() {
            rise <= allowed.max(1e-9)
        } else {
            fair && rise <= allowed.max(-1e-9)
        };
        if !lost && keep {
            total += rise;
            for &(j, n, _) in lifted {
                on_node[n].retain(|&x| x != j);
            }
            for &j in dropped {
                at[j] = None;
                open.push(j);
            }
            if !dropped.is_empty() {
                placed.retain(|&j| at[j].is_some());
                open.sort_by_key(|&i| (jobs[i].priority, jobs[i].latest_start, jobs[i].seq));
            }
            for &(j, n, s) in put {
                if at[j].is_none() {
                    placed.push(j);
                }
                at[j] = Some((n, s));
                runner_up[j] = None;
                on_node[n].push(j);
            }
            open.retain(|&j| at[j].is_none());
            all.cost += delta;
            at_best = false;
            if total < best.total - 1e-9 && fair_to(jobs, &start, &at) {
                at_best = true;
                stall = 0;
                best.total = total;
                best.cost = all.cost;
                best.at.clone_from(&at);
                best.runner_up.clone_from(&runner_up);
                best.open.clone_from(&open);
            }
        } else {
            for &(j, n, s) in put {
                grid.release(n, s, &jobs[j]);
            }
            for &(j, n, s) in lifted {
                grid.reserve(n, s, &jobs[j]);
            }
        }
    }
    if !at_best {
        // Back to the best plan seen.
        for (i, a) in at.iter().enumerate() {
            if let Some((n, s)) = *a {
                grid.release(n, s, &jobs[i]);
            }
        }
        for (i, a) in best.at.iter().enumerate() {
            if let Some((n, s)) = *a {
                grid.reserve(n, s, &jobs[i]);
            }
        }
        at = best.at;
        runner_up = best.runner_up;
        all.cost = best.cost;
        placed = (0..jobs.len()).filter(|&j| at[j].is_some()).collect();
        open = best.open;
    }
    all.placed = placed
        .iter()
        .map(|&i| {
            let (n, s) = at[i].unwrap_or_default();
            (i, n, s, runner_up[i])
        })
        .collect();
    all.unplaced.retain(|(i, _)| at[*i].is_none());
    // Jobs that lost their place to one at least as urgent.
    let mut listed = vec![false; jobs.len()];
    all.unplaced.iter().for_each(|u| listed[u.0] = true);
    for &i in &open {
        if !listed[i] {
            all.unplaced.push((i, Unplaced::NoCapacityBeforeDeadline));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::properties::{arb_input, check_feasible};
    use super::super::{to_plan, JobId, Optimized, PlanJob, Priority, SlotNode};
    use super::*;
    use crate::domain::time::Hour;
    use proptest::prelude::*;

    fn penalised(input: &PlanInput, all: &Level) -> f64 {
        super::super::penalised(input, all)
    }

    /// Placed cost recomputed from scratch.
    fn cost_of(input: &PlanInput, all: &Level) -> f64 {
        all.placed
            .iter()
            .map(|&(i, n, s, _)| input.cost(&input.jobs[i], n, s))
            .sum()
    }

    /// A job of priority 5 for one slot that must start at once.
    fn job(id: &str, units: u32, seq: u64) -> PlanJob {
        PlanJob {
            id: JobId::try_from(id.to_string()).unwrap(),
            priority: Priority::try_from(5).unwrap(),
            units,
            compute_hours: f64::from(units),
            fractions: vec![1.0],
            latest_start: 0,
            regions: Vec::new(),
            seq,
        }
    }

    #[test]
    fn a_job_without_a_place_weighs_the_spots_shortest_of_room() {
        // 20 nodes of 4 units, 3 slots; the job needs 2 units for 2 slots from slot 0 or 1.
        // Every node is full but the ones set free below.
        let instance = |free: &[(usize, [u32; 3])]| PlanInput {
            now: Hour(0),
            starts: 3,
            nodes: (0..20)
                .map(|n| SlotNode {
                    node_id: format!("n{n}"),
                    region: "r".into(),
                    capacity_units: 4,
                    usd_per_chr: vec![1.0; 3],
                    free: free
                        .iter()
                        .find(|f| f.0 == n)
                        .map_or(vec![0; 3], |f| f.1.to_vec()),
                })
                .collect(),
            jobs: vec![
                PlanJob {
                    fractions: vec![1.0; 2],
                    compute_hours: 4.0,
                    latest_start: 1,
                    ..job("open", 2, 0)
                },
                job("held", 1, 1),
            ],
        };
        let lightest = |input: &PlanInput, on: &dyn Fn(usize) -> Vec<At>| {
            let grid = Grid::new(input);
            let fx = Fixed::new(input, 0, Rc::clone(&grid.prices), None);
            let mut rng = Rng(7);
            lightest_spot(&fx, &grid, &mut rng, 0, |n| on(n).into_iter())
        };
        // Room from slot 1 on node 13 only: found among the 40 spots, nothing in the way.
        let input = instance(&[(13, [0, 4, 4])]);
        assert_eq!(
            lightest(&input, &|_| Vec::new()),
            Some(((13, 1), Vec::new()))
        );
        // One unit short at slot 1 of node 5 (missing 1, every other spot 3 or 4): the
        // 1-unit run held there steps aside.
        let input = instance(&[(5, [4, 1, 0])]);
        let on = |n: usize| if n == 5 { vec![(1, 5, 1)] } else { Vec::new() };
        assert_eq!(lightest(&input, &on), Some(((5, 0), vec![(1, 5, 1)])));
        // Nowhere to make room: nothing to weigh.
        let input = instance(&[]);
        assert_eq!(lightest(&input, &|_| Vec::new()), None);
    }

    #[test]
    fn two_jobs_trade_nodes_when_neither_can_move_alone() {
        // Node a ($1) and node b ($5), 2 units each, one slot. The 2-unit job sits on b and
        // the 1-unit job on a: $11. Neither fits elsewhere alone; swapped they cost $7.
        let node = |id: &str, price: f64| SlotNode {
            node_id: id.into(),
            region: "r".into(),
            capacity_units: 2,
            usd_per_chr: vec![price],
            free: vec![2],
        };
        let input = PlanInput {
            now: Hour(0),
            starts: 1,
            nodes: vec![node("a", 1.0), node("b", 5.0)],
            jobs: vec![job("big", 2, 0), job("small", 1, 1)],
        };
        let mut grid = Grid::new(&input);
        grid.reserve(1, 0, &input.jobs[0]);
        grid.reserve(0, 0, &input.jobs[1]);
        let mut all = Level {
            placed: vec![(0, 1, 0, None), (1, 0, 0, None)],
            unplaced: Vec::new(),
            cost: 11.0,
        };
        ruin_recreate(&input, &mut grid, &mut all, 0, 200, None, None);
        assert!((all.cost - 7.0).abs() < 1e-9, "{}", all.cost);
        let mut placed = all.placed.clone();
        placed.sort_by_key(|p| p.0);
        assert_eq!(
            placed.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
            vec![(0, 0), (1, 1)]
        );
        assert_eq!(grid.free, vec![vec![0], vec![1]]);
    }

    #[test]
    fn a_bigger_job_takes_the_place_of_one_smaller_job_of_its_priority_but_not_of_two() {
        // One node of 2 units, one slot at $1. Placed: 1-unit jobs of priority 5 (one, or
        // two); left out: a 2-unit job of priority 5, whose penalty is twice a small one's.
        for smalls in [1usize, 2] {
            let mut jobs = vec![job("big", 2, 0)];
            jobs.extend((0..smalls).map(|k| job(&format!("small{k}"), 1, 1 + k as u64)));
            let input = PlanInput {
                now: Hour(0),
                starts: 1,
                nodes: vec![SlotNode {
                    node_id: "a".into(),
                    region: "r".into(),
                    capacity_units: 2,
                    usd_per_chr: vec![1.0],
                    free: vec![2],
                }],
                jobs,
            };
            let mut grid = Grid::new(&input);
            let mut all = Level {
                placed: Vec::new(),
                unplaced: vec![(0, Unplaced::NoCapacityBeforeDeadline)],
                cost: 0.0,
            };
            for i in 1..=smalls {
                grid.reserve(0, 0, &input.jobs[i]);
                all.placed.push((i, 0, 0, None));
                all.cost += 1.0;
            }
            let was = penalised(&input, &all);
            ruin_recreate(&input, &mut grid, &mut all, 0, 200, None, None);
            let placed: Vec<usize> = all.placed.iter().map(|p| p.0).collect();
            if smalls == 1 {
                // One for one: fewer compute-hours left out.
                assert_eq!(placed, vec![0]);
                assert!(penalised(&input, &all) < was);
                assert_eq!(
                    all.unplaced.iter().map(|u| u.0).collect::<Vec<_>>(),
                    vec![1]
                );
            } else {
                // Two jobs of priority 5 would lose their place for one: kept as it was.
                let mut placed = placed;
                placed.sort_unstable();
                assert_eq!(placed, vec![1, 2]);
                assert!((penalised(&input, &all) - was).abs() < 1e-9);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// From the level-by-level plan: a job loses its place only to one at least as urgent, the
        /// plan stays feasible, its cost is what it says, the grid matches it, and the
        /// penalised cost does not rise.
        #[test]
        fn keeps_every_place_and_never_costs_more(
            input in arb_input(),
            slack in 0..4i64,
            congested in any::<bool>(),
        ) {
            let opt = Optimized { defer_slack_hours: slack };
            let (mut grid, mut all) = opt.levels(&input);
            let before: Vec<usize> = all.placed.iter().map(|p| p.0).collect();
            let was = penalised(&input, &all);
            // Congestion prices: some nodes' slots made dearer, unevenly.
            let priced = PlanInput {
                nodes: input
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(n, node)| SlotNode {
                        usd_per_chr: node
                            .usd_per_chr
                            .iter()
                            .enumerate()
                            .map(|(t, p)| p + 0.05 * ((n + t) % 3) as f64)
                            .collect(),
                        ..node.clone()
                    })
                    .collect(),
                ..input.clone()
            };
            let priced = congested.then_some(&priced);
            ruin_recreate(&input, &mut grid, &mut all, slack, 300, priced, None);
            let now: Vec<usize> = all.placed.iter().map(|p| p.0).collect();
            for &i in &before {
                if !now.contains(&i) {
                    // Only to a more urgent job that had no place, or to as many of its
                    // own priority.
                    let p = input.jobs[i].priority;
                    let gained = |q: &dyn Fn(Priority) -> bool| {
                        now.iter()
                            .filter(|&&g| !before.contains(&g) && q(input.jobs[g].priority))
                            .count()
                    };
                    let lost = before
                        .iter()
                        .filter(|&&g| !now.contains(&g) && input.jobs[g].priority == p)
                        .count();
                    prop_assert!(
                        gained(&|g| g < p) > 0 || gained(&|g| g == p) >= lost,
                        "job {i} lost its place to no job at least as urgent"
                    );
                }
            }
            prop_assert!(penalised(&input, &all) <= was + 1e-6);
            prop_assert!((cost_of(&input, &all) - all.cost).abs() < 1e-6);
            let mut fresh = Grid::new(&input);
            for &(i, n, s, _) in &all.placed {
                let job = &input.jobs[i];
                prop_assert!(s == 0 || s as i64 + slack <= job.latest_start);
                prop_assert!((s..s + job.slots()).all(|t| fresh.free[n][t] >= job.units));
                fresh.reserve(n, s, job);
            }
            prop_assert_eq!(&fresh.free, &grid.free);
            check_feasible(&input, &to_plan(&input, all))?;
        }
    }
}
