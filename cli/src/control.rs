//! Manual control of the local pipeline: hold, release, cancel, complete, priority,
//! drain, undrain, explain.

use crate::local::open_store;
use anyhow::{bail, Result};
use chrono::Utc;
use clap::Args;
use grd::adapters::sqlite::SqliteStore;
use grd::app::control::{control_job, parse_action, set_drained};
use grd::app::explain::{explain, Explanation};
use grd::domain::time::Hour;
use grd::local::SimClock;
use grd::ports::{Backlog, Clock};
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
}

#[derive(Args)]
pub struct NodeArgs {
    /// The node id.
    pub node: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
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
    act(db, action, &args.job, None, args.json).await
}

pub async fn priority(db: &Path, args: PriorityArgs) -> Result<ExitCode> {
    act(db, "priority", &args.job, Some(args.priority), args.json).await
}

async fn act(
    db: &Path,
    action: &str,
    job: &str,
    n: Option<i64>,
    as_json: bool,
) -> Result<ExitCode> {
    let action = parse_action(action, n)?;
    let (store, now) = open_existing(db)?;
    let out = control_job(store.as_ref(), job, action, now).await?;
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
    let (store, _) = open_existing(db)?;
    let out = set_drained(store.as_ref(), &args.node, drained).await?;
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
    let (store, now) = open_existing(db)?;
    let Some(record) = store
        .all_jobs()
        .await?
        .into_iter()
        .find(|r| r.job.id.as_str() == args.job)
    else {
        bail!("unknown job `{}`", args.job);
    };
    let e = explain(store.as_ref(), &record, now).await?;
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
