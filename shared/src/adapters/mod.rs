//! Adapters: concrete implementations of the ports.

pub mod csv_replay;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod s3_replay;
pub mod sources;
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
pub mod station_log;
pub mod synthetic;
