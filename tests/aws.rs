//! Helpers for tests against a local AWS endpoint: tables, queues and a bucket shaped as in
//! infra/template.yaml, each test with its own names.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use grd::adapters::dynamodb::Tables;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The endpoint the test script started, or a clear failure.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run these tests through tests/run.sh, which starts moto"
        )
    })
}

pub async fn sdk() -> aws_config::SdkConfig {
    endpoint();
    grd::aws::sdk_config().await
}

/// A fresh name for this test run.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn key(name: &str, kt: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kt)
        .build()
        .expect("key")
}

fn attr(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .expect("attr")
}

/// The four tables of the template, created under fresh names.
pub async fn create_tables(ddb: &aws_sdk_dynamodb::Client) -> Tables {
    let signals = unique("signals");
    ddb.create_table()
        .table_name(&signals)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("node_id", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("node_id", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::S))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream"),
        )
        .send()
        .await
        .expect("create signals table");
    let nodes = unique("nodes");
    ddb.create_table()
        .table_name(&nodes)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::S))
        .send()
        .await
        .expect("create nodes table");
    let backlog = unique("backlog");
    ddb.create_table()
        .table_name(&backlog)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("job_id", KeyType::Hash))
        .attribute_definitions(attr("job_id", ScalarAttributeType::S))
        .attribute_definitions(attr("status", ScalarAttributeType::S))
        .attribute_definitions(attr("submitted_at", ScalarAttributeType::N))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("status-index")
                .key_schema(key("status", KeyType::Hash))
                .key_schema(key("submitted_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .send()
        .await
        .expect("create backlog table");
    let dispatches = unique("dispatches");
    ddb.create_table()
        .table_name(&dispatches)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("job_id", KeyType::Hash))
        .attribute_definitions(attr("job_id", ScalarAttributeType::S))
        .send()
        .await
        .expect("create dispatches table");
    Tables {
        signals: Some(signals),
        nodes: Some(nodes),
        backlog: Some(backlog),
        dispatches: Some(dispatches),
    }
}

/// A jobs queue with a dead-letter queue after `max_receives`, as in the template.
pub async fn create_queues(sqs: &aws_sdk_sqs::Client, max_receives: u32) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = sqs
        .create_queue()
        .queue_name(unique("jobs-dlq"))
        .send()
        .await
        .expect("dlq");
    let dlq_url = dlq.queue_url().expect("dlq url").to_string();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dlq attrs")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("dlq arn");
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#);
    let q = sqs
        .create_queue()
        .queue_name(unique("jobs"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("queue");
    (q.queue_url().expect("url").to_string(), dlq_url)
}

/// Receives what is visible (up to 10 messages, at once visible again) and shapes it as
/// Lambda's SQS event; also returns each message's receipt handle by message id.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> (
    aws_lambda_events::event::sqs::SqsEvent,
    std::collections::HashMap<String, String>,
) {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(0)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .send()
        .await
        .expect("receive");
    let mut event = SqsEvent::default();
    let mut handles = std::collections::HashMap::new();
    for m in out.messages() {
        let mut msg = SqsMessage::default();
        msg.message_id = m.message_id().map(str::to_string);
        msg.receipt_handle = m.receipt_handle().map(str::to_string);
        msg.body = m.body().map(str::to_string);
        msg.event_source = Some("aws:sqs".into());
        handles.insert(
            m.message_id().expect("message id").to_string(),
            m.receipt_handle().expect("receipt handle").to_string(),
        );
        event.records.push(msg);
    }
    (event, handles)
}

/// The message ids a handler's SQS response reports as failed.
pub fn failures(response: &serde_json::Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_string()
        })
        .collect()
}

/// Deletes the messages the handler did not report as failed, as Lambda's poller does;
/// returns how many.
pub async fn delete_successes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    handles: &std::collections::HashMap<String, String>,
    failed: &[String],
) -> usize {
    use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
    let entries: Vec<_> = handles
        .iter()
        .filter(|(id, _)| !failed.contains(id))
        .enumerate()
        .map(|(i, (_, h))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h)
                .build()
                .expect("entry")
        })
        .collect();
    let n = entries.len();
    if n > 0 {
        sqs.delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("delete");
    }
    n
}
