//! Manual control of the local pipeline: hold, release, cancel, complete, priority,
//! drain, undrain, explain.

use crate::local::open_store;
use anyhow::{bail, Result};
use chrono::Utc;
use clap::Args;
use grd::adapters::sqlite::SqliteStore;
use grd::app::control::{control_job, parse_action, set_drained};
use grd::app::explain::{explain_id, Explanation};
use grd::domain::time::Hour;
use grd::local::SimClock;
use grd::ports::Clock;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct JobArgs {
    /// The job id.
    pub job: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackTables,
}

#[derive(Args)]
pub struct PriorityArgs {
    /// The job id.
    pub job: String,
    /// New priority, 0 (most urgent) to 9.
    pub priority: i64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackTables,
}

#[derive(Args)]
pub struct NodeArgs {
    /// The node id.
    pub node: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Act on a deployed stack's nodes table (stack output NodesTableName) instead of the
    /// local database.
    #[arg(long)]
    pub table: Option<String>,
}

/// A deployed stack's tables, to act on instead of the local database.
#[derive(Args)]
pub struct StackTables {
    /// Act on a deployed stack instead of the local database: its backlog table (stack output
    /// BacklogTableName), with --dispatches-table and --nodes-table.
    #[arg(long, requires_all = ["dispatches_table", "nodes_table"])]
    pub backlog_table: Option<String>,
    /// The stack's dispatches table (DispatchesTableName), with --backlog-table.
    #[arg(long, requires = "backlog_table")]
    pub dispatches_table: Option<String>,
    /// The stack's nodes table (NodesTableName), with --backlog-table.
    #[arg(long, requires = "backlog_table")]
    pub nodes_table: Option<String>,
}

impl StackTables {
    /// (backlog, dispatches, nodes) when a stack was named.
    fn names(&self) -> Option<(&str, &str, &str)> {
        Some((
            self.backlog_table.as_deref()?,
            self.dispatches_table.as_deref()?,
            self.nodes_table.as_deref()?,
        ))
    }
}

/// The local store and its simulated time; a missing database is an error, not a new one.
fn open_existing(db: &Path) -> Result<(Arc<SqliteStore>, chrono::DateTime<Utc>)> {
    if !db.exists() {
        bail!(
            "no database at {} (run `grd demo` or `grd run` first, or pass --db)",
            db.display()
        );
    }
    let store = open_store(db)?;
    let now = SimClock::load(&store, Hour::containing(Utc::now()).start())?.now();
    Ok((store, now))
}

/// hold, release, cancel, complete (and priority via [`priority`]).
pub async fn job_action(db: &Path, action: &str, args: JobArgs) -> Result<ExitCode> {
    act(db, action, &args.job, None, args.json, &args.stack).await
}

pub async fn priority(db: &Path, args: PriorityArgs) -> Result<ExitCode> {
    let n = Some(args.priority);
    act(db, "priority", &args.job, n, args.json, &args.stack).await
}

async fn act(
    db: &Path,
    action: &str,
    job: &str,
    n: Option<i64>,
    as_json: bool,
    stack: &StackTables,
) -> Result<ExitCode> {
    let action = parse_action(action, n)?;
    let out = match stack.names() {
        #[cfg(feature = "aws")]
        Some(tables) => crate::remote::control_job(tables, job, action).await?,
        #[cfg(not(feature = "aws"))]
        Some(_) => return crate::local::no_aws("--backlog-table"),
        None => {
            let (store, now) = open_existing(db)?;
            control_job(store.as_ref(), job, action, now).await?
        }
    };
    if as_json {
        println!("{}", json!(out));
    } else {
        let freed = if out.freed_unit_hours > 0 {
            format!("; {} unit-hours of capacity freed", out.freed_unit_hours)
        } else {
            String::new()
        };
        let prio = if out.action == "priority" {
            format!(" (priority {})", out.priority)
        } else {
            String::new()
        };
        println!(
            "job {}: {} -> {}{prio}{freed}",
            out.job_id, out.from, out.to
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn drain(db: &Path, args: NodeArgs, drained: bool) -> Result<ExitCode> {
    let out = match &args.table {
        #[cfg(feature = "aws")]
        Some(table) => crate::remote::set_drained(table, &args.node, drained).await?,
        #[cfg(not(feature = "aws"))]
        Some(_) => return crate::local::no_aws("--table"),
        None => {
            let (store, _) = open_existing(db)?;
            set_drained(store.as_ref(), &args.node, drained).await?
        }
    };
    if args.json {
        println!("{}", json!(out));
    } else {
        let state = |d: bool| if d { "drained" } else { "in service" };
        println!(
            "node {}: {} -> {}{}",
            out.node_id,
            state(out.was_drained),
            state(out.drained),
            if drained {
                " (running work carries on; no new dispatches)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn explain_job(db: &Path, args: JobArgs) -> Result<ExitCode> {
    let found = match args.stack.names() {
        #[cfg(feature = "aws")]
        Some(tables) => crate::remote::explain(tables, &args.job).await?,
        #[cfg(not(feature = "aws"))]
        Some(_) => return crate::local::no_aws("--backlog-table"),
        None => {
            let (store, now) = open_existing(db)?;
            explain_id(store.as_ref(), &args.job, now).await?
        }
    };
    let Some(e) = found else {
        bail!("unknown job `{}`", args.job);
    };
    if args.json {
        println!("{}", json!(e));
    } else {
        print!("{}", render(&e));
    }
    Ok(ExitCode::SUCCESS)
}

/// The explanation as a small table for people.
pub fn render(e: &Explanation) -> String {
    let mut out = format!("job {} ({})\n{}\n", e.job_id, e.status, e.summary);
    let row = |label: &str, a: &grd::domain::plan::Alternative| {
        format!(
            "  {label:<22} {:<8} {}  ${:>9.2}\n",
            a.node_id, a.start, a.cost_usd
        )
    };
    if let Some(c) = &e.chosen {
        out += &format!(
            "  {:<22} {:<8} {:<17}  {:>10}\n",
            "", "NODE", "START", "COST"
        );
        out += &row("chosen (planned)", c);
        if let Some(s) = e.chosen_at_stored_prices_usd {
            out += &row(
                "chosen (stored prices)",
                &grd::domain::plan::Alternative {
                    cost_usd: s,
                    ..c.clone()
                },
            );
        }
    }
    if let Some(r) = &e.runner_up {
        out += &row(
            if e.chosen.is_some() {
                "runner-up"
            } else {
                "cheapest feasible"
            },
            r,
        );
    }
    if let Some(s) = e.saving_usd {
        let basis = match e.saving_basis {
            Some("planned") => "at the prices the planner saw",
            _ => "at the stored prices",
        };
        out += &format!("  saving ${s:.2} ({basis})\n");
    }
    out
}
