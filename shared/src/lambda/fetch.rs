//! fetch-weather and fetch-prices: on a schedule, fetch one kind of signal for every node
//! in parallel, archive each raw payload, store what passes the checks.

use super::config::{FetchConfig, SourceChoice, REPLAY_PREFIX};
use super::metrics;
use crate::adapters::s3::S3Archive;
use crate::adapters::s3_replay::S3Replay;
use crate::adapters::synthetic::{Faults, Stream, SyntheticSource};
use crate::app::fetch_signals::{fetch_signals, FetchLimits, FetchReport};
use crate::domain::signal::SignalKind;
use crate::ports::{NodeStore, RawArchive, SignalSource, SignalStore, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sources of one fetch function (one kind of signal), as configured. Real sources
/// archive each upstream payload themselves (`raw/<source>/<zone or cell>/<date>/<time>`).
pub fn sources(
    config: &FetchConfig,
    kind: SignalKind,
    s3: &aws_sdk_s3::Client,
) -> Result<Vec<Arc<dyn SignalSource>>, String> {
    Ok(match config.source {
        SourceChoice::Synthetic { seed } => {
            let stream = match kind {
                SignalKind::Weather => Stream::Weather,
                SignalKind::Price => Stream::Price,
            };
            vec![Arc::new(SyntheticSource::new(
                stream,
                seed,
                config.horizon,
                Faults::NONE,
            ))]
        }
        SourceChoice::Replay { speed } => vec![Arc::new(S3Replay::new(
            s3.clone(),
            config.raw_bucket.clone(),
            REPLAY_PREFIX,
            kind,
            config.horizon,
            speed,
        ))],
        SourceChoice::Live => {
            let archive: Arc<dyn RawArchive> =
                Arc::new(S3Archive::new(s3.clone(), config.raw_bucket.clone()));
            config
                .live
                .sources_of_kind(&config.live.client()?, kind, Some(archive))
        }
    })
}

/// Reads the Open-Meteo API key from its SSM SecureString, for the weather function when one
/// is configured (the prices function needs no key). The error names the parameter.
pub async fn load_api_key(
    config: &mut FetchConfig,
    kind: SignalKind,
    ssm: &aws_sdk_ssm::Client,
) -> Result<(), String> {
    let (SignalKind::Weather, Some(name)) = (kind, config.open_meteo_key_parameter.clone()) else {
        return Ok(());
    };
    let value = super::secure_parameter(ssm, &name, "the Open-Meteo API key").await?;
    config.live.open_meteo_api_key = Some(value);
    Ok(())
}

/// Runs one scheduled fetch. The payload (the schedule's input) is not needed: the time
/// comes from the clock. Per-request timeouts are bounded by the time the invocation has.
pub async fn handle<S: SignalStore + NodeStore>(
    store: &S,
    archive: &dyn RawArchive,
    sources: &[Arc<dyn SignalSource>],
    now: DateTime<Utc>,
    cutoff: Instant,
) -> Result<FetchReport, StoreError> {
    let nodes: Vec<_> = store.nodes().await?.into_iter().map(|s| s.node).collect();
    let left = cutoff.saturating_duration_since(Instant::now());
    let limits = FetchLimits {
        concurrency: 16,
        timeout: left
            .min(Duration::from_secs(10))
            .max(Duration::from_millis(100)),
    };
    let report = fetch_signals(store, sources, &nodes, now, limits, Some(archive)).await?;
    tracing::info!(
        nodes = nodes.len(),
        accepted = report.sources.values().map(|s| s.accepted).sum::<usize>(),
        rejected = report.rejected(),
        failed = report.failed(),
        "fetch done"
    );
    metrics::emit(&[
        (
            "SignalsAccepted",
            report.sources.values().map(|s| s.accepted).sum::<usize>() as f64,
        ),
        ("SignalsRejected", report.rejected() as f64),
        ("FetchErrors", report.failed() as f64),
    ]);
    Ok(report)
}

/// A fetch function's whole life: configuration from the environment, SDK clients and
/// sources built once, then one [`handle`] per scheduled invocation. `kind` says which
/// function this is (fetch-weather or fetch-prices).
pub async fn serve(kind: SignalKind) -> Result<(), lambda_runtime::Error> {
    use crate::adapters::dynamodb::{DynamoStore, Tables};
    use lambda_runtime::{service_fn, LambdaEvent};
    let mut config = FetchConfig::from_env(&super::config::Env::from_process())?;
    let sdk = crate::aws::sdk_config().await;
    load_api_key(&mut config, kind, &aws_sdk_ssm::Client::new(&sdk)).await?;
    let tables = Tables {
        signals: Some(config.signals_table.clone()),
        nodes: Some(config.nodes_table.clone()),
        ..Tables::default()
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    let s3 = crate::aws::s3_client(&sdk);
    let archive = S3Archive::new(s3.clone(), config.raw_bucket.clone());
    let sources = sources(&config, kind, &s3)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (store, archive, sources) = (&store, &archive, &sources);
        async move {
            let report = handle(
                store,
                archive,
                sources,
                Utc::now(),
                super::cutoff(&event.context),
            )
            .await?;
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
