//! A load and soak run on the embedded store: a large job stream with duplicates and
//! malformed lines, several planners racing on one database, and an audit at the end.

use super::{ensure_fleet, open_pipeline, workload, LocalSetup};
use crate::adapters::sqlite::SqliteStore;
use crate::app::ingest_jobs::ingest_lines;
use crate::app::plan_dispatch::plan_dispatch;
use crate::domain::dispatch::JobStatus;
use crate::domain::plan::strategy_by_name;
use crate::domain::time::Hour;
use crate::ports::{Backlog, NodeStore, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub jobs: usize,
    pub duplicate_rate: f64,
    pub malformed_rate: f64,
    pub planners: usize,
    /// Hours over which jobs arrive; the run then settles the backlog.
    pub hours: u32,
    pub nodes: usize,
    pub seed: u64,
    pub start: DateTime<Utc>,
}

/// What the audit found, and how fast planning was.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub jobs: usize,
    pub lines_sent: usize,
    pub duplicates_sent: usize,
    pub malformed_sent: usize,
    pub accepted: usize,
    pub rejected_lines: usize,
    /// Accepted ids missing from the backlog.
    pub lost: usize,
    /// Node-hours whose reserved units differ from the dispatches covering them, or jobs
    /// with more than one dispatch.
    pub doubled: usize,
    /// Node-hours with more reserved than their capacity.
    pub overbooked: usize,
    pub by_status: BTreeMap<String, usize>,
    pub planners: usize,
    pub plan_rounds: usize,
    pub commit_conflicts: usize,
    pub plan_ms_p50: f64,
    pub plan_ms_p99: f64,
    pub plan_ms_max: f64,
    pub hours_simulated: u32,
    pub wall_s: f64,
}

fn draw(seed: u64, i: u64, what: u64) -> f64 {
    let mut x =
        seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ what.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Lines for each hour: the generated jobs, some sent twice, some broken.
fn stream(cfg: &SoakConfig, regions: &[String]) -> (BTreeMap<Hour, Vec<String>>, usize, usize) {
    let start = Hour::containing(cfg.start);
    let mut by_hour: BTreeMap<Hour, Vec<String>> = BTreeMap::new();
    let (mut dups, mut bad) = (0, 0);
    for (i, (hour, line)) in workload::generate(cfg.seed, cfg.jobs, cfg.hours, start, regions)
        .into_iter()
        .enumerate()
    {
        let i = i as u64;
        if draw(cfg.seed, i, 1) < cfg.malformed_rate {
            bad += 1;
            let broken = match (draw(cfg.seed, i, 2) * 4.0) as u32 {
                0 => line.replace("\"priority\":", "\"priority\":1"),
                1 => line[..line.len() / 2].to_string(),
                2 => line.replace("\"compute_hours\":", "\"compute_hours\":-"),
                _ => "x".repeat(crate::domain::job::MAX_JOB_LINE_BYTES + 1),
            };
            by_hour.entry(hour).or_default().push(broken);
        }
        by_hour.entry(hour).or_default().push(line.clone());
        if draw(cfg.seed, i, 3) < cfg.duplicate_rate {
            dups += 1;
            let later = hour.plus((draw(cfg.seed, i, 4) * 3.0) as i64);
            by_hour.entry(later).or_default().push(line);
        }
    }
    (by_hour, dups, bad)
}

/// Runs the soak on a fresh database at `path` (an existing file is replaced).
pub fn soak(path: &Path, cfg: &SoakConfig) -> Result<SoakReport, StoreError> {
    let t0 = Instant::now();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let store = Arc::new(SqliteStore::open(path)?);
    let fleet = rt.block_on(ensure_fleet(&store, cfg.nodes))?;
    let mut regions: Vec<String> = fleet.iter().map(|n| n.region.clone()).collect();
    regions.sort();
    regions.dedup();
    let (lines, duplicates_sent, malformed_sent) = stream(cfg, &regions);
    let setup = LocalSetup {
        seed: cfg.seed,
        ..LocalSetup::default()
    };
    let pipeline = rt
        .block_on(open_pipeline(store.clone(), &setup, cfg.start))
        .map_err(|e| StoreError::Backend(e.to_string()))?;

    let mut report = SoakReport {
        jobs: cfg.jobs,
        duplicates_sent,
        malformed_sent,
        planners: cfg.planners,
        ..SoakReport::default()
    };
    let accepted_ids: Arc<Mutex<HashSet<String>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let conflicts: Arc<Mutex<usize>> = Arc::default();
    let planners = cfg.planners.max(1);
    let first = Hour::containing(cfg.start);
    let max_hours = cfg.hours + 24 * 5;
    for h in 0..max_hours {
        let hour = first.plus(i64::from(h));
        let now = hour.start();
        // Signals and prices for the hour, once.
        let nodes: Vec<_> = fleet.clone();
        rt.block_on(async {
            crate::app::fetch_signals::fetch_signals(
                store.as_ref(),
                &pipeline.sources,
                &nodes,
                now,
                Default::default(),
                None,
            )
            .await?;
            crate::app::price_nodes::price_nodes(store.as_ref(), &nodes, now, setup.horizon).await
        })?;
        // The hour's lines split over the planners, who submit and plan at the same time,
        // each on its own connection.
        let batch = lines.get(&hour).cloned().unwrap_or_default();
        report.lines_sent += batch.len();
        let barrier = Arc::new(Barrier::new(planners));
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..planners)
                .map(|p| {
                    let mine: Vec<String> =
                        batch.iter().skip(p).step_by(planners).cloned().collect();
                    let (barrier, accepted_ids, latencies, conflicts) = (
                        barrier.clone(),
                        accepted_ids.clone(),
                        latencies.clone(),
                        conflicts.clone(),
                    );
                    scope.spawn(move || -> Result<(), StoreError> {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .map_err(|e| StoreError::Backend(e.to_string()))?;
                        let conn = SqliteStore::open(path)?;
                        let strategy = strategy_by_name("optimized")
                            .ok_or_else(|| StoreError::Backend("strategy".into()))?;
                        let ingest =
                            rt.block_on(ingest_lines(&conn, mine.iter().map(String::as_str), now))?;
                        if let Ok(mut ids) = accepted_ids.lock() {
                            for line in &mine {
                                if let Ok(job) = crate::domain::job::Job::parse_line(line) {
                                    ids.insert(job.id.to_string());
                                }
                            }
                        }
                        let _ = ingest;
                        barrier.wait();
                        let t = Instant::now();
                        let plan = rt.block_on(plan_dispatch(&conn, strategy.as_ref(), now, 48))?;
                        if let Ok(mut l) = latencies.lock() {
                            l.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        if let Ok(mut c) = conflicts.lock() {
                            *c += plan.conflicts + plan.already_done;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(StoreError::Backend("planner panicked".into())))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        report.hours_simulated = h + 1;
        if h + 1 >= cfg.hours {
            let open = rt
                .block_on(store.jobs_with_status(JobStatus::Pending))?
                .len()
                + rt.block_on(store.jobs_with_status(JobStatus::Dispatched))?
                    .len();
            if open == 0 {
                break;
            }
        }
    }

    // Audit.
    let jobs = rt.block_on(store.all_jobs())?;
    let in_db: HashSet<String> = jobs.iter().map(|r| r.job.id.to_string()).collect();
    let accepted = accepted_ids.lock().map(|a| a.clone()).unwrap_or_default();
    report.accepted = accepted.len();
    report.rejected_lines = report.lines_sent - duplicates_sent - accepted.len();
    report.lost = accepted.difference(&in_db).count();
    let mut expected: HashMap<(String, i64), u32> = HashMap::new();
    for r in &jobs {
        *report
            .by_status
            .entry(r.status.as_str().to_string())
            .or_default() += 1;
        let has = r.dispatch.is_some();
        let should = matches!(r.status, JobStatus::Dispatched | JobStatus::Completed);
        if has != should {
            report.doubled += 1;
        }
        if let Some(d) = &r.dispatch {
            for (hour, units) in d.reservations() {
                *expected.entry((d.node_id.clone(), hour.0)).or_default() += units;
            }
        }
    }
    let capacity: HashMap<String, u32> = rt
        .block_on(store.nodes())?
        .into_iter()
        .map(|s| (s.node.id, s.node.capacity_units))
        .collect();
    let mut seen = HashSet::new();
    for (node, hour, units, cap) in store.reservation_rows()? {
        if units > cap || units > capacity.get(&node).copied().unwrap_or(0) {
            report.overbooked += 1;
        }
        let want = expected.get(&(node.clone(), hour.0)).copied().unwrap_or(0);
        if units != want {
            report.doubled += 1;
        }
        seen.insert((node, hour.0));
    }
    report.doubled += expected.keys().filter(|k| !seen.contains(*k)).count();
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    report.plan_rounds = lat.len();
    report.commit_conflicts = conflicts.lock().map(|c| *c).unwrap_or(0);
    report.plan_ms_p50 = percentile(&lat, 0.5);
    report.plan_ms_p99 = percentile(&lat, 0.99);
    report.plan_ms_max = lat.last().copied().unwrap_or(0.0);
    report.wall_s = t0.elapsed().as_secs_f64();
    Ok(report)
}
