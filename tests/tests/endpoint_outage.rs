//! The local AWS endpoint goes away in the middle of a run and comes back.
//!
//! The dispatcher's DynamoDB client talks to moto through a TCP relay owned by this test.
//! Stopping the relay closes its port (new connections are refused) and cuts every open
//! connection, including requests in flight; starting it again opens the same port. moto
//! itself keeps its state, as a real endpoint would across an outage. The SQS side is left
//! alone: it plays Lambda's poller, which redelivers whatever the handler did not finish.
//!
//! What must hold: an SQS batch handled during the outage reports every message as failed
//! (so SQS keeps them), nothing is half-written, and after the endpoint is back the
//! redeliveries and the next tick dispatch every job exactly once, with reservations
//! matching the dispatch records and nothing in the dead-letter queue.

#![cfg(feature = "aws-endpoint")]
#![allow(clippy::unwrap_used)]

use chrono::{Duration, Utc};
use grd::adapters::dynamodb::DynamoStore;
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::domain::node::default_fleet;
use grd::domain::plan::strategy_by_name;
use grd::domain::time::Hour;
use grd::lambda::dispatch_jobs::{self, Invocation};
use grd::ports::{Backlog, DispatchLog, NodeStore, SignalSource};
use grd_tests::aws::{
    create_queues, create_tables, delete_successes, endpoint, failures, receive, sdk,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP relay in front of the endpoint that can be stopped and started on the same port.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut relay = Relay {
            addr,
            upstream,
            accept: None,
        };
        relay.serve(listener);
        relay
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.accept = Some(tokio::spawn(async move {
            // Owned by the accept task: aborting it drops every connection with it.
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and cuts every open connection.
    async fn stop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
            let _ = task.await;
        }
        // The port refuses connections now.
        assert!(TcpStream::connect(self.addr).await.is_err());
    }

    /// Opens the same port again.
    async fn restart(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebinding {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

fn later() -> Instant {
    Instant::now() + std::time::Duration::from_secs(120)
}

#[tokio::test]
async fn the_endpoint_going_away_mid_run_loses_and_doubles_nothing() {
    let conf = sdk().await;
    let direct = aws_sdk_dynamodb::Client::new(&conf);
    let tables = create_tables(&direct).await;
    let audit = DynamoStore::new(direct, tables.clone());
    for node in default_fleet(3) {
        audit.put_node(&node).await.unwrap();
    }
    // Prices for the fleet, written directly (the outage is the dispatcher's).
    let sources: Vec<Arc<dyn SignalSource>> = vec![
        Arc::new(SyntheticSource::new(Stream::Weather, 9, 48, Faults::NONE)),
        Arc::new(SyntheticSource::new(Stream::Price, 9, 48, Faults::NONE)),
    ];
    let fetched = grd::app::fetch_signals::fetch_signals(
        &audit,
        &sources,
        &default_fleet(3),
        Utc::now(),
        grd::app::fetch_signals::FetchLimits::default(),
        None,
    )
    .await
    .unwrap();
    assert!(
        fetched
            .sources
            .values()
            .all(|s| s.failed == 0 && s.accepted > 0),
        "{fetched:?}"
    );
    grd::app::price_nodes::price_nodes(&audit, &default_fleet(3), Utc::now(), 48)
        .await
        .unwrap();

    // The dispatcher reaches DynamoDB only through the relay.
    let upstream: SocketAddr = endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("AWS_ENDPOINT_URL is http://127.0.0.1:PORT");
    let mut relay = Relay::start(upstream).await;
    let relayed = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .endpoint_url(relay.url())
            .build(),
    );
    let store = DynamoStore::new(relayed, tables);

    let sqs = aws_sdk_sqs::Client::new(&conf);
    let (url, dlq) = create_queues(&sqs, 5).await;
    // Three hours out: too close to wait for a cheaper hour, so each starts when planned.
    let deadline = (Utc::now() + Duration::hours(3)).to_rfc3339();
    let ids: Vec<String> = (0..6).map(|i| format!("outage-{i}")).collect();
    let bodies: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(r#"{{"id":"{id}","priority":1,"compute_hours":2,"deadline":"{deadline}"}}"#)
        })
        .collect();
    grd::adapters::sqs::JobQueue::new(sqs.clone(), url.clone())
        .send(&bodies)
        .await
        .unwrap();
    let strategy = strategy_by_name("optimized").unwrap();

    // 1. The endpoint is down for a whole invocation: every message fails, nothing is written.
    relay.stop().await;
    let (event, handles) = receive(&sqs, &url).await;
    assert_eq!(event.records.len(), ids.len());
    let response = dispatch_jobs::handle(
        &store,
        strategy.as_ref(),
        48,
        Invocation::from_payload(serde_json::to_value(&event).unwrap()).unwrap(),
        Utc::now(),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(failures(&response).len(), ids.len(), "{response}");
    assert_eq!(
        delete_successes(&sqs, &url, &handles, &failures(&response)).await,
        0
    );
    assert!(audit.scan_jobs().await.unwrap().is_empty());
    assert!(audit.scan_dispatches().await.unwrap().is_empty());

    // 2. Back up; the redelivered batch is cut off mid-run, as soon as the first dispatch
    //    is written. The outage outlasts the SDK's own retries (3 attempts, a few seconds), so
    //    the rest of that run fails and is left to the next round.
    relay.restart().await;
    let (event, handles) = receive(&sqs, &url).await;
    assert_eq!(event.records.len(), ids.len());
    let payload = serde_json::to_value(&event).unwrap();
    let run = {
        let store = &store;
        let strategy = strategy.as_ref();
        async move {
            dispatch_jobs::handle(
                store,
                strategy,
                48,
                Invocation::from_payload(payload).unwrap(),
                Utc::now(),
                later(),
            )
            .await
        }
    };
    let cut = async {
        let t0 = Instant::now();
        while audit.scan_dispatches().await.unwrap().is_empty() {
            assert!(t0.elapsed().as_secs() < 60, "no dispatch was ever written");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        relay.stop().await;
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        relay.restart().await;
    };
    let (response, ()) = tokio::join!(run, cut);
    let response = response.unwrap();
    delete_successes(&sqs, &url, &handles, &failures(&response)).await;
    let cut_short = audit.scan_dispatches().await.unwrap().len();
    assert!(
        (1..ids.len()).contains(&cut_short),
        "the outage stopped the run part-way: {cut_short} of {} dispatched",
        ids.len()
    );

    // 3. What follows is ordinary: redeliveries until the queue is empty, then a tick.
    for _ in 0..5 {
        let (event, handles) = receive(&sqs, &url).await;
        if event.records.is_empty() {
            break;
        }
        let response = dispatch_jobs::handle(
            &store,
            strategy.as_ref(),
            48,
            Invocation::from_payload(serde_json::to_value(&event).unwrap()).unwrap(),
            Utc::now(),
            later(),
        )
        .await
        .unwrap();
        delete_successes(&sqs, &url, &handles, &failures(&response)).await;
    }
    dispatch_jobs::handle(
        &store,
        strategy.as_ref(),
        48,
        Invocation::Tick,
        Utc::now(),
        later(),
    )
    .await
    .unwrap();

    // Every job accepted once and dispatched once; reservations are exactly the dispatches.
    let mut jobs: Vec<String> = audit
        .scan_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job.id.to_string())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ids);
    let dispatches = audit.scan_dispatches().await.unwrap();
    let mut dispatched: Vec<String> = dispatches.iter().map(|d| d.job_id.to_string()).collect();
    dispatched.sort();
    assert_eq!(dispatched, ids, "every job dispatched exactly once");
    let mut expected: BTreeMap<(String, Hour), u32> = BTreeMap::new();
    for d in &dispatches {
        for h in 0..d.slots {
            *expected
                .entry((d.node_id.clone(), d.start.plus(h.into())))
                .or_default() += d.units;
        }
    }
    let now = Hour::containing(Utc::now());
    let reserved: BTreeMap<(String, Hour), u32> = audit
        .reservations(now.plus(-2), now.plus(48))
        .await
        .unwrap()
        .into_iter()
        .map(|(n, h, u)| ((n, h), u))
        .filter(|(_, u)| *u > 0)
        .collect();
    assert_eq!(
        reserved, expected,
        "reservations match the dispatch records"
    );
    let pending = store
        .jobs_with_status(grd::domain::dispatch::JobStatus::Pending)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(dead.messages().is_empty(), "nothing reaches the DLQ");
}
