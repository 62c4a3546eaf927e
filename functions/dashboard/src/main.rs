//! dashboard: the operator page and JSON API behind a Lambda Function URL, over the stack's
//! tables (the same router `grd serve` runs on the embedded store).

use grd::lambda::config::{DashboardConfig, Env};
use lambda_http::{run, Error};
use lambda_runtime::tracing;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = DashboardConfig::from_env(&Env::from_process())?;
    let sdk = grd::aws::sdk_config().await;
    let app = grd::lambda::dashboard::app(&sdk, &config).await?;
    run(app).await
}
