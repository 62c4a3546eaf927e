//! Adapters: concrete implementations of the ports.

pub mod csv_replay;
pub mod sqlite;
pub mod synthetic;
