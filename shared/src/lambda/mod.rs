//! Inbound Lambda handlers: AWS event payloads in, use cases run, batch responses out.
//! Each function's `main.rs` only wires these to its clients and `lambda_runtime::run`.

pub mod config;
pub mod dispatch_jobs;
pub mod fetch;
pub mod metrics;
pub mod price_nodes;

use std::time::{Duration, Instant, SystemTime};

/// Stop taking new work this long before the invocation's deadline, so a handler reports
/// what it did not do instead of being killed mid-write.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(5);

/// The instant after which a handler takes no new work.
pub fn cutoff(ctx: &lambda_runtime::Context) -> Instant {
    let left = ctx
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(SAFETY_MARGIN)
}
