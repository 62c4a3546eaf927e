//! The dashboard's JSON API over HTTP on both deployments: the embedded store (`grd serve`)
//! and DynamoDB (the dashboard function, against a local AWS endpoint); the same scenario
//! (tests/dashboard.rs) on each.

#![allow(clippy::unwrap_used)]

use grd::adapters::sqlite::SqliteStore;
use grd_tests::dashboard::{scenario, Api};
use std::sync::Arc;

#[tokio::test]
async fn the_api_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("grd.db")).unwrap());
    scenario(store.clone(), store.clone(), "local").await;
    // The replay speed is the local pipeline's to set.
    let api = Api::new(store).await;
    api.ok("POST", "/api/speed", r#"{"hours_per_second":4}"#, 200)
        .await;
}

#[cfg(feature = "aws-endpoint")]
#[tokio::test]
async fn the_api_on_dynamodb() {
    use grd::adapters::dynamodb::DynamoStore;
    use grd_tests::aws::{create_tables, sdk};
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let tables = create_tables(&ddb).await;
    let store = Arc::new(DynamoStore::new(ddb, tables));
    scenario(store.clone(), store.clone(), "aws").await;
    // A deployed stack's replay speed is a stack parameter.
    let api = Api::new(store).await;
    let refused = api
        .ok("POST", "/api/speed", r#"{"hours_per_second":4}"#, 400)
        .await;
    assert!(
        refused["error"].as_str().unwrap().contains("SignalSource"),
        "{refused}"
    );
}
