//! fetch-weather: scheduled; fetches the weather of every node in parallel.

use grd::adapters::dynamodb::{DynamoStore, Tables};
use grd::adapters::s3::S3Archive;
use grd::domain::signal::SignalKind;
use grd::lambda::config::{Env, FetchConfig};
use grd::lambda::{cutoff, fetch};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let mut config = FetchConfig::from_env(&Env::from_process())?;
    let sdk = grd::aws::sdk_config().await;
    fetch::load_api_key(
        &mut config,
        SignalKind::Weather,
        &aws_sdk_ssm::Client::new(&sdk),
    )
    .await?;
    let tables = Tables {
        signals: Some(config.signals_table.clone()),
        nodes: Some(config.nodes_table.clone()),
        ..Tables::default()
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    let s3 = grd::aws::s3_client(&sdk);
    let archive = S3Archive::new(s3.clone(), config.raw_bucket.clone());
    let sources = fetch::sources(&config, SignalKind::Weather, &s3)?;
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
