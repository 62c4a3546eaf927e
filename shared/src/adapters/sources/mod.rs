//! Real weather and energy-price sources: pure parsers of each provider's documented format
//! and, with the `http` feature, the HTTP sources that fetch them.
//!
//! A parser never panics: a document it cannot read at all is a [`ParseError`]; inside a
//! readable document every record is either used or rejected on its own with a named
//! [`Defect`], so one bad record never costs the rest.

pub mod energy_charts;
#[cfg(feature = "http")]
pub mod http;
pub mod nws;
pub mod nyiso;
pub mod open_meteo;

use crate::domain::pricing::rh_from_dew_point;
use crate::domain::signal::{Forecast, Observation, Reading, Rejection};
use crate::domain::time::Hour;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Largest response body a parser reads (a week of hourly data is a few tens of kB).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Why one record of a readable document was not used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Defect {
    #[error("`{field}` is not a finite number")]
    NonFinite { field: &'static str },
    #[error("`{field}` = {value} is physically impossible")]
    OutOfRange { field: &'static str, value: f64 },
    #[error("timestamp repeated within the document")]
    RepeatedTimestamp,
    #[error("timestamp earlier than a record before it")]
    OutOfOrder,
    #[error("`{field}` is missing")]
    MissingField { field: String },
    #[error("`{field}` is null")]
    Null { field: String },
    #[error("{0}")]
    Malformed(String),
}

impl Defect {
    /// A short, stable name for counting by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Defect::NonFinite { .. } => "non_finite",
            Defect::OutOfRange { .. } => "out_of_range",
            Defect::RepeatedTimestamp => "repeated_timestamp",
            Defect::OutOfOrder => "out_of_order",
            Defect::MissingField { .. } => "missing_field",
            Defect::Null { .. } => "null",
            Defect::Malformed(_) => "malformed",
        }
    }

    /// The signal-level rejection, for reports that count by [`Rejection::reason`].
    pub fn to_rejection(&self) -> Rejection {
        match self {
            Defect::NonFinite { field } => Rejection::NonFinite { field },
            Defect::OutOfRange { field, value } => Rejection::OutOfRange {
                field,
                value: *value,
            },
            Defect::RepeatedTimestamp => Rejection::Duplicate,
            Defect::OutOfOrder => Rejection::OutOfOrder,
            other => Rejection::Malformed(other.to_string()),
        }
    }
}

impl From<Rejection> for Defect {
    fn from(r: Rejection) -> Defect {
        match r {
            Rejection::NonFinite { field } => Defect::NonFinite { field },
            Rejection::OutOfRange { field, value } => Defect::OutOfRange { field, value },
            Rejection::Duplicate => Defect::RepeatedTimestamp,
            Rejection::OutOfOrder => Defect::OutOfOrder,
            other => Defect::Malformed(other.to_string()),
        }
    }
}

/// One rejected record: where it was in the document, its timestamp when readable, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// e.g. `hourly[3]`, `periods[0]`, `line 7`.
    pub record: String,
    pub at: Option<DateTime<Utc>>,
    pub defect: Defect,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.record, self.defect)
    }
}

/// A document that could not be read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the provider answered with an error: {0}")]
    Api(String),
    #[error("not valid {format}: {detail}")]
    Syntax {
        format: &'static str,
        detail: String,
    },
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("{0}")]
    Shape(String),
    #[error("body of {0} bytes is over the limit of {MAX_BODY_BYTES}")]
    TooLarge(usize),
}

/// What a parser made of a readable document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub observations: Vec<Observation>,
    pub forecasts: Vec<Forecast>,
    pub rejected: Vec<RecordError>,
}

impl Parsed {
    /// Rejections counted by reason.
    pub fn reasons(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.rejected {
            *m.entry(r.defect.reason()).or_default() += 1;
        }
        m
    }

    /// Forecast points over all forecasts.
    pub fn forecast_points(&self) -> usize {
        self.forecasts.iter().map(|f| f.points.len()).sum()
    }

    /// Keeps the hourly points of one weather forecast, if there are any.
    pub(crate) fn add_weather_forecast(
        &mut self,
        node_id: &str,
        source: &str,
        issued_at: DateTime<Utc>,
        points: Vec<(Hour, Reading)>,
    ) {
        if !points.is_empty() {
            self.forecasts.push(Forecast {
                node_id: node_id.to_string(),
                kind: crate::domain::signal::SignalKind::Weather,
                issued_at,
                points,
                source: source.to_string(),
            });
        }
    }
}

/// Rejects repeated and out-of-order timestamps within one series.
#[derive(Debug, Default)]
pub struct Sequence {
    seen: HashSet<DateTime<Utc>>,
    latest: Option<DateTime<Utc>>,
}

impl Sequence {
    /// Records `ts` if it is new and not earlier than the latest so far.
    pub fn admit(&mut self, ts: DateTime<Utc>) -> Result<(), Defect> {
        if self.seen.contains(&ts) {
            return Err(Defect::RepeatedTimestamp);
        }
        if self.latest.is_some_and(|l| ts < l) {
            return Err(Defect::OutOfOrder);
        }
        self.seen.insert(ts);
        self.latest = Some(ts);
        Ok(())
    }

    /// One record of the series: its timestamp (or why it has none) and its reading, taken
    /// in time order. A record that fails is added to `out.rejected`, named by `name`.
    pub(crate) fn record(
        &mut self,
        out: &mut Parsed,
        name: impl FnOnce() -> String,
        at: Result<DateTime<Utc>, Defect>,
        reading: impl FnOnce(DateTime<Utc>) -> Result<Reading, Defect>,
    ) -> Option<(DateTime<Utc>, Reading)> {
        let result = at
            .clone()
            .and_then(|ts| reading(ts).map(|r| (ts, r)))
            .and_then(|(ts, r)| self.admit(ts).map(|()| (ts, r)));
        match result {
            Ok(rec) => Some(rec),
            Err(defect) => {
                out.rejected.push(RecordError {
                    record: name(),
                    at: at.ok(),
                    defect,
                });
                None
            }
        }
    }
}

/// A JSON number at `v[key]`, with missing and null told apart.
pub(crate) fn json_number(obj: &Value, key: &str, label: &str) -> Result<f64, Defect> {
    match obj.get(key) {
        None => Err(Defect::MissingField {
            field: label.to_string(),
        }),
        Some(v) => value_number(v, label),
    }
}

/// A JSON value that should be a number (or a numeric string such as "NaN").
pub(crate) fn value_number(v: &Value, label: &str) -> Result<f64, Defect> {
    match v {
        Value::Null => Err(Defect::Null {
            field: label.to_string(),
        }),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| Defect::Malformed(format!("`{label}`: {n} is not a number"))),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(x) if !x.is_finite() => Err(Defect::NonFinite {
                field: static_label(label),
            }),
            Ok(x) => Ok(x),
            Err(_) => Err(Defect::Malformed(format!(
                "`{label}`: {s:?} is not a number"
            ))),
        },
        other => Err(Defect::Malformed(format!(
            "`{label}`: {} is not a number",
            short(other)
        ))),
    }
}

/// Field names of readings, as the domain's checks name them.
fn static_label(label: &str) -> &'static str {
    if label.contains("humid") || label.contains("rh") {
        "rh_pct"
    } else if label.contains("price") || label.contains("lbmp") || label.contains("LBMP") {
        "usd_per_mwh"
    } else {
        "temp_c"
    }
}

/// At most 60 characters of a JSON value, for error messages.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 60 {
        s
    } else {
        let cut = (0..=60).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    }
}

pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ParseError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| ParseError::Syntax {
        format: "JSON",
        detail: e.to_string(),
    })
}

/// A weather reading from temperature, RH and dew point as a source gave them (deg C, %):
/// RH is derived from the dew point when the source gave none, and a reading that fails the
/// physical checks is rejected naming the field.
pub fn weather_reading(
    temp_c: f64,
    rh_pct: Option<f64>,
    dew_point_c: Option<f64>,
) -> Result<Reading, Defect> {
    let rh_pct = match (rh_pct, dew_point_c) {
        (Some(rh), _) => Some(rh),
        (None, Some(td)) if td.is_finite() && temp_c.is_finite() && td <= temp_c + 0.5 => {
            Some(rh_from_dew_point(temp_c, td).min(100.0))
        }
        _ => None,
    };
    let r = Reading::Weather { temp_c, rh_pct };
    r.check()?;
    Ok(r)
}

/// A price reading in USD/MWh, checked.
pub fn price_reading(usd_per_mwh: f64) -> Result<Reading, Defect> {
    let r = Reading::Price { usd_per_mwh };
    r.check()?;
    Ok(r)
}

/// Temperature in deg C from a value and a unit code (`wmoUnit:degC`, `wmoUnit:degF`, `F`,
/// `C`, `K`, ...).
pub fn to_celsius(value: f64, unit: &str) -> Result<f64, Defect> {
    let u = unit.rsplit(':').next().unwrap_or(unit).trim();
    match u {
        "degC" | "C" | "Cel" | "°C" | "celsius" => Ok(value),
        "degF" | "F" | "°F" | "fahrenheit" => Ok(fahrenheit_to_celsius(value)),
        "K" | "kelvin" => Ok(value - 273.15),
        other => Err(Defect::Malformed(format!(
            "unknown temperature unit {other:?}"
        ))),
    }
}

pub fn fahrenheit_to_celsius(f: f64) -> f64 {
    (f - 32.0) * 5.0 / 9.0
}

/// Checked price records (interval start, reading) in time order, split the way the pipeline
/// uses them: intervals that have started by `now` become observations (each valid until its
/// interval ends, an hour at most), later ones one forecast of hourly means issued at `now`'s
/// hour.
pub fn split_prices(
    records: &[(DateTime<Utc>, Reading)],
    now: DateTime<Utc>,
    node_id: &str,
    source: &str,
) -> (Vec<Observation>, Option<Forecast>) {
    let mut observations = Vec::new();
    let mut hours: BTreeMap<Hour, (f64, usize)> = BTreeMap::new();
    for (i, (ts, reading)) in records.iter().enumerate() {
        let Reading::Price { usd_per_mwh } = *reading else {
            continue;
        };
        if *ts <= now {
            let mut obs = Observation::new(node_id, source, *ts, *reading);
            let next = records.get(i + 1).map(|(t, _)| *t);
            if let Some(next) = next.filter(|n| *n > *ts && *n < obs.valid_until) {
                obs.valid_until = next;
            }
            observations.push(obs);
        } else {
            let e = hours.entry(Hour::containing(*ts)).or_default();
            e.0 += usd_per_mwh;
            e.1 += 1;
        }
    }
    let points: Vec<(Hour, Reading)> = hours
        .into_iter()
        .map(|(h, (sum, n))| {
            (
                h,
                Reading::Price {
                    usd_per_mwh: sum / n as f64,
                },
            )
        })
        .collect();
    let forecast = (!points.is_empty()).then(|| Forecast {
        node_id: node_id.to_string(),
        kind: crate::domain::signal::SignalKind::Price,
        issued_at: Hour::containing(now).start(),
        points,
        source: source.to_string(),
    });
    (observations, forecast)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sequence_names_repeats_and_reversals() {
        let t = |h| Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap();
        let mut s = Sequence::default();
        assert!(s.admit(t(1)).is_ok());
        assert!(s.admit(t(3)).is_ok());
        assert_eq!(s.admit(t(3)), Err(Defect::RepeatedTimestamp));
        assert_eq!(s.admit(t(1)), Err(Defect::RepeatedTimestamp));
        assert_eq!(s.admit(t(2)), Err(Defect::OutOfOrder));
        assert!(s.admit(t(4)).is_ok());
    }

    #[test]
    fn readings_are_checked_and_rh_comes_from_dew_point() {
        let r = weather_reading(22.8, None, Some(18.3)).unwrap();
        match r {
            Reading::Weather {
                rh_pct: Some(rh), ..
            } => assert!((rh - 75.77).abs() < 0.05, "{rh}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            weather_reading(-142.7, None, None).unwrap_err().reason(),
            "out_of_range"
        );
        assert_eq!(
            weather_reading(20.0, Some(140.0), None).unwrap_err(),
            Defect::OutOfRange {
                field: "rh_pct",
                value: 140.0
            }
        );
        assert_eq!(price_reading(f64::NAN).unwrap_err().reason(), "non_finite");
    }

    #[test]
    fn units_convert_and_unknown_units_are_named() {
        assert!((to_celsius(78.0, "F").unwrap() - 25.555).abs() < 0.01);
        assert!((to_celsius(-224.8, "wmoUnit:degF").unwrap() - -142.67).abs() < 0.01);
        assert_eq!(to_celsius(5.0, "wmoUnit:degC").unwrap(), 5.0);
        assert!((to_celsius(300.0, "wmoUnit:K").unwrap() - 26.85).abs() < 1e-9);
        assert!(to_celsius(1.0, "wmoUnit:furlong")
            .unwrap_err()
            .to_string()
            .contains("furlong"));
    }

    #[test]
    fn json_numbers_tell_missing_null_and_garbage_apart() {
        let v: Value = serde_json::json!({"a": 1.5, "b": null, "c": "x", "d": "NaN"});
        assert_eq!(json_number(&v, "a", "a").unwrap(), 1.5);
        assert_eq!(json_number(&v, "b", "b").unwrap_err().reason(), "null");
        assert_eq!(
            json_number(&v, "z", "z").unwrap_err().reason(),
            "missing_field"
        );
        assert_eq!(json_number(&v, "c", "c").unwrap_err().reason(), "malformed");
        assert_eq!(
            json_number(&v, "d", "temp").unwrap_err().reason(),
            "non_finite"
        );
    }

    #[test]
    fn prices_split_into_observations_and_hourly_forecast_means() {
        let t = |h, m| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
        let p = |x| Reading::Price { usd_per_mwh: x };
        let recs = vec![
            (t(10, 0), p(10.0)),
            (t(10, 15), p(20.0)),
            (t(10, 30), p(30.0)),
            (t(11, 0), p(40.0)),
            (t(11, 30), p(60.0)),
            (t(12, 0), p(70.0)),
        ];
        let (obs, fc) = split_prices(&recs, t(10, 20), "n", "s");
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[1].source_ts, t(10, 15));
        assert_eq!(
            obs[1].valid_until,
            t(10, 30),
            "a 15-minute price ends with its interval"
        );
        let fc = fc.unwrap();
        assert_eq!(fc.issued_at, t(10, 0));
        let pts: Vec<_> = fc.points.iter().map(|(h, r)| (h.start(), *r)).collect();
        assert_eq!(
            pts,
            vec![
                (t(10, 0), p(30.0)),
                (t(11, 0), p(50.0)),
                (t(12, 0), p(70.0))
            ]
        );
        let (obs, _) = split_prices(&recs[5..], t(13, 0), "n", "s");
        assert_eq!(obs[0].valid_until, t(13, 0), "the last one keeps an hour");
    }

    #[test]
    fn defects_map_to_signal_rejections() {
        assert_eq!(
            Defect::RepeatedTimestamp.to_rejection(),
            Rejection::Duplicate
        );
        assert_eq!(Defect::OutOfOrder.to_rejection(), Rejection::OutOfOrder);
        let r = Defect::Null {
            field: "temperature".into(),
        }
        .to_rejection();
        assert_eq!(r.reason(), "malformed");
        assert!(r.to_string().contains("temperature"));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    /// Every parser on the same input: none may panic, and whatever one keeps passes the
    /// physical checks.
    fn all_parsers(bytes: &[u8]) -> Result<(), TestCaseError> {
        let results = [
            open_meteo::parse(bytes, "n", "s", now()),
            nws::parse_forecast_hourly(bytes, "n", "s"),
            nws::parse_observations(bytes, "n", "s"),
            energy_charts::parse(bytes, "n", "s", 1.1, now()),
            nyiso::parse(bytes, "N.Y.C.", "n", "s", now()),
        ];
        for p in results.into_iter().flatten() {
            for o in &p.observations {
                prop_assert!(o.reading.check().is_ok());
            }
            for f in &p.forecasts {
                for (_, r) in &f.points {
                    prop_assert!(r.check().is_ok());
                }
            }
        }
        let _ = nws::parse_point(bytes);
        let _ = nws::parse_stations(bytes);
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = crate::adapters::station_log::parse(text);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            all_parsers(&bytes)?;
        }

        /// Structured noise reaches deeper than random bytes: JSON documents with the right
        /// keys and values of any type.
        #[test]
        fn right_keys_with_any_values_never_panic(
            v in prop::collection::vec(prop_oneof![
                Just("null".to_string()), Just("\"NAN\"".to_string()), Just("[]".to_string()),
                Just("{}".to_string()), any::<f64>().prop_map(|x| format!("{x:?}")),
                any::<i64>().prop_map(|x| x.to_string()), "\"[0-9:/ T-]{0,20}\"",
            ], 8)
        ) {
            let doc = format!(
                r#"{{"current":{{"time":{0},"temperature_2m":{1}}},"hourly":{{"time":[{0},{2}],"temperature_2m":[{1},{3}],"relative_humidity_2m":{4}}},
                   "unix_seconds":[{0},{5}],"price":[{6},{7}],"unit":{2},
                   "properties":{{"updateTime":{0},"timestamp":{0},"temperature":{{"unitCode":{2},"value":{1}}},
                   "periods":[{{"startTime":{0},"temperature":{1},"temperatureUnit":{2},"dewpoint":{3}}}]}}}}"#,
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
            );
            all_parsers(doc.as_bytes())?;
            let csv = format!("\"Time Stamp\",\"Name\",\"LBMP ($/MWHr)\"\n{},N.Y.C.,{}\n", v[0], v[1]);
            all_parsers(csv.as_bytes())?;
        }
    }
}
