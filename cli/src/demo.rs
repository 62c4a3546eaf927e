//! `grd demo`: the whole pipeline on an accelerated clock, then the same inputs through
//! the 2019 rule, and what the difference is worth.

use crate::console::{self, View};
use crate::local::open_store;
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use grd::adapters::sqlite::SqliteStore;
use grd::adapters::synthetic::Faults;
use grd::app::summary::{summary, Summary};
use grd::domain::dispatch::JobStatus;
use grd::domain::node::default_fleet;
use grd::domain::time::Hour;
use grd::local::{open_pipeline, workload, LocalSetup, Pipeline};
use grd::ports::{Backlog, NodeStore};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// Nodes in the fleet (sites in several regions and markets).
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Jobs submitted over the run.
    #[arg(long, default_value_t = 400)]
    pub jobs: usize,
    /// Hours over which jobs arrive; the run goes on until every job is settled.
    #[arg(long, default_value_t = 48)]
    pub hours: u32,
    /// Seed for signals, faults and jobs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Network faults on the signal feeds: none, typical, or e.g. loss=0.1,dup=0.05
    #[arg(long, default_value = "typical")]
    pub faults: String,
    /// Wall-clock milliseconds per simulated hour on the live console.
    #[arg(long, default_value_t = 60)]
    pub pace_ms: u64,
    /// Start of the simulated period (RFC 3339). Default: the current hour. With the same
    /// start and seed, a demo repeats exactly.
    #[arg(long)]
    pub start: Option<String>,
    /// Print only one JSON line at the end (no console).
    #[arg(long)]
    pub json: bool,
}

const DEMO_MARK: &str = "created_by";

/// A demo owns its database: it may replace an earlier demo's, never anything else.
fn fresh_demo_db(db: &Path) -> Result<()> {
    if db.exists() {
        let store = SqliteStore::open(db).with_context(|| format!("opening {}", db.display()))?;
        let is_demo = store.meta(DEMO_MARK)?.as_deref() == Some("demo");
        let empty = store.meta("clock")?.is_none();
        drop(store);
        if !(is_demo || empty) {
            bail!(
                "{} holds a pipeline that `grd demo` did not create; pass --db with another path",
                db.display()
            );
        }
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", db.display());
            if Path::new(&p).exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {p}"))?;
            }
        }
    }
    Ok(())
}

/// The live operator console, redrawn after every simulated hour.
struct Live {
    seed: u64,
    pace: Duration,
}

impl Live {
    async fn show(&self, p: &Pipeline, hour: Hour, h: u32, arrival_hours: u32) -> Result<()> {
        let view = View::load(p.store.as_ref(), hour.start()).await?;
        let totals = summary(p.store.as_ref()).await?;
        let phase = if h < arrival_hours {
            "jobs arriving"
        } else {
            "settling the backlog"
        };
        print!(
            "\x1b[H\x1b[2Jgrd demo  |  strategy optimized  |  seed {}  |  {}  |  hour {} ({phase})\n\n{}\n{}\n",
            self.seed,
            hour,
            h + 1,
            console::render_nodes(&view),
            console::render_summary(&totals)
        );
        let _ = std::io::stdout().flush();
        tokio::time::sleep(self.pace).await;
        Ok(())
    }
}

struct Outcome {
    summary: Summary,
    hours: u32,
    signals_accepted: usize,
    signals_rejected: BTreeMap<String, usize>,
    source_failures: usize,
}

/// Runs `pipeline` with the arrivals until every job is settled (or a cap).
async fn simulate(
    pipeline: &Pipeline,
    arrivals: &[(Hour, String)],
    start: Hour,
    arrival_hours: u32,
    live: Option<&Live>,
) -> Result<Outcome> {
    let cap = arrival_hours + 24 * 5;
    let mut outcome = Outcome {
        summary: Summary::default(),
        hours: 0,
        signals_accepted: 0,
        signals_rejected: BTreeMap::new(),
        source_failures: 0,
    };
    let mut next = 0;
    for h in 0..cap {
        let hour = start.plus(i64::from(h));
        let first = next;
        while next < arrivals.len() && arrivals[next].0 <= hour {
            next += 1;
        }
        let lines: Vec<&str> = arrivals[first..next]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect();
        let step = pipeline.step(&lines).await?;
        for s in step.fetch.sources.values() {
            outcome.signals_accepted += s.accepted;
            outcome.source_failures += s.failed;
            for (reason, n) in &s.reasons {
                *outcome.signals_rejected.entry(reason.clone()).or_default() += n;
            }
        }
        outcome.hours = h + 1;
        if let Some(live) = live {
            live.show(pipeline, step.hour, h, arrival_hours).await?;
        }
        if h + 1 >= arrival_hours {
            let open = pipeline
                .store
                .jobs_with_status(JobStatus::Pending)
                .await?
                .len()
                + pipeline
                    .store
                    .jobs_with_status(JobStatus::Dispatched)
                    .await?
                    .len();
            if open == 0 {
                break;
            }
        }
    }
    outcome.summary = summary(pipeline.store.as_ref()).await?;
    Ok(outcome)
}

pub async fn run(db: &Path, args: DemoArgs) -> Result<ExitCode> {
    if args.nodes == 0 || args.nodes > 200 {
        bail!("--nodes {}: must be 1..=200", args.nodes);
    }
    if args.hours == 0 || args.hours > 24 * 30 {
        bail!("--hours {}: must be 1..=720", args.hours);
    }
    if args.jobs > 100_000 {
        bail!("--jobs {}: at most 100000", args.jobs);
    }
    let faults = Faults::parse(&args.faults).map_err(anyhow::Error::msg)?;
    fresh_demo_db(db)?;
    let started = Instant::now();
    let start = match &args.start {
        None => Hour::containing(Utc::now()),
        Some(s) => crate::local::parse_start(s)?,
    };
    let fleet = default_fleet(args.nodes);
    let mut regions: Vec<String> = fleet.iter().map(|n| n.region.clone()).collect();
    regions.sort();
    regions.dedup();
    let arrivals = workload::generate(args.seed, args.jobs, args.hours, start, &regions);
    let setup = LocalSetup {
        seed: args.seed,
        faults,
        ..LocalSetup::default()
    };

    let main_store = open_store(db)?;
    main_store.set_meta(DEMO_MARK, "demo")?;
    main_store.set_meta("seed", &args.seed.to_string())?;
    let base_store = Arc::new(SqliteStore::in_memory()?);
    for node in &fleet {
        main_store.put_node(node).await?;
        base_store.put_node(node).await?;
    }
    let optimized = open_pipeline(main_store.clone(), &setup, start.start()).await?;
    let baseline_setup = LocalSetup {
        strategy: "baseline-2019".into(),
        ..setup.clone()
    };
    let baseline = open_pipeline(base_store, &baseline_setup, start.start()).await?;

    let live = (!args.json && std::io::stdout().is_terminal()).then_some(Live {
        seed: args.seed,
        pace: Duration::from_millis(args.pace_ms),
    });
    if live.is_none() && !args.json {
        eprintln!("running the pipeline (optimized) ...");
    }
    let opt = simulate(&optimized, &arrivals, start, args.hours, live.as_ref()).await?;
    if !args.json {
        eprintln!("running the same inputs through baseline-2019 ...");
    }
    let base = simulate(&baseline, &arrivals, start, args.hours, None).await?;

    let jobs = |s: &Summary, st: JobStatus| s.jobs.get(st.as_str()).copied().unwrap_or(0);
    let dispatched = |s: &Summary| jobs(s, JobStatus::Dispatched) + jobs(s, JobStatus::Completed);
    let saving = base.summary.cost_usd - opt.summary.cost_usd;
    let saving_pct = if base.summary.cost_usd > 0.0 {
        100.0 * saving / base.summary.cost_usd
    } else {
        0.0
    };
    let nodes = console::nodes_json(
        &View::load(optimized.store.as_ref(), optimized.clock_hour().start()).await?,
    );
    let result = json!({
        "total_cost_usd": round4(opt.summary.cost_usd),
        "baseline_cost_usd": round4(base.summary.cost_usd),
        "saving_usd": round4(saving),
        "saving_pct": round4(saving_pct),
        "jobs_submitted": args.jobs,
        "jobs_dispatched": dispatched(&opt.summary),
        "jobs_pending": jobs(&opt.summary, JobStatus::Pending),
        "jobs_rejected": jobs(&opt.summary, JobStatus::Rejected),
        "deadline_misses": opt.summary.deadline_misses,
        "baseline_jobs_dispatched": dispatched(&base.summary),
        "baseline_deadline_misses": base.summary.deadline_misses,
        "compute_hours_dispatched": round4(opt.summary.dispatched_chr),
        "baseline_compute_hours_dispatched": round4(base.summary.dispatched_chr),
        "usd_per_chr": round6(opt.summary.usd_per_chr),
        "baseline_usd_per_chr": round6(base.summary.usd_per_chr),
        "hours_simulated": opt.hours,
        "signals_accepted": opt.signals_accepted,
        "signals_rejected": opt.signals_rejected,
        "source_failures": opt.source_failures,
        "seed": args.seed,
        "db": db.display().to_string(),
        "wall_seconds": round4(started.elapsed().as_secs_f64()),
        "nodes": nodes,
    });
    if args.json {
        println!("{result}");
    } else {
        if live.is_none() {
            println!("{}", console::render_summary(&opt.summary));
        }
        let rejected: Vec<String> = opt
            .signals_rejected
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "\nSimulated {} hours, {} nodes, {} jobs. Signals: {} accepted, rejected: {} ; source outages {}.",
            opt.hours,
            args.nodes,
            args.jobs,
            opt.signals_accepted,
            if rejected.is_empty() { "none".into() } else { rejected.join(", ") },
            opt.source_failures
        );
        println!(
            "optimized      ${:>10.2}  {:>8.0} c-hr  ${:.5}/c-hr  {} dispatched, {} missed deadlines",
            opt.summary.cost_usd,
            opt.summary.dispatched_chr,
            opt.summary.usd_per_chr,
            dispatched(&opt.summary),
            opt.summary.deadline_misses
        );
        println!(
            "baseline-2019  ${:>10.2}  {:>8.0} c-hr  ${:.5}/c-hr  {} dispatched, {} missed deadlines",
            base.summary.cost_usd,
            base.summary.dispatched_chr,
            base.summary.usd_per_chr,
            dispatched(&base.summary),
            base.summary.deadline_misses
        );
        println!("saving         ${saving:.2} ({saving_pct:.1} %) on the same jobs and signals");
        println!(
            "\nThe run is in {}: `grd status --db {}` shows it.",
            db.display(),
            db.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
