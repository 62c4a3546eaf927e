//! Backtest on recorded price series: one node per series, a generated job stream, and an
//! hour-by-hour walk in which each strategy plans from the forecasts as they stood, commits
//! what starts in the current hour, and pays the real prices.
//!
//! # The walk
//!
//! At hour `h` the planner sees, per node, the real price of hour `h` (it is published) and
//! the recorded forecast for each later hour of the planning grid (`horizon` start hours plus
//! the longest run); the perfect-foresight run sees the real prices throughout. Prices in
//! USD/MWh become USD per compute-hour through the pricing model (default cooling plant,
//! accelerator power profile, energy only: no non-energy cost, no margin), at the node's
//! temperature of that hour (20 °C when no weather is given), which also derates capacity
//! when hot. Weather is taken as known (no weather forecast is replayed).
//!
//! Jobs come from the benchmark generator ([`generate_jobs`]) for a `horizon`-hour window,
//! each arriving at an hour drawn uniformly in `0..hours`; its latest start is its arrival
//! plus the generated latest start. A job starts when a plan puts it in the current hour; a
//! job whose latest start passes without that, or that no node can ever take, is a deadline
//! miss. Node capacity is set so that the work is `load` of the fleet's capacity over the
//! arrival window (at least 16 units, the largest job).

use crate::bench::instance::{draw, generate_jobs};
use crate::domain::node::accelerator_power;
use crate::domain::plan::{strategy_by_name, PlanInput, PlanJob, SlotNode, Strategy};
use crate::domain::pricing::{quote, CoolingPlant};
use crate::domain::time::Hour;
use serde::Serialize;

/// One node's recorded series, aligned hour by hour from a common start.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSeries {
    pub name: String,
    pub real_usd_per_mwh: Vec<f64>,
    /// The forecast recorded for each hour (the real price where none was recorded).
    pub forecast_usd_per_mwh: Vec<f64>,
    /// Air temperature and relative humidity per hour (None: no weather given).
    pub weather: Option<Vec<(f64, Option<f64>)>>,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BacktestSpec {
    pub jobs: usize,
    pub seed: u64,
    /// Hours in which jobs arrive.
    pub hours: usize,
    /// Start hours a plan may choose from (day-ahead: 24).
    pub horizon: usize,
    /// Work over the fleet's capacity across the arrival window.
    pub load: f64,
}

impl BacktestSpec {
    /// Longest run a generated job can have.
    pub fn max_len(&self) -> usize {
        (self.horizon / 3).clamp(1, 12)
    }

    /// Hours of series the walk needs: arrivals, the last arrival's window, its run and the
    /// planning grid beyond it.
    pub fn hours_needed(&self) -> usize {
        self.hours + 2 * (self.horizon + self.max_len())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyResult {
    pub strategy: String,
    /// Cost at the real prices of all the work started.
    pub cost_usd: f64,
    pub deadline_misses: usize,
    pub started: usize,
    /// Share of the perfect-foresight saving over `baseline-2019` this strategy captures.
    pub captured: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub spec: BacktestSpec,
    pub nodes: Vec<String>,
    pub capacity_units: u32,
    pub perfect_foresight_usd: f64,
    pub perfect_foresight_misses: usize,
    pub strategies: Vec<StrategyResult>,
}

/// Why a backtest cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    #[error("no price series given")]
    NoSeries,
    #[error("series {name:?} has {have} hours, the walk needs {need} (--hours + 2 x (24 + the longest run))")]
    TooShort {
        name: String,
        have: usize,
        need: usize,
    },
    #[error("weather for {name:?} has {have} hours, its prices {need}")]
    WeatherLength {
        name: String,
        have: usize,
        need: usize,
    },
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    #[error("unknown strategy {0:?}")]
    UnknownStrategy(String),
}

/// Per node and hour: (real USD/c-hr, forecast USD/c-hr, capacity fraction).
struct Prices {
    real: Vec<Vec<f64>>,
    forecast: Vec<Vec<f64>>,
    capacity: Vec<Vec<f64>>,
}

fn prices(series: &[NodeSeries], hours: usize) -> Prices {
    let plant = CoolingPlant::default();
    let power = accelerator_power();
    let mut p = Prices {
        real: Vec::new(),
        forecast: Vec::new(),
        capacity: Vec::new(),
    };
    for s in series {
        let (mut r, mut f, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..hours {
            let (temp_c, rh) = s.weather.as_ref().map_or((20.0, None), |w| w[t]);
            let real = quote(&plant, &power, 0.0, 0.0, temp_c, rh, s.real_usd_per_mwh[t]);
            let fc = quote(
                &plant,
                &power,
                0.0,
                0.0,
                temp_c,
                rh,
                s.forecast_usd_per_mwh[t],
            );
            r.push(real.usd_per_chr);
            f.push(fc.usd_per_chr);
            c.push(real.capacity_fraction);
        }
        p.real.push(r);
        p.forecast.push(f);
        p.capacity.push(c);
    }
    p
}

/// The job stream: (job, arrival hour).
pub fn job_stream(spec: &BacktestSpec, n_regions: usize) -> Vec<(PlanJob, usize)> {
    generate_jobs(spec.jobs, spec.horizon, n_regions, spec.seed)
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let arrival = ((draw(spec.seed, 20, i as u64) * spec.hours as f64) as usize)
                .min(spec.hours.saturating_sub(1));
            (job, arrival)
        })
        .collect()
}

/// Checks the inputs and returns the per-node capacity.
fn check(series: &[NodeSeries], spec: &BacktestSpec) -> Result<u32, BacktestError> {
    if series.is_empty() {
        return Err(BacktestError::NoSeries);
    }
    if spec.hours == 0 {
        return Err(BacktestError::NotPositive("--hours"));
    }
    if spec.horizon == 0 {
        return Err(BacktestError::NotPositive("the horizon"));
    }
    if spec.jobs == 0 {
        return Err(BacktestError::NotPositive("--jobs"));
    }
    if spec.load.is_nan() || spec.load <= 0.0 {
        return Err(BacktestError::NotPositive("--load"));
    }
    let need = spec.hours_needed();
    for s in series {
        let have = s.real_usd_per_mwh.len().min(s.forecast_usd_per_mwh.len());
        if have < need {
            return Err(BacktestError::TooShort {
                name: s.name.clone(),
                have,
                need,
            });
        }
        if let Some(w) = &s.weather {
            if w.len() < need {
                return Err(BacktestError::WeatherLength {
                    name: s.name.clone(),
                    have: w.len(),
                    need,
                });
            }
        }
    }
    let jobs = job_stream(spec, series.len());
    let work: f64 = jobs.iter().map(|(j, _)| j.compute_hours).sum();
    let per_node = work / (spec.load * series.len() as f64 * spec.hours as f64);
    Ok((per_node.ceil() as u32).max(16))
}

/// One walk: (cost at real prices, deadline misses, jobs started).
fn walk(
    series: &[NodeSeries],
    spec: &BacktestSpec,
    prices: &Prices,
    capacity: u32,
    strategy: &dyn Strategy,
    foresight: bool,
    tick: &mut dyn FnMut(),
) -> (f64, usize, usize) {
    let grid = spec.horizon + spec.max_len();
    let end = spec.hours + spec.horizon;
    let n = series.len();
    let jobs = job_stream(spec, n);
    let mut used = vec![vec![0u32; spec.hours_needed()]; n];
    // Pending: (job index, absolute latest start).
    let mut pending: Vec<(usize, i64)> = Vec::new();
    let mut next = {
        let mut by_arrival: Vec<usize> = (0..jobs.len()).collect();
        by_arrival.sort_by_key(|&j| (jobs[j].1, j));
        by_arrival.into_iter().peekable()
    };
    let (mut cost, mut misses, mut started) = (0.0, 0usize, 0usize);
    for h in 0..end {
        tick();
        while let Some(&j) = next.peek() {
            if jobs[j].1 > h {
                break;
            }
            pending.push((j, jobs[j].1 as i64 + jobs[j].0.latest_start));
            next.next();
        }
        if pending.is_empty() {
            continue;
        }
        let input = PlanInput {
            now: Hour(h as i64),
            starts: spec.horizon,
            nodes: (0..n)
                .map(|k| SlotNode {
                    node_id: series[k].name.clone(),
                    region: format!("r{k}"),
                    capacity_units: capacity,
                    usd_per_chr: (h..h + grid)
                        .map(|t| {
                            if foresight || t == h {
                                prices.real[k][t]
                            } else {
                                prices.forecast[k][t]
                            }
                        })
                        .collect(),
                    free: (h..h + grid)
                        .map(|t| {
                            ((f64::from(capacity) * prices.capacity[k][t]).floor() as u32)
                                .saturating_sub(used[k][t])
                        })
                        .collect(),
                })
                .collect(),
            jobs: pending
                .iter()
                .map(|&(j, latest)| PlanJob {
                    latest_start: latest - h as i64,
                    ..jobs[j].0.clone()
                })
                .collect(),
        };
        let plan = strategy.plan(&input);
        let mut gone = std::collections::HashSet::new();
        for p in plan.starting_now(input.now) {
            let Some(k) = input.nodes.iter().position(|x| x.node_id == p.node_id) else {
                continue;
            };
            let Some(pj) = input.jobs.iter().find(|j| j.id == p.job_id) else {
                continue;
            };
            for (off, f) in pj.fractions.iter().enumerate() {
                used[k][h + off] += pj.units;
                cost += f64::from(pj.units) * f * prices.real[k][h + off];
            }
            started += 1;
            gone.insert(p.job_id.clone());
        }
        for (id, why) in &plan.unplaced {
            let late = input
                .jobs
                .iter()
                .find(|j| &j.id == id)
                .is_some_and(|j| j.latest_start <= 0);
            if why.is_final() || late {
                misses += 1;
                gone.insert(id.clone());
            }
        }
        pending.retain(|&(j, _)| !gone.contains(&jobs[j].0.id));
    }
    misses += pending.len() + next.count();
    (cost, misses, started)
}

/// Runs every named strategy and the perfect-foresight optimum; `tick` is called once per
/// simulated hour of every walk (`(names.len() + 1) x (hours + horizon)` calls).
pub fn backtest(
    series: &[NodeSeries],
    spec: &BacktestSpec,
    names: &[&str],
    tick: &mut dyn FnMut(),
) -> Result<Report, BacktestError> {
    let capacity = check(series, spec)?;
    let strategies = names
        .iter()
        .map(|&name| {
            strategy_by_name(name)
                .map(|s| (name, s))
                .ok_or_else(|| BacktestError::UnknownStrategy(name.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let optimum = strategy_by_name("optimized")
        .ok_or_else(|| BacktestError::UnknownStrategy("optimized".into()))?;
    let prices = prices(series, spec.hours_needed());
    let (pf_cost, pf_misses, _) = walk(
        series,
        spec,
        &prices,
        capacity,
        optimum.as_ref(),
        true,
        tick,
    );
    let mut results: Vec<StrategyResult> = strategies
        .iter()
        .map(|(name, s)| {
            let (cost, misses, started) =
                walk(series, spec, &prices, capacity, s.as_ref(), false, tick);
            StrategyResult {
                strategy: name.to_string(),
                cost_usd: cost,
                deadline_misses: misses,
                started,
                captured: 0.0,
            }
        })
        .collect();
    if let Some(base) = results
        .iter()
        .find(|r| r.strategy == "baseline-2019")
        .map(|r| r.cost_usd)
    {
        let saving = base - pf_cost;
        for r in &mut results {
            r.captured = if saving.abs() > 1e-9 {
                (base - r.cost_usd) / saving
            } else {
                0.0
            };
        }
    }
    Ok(Report {
        spec: *spec,
        nodes: series.iter().map(|s| s.name.clone()).collect(),
        capacity_units: capacity,
        perfect_foresight_usd: pf_cost,
        perfect_foresight_misses: pf_misses,
        strategies: results,
    })
}

/// The one-line JSON summary `grd backtest --json` ends with.
pub fn summary_json(report: &Report) -> serde_json::Value {
    let mut strategies = serde_json::Map::new();
    for r in &report.strategies {
        strategies.insert(
            r.strategy.clone(),
            serde_json::json!({
                "cost_usd": r.cost_usd,
                "deadline_misses": r.deadline_misses,
                "captured": r.captured,
            }),
        );
    }
    serde_json::json!({
        "perfect_foresight_usd": report.perfect_foresight_usd,
        "strategies": strategies,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::plan::STRATEGY_NAMES;

    /// Two nodes with out-of-phase daily price cycles; the forecast is the real price plus a
    /// fixed error.
    fn series(hours: usize, error: f64) -> Vec<NodeSeries> {
        (0..2)
            .map(|k| {
                let real: Vec<f64> = (0..hours)
                    .map(|t| {
                        let day =
                            ((t as f64 + 12.0 * k as f64) / 24.0 * std::f64::consts::TAU).sin();
                        50.0 + 30.0 * day
                    })
                    .collect();
                NodeSeries {
                    name: format!("n{k}"),
                    forecast_usd_per_mwh: real.iter().map(|p| p + error).collect(),
                    real_usd_per_mwh: real,
                    weather: None,
                }
            })
            .collect()
    }

    fn spec() -> BacktestSpec {
        BacktestSpec {
            jobs: 120,
            seed: 3,
            hours: 72,
            horizon: 24,
            load: 0.5,
        }
    }

    #[test]
    fn time_aware_strategies_beat_the_2019_rule_and_foresight_beats_all() {
        let s = spec();
        let mut ticks = 0;
        let report = backtest(
            &series(s.hours_needed(), 0.0),
            &s,
            &STRATEGY_NAMES,
            &mut || ticks += 1,
        )
        .unwrap();
        assert_eq!(ticks, 4 * (s.hours + s.horizon));
        let get = |n: &str| report.strategies.iter().find(|r| r.strategy == n).unwrap();
        let base = get("baseline-2019");
        let opt = get("optimized");
        assert!(opt.cost_usd < base.cost_usd, "{report:?}");
        // Forecast = truth here: optimized is its own perfect-foresight run.
        assert!((opt.cost_usd - report.perfect_foresight_usd).abs() < 1e-9);
        assert!((opt.captured - 1.0).abs() < 1e-9);
        assert_eq!(base.captured, 0.0);
        for r in &report.strategies {
            assert_eq!(r.started + r.deadline_misses, s.jobs, "{}", r.strategy);
        }
        let json = summary_json(&report);
        assert!(json["strategies"]["optimized"]["captured"].is_number());
    }

    #[test]
    fn a_wrong_forecast_is_paid_at_the_real_prices() {
        let s = spec();
        // The forecast has each node's cycle half a day off: it points at dear hours.
        let mut wrong = series(s.hours_needed(), 0.0);
        let swapped: Vec<Vec<f64>> = wrong
            .iter()
            .rev()
            .map(|x| x.real_usd_per_mwh.clone())
            .collect();
        for (w, f) in wrong.iter_mut().zip(swapped) {
            w.forecast_usd_per_mwh = f;
        }
        let report = backtest(&wrong, &s, &["optimized", "baseline-2019"], &mut || {}).unwrap();
        let opt = &report.strategies[0];
        assert!(
            opt.cost_usd > report.perfect_foresight_usd + 1e-6,
            "{report:?}"
        );
        assert!(opt.captured < 1.0, "{report:?}");
    }

    #[test]
    fn bad_inputs_are_named() {
        let s = spec();
        let short = series(10, 0.0);
        let e = backtest(&short, &s, &STRATEGY_NAMES, &mut || {}).unwrap_err();
        assert!(matches!(e, BacktestError::TooShort { .. }), "{e}");
        assert_eq!(
            backtest(&[], &s, &STRATEGY_NAMES, &mut || {}).unwrap_err(),
            BacktestError::NoSeries
        );
        let e = backtest(&series(s.hours_needed(), 0.0), &s, &["nope"], &mut || {}).unwrap_err();
        assert_eq!(e, BacktestError::UnknownStrategy("nope".into()));
        let mut w = series(s.hours_needed(), 0.0);
        w[1].weather = Some(vec![(20.0, None); 3]);
        let e = backtest(&w, &s, &STRATEGY_NAMES, &mut || {}).unwrap_err();
        assert!(e.to_string().contains("n1"), "{e}");
    }
}
