//! fetch-prices: scheduled; fetches the energy price of every node in parallel.

use grd::domain::signal::SignalKind;
use lambda_runtime::{tracing, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    grd::lambda::fetch::serve(SignalKind::Price).await
}
