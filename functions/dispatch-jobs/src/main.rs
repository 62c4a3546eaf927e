//! dispatch-jobs: triggered by the jobs queue and by a schedule tick; takes jobs into the
//! backlog, plans, reserves capacity and writes dispatch records.

use grd::adapters::dynamodb::{DynamoStore, Tables};
use grd::domain::plan::strategy_by_name;
use grd::lambda::config::{DispatchConfig, Env};
use grd::lambda::cutoff;
use grd::lambda::dispatch_jobs::{handle, Invocation};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = DispatchConfig::from_env(&Env::from_process())?;
    let strategy = strategy_by_name(&config.strategy).ok_or("unknown strategy")?;
    let sdk = grd::aws::sdk_config().await;
    let tables = Tables {
        nodes: Some(config.nodes_table.clone()),
        backlog: Some(config.backlog_table.clone()),
        dispatches: Some(config.dispatches_table.clone()),
        ..Tables::default()
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    let horizon = config.horizon;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (store, strategy) = (&store, strategy.as_ref());
        async move {
            let deadline = cutoff(&event.context);
            let invocation = Invocation::from_payload(event.payload)?;
            Ok::<_, Error>(
                handle(
                    store,
                    strategy,
                    horizon,
                    invocation,
                    chrono::Utc::now(),
                    deadline,
                )
                .await?,
            )
        }
    }))
    .await
}
