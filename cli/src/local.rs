//! Local-mode commands: submit, run, status.

use crate::console;
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use grd::adapters::sqlite::SqliteStore;
use grd::adapters::synthetic::Faults;
use grd::app::ingest_jobs::ingest_lines;
use grd::app::summary::summary;
use grd::domain::node::{default_fleet, Node};
use grd::domain::signal::SignalKind;
use grd::domain::time::Hour;
use grd::local::{ensure_fleet, open_pipeline, LocalSetup, SimClock};
use grd::ports::{Clock, NodeState, NodeStore};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code when some input lines were rejected (the rest was stored).
pub const EXIT_SOME_REJECTED: u8 = 3;

pub fn open_store(db: &Path) -> Result<Arc<SqliteStore>> {
    Ok(Arc::new(
        SqliteStore::open(db).with_context(|| format!("opening {}", db.display()))?,
    ))
}

#[derive(Args)]
pub struct SubmitArgs {
    /// File of job lines, or `-` for stdin.
    pub file: String,
    /// Send the jobs to a deployed stack's jobs queue instead of the local database.
    #[arg(long)]
    pub queue_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn read_input(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

#[cfg(not(feature = "aws"))]
pub fn no_aws<T>(flag: &str) -> Result<T> {
    bail!("{flag} needs AWS support: build grd with `--features aws` (cargo install --path cli --features aws)")
}

pub async fn submit(db: &Path, args: SubmitArgs) -> Result<ExitCode> {
    let text = read_input(&args.file)?;
    if let Some(url) = &args.queue_url {
        #[cfg(feature = "aws")]
        {
            let clean = crate::remote::submit(url, &text, args.json).await?;
            return Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_SOME_REJECTED)
            });
        }
        #[cfg(not(feature = "aws"))]
        {
            let _ = url;
            return no_aws("--queue-url");
        }
    }
    let store = open_store(db)?;
    let now = SimClock::load(&store, Hour::containing(Utc::now()).start())?.now();
    let report = ingest_lines(store.as_ref(), text.lines(), now).await?;
    store.count("lines_rejected", "", report.rejected as u64)?;
    if args.json {
        println!(
            "{}",
            json!({"lines": report.lines, "accepted": report.accepted, "duplicates": report.duplicates,
                   "rejected": report.rejected, "reasons": report.reasons, "errors": report.errors})
        );
    } else {
        for (line, err) in &report.errors {
            eprintln!("line {line}: rejected: {err}");
        }
        println!(
            "{} lines: {} accepted, {} duplicates (no effect), {} rejected",
            report.lines, report.accepted, report.duplicates, report.rejected
        );
    }
    Ok(if report.rejected > 0 {
        ExitCode::from(EXIT_SOME_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_replay(spec: &str) -> Result<(String, PathBuf)> {
    match spec.split_once('=') {
        Some((node, path)) if !node.is_empty() && !path.is_empty() => {
            Ok((node.to_string(), PathBuf::from(path)))
        }
        _ => bail!("replay `{spec}`: expected NODE=PATH"),
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// Simulated hours to advance.
    #[arg(long)]
    pub hours: u32,
    /// Seed of the generated signals (kept in the database on first use).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Network faults on the generated signals: none, typical, or e.g. loss=0.1,dup=0.05,reorder=0.05,burst=0.02,glitch=0.01,delay-ms=20
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// Strategy: optimized or baseline-2019.
    #[arg(long, default_value = "optimized")]
    pub strategy: String,
    /// Planning horizon in hours.
    #[arg(long, default_value_t = 48)]
    pub horizon: u32,
    /// Nodes to create in a new database.
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Replay a weather CSV (timestamp,temp_c,rh_pct) for a node: NODE=PATH. Repeatable.
    #[arg(long = "weather-csv")]
    pub weather_csv: Vec<String>,
    /// Replay a price CSV (timestamp,price_usd_per_mwh[,forecast_usd_per_mwh]) for a node: NODE=PATH. Repeatable.
    #[arg(long = "prices-csv")]
    pub prices_csv: Vec<String>,
    /// Simulated hours per wall-clock second (default: as fast as possible).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Print one JSON object per hour instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start of the simulated clock of a new database (RFC 3339, rounded down to the hour).
    /// Default: the current hour. With the same start and seed, a run repeats exactly.
    #[arg(long)]
    pub start: Option<String>,
}

/// The hour a `--start` names.
pub fn parse_start(s: &str) -> Result<Hour> {
    Ok(Hour::containing(
        chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("--start {s:?}: expected RFC 3339, e.g. 2026-07-01T00:00:00Z")
            })?
            .with_timezone(&Utc),
    ))
}

pub async fn run(db: &Path, args: RunArgs) -> Result<ExitCode> {
    let faults = Faults::parse(&args.faults).map_err(anyhow::Error::msg)?;
    if let Some(s) = args.speed {
        if !(s.is_finite() && s > 0.0) {
            bail!("--speed {s}: must be a positive number of simulated hours per second");
        }
    }
    let start = args.start.as_deref().map(parse_start).transpose()?;
    let store = open_store(db)?;
    if let (Some(asked), Some(began)) = (start, SimClock::began(&store)?) {
        if asked.start() != began {
            bail!(
                "--start {}: this database's clock began at {}; --start applies to a new database",
                asked.start().to_rfc3339(),
                began.to_rfc3339()
            );
        }
    }
    let seed = match (store.meta("seed")?, args.seed) {
        (Some(stored), Some(asked)) if stored != asked.to_string() => {
            bail!("this database was started with --seed {stored}; a run cannot change it")
        }
        (Some(stored), _) => stored.parse().context("stored seed")?,
        (None, asked) => {
            let seed = asked.unwrap_or(42);
            store.set_meta("seed", &seed.to_string())?;
            seed
        }
    };
    ensure_fleet(&store, args.nodes).await?;
    let mut replays = Vec::new();
    for spec in &args.weather_csv {
        let (node, path) = parse_replay(spec)?;
        replays.push((node, SignalKind::Weather, path));
    }
    for spec in &args.prices_csv {
        let (node, path) = parse_replay(spec)?;
        replays.push((node, SignalKind::Price, path));
    }
    let setup = LocalSetup {
        seed,
        faults,
        horizon: args.horizon,
        strategy: args.strategy.clone(),
        replays,
    };
    let start = start.unwrap_or_else(|| Hour::containing(Utc::now()));
    let pipeline = open_pipeline(store.clone(), &setup, start.start()).await?;
    for _ in 0..args.hours {
        let step = pipeline.step(&[]).await?;
        if args.json {
            println!(
                "{}",
                json!({"hour": step.hour.to_string(), "dispatched": step.plan.committed.len(),
                       "completed": step.plan.completed, "expired": step.plan.expired.len(),
                       "rejected": step.plan.rejected.len(), "deferred": step.plan.deferred,
                       "waiting": step.plan.waiting, "conflicts": step.plan.conflicts,
                       "signals_accepted": step.fetch.sources.values().map(|s| s.accepted).sum::<usize>(),
                       "signals_rejected": step.fetch.rejected(), "source_failures": step.fetch.failed()})
            );
        } else {
            println!(
                "{}  dispatched {:>3}  completed {:>3}  expired {:>2}  deferred {:>3}  waiting {:>3}  signals rejected {:>2}  source failures {}",
                step.hour,
                step.plan.committed.len(),
                step.plan.completed,
                step.plan.expired.len(),
                step.plan.deferred,
                step.plan.waiting,
                step.fetch.rejected(),
                step.fetch.failed()
            );
        }
        // An operator may change the speed while this runs (`grd serve`'s page).
        if let Some(speed) = grd::local::replay_speed(&store, args.speed)? {
            tokio::time::sleep(Duration::from_secs_f64(1.0 / speed)).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct StatusArgs {
    /// Read the dispatch records of a deployed stack (its dispatches table) instead.
    #[arg(long)]
    pub table: Option<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub async fn status(db: &Path, args: StatusArgs) -> Result<ExitCode> {
    if let Some(table) = &args.table {
        #[cfg(feature = "aws")]
        {
            crate::remote::status(table, args.json).await?;
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(not(feature = "aws"))]
        {
            let _ = table;
            return no_aws("--table");
        }
    }
    if !db.exists() {
        bail!(
            "no database at {} (run `grd demo` or `grd run` first, or pass --db)",
            db.display()
        );
    }
    let store = open_store(db)?;
    let now = SimClock::load(&store, Hour::containing(Utc::now()).start())?.now();
    let view = console::View::load(store.as_ref(), now).await?;
    let totals = summary(store.as_ref()).await?;
    if args.json {
        let jobs: Vec<_> = view
            .jobs
            .iter()
            .map(|r| {
                let d = r.dispatch.as_ref();
                json!({
                    "id": r.job.id, "status": r.status, "priority": r.job.priority.get(),
                    "compute_hours": r.job.compute_hours, "units": r.job.units,
                    "deadline": r.job.deadline, "submitted_at": r.submitted_at,
                    "node": d.map(|d| d.node_id.clone()), "start": d.map(|d| d.start.to_string()),
                    "end": d.map(|d| d.end().to_string()), "planned_cost_usd": d.map(|d| d.planned_cost_usd),
                    "reason": r.reason,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"clock": now, "nodes": console::nodes_json(&view), "summary": totals, "jobs": jobs})
        );
    } else {
        println!("clock {}", Hour::containing(now));
        print!("{}", console::render_nodes(&view));
        println!("{}", console::render_summary(&totals));
        print!("{}", console::render_jobs(&view.jobs, 30));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct NodesArgs {
    /// Add or update nodes first: a JSON file holding an array of nodes, or `default` /
    /// `default:N` for the default fleet.
    #[arg(long)]
    pub load: Option<String>,
    /// Work on a deployed stack's nodes table instead of the local database.
    #[arg(long)]
    pub table: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Node definitions from a file (validated, each error naming the node and field) or the
/// default fleet.
pub fn load_nodes(spec: &str) -> Result<Vec<Node>> {
    if let Some(rest) = spec.strip_prefix("default") {
        let n = match rest.strip_prefix(':') {
            None if rest.is_empty() => 6,
            Some(n) => n
                .parse()
                .with_context(|| format!("--load {spec}: expected default:N"))?,
            None => bail!("--load {spec}: expected a file, `default` or `default:N`"),
        };
        return Ok(default_fleet(n));
    }
    let text = std::fs::read_to_string(spec).with_context(|| format!("reading {spec}"))?;
    let nodes: Vec<Node> = serde_json::from_str(&text)
        .with_context(|| format!("{spec}: not a JSON array of nodes"))?;
    for node in &nodes {
        node.validate().with_context(|| spec.to_string())?;
    }
    Ok(nodes)
}

pub fn print_nodes(nodes: &[NodeState], as_json: bool) {
    if as_json {
        println!("{}", json!({ "nodes": nodes }));
        return;
    }
    println!(
        "{:<8} {:<20} {:<11} {:<14} {:>6} {:>8}  STATE",
        "NODE", "NAME", "REGION", "MARKET", "UNITS", "$/C-HR*"
    );
    for s in nodes {
        let n = &s.node;
        println!(
            "{:<8} {:<20} {:<11} {:<14} {:>6} {:>8.4}  {}",
            n.id,
            n.name,
            n.region,
            n.market,
            n.capacity_units,
            n.non_energy_usd_per_chr,
            if s.drained { "drained" } else { "in service" }
        );
    }
    println!("* non-energy cost per compute-hour; `grd status` shows current prices");
}

pub async fn nodes(db: &Path, args: NodesArgs) -> Result<ExitCode> {
    let load = args.load.as_deref().map(load_nodes).transpose()?;
    if let Some(table) = &args.table {
        #[cfg(feature = "aws")]
        {
            crate::remote::nodes(table, load, args.json).await?;
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(not(feature = "aws"))]
        {
            let _ = (table, load);
            return no_aws("--table");
        }
    }
    let store = open_store(db)?;
    for node in load.unwrap_or_default() {
        store.put_node(&node).await?;
    }
    print_nodes(&store.nodes().await?, args.json);
    Ok(ExitCode::SUCCESS)
}
