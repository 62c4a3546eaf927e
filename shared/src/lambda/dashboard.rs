//! dashboard: the operator page and JSON API of `grd::dashboard` over the stack's DynamoDB
//! tables, behind a Lambda Function URL. The function's `main.rs` hands the router to
//! `lambda_http::run`, which turns each Function URL request into an HTTP request for it.

use super::config::DashboardConfig;
use crate::adapters::dynamodb::{DynamoStore, Tables};
use crate::dashboard::{router, AppState};
use std::sync::Arc;

/// The router over the tables `config` names, with the token read from its SSM parameter
/// (when one is configured) once, at start-up.
pub async fn app(
    sdk: &aws_config::SdkConfig,
    config: &DashboardConfig,
) -> Result<axum::Router, String> {
    let token = match &config.token_parameter {
        Some(name) => Some(
            super::secure_parameter(&aws_sdk_ssm::Client::new(sdk), name, "the dashboard token")
                .await?,
        ),
        None => None,
    };
    let tables = Tables {
        nodes: Some(config.nodes_table.clone()),
        backlog: Some(config.backlog_table.clone()),
        dispatches: Some(config.dispatches_table.clone()),
        ..Tables::default()
    };
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), tables);
    Ok(router(Arc::new(AppState {
        store: Arc::new(store),
        token,
    })))
}
