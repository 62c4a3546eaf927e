//! The embedded local mode: the same use cases in one process on SQLite, on a clock that
//! can run faster than real time.

pub mod soak;
pub mod workload;

use crate::adapters::csv_replay::ReplaySource;
use crate::adapters::sqlite::SqliteStore;
use crate::adapters::synthetic::{Faults, Stream, SyntheticSource};
use crate::app::fetch_signals::{fetch_signals, FetchLimits, FetchReport};
use crate::app::ingest_jobs::{ingest_lines, IngestReport};
use crate::app::plan_dispatch::{plan_dispatch, PlanReport};
use crate::app::price_nodes::price_nodes_with_overrides;
use crate::domain::node::{default_fleet, Node};
use crate::domain::plan::{strategy_by_name, Strategy, STRATEGY_NAMES};
use crate::domain::price::NodePrice;
use crate::domain::signal::SignalKind;
use crate::domain::time::Hour;
use crate::ports::{Clock, NodeStore, SignalSource, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const CLOCK_KEY: &str = "clock";
const SPEED_KEY: &str = "replay_speed";

/// Fastest replay speed an operator may set, in simulated hours per wall-clock second.
pub const MAX_REPLAY_SPEED: f64 = 3600.0;

/// The replay speed an operator set for running pipelines (simulated hours per second),
/// or `default` (the run's own `--speed`) when none is set.
pub fn replay_speed(store: &SqliteStore, default: Option<f64>) -> Result<Option<f64>, StoreError> {
    match store.meta(SPEED_KEY)?.as_deref() {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<f64>()
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("replay speed {s:?}: {e}"))),
    }
}

/// Sets (or with `None` clears) the replay speed; a running `grd run` picks it up at its
/// next hour.
pub fn set_replay_speed(store: &SqliteStore, speed: Option<f64>) -> Result<(), SetupError> {
    if let Some(s) = speed {
        if !(s.is_finite() && s > 0.0 && s <= MAX_REPLAY_SPEED) {
            return Err(SetupError::Speed(s));
        }
    }
    store.set_meta(SPEED_KEY, &speed.map(|s| s.to_string()).unwrap_or_default())?;
    Ok(())
}

/// Simulated time, kept in the database so a restarted run carries on where it stopped.
pub struct SimClock {
    now: Mutex<DateTime<Utc>>,
}

impl SimClock {
    /// When this database's simulated time began: the first hour a pipeline ran, or the
    /// clock set by an earlier command; `None` for a new database.
    pub fn began(store: &SqliteStore) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(s) = store.meta("start")?.or(store.meta(CLOCK_KEY)?) else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| StoreError::Corrupt(format!("clock {s:?}: {e}")))
    }

    /// The stored time, or `start` for a new database (stored at once).
    pub fn load(store: &SqliteStore, start: DateTime<Utc>) -> Result<SimClock, StoreError> {
        let now = match store.meta(CLOCK_KEY)? {
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map_err(|e| StoreError::Corrupt(format!("clock {s:?}: {e}")))?
                .with_timezone(&Utc),
            None => {
                store.set_meta(CLOCK_KEY, &start.to_rfc3339())?;
                start
            }
        };
        Ok(SimClock {
            now: Mutex::new(now),
        })
    }

    /// Moves to the next hour and stores it.
    pub fn advance(&self, store: &SqliteStore) -> Result<DateTime<Utc>, StoreError> {
        let next = Hour::containing(self.now()).plus(1).start();
        store.set_meta(CLOCK_KEY, &next.to_rfc3339())?;
        if let Ok(mut now) = self.now.lock() {
            *now = next;
        }
        Ok(next)
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().map(|t| *t).unwrap_or_default()
    }
}

/// The real clock, for a pipeline that runs in real time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What one simulated hour did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub hour: Hour,
    pub fetch: FetchReport,
    pub prices: Vec<NodePrice>,
    pub ingest: IngestReport,
    pub plan: PlanReport,
}

/// The whole pipeline over one database: fetch -> price -> ingest -> plan and dispatch.
pub struct Pipeline {
    pub store: Arc<SqliteStore>,
    pub sources: Vec<Arc<dyn SignalSource>>,
    pub strategy: Box<dyn Strategy>,
    pub horizon: u32,
    pub limits: FetchLimits,
    pub clock: SimClock,
}

impl Pipeline {
    /// The hour the next step will run.
    pub fn clock_hour(&self) -> Hour {
        Hour::containing(self.clock.now())
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        Ok(self
            .store
            .nodes()
            .await?
            .into_iter()
            .map(|s| s.node)
            .collect())
    }

    /// Runs the current hour, taking `arrivals` (job lines) into the backlog first, then
    /// moves the clock on. Every part is idempotent, so a step cut short by a crash is
    /// simply run again on restart.
    pub async fn step(&self, arrivals: &[&str]) -> Result<StepReport, StoreError> {
        let now = self.clock.now();
        let store = self.store.as_ref();
        let nodes = self.nodes().await?;
        let fetch = fetch_signals(store, &self.sources, &nodes, now, self.limits, None).await?;
        let overrides = self.store.price_overrides()?;
        let prices =
            price_nodes_with_overrides(store, &nodes, now, self.horizon, &overrides).await?;
        let ingest = ingest_lines(store, arrivals.iter().copied(), now).await?;
        let plan = plan_dispatch(store, self.strategy.as_ref(), now, self.horizon).await?;
        record_counters(store, &fetch, &ingest, &plan)?;
        self.clock.advance(&self.store)?;
        Ok(StepReport {
            hour: Hour::containing(now),
            fetch,
            prices,
            ingest,
            plan,
        })
    }
}

/// Counters kept in the database for the metrics endpoint: lines rejected at intake,
/// jobs rejected or expired by the planner, and fetch failures per source.
pub fn record_counters(
    store: &SqliteStore,
    fetch: &FetchReport,
    ingest: &IngestReport,
    plan: &PlanReport,
) -> Result<(), StoreError> {
    store.count("lines_rejected", "", ingest.rejected as u64)?;
    store.count("planner_closed", "rejected", plan.rejected.len() as u64)?;
    store.count("planner_closed", "expired", plan.expired.len() as u64)?;
    for (source, report) in &fetch.sources {
        store.count("fetch_errors", source, report.failed as u64)?;
        store.count("signals_rejected", source, report.rejected as u64)?;
    }
    Ok(())
}

/// How a local pipeline is put together.
#[derive(Debug, Clone)]
pub struct LocalSetup {
    pub seed: u64,
    pub faults: Faults,
    pub horizon: u32,
    pub strategy: String,
    /// CSV files replayed instead of generated data: (node id, kind, path).
    pub replays: Vec<(String, SignalKind, PathBuf)>,
}

impl Default for LocalSetup {
    fn default() -> Self {
        LocalSetup {
            seed: 42,
            faults: Faults::NONE,
            horizon: 48,
            strategy: "optimized".into(),
            replays: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown strategy `{0}` (known: {known})", known = STRATEGY_NAMES.join(", "))]
    UnknownStrategy(String),
    #[error("replay file {path}: {problem}")]
    Replay { path: String, problem: String },
    #[error("replay for unknown node `{0}`")]
    UnknownNode(String),
    #[error("horizon {0} h: must be 1..=336")]
    Horizon(u32),
    #[error("replay speed {0}: must be a number of simulated hours per second in (0, {MAX_REPLAY_SPEED}]")]
    Speed(f64),
}

/// Puts the default fleet in an empty database; a database with nodes keeps its own.
pub async fn ensure_fleet(store: &SqliteStore, n: usize) -> Result<Vec<Node>, StoreError> {
    let existing = store.nodes().await?;
    if !existing.is_empty() {
        return Ok(existing.into_iter().map(|s| s.node).collect());
    }
    let fleet = default_fleet(n);
    for node in &fleet {
        store.put_node(node).await?;
    }
    Ok(fleet)
}

/// Builds the pipeline: generated weather and prices for every node (with the faults
/// asked for), CSV replays where given, the named strategy, and the clock stored in the
/// database (starting at `start` for a new one).
pub async fn open_pipeline(
    store: Arc<SqliteStore>,
    setup: &LocalSetup,
    start: DateTime<Utc>,
) -> Result<Pipeline, SetupError> {
    if !(1..=336).contains(&setup.horizon) {
        return Err(SetupError::Horizon(setup.horizon));
    }
    let strategy = strategy_by_name(&setup.strategy)
        .ok_or_else(|| SetupError::UnknownStrategy(setup.strategy.clone()))?;
    let clock = SimClock::load(&store, start)?;
    // Replays are laid out from the first hour a pipeline ran on this database (for a new
    // one, the clock just loaded), stored at once.
    let origin = SimClock::began(&store)?.unwrap_or_else(|| clock.now());
    if store.meta("start")?.is_none() {
        store.set_meta("start", &origin.to_rfc3339())?;
    }
    let nodes: Vec<String> = store
        .nodes()
        .await?
        .into_iter()
        .map(|s| s.node.id)
        .collect();
    let mut sources: Vec<Arc<dyn SignalSource>> = Vec::new();
    let mut replayed: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (node, kind, path) in &setup.replays {
        if !nodes.contains(node) {
            return Err(SetupError::UnknownNode(node.clone()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| SetupError::Replay {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        let src =
            ReplaySource::new(node, *kind, &text, origin, setup.horizon).map_err(|problem| {
                SetupError::Replay {
                    path: path.display().to_string(),
                    problem,
                }
            })?;
        replayed[usize::from(*kind == SignalKind::Price)].push(node.clone());
        sources.push(Arc::new(src));
    }
    let [weather_replayed, price_replayed] = replayed;
    sources.push(Arc::new(
        SyntheticSource::new(Stream::Weather, setup.seed, setup.horizon, setup.faults)
            .except(weather_replayed),
    ));
    sources.push(Arc::new(
        SyntheticSource::new(Stream::Price, setup.seed, setup.horizon, setup.faults)
            .except(price_replayed),
    ));
    Ok(Pipeline {
        store,
        sources,
        strategy,
        horizon: setup.horizon,
        limits: FetchLimits::default(),
        clock,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_speed_overrides_the_runs_own_until_cleared() {
        let store = SqliteStore::in_memory().unwrap();
        assert_eq!(replay_speed(&store, Some(2.0)).unwrap(), Some(2.0));
        set_replay_speed(&store, Some(50.0)).unwrap();
        assert_eq!(replay_speed(&store, Some(2.0)).unwrap(), Some(50.0));
        assert_eq!(replay_speed(&store, None).unwrap(), Some(50.0));
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            let e = set_replay_speed(&store, Some(bad)).unwrap_err();
            assert!(e.to_string().starts_with("replay speed"), "{e}");
        }
        set_replay_speed(&store, None).unwrap();
        assert_eq!(replay_speed(&store, None).unwrap(), None);
    }
}
