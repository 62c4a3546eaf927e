//! The operator dashboard and its JSON API: one router, served by `grd serve` over the
//! embedded store and by the dashboard function over DynamoDB.
//!
//! One page (embedded, with its chart and map libraries: no network needed) polls the API;
//! controls post to it. When a token is set, every API call (reads too) and `/metrics` need
//! `Authorization: Bearer TOKEN`; the page and its libraries hold no data and stay open.

mod api;
mod assets;
pub mod metrics;

use crate::adapters::sqlite::SqliteStore;
use crate::domain::dispatch::ControlError;
use crate::local::SimClock;
use crate::ports::{Backlog, Clock, ControlStore, DispatchLog, NodeStore, StoreError};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Where the dashboard runs: what differs between the embedded store and a deployed stack.
pub trait Deployment:
    NodeStore + Backlog + DispatchLog + ControlStore + Send + Sync + 'static
{
    /// `local` or `aws`, shown on the page.
    fn mode(&self) -> &'static str;
    /// The pipeline's time: a local run's simulated clock, the wall clock in AWS.
    fn now(&self) -> Result<DateTime<Utc>, StoreError>;
    /// The replay speed operators set (simulated hours per second), if any.
    fn replay_speed(&self) -> Result<Option<f64>, StoreError>;
    /// Sets the replay speed; refused when the value is out of range or the speed cannot
    /// be set here.
    fn set_replay_speed(&self, speed: Option<f64>) -> Result<Result<(), ControlError>, StoreError>;
    /// Counters the pipeline keeps for `/metrics` as (name, label, value).
    fn counters(&self) -> Result<Vec<(String, String, u64)>, StoreError>;
    /// Adds to a counter (a no-op where counters live elsewhere).
    fn count(&self, name: &str, label: &str, by: u64) -> Result<(), StoreError>;
}

impl Deployment for SqliteStore {
    fn mode(&self) -> &'static str {
        "local"
    }
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(SimClock::load(
            self,
            crate::domain::time::Hour::containing(Utc::now()).start(),
        )?
        .now())
    }
    fn replay_speed(&self) -> Result<Option<f64>, StoreError> {
        crate::local::replay_speed(self, None)
    }
    fn set_replay_speed(&self, speed: Option<f64>) -> Result<Result<(), ControlError>, StoreError> {
        match crate::local::set_replay_speed(self, speed) {
            Ok(()) => Ok(Ok(())),
            Err(crate::local::SetupError::Store(e)) => Err(e),
            Err(other) => Ok(Err(ControlError::Invalid(other.to_string()))),
        }
    }
    fn counters(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        SqliteStore::counters(self)
    }
    fn count(&self, name: &str, label: &str, by: u64) -> Result<(), StoreError> {
        SqliteStore::count(self, name, label, by)
    }
}

#[cfg(feature = "aws")]
impl Deployment for crate::adapters::dynamodb::DynamoStore {
    fn mode(&self) -> &'static str {
        "aws"
    }
    fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(Utc::now())
    }
    fn replay_speed(&self) -> Result<Option<f64>, StoreError> {
        Ok(None)
    }
    fn set_replay_speed(&self, _: Option<f64>) -> Result<Result<(), ControlError>, StoreError> {
        Ok(Err(ControlError::Invalid(
            "a deployed stack replays at the speed of its SignalSource parameter (replay:SPEED); \
             change it with sam deploy"
                .into(),
        )))
    }
    fn counters(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        // The functions' counters are CloudWatch metrics (namespace grd).
        Ok(Vec::new())
    }
    fn count(&self, _: &str, _: &str, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What every handler shares.
pub struct AppState<S> {
    pub store: Arc<S>,
    /// Required on every API call when set.
    pub token: Option<String>,
}

/// The routes of the page and the API.
pub fn router<S: Deployment>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/vendor/{file}", get(assets::vendor))
        .route("/metrics", get(api::metrics::<S>))
        .route("/api/state", get(api::state::<S>))
        .route("/api/load", get(api::load::<S>))
        .route("/api/nodes", get(api::nodes::<S>).post(api::add_node::<S>))
        .route("/api/nodes/{id}/series", get(api::series::<S>))
        .route("/api/nodes/{id}/{action}", post(api::node_action::<S>))
        .route("/api/explanations", get(api::explanations::<S>))
        .route("/api/jobs", post(api::submit::<S>))
        .route("/api/jobs/{id}/explain", get(api::explain_job::<S>))
        .route("/api/jobs/{id}/{action}", post(api::job_action::<S>))
        .route("/api/speed", post(api::set_speed::<S>))
        .route("/api/overrides", post(api::add_override::<S>))
        .route("/api/overrides/{id}", delete(api::remove_override::<S>))
        .with_state(state)
}
