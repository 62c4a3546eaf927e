//! Weather and energy-price signals: observations and forecasts, checked at the edge.

use super::time::Hour;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Physical and market bounds. Outside them a value is a glitch, not weather or a price.
pub const TEMP_RANGE_C: (f64, f64) = (-90.0, 60.0);
pub const RH_RANGE_PCT: (f64, f64) = (0.0, 100.0);
/// Widest market caps seen (AEMO 17,500; ERCOT 5,000; EU -500..4,000) with room.
pub const PRICE_RANGE_USD_PER_MWH: (f64, f64) = (-1_000.0, 20_000.0);
/// Hourly weather stays usable for three hours: public APIs update hourly at best.
pub const WEATHER_VALIDITY: Duration = Duration::hours(3);
/// An hourly price is valid for its own interval only.
pub const PRICE_VALIDITY: Duration = Duration::hours(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Weather,
    Price,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Weather => "weather",
            SignalKind::Price => "price",
        }
    }
}

/// What a signal says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reading {
    Weather { temp_c: f64, rh_pct: Option<f64> },
    Price { usd_per_mwh: f64 },
}

impl Reading {
    pub fn kind(&self) -> SignalKind {
        match self {
            Reading::Weather { .. } => SignalKind::Weather,
            Reading::Price { .. } => SignalKind::Price,
        }
    }

    /// Rejects non-finite and physically impossible values, naming which.
    pub fn check(&self) -> Result<(), Rejection> {
        fn in_range(field: &'static str, v: f64, (lo, hi): (f64, f64)) -> Result<(), Rejection> {
            if !v.is_finite() {
                Err(Rejection::NonFinite { field })
            } else if v < lo || v > hi {
                Err(Rejection::OutOfRange { field, value: v })
            } else {
                Ok(())
            }
        }
        match *self {
            Reading::Weather { temp_c, rh_pct } => {
                in_range("temp_c", temp_c, TEMP_RANGE_C)?;
                if let Some(rh) = rh_pct {
                    in_range("rh_pct", rh, RH_RANGE_PCT)?;
                }
                Ok(())
            }
            Reading::Price { usd_per_mwh } => {
                in_range("usd_per_mwh", usd_per_mwh, PRICE_RANGE_USD_PER_MWH)
            }
        }
    }
}

/// One observation for one node, stamped by its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub node_id: String,
    /// The source's timestamp: the instant (weather) or interval start (price) it describes.
    pub source_ts: DateTime<Utc>,
    /// After this instant the observation no longer describes the node.
    pub valid_until: DateTime<Utc>,
    pub reading: Reading,
    /// Which source sent it, for counting and for the operator.
    pub source: String,
}

impl Observation {
    pub fn new(node_id: &str, source: &str, source_ts: DateTime<Utc>, reading: Reading) -> Self {
        let validity = match reading.kind() {
            SignalKind::Weather => WEATHER_VALIDITY,
            SignalKind::Price => PRICE_VALIDITY,
        };
        Observation {
            node_id: node_id.to_string(),
            source_ts,
            valid_until: source_ts + validity,
            reading,
            source: source.to_string(),
        }
    }

    pub fn kind(&self) -> SignalKind {
        self.reading.kind()
    }

    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.source_ts <= now + Duration::minutes(5) && now < self.valid_until
    }
}

/// A forecast for one node: values per future hour, as issued at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub node_id: String,
    pub kind: SignalKind,
    pub issued_at: DateTime<Utc>,
    pub points: Vec<(Hour, Reading)>,
    pub source: String,
}

/// Why a signal did not change anything. Every refused record gets exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    #[error("`{field}` is not a finite number")]
    NonFinite { field: &'static str },
    #[error("`{field}` = {value} is physically impossible")]
    OutOfRange { field: &'static str, value: f64 },
    #[error("same source timestamp as the stored record")]
    Duplicate,
    #[error("older than the stored record (out-of-order or stale resend)")]
    OutOfOrder,
    #[error("expired before it arrived")]
    Expired,
    #[error("unknown node `{0}`")]
    UnknownNode(String),
    #[error("unparseable: {0}")]
    Malformed(String),
}

impl Rejection {
    /// A short, stable name for counting by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::NonFinite { .. } => "non_finite",
            Rejection::OutOfRange { .. } => "out_of_range",
            Rejection::Duplicate => "duplicate",
            Rejection::OutOfOrder => "out_of_order",
            Rejection::Expired => "expired",
            Rejection::UnknownNode(_) => "unknown_node",
            Rejection::Malformed(_) => "malformed",
        }
    }
}

/// The newest-by-source-timestamp rule, as a pure decision: may `incoming` replace the
/// stored record whose source timestamp is `stored`? Stores apply it atomically.
pub fn supersedes(stored: Option<DateTime<Utc>>, incoming: DateTime<Utc>) -> Result<(), Rejection> {
    match stored {
        None => Ok(()),
        Some(s) if incoming > s => Ok(()),
        Some(s) if incoming == s => Err(Rejection::Duplicate),
        Some(_) => Err(Rejection::OutOfOrder),
    }
}

/// Everything checkable about an observation without the store: values and expiry.
pub fn check_observation(obs: &Observation, now: DateTime<Utc>) -> Result<(), Rejection> {
    obs.reading.check()?;
    if obs.valid_until <= now {
        return Err(Rejection::Expired);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, 0, 0).unwrap()
    }

    #[test]
    fn impossible_and_non_finite_values_are_named() {
        let nan: f64 = "NAN".parse().unwrap();
        let r = Reading::Weather {
            temp_c: nan,
            rh_pct: None,
        }
        .check()
        .unwrap_err();
        assert_eq!(r, Rejection::NonFinite { field: "temp_c" });
        let r = Reading::Weather {
            temp_c: -142.7,
            rh_pct: Some(40.0),
        }
        .check()
        .unwrap_err();
        assert_eq!(r.reason(), "out_of_range");
        assert!(r.to_string().contains("-142.7"));
        let r = Reading::Weather {
            temp_c: 20.0,
            rh_pct: Some(101.0),
        }
        .check()
        .unwrap_err();
        assert_eq!(
            r,
            Rejection::OutOfRange {
                field: "rh_pct",
                value: 101.0
            }
        );
        assert!(Reading::Price { usd_per_mwh: -80.0 }.check().is_ok());
        assert!(Reading::Price {
            usd_per_mwh: 5_000.0
        }
        .check()
        .is_ok());
        assert!(Reading::Price {
            usd_per_mwh: f64::INFINITY
        }
        .check()
        .is_err());
        assert!(Reading::Price { usd_per_mwh: 1e6 }.check().is_err());
    }

    #[test]
    fn newest_source_timestamp_wins() {
        assert!(supersedes(None, t(3)).is_ok());
        assert!(supersedes(Some(t(3)), t(4)).is_ok());
        assert_eq!(supersedes(Some(t(3)), t(3)), Err(Rejection::Duplicate));
        assert_eq!(supersedes(Some(t(3)), t(2)), Err(Rejection::OutOfOrder));
    }

    #[test]
    fn expiry_follows_the_validity_window() {
        let obs = Observation::new("n", "s", t(3), Reading::Price { usd_per_mwh: 40.0 });
        assert!(obs.is_valid_at(t(3)));
        assert!(!obs.is_valid_at(t(4)));
        assert_eq!(check_observation(&obs, t(4)), Err(Rejection::Expired));
        let w = Observation::new(
            "n",
            "s",
            t(3),
            Reading::Weather {
                temp_c: 1.0,
                rh_pct: None,
            },
        );
        assert!(w.is_valid_at(t(5)));
        assert!(!w.is_valid_at(t(6)));
    }
}
