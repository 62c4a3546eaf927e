//! Use cases: each is generic over the ports it needs, so the embedded runner and the
//! Lambda handlers run the same code.

pub mod control;
pub mod explain;
pub mod fetch_signals;
pub mod ingest_file;
pub mod ingest_jobs;
pub mod plan_dispatch;
pub mod price_nodes;
pub mod summary;
pub mod view;
