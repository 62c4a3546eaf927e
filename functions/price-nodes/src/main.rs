//! price-nodes: triggered by the signals table's stream; reprices the changed nodes.

use aws_lambda_events::event::dynamodb::Event;
use grd::adapters::dynamodb::{DynamoStore, Tables};
use grd::lambda::config::{Env, PriceConfig};
use grd::lambda::{cutoff, price_nodes};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = PriceConfig::from_env(&Env::from_process())?;
    let sdk = grd::aws::sdk_config().await;
    let tables = Tables {
        signals: Some(config.signals_table.clone()),
        nodes: Some(config.nodes_table.clone()),
        ..Tables::default()
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    let horizon = config.horizon;
    run(service_fn(|event: LambdaEvent<Event>| {
        let store = &store;
        async move {
            let deadline = cutoff(&event.context);
            Ok::<_, Error>(
                price_nodes::handle(store, event.payload, horizon, chrono::Utc::now(), deadline)
                    .await,
            )
        }
    }))
    .await
}
