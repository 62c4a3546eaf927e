//! dispatch-jobs: an SQS batch of job lines into the backlog (each message answered on its
//! own), then one planning round; or, on the schedule tick, a planning round alone.

use super::metrics;
use crate::app::ingest_jobs::{ingest_line, LineOutcome};
use crate::app::plan_dispatch::{plan_dispatch, PlanReport};
use crate::domain::job::MAX_JOB_LINE_BYTES;
use crate::domain::plan::Strategy;
use crate::ports::{Backlog, DispatchLog, NodeStore};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Instant;

/// What the function was invoked with.
pub enum Invocation {
    Jobs(SqsEvent),
    Tick,
}

impl Invocation {
    /// SQS batches carry `Records` from `aws:sqs`; anything else is the schedule's tick.
    pub fn from_payload(payload: Value) -> Result<Invocation, serde_json::Error> {
        let is_sqs = payload
            .get("Records")
            .and_then(|r| r.as_array())
            .is_some_and(|r| {
                r.iter()
                    .all(|m| m.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
            });
        if is_sqs {
            Ok(Invocation::Jobs(serde_json::from_value(payload)?))
        } else {
            Ok(Invocation::Tick)
        }
    }
}

/// Takes each message into the backlog. A malformed message (or one that could not be
/// stored) is reported as a batch item failure, alone: SQS redelivers it and, after its
/// receives, moves it to the dead-letter queue. A duplicate is a success with no effect.
pub async fn ingest<B: Backlog>(
    backlog: &B,
    event: &SqsEvent,
    now: DateTime<Utc>,
    cutoff: Instant,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    for (i, msg) in event.records.iter().enumerate() {
        // An empty id would fail the whole batch; a message without one cannot be reported.
        let Some(id) = msg.message_id.clone().filter(|id| !id.is_empty()) else {
            tracing::error!(index = i, "SQS message without a message id");
            continue;
        };
        let mut fail = |why: &str| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.clone();
            response.batch_item_failures.push(f);
            tracing::warn!(message_id = %id, reason = %why, "job message not taken");
        };
        if Instant::now() >= cutoff {
            fail("invocation near its deadline: left for redelivery");
            continue;
        }
        let body = msg.body.as_deref().unwrap_or("");
        if body.len() > MAX_JOB_LINE_BYTES {
            rejected += 1;
            fail(&format!(
                "body is {} bytes, over the {MAX_JOB_LINE_BYTES}-byte limit",
                body.len()
            ));
            continue;
        }
        match ingest_line(backlog, body, now).await {
            Ok(LineOutcome::Accepted(job)) => {
                accepted += 1;
                tracing::info!(message_id = %id, job = %job.id, "job accepted");
            }
            Ok(LineOutcome::Duplicate(job)) => {
                duplicates += 1;
                tracing::info!(message_id = %id, job = %job.id, "duplicate delivery: no effect");
            }
            Ok(LineOutcome::Rejected(e)) => {
                rejected += 1;
                fail(&e.to_string());
            }
            Err(e) => fail(&format!("backlog unavailable: {e}")),
        }
    }
    metrics::emit(&[
        ("JobsAccepted", accepted as f64),
        ("JobsDuplicate", duplicates as f64),
        ("JobsRejected", rejected as f64),
    ]);
    response
}

/// One planning round, with its metrics.
pub async fn plan<S: Backlog + DispatchLog + NodeStore>(
    store: &S,
    strategy: &dyn Strategy,
    now: DateTime<Utc>,
    horizon: u32,
) -> Result<PlanReport, crate::ports::StoreError> {
    let report = plan_dispatch(store, strategy, now, horizon).await?;
    // Unit-hours reserved (whole slots); adding 0.0 turns an empty sum's -0.0 into 0.
    let unit_hours = report
        .committed
        .iter()
        .map(|d| f64::from(d.units) * f64::from(d.slots))
        .sum::<f64>()
        + 0.0;
    let cost = report
        .committed
        .iter()
        .map(|d| d.planned_cost_usd)
        .sum::<f64>()
        + 0.0;
    tracing::info!(
        dispatched = report.committed.len(),
        deferred = report.deferred,
        waiting = report.waiting,
        conflicts = report.conflicts,
        "planning round done"
    );
    metrics::emit(&[
        ("JobsDispatched", report.committed.len() as f64),
        ("ReservedUnitHours", unit_hours),
        ("DispatchedCostUsd", cost),
        ("JobsExpired", report.expired.len() as f64),
        ("PlanConflicts", report.conflicts as f64),
    ]);
    Ok(report)
}

/// The whole invocation: ingest (for an SQS batch), then plan. A planning failure after
/// the jobs are safely in the backlog does not fail their messages: the next round plans them.
pub async fn handle<S: Backlog + DispatchLog + NodeStore>(
    store: &S,
    strategy: &dyn Strategy,
    horizon: u32,
    invocation: Invocation,
    now: DateTime<Utc>,
    cutoff: Instant,
) -> Result<Value, crate::ports::StoreError> {
    match invocation {
        Invocation::Jobs(event) => {
            let response = ingest(store, &event, now, cutoff).await;
            if Instant::now() < cutoff {
                if let Err(e) = plan(store, strategy, now, horizon).await {
                    tracing::error!(error = %e, "planning failed; the next round retries");
                }
            }
            Ok(serde_json::to_value(response).unwrap_or_default())
        }
        Invocation::Tick => {
            let report = plan(store, strategy, now, horizon).await?;
            Ok(serde_json::json!({
                "dispatched": report.committed.len(),
                "completed": report.completed,
                "deferred": report.deferred,
                "waiting": report.waiting,
                "expired": report.expired.len(),
                "rejected": report.rejected.len(),
                "conflicts": report.conflicts,
            }))
        }
    }
}
