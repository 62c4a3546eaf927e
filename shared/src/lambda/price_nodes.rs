//! price-nodes: the signals table's stream in, the changed nodes repriced.

use super::metrics;
use crate::app::price_nodes::price_nodes_with_overrides;
use crate::ports::{ControlStore, NodeStore, SignalStore};
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::time::Instant;

/// The node a signals-table record is about (its partition key).
fn node_of(record: &aws_lambda_events::event::dynamodb::EventRecord) -> Option<String> {
    match record.change.keys.get("node_id") {
        Some(serde_dynamo::AttributeValue::S(id)) => Some(id.clone()),
        _ => None,
    }
}

/// Reprices each node named by the batch once, in record order. On the first failure it
/// stops and reports that record's sequence number: Lambda retries from there, and the
/// records before it are done.
pub async fn handle<S: SignalStore + NodeStore + ControlStore>(
    store: &S,
    event: Event,
    horizon: u32,
    now: DateTime<Utc>,
    cutoff: Instant,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    let fail = |seq: Option<String>| {
        let mut f = DynamoDbBatchItemFailure::default();
        f.item_identifier = seq;
        f
    };
    // Operators' what-if prices stay applied on every repricing.
    let read = async {
        Ok::<_, crate::ports::StoreError>((store.nodes().await?, store.price_overrides().await?))
    };
    let (nodes, overrides) = match read.await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot read nodes; retrying the batch");
            if let Some(first) = event.records.first() {
                response
                    .batch_item_failures
                    .push(fail(first.change.sequence_number.clone()));
            }
            return response;
        }
    };
    let mut done: HashSet<String> = HashSet::new();
    let mut stale = 0usize;
    for record in &event.records {
        let Some(node_id) = node_of(record) else {
            tracing::warn!(event_id = %record.event_id, "record without a node_id key; skipped");
            continue;
        };
        if done.contains(&node_id) {
            continue;
        }
        if Instant::now() >= cutoff {
            tracing::warn!(node = %node_id, "near the deadline: leaving the rest of the batch for a retry");
            response
                .batch_item_failures
                .push(fail(record.change.sequence_number.clone()));
            break;
        }
        let Some(state) = nodes.iter().find(|s| s.node.id == node_id) else {
            tracing::warn!(node = %node_id, "signal for an unknown node; skipped");
            done.insert(node_id);
            continue;
        };
        let priced = price_nodes_with_overrides(
            store,
            std::slice::from_ref(&state.node),
            now,
            horizon,
            &overrides,
        );
        match priced.await {
            Ok(current) => {
                stale += current.iter().filter(|p| p.stale).count();
                done.insert(node_id);
            }
            Err(e) => {
                tracing::error!(node = %node_id, error = %e, "repricing failed");
                response
                    .batch_item_failures
                    .push(fail(record.change.sequence_number.clone()));
                break;
            }
        }
    }
    metrics::emit(&[
        ("NodesRepriced", done.len() as f64),
        ("StaleNodes", stale as f64),
    ]);
    response
}
