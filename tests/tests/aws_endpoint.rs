//! The AWS adapters and handlers against a local AWS endpoint (moto), driven as Lambda
//! would drive them: receive from the queue, build the event, call, delete the successes.
//! One test at a time per table set: the emulator is not a judge of concurrency.

#![cfg(feature = "aws-endpoint")]
#![allow(clippy::unwrap_used)]

use chrono::{Duration, Utc};
use grd::adapters::dynamodb::DynamoStore;
use grd::adapters::s3::S3Archive;
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::domain::dispatch::{Dispatch, JobStatus};
use grd::domain::job::Job;
use grd::domain::node::default_fleet;
use grd::domain::plan::strategy_by_name;
use grd::domain::time::Hour;
use grd::lambda::dispatch_jobs::{self, Invocation};
use grd::lambda::{fetch, price_nodes};
use grd::ports::{Backlog, Committed, DispatchLog, NodeStore, SignalSource};
use grd_tests::aws::{
    create_queues, create_tables, delete_successes, failures, receive, sdk, unique,
};
use std::sync::Arc;
use std::time::Instant;

fn later() -> Instant {
    Instant::now() + std::time::Duration::from_secs(60)
}

fn sources(seed: u64) -> Vec<Arc<dyn SignalSource>> {
    vec![
        Arc::new(SyntheticSource::new(
            Stream::Weather,
            seed,
            48,
            Faults::NONE,
        )),
        Arc::new(SyntheticSource::new(Stream::Price, seed, 48, Faults::NONE)),
    ]
}

/// A store with the fleet, its signals and its prices for the current hour on.
async fn priced_store(nodes: usize) -> (DynamoStore, aws_config::SdkConfig, String) {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let tables = create_tables(&ddb).await;
    let store = DynamoStore::new(ddb, tables);
    for node in default_fleet(nodes) {
        store.put_node(&node).await.unwrap();
    }
    let s3 = grd::aws::s3_client(&conf);
    let bucket = unique("raw");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let archive = S3Archive::new(s3, bucket.clone());
    fetch::handle(&store, &archive, &sources(5), Utc::now(), later())
        .await
        .unwrap();
    let fleet: Vec<_> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.node)
        .collect();
    grd::app::price_nodes::price_nodes(&store, &fleet, Utc::now(), 48)
        .await
        .unwrap();
    (store, conf, bucket)
}

#[tokio::test]
async fn an_sqs_batch_with_a_malformed_job_dispatches_the_rest_and_the_bad_one_reaches_the_dlq() {
    let (store, conf, _) = priced_store(3).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let (url, dlq) = create_queues(&sqs, 5).await;
    // Three hours out: too close to wait for a cheaper hour, so all start now.
    let deadline = (Utc::now() + Duration::hours(3)).to_rfc3339();
    let bodies = vec![
        format!(r#"{{"id":"m-1","priority":0,"compute_hours":2,"deadline":"{deadline}"}}"#),
        format!(
            r#"{{"id":"m-2","priority":1,"compute_hours":3,"units":3,"deadline":"{deadline}"}}"#
        ),
        r#"{"id":"m-bad","priority":12,"compute_hours":2,"deadline":"2030-01-01T00:00:00Z"}"#
            .to_string(),
        format!(
            r#"{{"id":"m-3","priority":2,"compute_hours":1,"units":2,"deadline":"{deadline}"}}"#
        ),
    ];
    let sent = grd::adapters::sqs::JobQueue::new(sqs.clone(), url.clone())
        .send(&bodies)
        .await
        .unwrap();
    assert_eq!(sent.sent, 4);

    let strategy = strategy_by_name("optimized").unwrap();
    let (event, handles) = receive(&sqs, &url).await;
    assert_eq!(event.records.len(), 4);
    let bad_id = event
        .records
        .iter()
        .find(|m| m.body.as_deref().unwrap().contains("m-bad"))
        .unwrap()
        .message_id
        .clone()
        .unwrap();
    let payload = serde_json::to_value(&event).unwrap();
    let response = dispatch_jobs::handle(
        &store,
        strategy.as_ref(),
        48,
        Invocation::from_payload(payload.clone()).unwrap(),
        Utc::now(),
        later(),
    )
    .await
    .unwrap();
    let failed = failures(&response);
    assert_eq!(failed, vec![bad_id.clone()]);
    delete_successes(&sqs, &url, &handles, &failed).await;
    let records = store.scan_dispatches().await.unwrap();
    let ids: Vec<String> = records.iter().map(|d| d.job_id.to_string()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");

    // The same batch again (a redelivery): no new record, no new reservation.
    let reserved_before = store
        .reservations(
            Hour::containing(Utc::now()),
            Hour::containing(Utc::now()).plus(48),
        )
        .await
        .unwrap();
    dispatch_jobs::handle(
        &store,
        strategy.as_ref(),
        48,
        Invocation::from_payload(payload).unwrap(),
        Utc::now(),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(store.scan_dispatches().await.unwrap().len(), 3);
    let mut after = store
        .reservations(
            Hour::containing(Utc::now()),
            Hour::containing(Utc::now()).plus(48),
        )
        .await
        .unwrap();
    let mut before = reserved_before;
    after.sort();
    before.sort();
    assert_eq!(after, before);

    // The malformed message keeps failing; after its fifth receive SQS moves it to the DLQ.
    for _ in 0..6 {
        let (event, handles) = receive(&sqs, &url).await;
        if event.records.is_empty() {
            continue;
        }
        let payload = serde_json::to_value(&event).unwrap();
        let response = dispatch_jobs::handle(
            &store,
            strategy.as_ref(),
            48,
            Invocation::from_payload(payload).unwrap(),
            Utc::now(),
            later(),
        )
        .await
        .unwrap();
        let failed = failures(&response);
        assert_eq!(failed, vec![bad_id.clone()]);
        delete_successes(&sqs, &url, &handles, &failed).await;
    }
    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let dead: Vec<_> = dead.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("m-bad"));
}

#[tokio::test]
async fn a_fetch_archives_raw_payloads_in_s3_and_writes_signal_items() {
    let (store, conf, bucket) = priced_store(4).await;
    let s3 = grd::aws::s3_client(&conf);
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("raw/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 8, "one per node and source: {keys:?}");
    assert!(keys
        .iter()
        .any(|k| k.starts_with("raw/synthetic-prices/ash1/")));
    let h = Hour::containing(Utc::now());
    let signals = grd::ports::SignalStore::node_signals(&store, "ash1", h, h.plus(49))
        .await
        .unwrap();
    assert!(signals.price.is_some() && signals.weather.is_some());
    assert_eq!(signals.price_forecast.len(), 48);
    // Fetching the same hour again changes nothing: every record is a duplicate.
    let archive = S3Archive::new(s3, bucket);
    let again = fetch::handle(&store, &archive, &sources(5), Utc::now(), later())
        .await
        .unwrap();
    let rep = &again.sources["synthetic-prices"];
    assert_eq!(
        (rep.accepted, rep.reasons.get("duplicate").copied()),
        (0, Some(4))
    );
    assert_eq!(store.prices(h, h.plus(1)).await.unwrap().len(), 4);
}

#[tokio::test]
async fn stream_records_become_node_prices() {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let tables = create_tables(&ddb).await;
    let signals_table = tables.signals.clone().unwrap();
    let store = DynamoStore::new(ddb.clone(), tables);
    for node in default_fleet(2) {
        store.put_node(&node).await.unwrap();
    }
    let s3 = grd::aws::s3_client(&conf);
    let bucket = unique("raw");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    fetch::handle(
        &store,
        &S3Archive::new(s3, bucket),
        &sources(9),
        Utc::now(),
        later(),
    )
    .await
    .unwrap();
    let h = Hour::containing(Utc::now());
    assert!(
        store.prices(h, h.plus(48)).await.unwrap().is_empty(),
        "nothing priced before the stream is read"
    );

    // Read the table's stream as Lambda's poller would, and hand the records over.
    let arn = ddb
        .describe_table()
        .table_name(&signals_table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    let streams = aws_sdk_dynamodbstreams::Client::new(&conf);
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    for shard in desc.stream_description().unwrap().shards() {
        let it = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let out = streams
            .get_records()
            .shard_iterator(it.shard_iterator().unwrap())
            .send()
            .await
            .unwrap();
        for r in out.records() {
            let d = r.dynamodb().unwrap();
            let key = |k: &str| d.keys().unwrap().get(k).unwrap().as_s().unwrap().clone();
            records.push(serde_json::json!({
                "eventID": r.event_id().unwrap(),
                "eventName": r.event_name().unwrap().as_str(),
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {"node_id": {"S": key("node_id")}, "sk": {"S": key("sk")}},
                    "SequenceNumber": d.sequence_number().unwrap(),
                    "SizeBytes": d.size_bytes().unwrap_or(1),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }));
        }
    }
    assert_eq!(
        records.len(),
        8,
        "2 nodes x (observation + forecast) x 2 kinds"
    );
    let event = serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    let response = price_nodes::handle(&store, event, 48, Utc::now(), later()).await;
    assert!(response.batch_item_failures.is_empty());
    let prices = store.prices(h, h.plus(48)).await.unwrap();
    assert_eq!(prices.len(), 96);
    assert!(prices.iter().all(|p| p.usd_per_chr > 0.0 && !p.stale));
}

#[tokio::test]
async fn reservation_conditions_reject_a_stale_or_repeated_commit() {
    let (store, _, _) = priced_store(1).await;
    let node = default_fleet(1).remove(0);
    let h = Hour::containing(Utc::now());
    let capacity = store.prices(h, h.plus(1)).await.unwrap()[0].capacity_units;
    let big = capacity / 2 + 1;
    let job = |id: &str| {
        Job::parse_line(&format!(r#"{{"id":"{id}","priority":0,"compute_hours":{big},"units":{big},"deadline":"2099-01-01T00:00:00Z"}}"#)).unwrap()
    };
    let dispatch = |id: &str| Dispatch {
        job_id: job(id).id,
        node_id: node.id.clone(),
        start: h,
        slots: 1,
        units: big,
        planned_cost_usd: 1.0,
        strategy: "optimized".into(),
        decided_at: Utc::now(),
        runner_up: None,
    };
    for id in ["a", "b"] {
        store.add(&job(id), Utc::now()).await.unwrap();
    }
    assert_eq!(
        store.commit(&dispatch("a")).await.unwrap(),
        Committed::Committed
    );
    assert_eq!(
        store.commit(&dispatch("a")).await.unwrap(),
        Committed::NotPending(JobStatus::Dispatched)
    );
    assert_eq!(
        store.commit(&dispatch("b")).await.unwrap(),
        Committed::NoCapacity { hour: h },
        "more than half twice"
    );
    let reserved = store.reservations(h, h.plus(1)).await.unwrap();
    assert_eq!(reserved, vec![(node.id.clone(), h, big)]);
    let b = store.jobs_with_status(JobStatus::Pending).await.unwrap();
    assert_eq!(b.len(), 1, "b stays pending, nothing half-written");
    assert_eq!(store.scan_dispatches().await.unwrap().len(), 1);
}
