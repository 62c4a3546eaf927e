//! The Lambda handlers fed real event JSON (the sample events in infra/events), on the
//! embedded store: the same use cases, so the same answers as in AWS.

#![allow(clippy::unwrap_used)]

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use grd::adapters::sqlite::SqliteStore;
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::domain::dispatch::{ControlError, ControlOutcome, JobAction, JobStatus};
use grd::domain::node::{default_fleet, Node};
use grd::domain::price::{NodePrice, NodeSignals, PriceOverride};
use grd::domain::signal::{Forecast, Observation};
use grd::domain::time::Hour;
use grd::lambda::dispatch_jobs::{self, Invocation};
use grd::lambda::{fetch, price_nodes};
use grd::ports::{
    Backlog, ControlStore, NodeState, NodeStore, RawArchive, RawPayload, SignalSource, SignalStore,
    StoreError, Stored,
};
use grd_tests::aws::failures;
use grd_tests::{check_invariants, start};
use lambda_runtime::{Context, LambdaEvent};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const SQS_JOBS: &str = include_str!("../../infra/events/sqs-jobs.json");
const STREAM: &str = include_str!("../../infra/events/signals-stream.json");
const TICK: &str = include_str!("../../infra/events/schedule-tick.json");

/// A Lambda context with `secs` seconds left (the default one has none).
fn context(secs: u64) -> Context {
    let mut ctx = Context::default();
    ctx.deadline = (SystemTime::now() + std::time::Duration::from_secs(secs))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ctx
}

fn event<T: serde::de::DeserializeOwned>(json: &str, secs: u64) -> LambdaEvent<T> {
    LambdaEvent::new(serde_json::from_str(json).unwrap(), context(secs))
}

async fn store_with_fleet() -> SqliteStore {
    let store = SqliteStore::in_memory().unwrap();
    for node in default_fleet(6) {
        store.put_node(&node).await.unwrap();
    }
    store
}

#[tokio::test]
async fn an_sqs_batch_with_one_malformed_job_fails_that_message_alone() {
    let store = store_with_fleet().await;
    let strategy = grd::domain::plan::strategy_by_name("optimized").unwrap();
    let ev: LambdaEvent<serde_json::Value> = event(SQS_JOBS, 30);
    let cutoff = grd::lambda::cutoff(&ev.context);
    let invocation = Invocation::from_payload(ev.payload.clone()).unwrap();
    let response =
        dispatch_jobs::handle(&store, strategy.as_ref(), 48, invocation, start(), cutoff)
            .await
            .unwrap();
    // Exactly the documented shape, naming only the malformed message.
    assert_eq!(
        failures(&response),
        vec!["d4c3b2a1-0f9e-48d7-a6b5-4a5b6c7d8e94"]
    );
    assert_eq!(response.as_object().unwrap().len(), 1);
    let jobs = store.all_jobs().await.unwrap();
    assert_eq!(jobs.len(), 3);

    // The same batch redelivered: no new job, the same single failure.
    let again = dispatch_jobs::handle(
        &store,
        strategy.as_ref(),
        48,
        Invocation::from_payload(ev.payload).unwrap(),
        start(),
        cutoff,
    )
    .await
    .unwrap();
    assert_eq!(
        failures(&again),
        vec!["d4c3b2a1-0f9e-48d7-a6b5-4a5b6c7d8e94"]
    );
    assert_eq!(store.all_jobs().await.unwrap().len(), 3);
    check_invariants(&store).await;
}

/// An oversized message fails alone, with what was wrong logged; the rest is accepted.
#[tokio::test]
async fn an_oversized_message_fails_alone() {
    let store = store_with_fleet().await;
    let strategy = grd::domain::plan::strategy_by_name("optimized").unwrap();
    let good = r#"{"id":"ok-1","priority":1,"compute_hours":2,"deadline":"2026-07-03T00:00:00Z"}"#;
    let huge = format!(
        r#"{{"id":"big-1","priority":1,"compute_hours":2,"deadline":"2026-07-03T00:00:00Z","pad":"{}"}}"#,
        "x".repeat(grd::domain::job::MAX_JOB_LINE_BYTES)
    );
    let payload = serde_json::json!({"Records": [
        {"messageId": "m-good", "body": good, "eventSource": "aws:sqs"},
        {"messageId": "m-huge", "body": huge, "eventSource": "aws:sqs"},
    ]});
    let response = dispatch_jobs::handle(
        &store,
        strategy.as_ref(),
        48,
        Invocation::from_payload(payload).unwrap(),
        start(),
        Instant::now() + std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(failures(&response), vec!["m-huge"]);
    let ids: Vec<String> = store
        .all_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job.id.to_string())
        .collect();
    assert_eq!(ids, vec!["ok-1"]);
    check_invariants(&store).await;
}

#[tokio::test]
async fn near_its_deadline_the_handler_takes_no_new_message() {
    let store = store_with_fleet().await;
    let raw: SqsEvent = serde_json::from_str(SQS_JOBS).unwrap();
    let response = dispatch_jobs::ingest(&store, &raw, start(), Instant::now()).await;
    assert_eq!(
        response.batch_item_failures.len(),
        4,
        "every message left for redelivery"
    );
    assert!(store.all_jobs().await.unwrap().is_empty());
    // With time left (a 30 s invocation keeps a 5 s margin) the same batch goes in.
    let cutoff = grd::lambda::cutoff(&context(30));
    let response = dispatch_jobs::ingest(&store, &raw, start(), cutoff).await;
    assert_eq!(response.batch_item_failures.len(), 1);
}

#[tokio::test]
async fn jobs_from_sqs_are_dispatched_and_the_tick_dispatches_deferred_ones() {
    // Signals for the fleet first, through the local pipeline on the same store.
    let store = Arc::new(store_with_fleet().await);
    let setup = grd::local::LocalSetup::default();
    let pipeline = grd::local::open_pipeline(store.clone(), &setup, start())
        .await
        .unwrap();
    pipeline.step(&[]).await.unwrap();
    let now = start();
    let urgent = (now + Duration::hours(3)).to_rfc3339();
    let relaxed = (now + Duration::hours(30)).to_rfc3339();
    let mut batch: serde_json::Value = serde_json::from_str(SQS_JOBS).unwrap();
    let records = batch["Records"].as_array_mut().unwrap();
    records[0]["body"] =
        format!(r#"{{"id":"now-1","priority":0,"compute_hours":2,"deadline":"{urgent}"}}"#).into();
    records[1]["body"] = format!(
        r#"{{"id":"now-2","priority":1,"compute_hours":4,"units":4,"deadline":"{urgent}"}}"#
    )
    .into();
    records[2]["body"] = format!(
        r#"{{"id":"later","priority":5,"compute_hours":6,"units":2,"deadline":"{relaxed}"}}"#
    )
    .into();
    let strategy = grd::domain::plan::strategy_by_name("optimized").unwrap();
    let cutoff = grd::lambda::cutoff(&context(30));
    let response = dispatch_jobs::handle(
        store.as_ref(),
        strategy.as_ref(),
        48,
        Invocation::from_payload(batch).unwrap(),
        now,
        cutoff,
    )
    .await
    .unwrap();
    assert_eq!(failures(&response).len(), 1);
    let dispatched: Vec<String> = store
        .jobs_with_status(JobStatus::Dispatched)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job.id.to_string())
        .collect();
    assert!(dispatched.contains(&"now-1".to_string()) && dispatched.contains(&"now-2".to_string()));

    // Hour by hour: signals and prices move on (the local pipeline), and the schedule tick
    // plans; the deferred job is dispatched before its deadline.
    let tick = || Invocation::from_payload(serde_json::from_str(TICK).unwrap()).unwrap();
    assert!(matches!(tick(), Invocation::Tick));
    for h in 1..30 {
        let at = Hour::containing(now).plus(h).start();
        grd::app::fetch_signals::fetch_signals(
            store.as_ref(),
            &pipeline.sources,
            &pipeline.nodes().await.unwrap(),
            at,
            Default::default(),
            None,
        )
        .await
        .unwrap();
        grd::app::price_nodes::price_nodes(
            store.as_ref(),
            &pipeline.nodes().await.unwrap(),
            at,
            48,
        )
        .await
        .unwrap();
        let report =
            dispatch_jobs::handle(store.as_ref(), strategy.as_ref(), 48, tick(), at, cutoff)
                .await
                .unwrap();
        assert!(report["dispatched"].is_number());
    }
    let later = store
        .all_jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.job.id.as_str() == "later")
        .unwrap();
    assert!(
        matches!(later.status, JobStatus::Dispatched | JobStatus::Completed),
        "{later:?}"
    );
    check_invariants(&store).await;
}

/// An archive that keeps keys in memory.
#[derive(Default)]
struct MemArchive(Mutex<Vec<String>>);

impl RawArchive for MemArchive {
    fn put<'a>(&'a self, key: &'a str, _: &'a RawPayload) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.lock().unwrap().push(key.to_string());
        async { Ok(()) }.boxed()
    }
}

#[tokio::test]
async fn a_scheduled_fetch_archives_each_raw_payload_and_stores_signals() {
    let store = store_with_fleet().await;
    let archive = MemArchive::default();
    let sources: Vec<Arc<dyn SignalSource>> = vec![Arc::new(SyntheticSource::new(
        Stream::Weather,
        3,
        24,
        Faults::NONE,
    ))];
    let report = fetch::handle(
        &store,
        &archive,
        &sources,
        start(),
        grd::lambda::cutoff(&context(30)),
    )
    .await
    .unwrap();
    let keys = archive.0.lock().unwrap().clone();
    assert_eq!(keys.len(), 6);
    assert!(
        keys.iter()
            .any(|k| k == "raw/synthetic-weather/ash1/2026-07-01/000000.json"),
        "{keys:?}"
    );
    assert_eq!(report.sources["synthetic-weather"].accepted, 6);
    let s = store
        .node_signals(
            "fra1",
            Hour::containing(start()),
            Hour::containing(start()).plus(25),
        )
        .await
        .unwrap();
    assert!(s.weather.is_some() && s.weather_forecast.len() == 24);
}

/// A store that fails to save prices for one node.
struct FailingPrices {
    inner: SqliteStore,
    broken: &'static str,
}

impl SignalStore for FailingPrices {
    async fn put_observation(&self, obs: &Observation) -> Result<Stored, StoreError> {
        self.inner.put_observation(obs).await
    }
    async fn put_forecast(&self, fc: &Forecast) -> Result<usize, StoreError> {
        self.inner.put_forecast(fc).await
    }
    async fn node_signals(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<NodeSignals, StoreError> {
        self.inner.node_signals(node_id, from, to).await
    }
}

impl NodeStore for FailingPrices {
    async fn nodes(&self) -> Result<Vec<NodeState>, StoreError> {
        self.inner.nodes().await
    }
    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        self.inner.put_node(node).await
    }
    async fn put_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
        prices: &[NodePrice],
    ) -> Result<(), StoreError> {
        if node_id == self.broken {
            return Err(StoreError::Backend("throttled".into()));
        }
        self.inner.put_prices(node_id, from, to, prices).await
    }
    async fn prices(&self, from: Hour, to: Hour) -> Result<Vec<NodePrice>, StoreError> {
        self.inner.prices(from, to).await
    }
}

impl ControlStore for FailingPrices {
    async fn control_job(
        &self,
        id: &str,
        action: JobAction,
        now: Hour,
        at: DateTime<Utc>,
    ) -> Result<Result<ControlOutcome, ControlError>, StoreError> {
        ControlStore::control_job(&self.inner, id, action, now, at).await
    }
    async fn set_drained(&self, node_id: &str, drained: bool) -> Result<bool, StoreError> {
        ControlStore::set_drained(&self.inner, node_id, drained).await
    }
    async fn add_price_override(&self, o: &PriceOverride) -> Result<i64, StoreError> {
        ControlStore::add_price_override(&self.inner, o).await
    }
    async fn remove_price_override(&self, id: i64) -> Result<bool, StoreError> {
        ControlStore::remove_price_override(&self.inner, id).await
    }
    async fn price_overrides(&self) -> Result<Vec<PriceOverride>, StoreError> {
        ControlStore::price_overrides(&self.inner).await
    }
    async fn node_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<NodePrice>, StoreError> {
        ControlStore::node_prices(&self.inner, node_id, from, to).await
    }
}

async fn with_signals(store: &SqliteStore, at: DateTime<Utc>) {
    let sources: Vec<Arc<dyn SignalSource>> = vec![
        Arc::new(SyntheticSource::new(Stream::Weather, 3, 48, Faults::NONE)),
        Arc::new(SyntheticSource::new(Stream::Price, 3, 48, Faults::NONE)),
    ];
    let nodes: Vec<Node> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.node)
        .collect();
    grd::app::fetch_signals::fetch_signals(store, &sources, &nodes, at, Default::default(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn stream_records_reprice_their_nodes() {
    let store = store_with_fleet().await;
    with_signals(&store, start()).await;
    let ev: LambdaEvent<StreamEvent> = event(STREAM, 30);
    let cutoff = grd::lambda::cutoff(&ev.context);
    let response = price_nodes::handle(&store, ev.payload, 48, start(), cutoff).await;
    assert!(response.batch_item_failures.is_empty());
    let h = Hour::containing(start());
    let priced: Vec<String> = store
        .prices(h, h.plus(1))
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.node_id)
        .collect();
    assert_eq!(
        priced,
        vec!["ash1", "fra1"],
        "only the nodes the records name"
    );
    assert_eq!(store.prices(h, h.plus(48)).await.unwrap().len(), 96);
}

#[tokio::test]
async fn a_failed_repricing_reports_the_first_failed_sequence_number_and_stops() {
    let inner = store_with_fleet().await;
    with_signals(&inner, start()).await;
    let store = FailingPrices {
        inner,
        broken: "fra1",
    };
    let ev: LambdaEvent<StreamEvent> = event(STREAM, 30);
    let response = price_nodes::handle(
        &store,
        ev.payload,
        48,
        start(),
        grd::lambda::cutoff(&ev.context),
    )
    .await;
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    // fra1's first record is the third; ash1 (records 1-2) was done.
    assert_eq!(ids, vec!["4421584500000000017450439093"]);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json["batchItemFailures"][0]["itemIdentifier"],
        "4421584500000000017450439093"
    );
}
