//! The embedded pipeline end to end: signals in, nodes priced, jobs dispatched and settled.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use grd::adapters::sqlite::SqliteStore;
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::app::fetch_signals::{fetch_signals, FetchLimits};
use grd::app::summary::summary;
use grd::domain::dispatch::JobStatus;
use grd::domain::node::{default_fleet, Node};
use grd::domain::signal::SignalKind;
use grd::domain::time::Hour;
use grd::local::{open_pipeline, workload, LocalSetup, Pipeline};
use grd::ports::{Backlog, Fetched, NodeStore, SignalSource, SourceError};
use grd_tests::{check_invariants, start};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn pipeline(strategy: &str, faults: Faults, nodes: usize) -> Pipeline {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    for node in default_fleet(nodes) {
        store.put_node(&node).await.unwrap();
    }
    let setup = LocalSetup {
        seed: 11,
        faults,
        strategy: strategy.into(),
        ..LocalSetup::default()
    };
    open_pipeline(store, &setup, start()).await.unwrap()
}

/// Runs until every job is settled; returns the hours it took.
async fn run_all(p: &Pipeline, arrivals: &[(Hour, String)], max_hours: i64) -> i64 {
    let first = Hour::containing(start());
    for h in 0..max_hours {
        let hour = first.plus(h);
        let lines: Vec<&str> = arrivals
            .iter()
            .filter(|(a, _)| *a == hour)
            .map(|(_, l)| l.as_str())
            .collect();
        p.step(&lines).await.unwrap();
        let open = p
            .store
            .jobs_with_status(JobStatus::Pending)
            .await
            .unwrap()
            .len()
            + p.store
                .jobs_with_status(JobStatus::Dispatched)
                .await
                .unwrap()
                .len();
        if hour >= arrivals.last().unwrap().0 && open == 0 {
            return h + 1;
        }
    }
    max_hours
}

#[tokio::test]
async fn every_job_is_settled_and_optimized_costs_less_than_the_2019_rule() {
    let regions: Vec<String> = default_fleet(6).into_iter().map(|n| n.region).collect();
    let arrivals = workload::generate(11, 200, 24, Hour::containing(start()), &regions);
    let opt = pipeline("optimized", Faults::typical(), 6).await;
    let base = pipeline("baseline-2019", Faults::typical(), 6).await;
    let hours_opt = run_all(&opt, &arrivals, 24 * 7).await;
    run_all(&base, &arrivals, 24 * 7).await;

    for p in [&opt, &base] {
        let by_status = check_invariants(&p.store).await;
        let settled: usize = [
            JobStatus::Completed,
            JobStatus::Rejected,
            JobStatus::Expired,
        ]
        .iter()
        .map(|s| by_status.get(s).copied().unwrap_or(0))
        .sum();
        assert_eq!(
            settled, 200,
            "every accepted job ends settled: {by_status:?}"
        );
    }
    assert!(hours_opt < 24 * 7, "the backlog drains");
    let o = summary(opt.store.as_ref()).await.unwrap();
    let b = summary(base.store.as_ref()).await.unwrap();
    assert!(
        o.deadline_misses <= 2,
        "optimized misses {} deadlines",
        o.deadline_misses
    );
    assert!(
        o.usd_per_chr < b.usd_per_chr * 0.97,
        "optimized {:.5} $/c-hr vs baseline {:.5}",
        o.usd_per_chr,
        b.usd_per_chr
    );
    assert!(o.cost_usd < b.cost_usd);
}

/// A source that fails for one node during some hours: its feed goes quiet.
struct Outage {
    inner: SyntheticSource,
    node: String,
    from: Hour,
    to: Hour,
}

impl SignalSource for Outage {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> SignalKind {
        self.inner.kind()
    }
    fn fetch<'a>(
        &'a self,
        node: &'a Node,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        let h = Hour::containing(now);
        if node.id == self.node && h >= self.from && h < self.to {
            let name = self.name().to_string();
            return async move {
                Err(SourceError::Unavailable {
                    source_name: name,
                    detail: "down".into(),
                })
            }
            .boxed();
        }
        self.inner.fetch(node, now)
    }
}

#[tokio::test]
async fn a_node_with_expired_prices_takes_no_dispatch_until_fresh_data_arrives() {
    let mut p = pipeline("optimized", Faults::NONE, 2).await;
    let first = Hour::containing(start());
    let victim = default_fleet(2)[0].id.clone();
    p.sources = vec![
        Arc::new(SyntheticSource::new(Stream::Weather, 11, 48, Faults::NONE)),
        Arc::new(Outage {
            inner: SyntheticSource::new(Stream::Price, 11, 48, Faults::NONE),
            node: victim.clone(),
            from: first.plus(2),
            to: first.plus(8),
        }),
    ];
    // A steady stream of urgent one-hour jobs that would use both nodes.
    for h in 0..12 {
        let hour = first.plus(h);
        let lines: Vec<String> = (0..6)
            .map(|i| {
                format!(
                    r#"{{"id":"h{h}-{i}","priority":0,"compute_hours":24,"units":24,"deadline":"{}"}}"#,
                    hour.plus(2).start().to_rfc3339()
                )
            })
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let step = p.step(&refs).await.unwrap();
        let current = step.prices.iter().find(|np| np.node_id == victim);
        let on_victim = step
            .plan
            .committed
            .iter()
            .filter(|d| d.node_id == victim)
            .count();
        if (3..8).contains(&h) {
            // The last price expired an hour after the outage began.
            assert!(
                current.is_none_or(|np| np.stale),
                "hour {h}: victim priced fresh"
            );
            assert_eq!(
                on_victim, 0,
                "hour {h}: dispatched to a node with an expired price"
            );
        }
        if h >= 8 {
            assert!(
                current.is_some_and(|np| !np.stale),
                "hour {h}: fresh data makes it dispatchable"
            );
            assert!(on_victim > 0, "hour {h}: victim back in service");
        }
    }
    check_invariants(&p.store).await;
}

struct Slow;
struct Broken;

impl SignalSource for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn kind(&self) -> SignalKind {
        SignalKind::Weather
    }
    fn fetch<'a>(
        &'a self,
        _: &'a Node,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Fetched::default())
        }
        .boxed()
    }
}

impl SignalSource for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn kind(&self) -> SignalKind {
        SignalKind::Weather
    }
    fn fetch<'a>(
        &'a self,
        _: &'a Node,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        async {
            Err(SourceError::BadResponse {
                source_name: "broken".into(),
                detail: "garbage".into(),
            })
        }
        .boxed()
    }
}

#[tokio::test]
async fn a_slow_and_a_broken_source_cost_only_their_own_data() {
    let store = SqliteStore::in_memory().unwrap();
    let nodes = default_fleet(4);
    let sources: Vec<Arc<dyn SignalSource>> = vec![
        Arc::new(Slow),
        Arc::new(Broken),
        Arc::new(SyntheticSource::new(Stream::Price, 3, 24, Faults::NONE)),
    ];
    let t0 = Instant::now();
    let report = fetch_signals(
        &store,
        &sources,
        &nodes,
        start(),
        FetchLimits {
            concurrency: 4,
            timeout: Duration::from_millis(300),
        },
        None,
    )
    .await
    .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "bounded by the per-request timeout"
    );
    assert_eq!(report.sources["slow"].failed, 4);
    assert!(report.sources["slow"].errors[0].contains("timed out"));
    assert_eq!(report.sources["broken"].failed, 4);
    let good = &report.sources["synthetic-prices"];
    assert_eq!((good.failed, good.accepted), (0, 4));
    assert_eq!(report.changed_nodes.len(), 4);
}
