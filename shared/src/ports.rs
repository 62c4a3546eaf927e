//! Ports: the small traits use cases are written against. Adapters implement them.

use crate::domain::dispatch::{
    ControlError, ControlOutcome, Dispatch, JobAction, JobRecord, JobStatus,
};
use crate::domain::job::{Job, JobId};
use crate::domain::node::Node;
use crate::domain::price::{NodePrice, NodeSignals, PriceOverride};
use crate::domain::signal::{Forecast, Observation, Rejection, SignalKind};
use crate::domain::time::Hour;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::future::Future;

/// A store failed (I/O, corruption, a backend error). Not a business outcome.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// What the store did with a signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Accepted,
    Refused(Rejection),
}

pub trait SignalStore: Send + Sync {
    /// Keeps the observation if it is the newest by source timestamp for its node and kind
    /// (atomically: a concurrent older write cannot win).
    fn put_observation(
        &self,
        obs: &Observation,
    ) -> impl Future<Output = Result<Stored, StoreError>> + Send;
    /// Stores each forecast point unless a newer issue already covers that hour.
    /// Returns how many points were kept.
    fn put_forecast(&self, fc: &Forecast)
        -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// Latest observations and forecasts for hours in [from, to).
    fn node_signals(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> impl Future<Output = Result<NodeSignals, StoreError>> + Send;
}

/// A node as operators configured it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeState {
    pub node: Node,
    /// Drained nodes take no new dispatches.
    pub drained: bool,
}

pub trait NodeStore: Send + Sync {
    fn nodes(&self) -> impl Future<Output = Result<Vec<NodeState>, StoreError>> + Send;
    fn put_node(&self, node: &Node) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces the node's prices for hours in [from, to) with `prices` (an hour left out
    /// has no price any more); hours before `from` stay as history.
    fn put_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
        prices: &[NodePrice],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// All nodes' prices for hours in [from, to).
    fn prices(
        &self,
        from: Hour,
        to: Hour,
    ) -> impl Future<Output = Result<Vec<NodePrice>, StoreError>> + Send;
}

/// What adding a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Accepted,
    /// The id was known already: nothing changed.
    Duplicate,
}

pub trait Backlog: Send + Sync {
    /// Adds the job as pending unless its id is known (idempotent on the producer's id).
    fn add(
        &self,
        job: &Job,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Added, StoreError>> + Send;
    fn jobs_with_status(
        &self,
        status: JobStatus,
    ) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;
    fn all_jobs(&self) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;
    /// Moves a pending job to rejected or expired with a reason; false if it was not pending.
    fn close_pending(
        &self,
        id: &JobId,
        status: JobStatus,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What committing a dispatch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Committed,
    /// The job was not pending (already dispatched by a retry or another planner, or closed).
    NotPending(JobStatus),
    /// A slot had no room left (another planner got there first): nothing was written.
    NoCapacity {
        hour: Hour,
    },
    UnknownJob,
}

pub trait DispatchLog: Send + Sync {
    /// Writes the dispatch and reserves its units in every slot, all or nothing.
    fn commit(&self, d: &Dispatch) -> impl Future<Output = Result<Committed, StoreError>> + Send;
    /// Units reserved per (node, hour) for hours in [from, to).
    fn reservations(
        &self,
        from: Hour,
        to: Hour,
    ) -> impl Future<Output = Result<Vec<(String, Hour, u32)>, StoreError>> + Send;
    /// Marks dispatched jobs whose run ended by `now` completed; returns how many.
    fn complete_due(
        &self,
        now: Hour,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Operators' controls: the same on the embedded store and on DynamoDB.
pub trait ControlStore: Send + Sync {
    /// Applies an operator's action to a job atomically: the state change, a new priority,
    /// and for a dispatched job that is cancelled or completed, the reserved capacity it no
    /// longer needs from hour `now` on (a cancelled job gives back all of it and loses its
    /// dispatch record). A refused action changes nothing.
    fn control_job(
        &self,
        id: &str,
        action: JobAction,
        now: Hour,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Result<ControlOutcome, ControlError>, StoreError>> + Send;
    /// Drains or undrains a node; false if there is no such node.
    fn set_drained(
        &self,
        node_id: &str,
        drained: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Stores a what-if override (validated by the caller); returns its id.
    fn add_price_override(
        &self,
        o: &PriceOverride,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Removes an override; false if there was none with that id.
    fn remove_price_override(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every stored override, oldest first.
    fn price_overrides(
        &self,
    ) -> impl Future<Output = Result<Vec<PriceOverride>, StoreError>> + Send;
    /// Stored prices of one node for hours in [from, to), in hour order.
    fn node_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> impl Future<Output = Result<Vec<NodePrice>, StoreError>> + Send;
}

/// The time, as the pipeline sees it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A source failed for this run; its data is missing, the others are not affected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name}: timed out")]
    Timeout { source_name: String },
    #[error("{source_name}: unavailable: {detail}")]
    Unavailable { source_name: String, detail: String },
    #[error("{source_name}: bad response: {detail}")]
    BadResponse { source_name: String, detail: String },
}

/// A source's response as it arrived, archived before it is parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPayload {
    pub content_type: String,
    /// File extension for the archive key, e.g. `json`, `csv`.
    pub extension: String,
    pub bytes: Vec<u8>,
}

/// What one fetch for one node brought back.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub observations: Vec<Observation>,
    pub forecasts: Vec<Forecast>,
    /// Records that could not be parsed at all, with why.
    pub malformed: Vec<Rejection>,
    pub raw: Option<RawPayload>,
}

/// Where raw source payloads are kept (S3 in AWS).
pub trait RawArchive: Send + Sync {
    fn put<'a>(
        &'a self,
        key: &'a str,
        payload: &'a RawPayload,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Weather or price data for a node, from an API, a generator or a replay.
pub trait SignalSource: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> SignalKind;
    fn fetch<'a>(
        &'a self,
        node: &'a Node,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>>;
}
