//! fetch-weather: scheduled; fetches the weather of every node in parallel.

use grd::adapters::dynamodb::{DynamoStore, Tables};
use grd::adapters::s3::S3Archive;
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::lambda::config::{Env, FetchConfig};
use grd::lambda::{cutoff, fetch};
use grd::ports::SignalSource;
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = FetchConfig::from_env(&Env::from_process())?;
    let sdk = grd::aws::sdk_config().await;
    let tables = Tables {
        signals: Some(config.signals_table.clone()),
        nodes: Some(config.nodes_table.clone()),
        ..Tables::default()
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    let archive = S3Archive::new(grd::aws::s3_client(&sdk), config.raw_bucket.clone());
    let sources: Vec<Arc<dyn SignalSource>> = vec![Arc::new(SyntheticSource::new(
        Stream::Weather,
        config.seed,
        config.horizon,
        Faults::NONE,
    ))];
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (store, archive, sources) = (&store, &archive, &sources);
        async move {
            let report = fetch::handle(
                store,
                archive,
                sources,
                chrono::Utc::now(),
                cutoff(&event.context),
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
