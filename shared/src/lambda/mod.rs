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

/// The instant after which a handler takes no new work: `SAFETY_MARGIN` before the
/// deadline, or a quarter of the time left when the function's timeout is short.
pub fn cutoff(ctx: &lambda_runtime::Context) -> Instant {
    let left = ctx
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(SAFETY_MARGIN.min(left / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(secs: u64) -> lambda_runtime::Context {
        let mut ctx = lambda_runtime::Context::default();
        ctx.deadline = (SystemTime::now() + Duration::from_secs(secs))
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        ctx
    }

    #[test]
    fn the_margin_fits_the_timeout() {
        let now = Instant::now();
        // A 60 s invocation stops taking work 5 s before its end.
        let c = cutoff(&ctx(60));
        assert!(c > now + Duration::from_secs(54) && c < now + Duration::from_secs(56));
        // A 3 s invocation (Lambda's default timeout) still gets most of its time.
        let c = cutoff(&ctx(3));
        assert!(c > now + Duration::from_secs(2) && c < now + Duration::from_secs(3));
        // No time left: no new work.
        assert!(cutoff(&lambda_runtime::Context::default()) <= Instant::now());
    }
}
