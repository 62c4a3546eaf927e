//! The domain core: pure types and rules, no I/O.

pub mod dispatch;
pub mod job;
pub mod node;
pub mod plan;
pub mod price;
pub mod pricing;
pub mod signal;
pub mod synth;
pub mod time;
