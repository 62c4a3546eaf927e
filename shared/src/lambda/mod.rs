//! Inbound Lambda handlers: AWS event payloads in, use cases run, batch responses out.
//! Each function's `main.rs` only wires these to its clients and `lambda_runtime::run`.

pub mod config;
#[cfg(feature = "dashboard")]
pub mod dashboard;
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

/// The value of an SSM SecureString parameter (decrypted, trimmed), read at start-up;
/// `what` names it in the error.
pub async fn secure_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    what: &str,
) -> Result<String, String> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading {what} from SSM parameter {name}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            )
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("SSM parameter {name} holds no value for {what}"))
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
