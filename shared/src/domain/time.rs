//! Hourly slots: the planner's unit of time.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An hour, counted from the Unix epoch (UTC): slot `h` covers [h:00, h+1:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hour(pub i64);

impl Hour {
    /// The hour that contains `t`.
    pub fn containing(t: DateTime<Utc>) -> Hour {
        Hour(t.timestamp().div_euclid(3600))
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0 * 3600, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn plus(self, hours: i64) -> Hour {
        Hour(self.0 + hours)
    }

    /// Hours from `self` to `later` (negative when `later` is earlier).
    pub fn until(self, later: Hour) -> i64 {
        later.0 - self.0
    }
}

impl fmt::Display for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start().format("%Y-%m-%dT%H:00Z"))
    }
}

/// Hours since the epoch as a float, for deadline arithmetic.
pub fn hours_f(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containing_rounds_down_also_before_epoch() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 59, 59).single();
        let h = Hour::containing(t.unwrap_or_default());
        assert_eq!(h.to_string(), "2026-03-01T10:00Z");
        let before = Utc.timestamp_opt(-1, 0).single().unwrap_or_default();
        assert_eq!(Hour::containing(before), Hour(-1));
        assert_eq!(Hour(5).until(Hour(8)), 3);
    }
}
