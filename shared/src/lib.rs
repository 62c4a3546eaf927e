//! Geographic Resource Dispatch: the library every entry point uses.
//!
//! `domain` is pure; `ports` are the traits use cases need; `app` holds the use cases;
//! `adapters` implement the ports (embedded SQLite, signal sources).

pub mod adapters;
pub mod app;
#[cfg(feature = "aws")]
pub mod aws;
pub mod bench;
#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod domain;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod local;
pub mod ports;
