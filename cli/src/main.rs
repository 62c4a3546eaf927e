//! `grd`: the operator command line of Geographic Resource Dispatch.

mod backtest;
mod bench;
mod console;
mod control;
mod demo;
mod fetch;
mod ingest;
mod local;
#[cfg(feature = "aws")]
mod remote;
mod serve;
mod soak;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "grd",
    version,
    about = "Geographic Resource Dispatch: place compute jobs where and when they cost least"
)]
struct Cli {
    /// The local database (SQLite). Default: grd/grd.db under the user's data directory.
    #[arg(long, global = true, env = "GRD_DB")]
    db: Option<PathBuf>,
    /// Log filter (e.g. info, grd=debug). Logs go to stderr. Default: warn (error for demo,
    /// whose injected faults are expected).
    #[arg(long, global = true, env = "GRD_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on an accelerated clock with generated signals and jobs, and
    /// compare its cost with the 2019 rule (baseline-2019) on the same inputs.
    Demo(demo::DemoArgs),
    /// Submit job lines (JSON, one per line) from a file or `-` for stdin.
    Submit(local::SubmitArgs),
    /// Advance the local pipeline by simulated hours.
    Run(local::RunArgs),
    /// Nodes, queue and jobs of the local pipeline (or a deployed stack's dispatch records).
    Status(local::StatusArgs),
    /// List nodes, or add/update them (locally or in a deployed stack's nodes table).
    Nodes(local::NodesArgs),
    /// Every strategy on one generated instance: cost, lower bound, gap, misses, solve time.
    Bench(bench::BenchArgs),
    /// Every strategy on recorded price series: plans from the recorded forecasts, pays the
    /// real prices, compared with a perfect-foresight optimum.
    Backtest(backtest::BacktestArgs),
    /// Load and soak run on the embedded store: many jobs, duplicates, malformed lines,
    /// concurrent planners; audits for lost, doubled and overbooked work.
    Soak(soak::SoakArgs),
    /// Load a weather or price file (CSV or datalogger station log) for one node into the
    /// local database; each row is accepted or rejected with its reason.
    Ingest(ingest::IngestArgs),
    /// Fetch weather and prices once from the real sources the nodes name, and store them.
    Fetch(fetch::FetchArgs),
    /// Keep a pending job out of planning until it is released.
    Hold(control::JobArgs),
    /// Return a held job to the queue.
    Release(control::JobArgs),
    /// Withdraw a pending, held or dispatched job (a dispatched job frees its capacity).
    Cancel(control::JobArgs),
    /// Mark a dispatched job finished now; its remaining reserved capacity is freed.
    Complete(control::JobArgs),
    /// Change the priority (0 most urgent .. 9) of a pending or held job.
    Priority(control::PriorityArgs),
    /// Take a node out of planning (running work carries on).
    Drain(control::NodeArgs),
    /// Return a drained node to service.
    Undrain(control::NodeArgs),
    /// Why a job is where it is: chosen node and hour vs the runner-up, or why it waits.
    Explain(control::JobArgs),
    /// Operator dashboard and JSON API (with /metrics) on the local database.
    Serve(serve::ServeArgs),
}

fn default_db() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("grd")
        .join("grd.db")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Fetch reports failed sources itself; demo and soak inject faults on purpose.
    let default_log = if matches!(
        cli.command,
        Command::Demo(_) | Command::Soak(_) | Command::Fetch(_)
    ) {
        "error"
    } else {
        "warn"
    };
    let filter = cli.log.as_deref().unwrap_or(default_log);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let db = cli.db.unwrap_or_else(default_db);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<ExitCode> = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(&db, args).await,
            Command::Submit(args) => local::submit(&db, args).await,
            Command::Run(args) => local::run(&db, args).await,
            Command::Status(args) => local::status(&db, args).await,
            Command::Nodes(args) => local::nodes(&db, args).await,
            Command::Bench(args) => bench::bench(args),
            Command::Backtest(args) => tokio::task::block_in_place(|| backtest::run(args)),
            Command::Soak(args) => tokio::task::block_in_place(|| soak::run(args)),
            Command::Ingest(args) => ingest::run(&db, args).await,
            Command::Fetch(args) => fetch::run(&db, args).await,
            Command::Hold(args) => control::job_action(&db, "hold", args).await,
            Command::Release(args) => control::job_action(&db, "release", args).await,
            Command::Cancel(args) => control::job_action(&db, "cancel", args).await,
            Command::Complete(args) => control::job_action(&db, "complete", args).await,
            Command::Priority(args) => control::priority(&db, args).await,
            Command::Drain(args) => control::drain(&db, args, true).await,
            Command::Undrain(args) => control::drain(&db, args, false).await,
            Command::Explain(args) => control::explain_job(&db, args).await,
            Command::Serve(args) => serve::serve(&db, args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
