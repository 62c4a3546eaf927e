//! Operator commands against a deployed stack: honour AWS_ENDPOINT_URL, AWS_PROFILE,
//! AWS_REGION and the rest of the usual AWS settings.

use anyhow::{Context, Result};
use grd::adapters::dynamodb::{DynamoStore, Tables};
use grd::adapters::sqs::JobQueue;
use grd::app::control::DrainOutcome;
use grd::app::explain::Explanation;
use grd::app::ingest_jobs::IngestReport;
use grd::domain::dispatch::{ControlOutcome, JobAction};
use grd::domain::job::Job;
use grd::domain::node::Node;
use grd::ports::NodeStore;
use serde_json::json;

/// Checks each line as the dispatcher will, sends the valid ones; returns the report and
/// the exit code (3 when a line was rejected or refused).
pub async fn submit(queue_url: &str, text: &str, as_json: bool) -> Result<bool> {
    let conf = grd::aws::sdk_config().await;
    let queue = JobQueue::new(aws_sdk_sqs::Client::new(&conf), queue_url);
    let mut report = IngestReport::default();
    let mut bodies = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        match Job::parse_line(line.trim()) {
            Ok(job) => bodies.push(job.to_line()),
            Err(e) => {
                report.rejected += 1;
                *report.reasons.entry(e.kind()).or_default() += 1;
                report.errors.push((i + 1, e.to_string()));
            }
        }
    }
    let sent = queue
        .send(&bodies)
        .await
        .context("sending to the jobs queue")?;
    if as_json {
        println!(
            "{}",
            json!({"lines": report.lines, "sent": sent.sent, "rejected": report.rejected,
                   "reasons": report.reasons, "errors": report.errors, "refused_by_sqs": sent.failed})
        );
    } else {
        for (line, err) in &report.errors {
            eprintln!("line {line}: rejected: {err}");
        }
        for (i, err) in &sent.failed {
            eprintln!("job {}: refused by SQS: {err}", i + 1);
        }
        println!(
            "{} lines: {} sent to {queue_url}, {} rejected",
            report.lines, sent.sent, report.rejected
        );
    }
    Ok(report.rejected == 0 && sent.failed.is_empty())
}

/// Dispatch records of a deployed stack.
pub async fn status(dispatches_table: &str, as_json: bool) -> Result<()> {
    let store = stack_store(Tables {
        dispatches: Some(dispatches_table.to_string()),
        ..Tables::default()
    })
    .await;
    let records = store.scan_dispatches().await?;
    if as_json {
        println!("{}", json!({ "dispatches": records }));
    } else {
        println!(
            "{:<24} {:<8} {:<18} {:>5} {:>5} {:>10}  {:<14}",
            "JOB", "NODE", "START", "HOURS", "UNITS", "PLANNED$", "STRATEGY"
        );
        for d in &records {
            println!(
                "{:<24} {:<8} {:<18} {:>5} {:>5} {:>10.4}  {:<14}",
                d.job_id.as_str(),
                d.node_id,
                d.start.to_string(),
                d.slots,
                d.units,
                d.planned_cost_usd,
                d.strategy
            );
        }
        println!("{} dispatch records in {dispatches_table}", records.len());
    }
    Ok(())
}

/// Writes node definitions into a deployed stack's nodes table and lists what it holds.
pub async fn nodes(nodes_table: &str, load: Option<Vec<Node>>, as_json: bool) -> Result<()> {
    let store = stack_store(Tables {
        nodes: Some(nodes_table.to_string()),
        ..Tables::default()
    })
    .await;
    for node in load.unwrap_or_default() {
        store.put_node(&node).await?;
    }
    let nodes = store.nodes().await?;
    crate::local::print_nodes(&nodes, as_json);
    Ok(())
}

/// A DynamoDB store over a deployed stack's tables.
async fn stack_store(tables: Tables) -> DynamoStore {
    let conf = grd::aws::sdk_config().await;
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), tables)
}

/// A DynamoDB store over a deployed stack's (backlog, dispatches, nodes) tables.
async fn job_tables((backlog, dispatches, nodes): (&str, &str, &str)) -> DynamoStore {
    stack_store(Tables {
        backlog: Some(backlog.to_string()),
        dispatches: Some(dispatches.to_string()),
        nodes: Some(nodes.to_string()),
        ..Tables::default()
    })
    .await
}

/// hold, release, cancel, complete or priority on a job of a deployed stack, at the wall
/// clock's hour (the stack's dispatcher runs on it).
pub async fn control_job(
    tables: (&str, &str, &str),
    job: &str,
    action: JobAction,
) -> Result<ControlOutcome> {
    let store = job_tables(tables).await;
    Ok(grd::app::control::control_job(&store, job, action, chrono::Utc::now()).await?)
}

/// Why a job of a deployed stack is where it is, at the wall clock's hour (as the
/// dashboard's job view); None when the backlog holds no such job.
pub async fn explain(tables: (&str, &str, &str), job: &str) -> Result<Option<Explanation>> {
    let store = job_tables(tables).await;
    Ok(grd::app::explain::explain_id(&store, job, chrono::Utc::now()).await?)
}

/// Drains or undrains a node in a deployed stack's nodes table.
pub async fn set_drained(nodes_table: &str, node: &str, drained: bool) -> Result<DrainOutcome> {
    let store = stack_store(Tables {
        nodes: Some(nodes_table.to_string()),
        ..Tables::default()
    })
    .await;
    Ok(grd::app::control::set_drained(&store, node, drained).await?)
}
