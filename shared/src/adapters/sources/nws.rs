//! US National Weather Service API (api.weather.gov), GeoJSON.
//!
//! Three documents: `/points/{lat},{lon}` names the grid cell and its `forecastHourly` and
//! `observationStations` URLs; the hourly forecast lists `periods` (startTime with offset,
//! `temperature` as a number with `temperatureUnit` or as `{unitCode, value}`,
//! `relativeHumidity` and `dewpoint` as `{unitCode, value}`); a station's latest observation
//! has `timestamp` and `{unitCode, value, qualityControl}` quantities whose value may be null.
//! The API needs a User-Agent header naming the caller.

use super::{
    parse_json, short, to_celsius, value_number, weather_reading, Defect, ParseError, Parsed,
    RecordError, Sequence,
};
use crate::domain::signal::{Observation, Reading};
use crate::domain::time::Hour;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// What `/points/{lat},{lon}` says about a location.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub grid_id: String,
    pub grid_x: i64,
    pub grid_y: i64,
    pub forecast_hourly: String,
    pub observation_stations: Option<String>,
}

fn properties(doc: &Value) -> Result<&Value, ParseError> {
    if let Some(detail) = doc.get("detail").and_then(Value::as_str) {
        if doc.get("properties").is_none() {
            // Problem documents: {"type": ..., "title": ..., "status": 404, "detail": ...}
            return Err(ParseError::Api(detail.to_string()));
        }
    }
    doc.get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| ParseError::Missing("properties".into()))
}

fn text<'a>(obj: &'a Value, key: &str, label: &str) -> Result<&'a str, ParseError> {
    obj.get(key)
        .ok_or_else(|| ParseError::Missing(label.into()))?
        .as_str()
        .ok_or_else(|| ParseError::Shape(format!("`{label}` is not a string")))
}

pub fn parse_point(bytes: &[u8]) -> Result<Point, ParseError> {
    let doc = parse_json(bytes)?;
    let p = properties(&doc)?;
    let int = |key: &str| {
        p.get(key)
            .ok_or_else(|| ParseError::Missing(format!("properties.{key}")))?
            .as_i64()
            .ok_or_else(|| ParseError::Shape(format!("`properties.{key}` is not an integer")))
    };
    Ok(Point {
        grid_id: text(p, "gridId", "properties.gridId")?.to_string(),
        grid_x: int("gridX")?,
        grid_y: int("gridY")?,
        forecast_hourly: text(p, "forecastHourly", "properties.forecastHourly")?.to_string(),
        observation_stations: p
            .get("observationStations")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Station identifiers of a `/gridpoints/.../stations` or `/stations` collection, nearest first
/// (the API's order).
pub fn parse_stations(bytes: &[u8]) -> Result<Vec<String>, ParseError> {
    let doc = parse_json(bytes)?;
    let features = doc
        .get("features")
        .ok_or_else(|| ParseError::Missing("features".into()))?
        .as_array()
        .ok_or_else(|| ParseError::Shape("`features` is not an array".into()))?;
    Ok(features
        .iter()
        .filter_map(|f| {
            f.get("properties")?
                .get("stationIdentifier")?
                .as_str()
                .map(str::to_string)
        })
        .collect())
}

fn timestamp(v: Option<&Value>, label: &str) -> Result<DateTime<Utc>, Defect> {
    match v {
        None => Err(Defect::MissingField {
            field: label.into(),
        }),
        Some(Value::Null) => Err(Defect::Null {
            field: label.into(),
        }),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| Defect::Malformed(format!("`{label}`: {s:?} is not RFC 3339"))),
        Some(other) => Err(Defect::Malformed(format!(
            "`{label}`: {} is not a time",
            short(other)
        ))),
    }
}

/// A `{unitCode, value}` quantity, or None when absent or null (optional quantities).
fn quantity(obj: &Value, key: &str) -> Result<Option<(f64, String)>, Defect> {
    let q = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(q) => q,
    };
    if !q.is_object() {
        return Err(Defect::Malformed(format!(
            "`{key}`: {} is not a quantity",
            short(q)
        )));
    }
    match q.get("value") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let x = value_number(v, key)?;
            let unit = q
                .get("unitCode")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Ok(Some((x, unit)))
        }
    }
}

/// Temperature of one record, which must be there.
fn temperature(obj: &Value, unit_key: Option<&str>) -> Result<f64, Defect> {
    match obj.get("temperature") {
        None => Err(Defect::MissingField {
            field: "temperature".into(),
        }),
        Some(Value::Null) => Err(Defect::Null {
            field: "temperature".into(),
        }),
        Some(Value::Number(_)) | Some(Value::String(_)) => {
            let v = value_number(&obj["temperature"], "temperature")?;
            let unit = unit_key
                .and_then(|k| obj.get(k))
                .and_then(Value::as_str)
                .ok_or_else(|| Defect::MissingField {
                    field: "temperatureUnit".into(),
                })?;
            to_celsius(v, unit)
        }
        Some(_) => match quantity(obj, "temperature")? {
            None => Err(Defect::Null {
                field: "temperature.value".into(),
            }),
            Some((v, unit)) => to_celsius(v, &unit),
        },
    }
}

fn percent(obj: &Value, key: &str) -> Result<Option<f64>, Defect> {
    quantity(obj, key).map(|q| q.map(|(v, _)| v))
}

fn dew_point(obj: &Value) -> Result<Option<f64>, Defect> {
    quantity(obj, "dewpoint")?
        .map(|(v, u)| to_celsius(v, &u))
        .transpose()
}

fn reading(obj: &Value, unit_key: Option<&str>) -> Result<Reading, Defect> {
    let t = temperature(obj, unit_key)?;
    weather_reading(t, percent(obj, "relativeHumidity")?, dew_point(obj)?)
}

/// Parses `/gridpoints/{wfo}/{x},{y}/forecast/hourly` into one forecast, issued at the
/// document's `updateTime` (else `generatedAt`).
pub fn parse_forecast_hourly(
    bytes: &[u8],
    node_id: &str,
    source: &str,
) -> Result<Parsed, ParseError> {
    let doc = parse_json(bytes)?;
    let p = properties(&doc)?;
    let issued_at = ["updateTime", "updated", "generatedAt"]
        .iter()
        .find_map(|k| timestamp(p.get(*k), k).ok())
        .ok_or_else(|| ParseError::Missing("properties.updateTime".into()))?;
    let periods = p
        .get("periods")
        .ok_or_else(|| ParseError::Missing("properties.periods".into()))?
        .as_array()
        .ok_or_else(|| ParseError::Shape("`properties.periods` is not an array".into()))?;
    let mut out = Parsed::default();
    let mut seq = Sequence::default();
    let mut points = Vec::new();
    for (i, period) in periods.iter().enumerate() {
        let at = timestamp(period.get("startTime"), "startTime");
        let name = || format!("periods[{i}]");
        let r = seq.record(&mut out, name, at, |_| {
            reading(period, Some("temperatureUnit"))
        });
        if let Some((ts, r)) = r {
            points.push((Hour::containing(ts), r));
        }
    }
    out.add_weather_forecast(node_id, source, issued_at, points);
    Ok(out)
}

/// Parses a station observation (`/stations/{id}/observations/latest`, one Feature) or a list
/// of them (`/stations/{id}/observations`, a FeatureCollection, newest first as the API sends
/// it) into observations. A null or missing temperature rejects that observation.
pub fn parse_observations(bytes: &[u8], node_id: &str, source: &str) -> Result<Parsed, ParseError> {
    let doc = parse_json(bytes)?;
    let mut records: Vec<(String, &Value)> = Vec::new();
    if let Some(features) = doc.get("features") {
        let features = features
            .as_array()
            .ok_or_else(|| ParseError::Shape("`features` is not an array".into()))?;
        // Oldest first, so the sequence check sees time move forward.
        for (i, f) in features.iter().enumerate().rev() {
            records.push((format!("features[{i}]"), f));
        }
    } else {
        properties(&doc)?;
        records.push(("observation".into(), &doc));
    }
    let mut out = Parsed::default();
    let mut seq = Sequence::default();
    for (label, feature) in records {
        let result = match feature.get("properties") {
            None | Some(Value::Null) => Err((
                Defect::MissingField {
                    field: "properties".into(),
                },
                None,
            )),
            Some(p) => {
                let at = timestamp(p.get("timestamp"), "timestamp");
                at.clone()
                    .and_then(|ts| reading(p, None).map(|r| (ts, r)))
                    .and_then(|(ts, r)| seq.admit(ts).map(|()| (ts, r)))
                    .map_err(|d| (d, at.ok()))
            }
        };
        match result {
            Ok((ts, r)) => out
                .observations
                .push(Observation::new(node_id, source, ts, r)),
            Err((defect, at)) => out.rejected.push(RecordError {
                record: label,
                at,
                defect,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const POINT: &str = r#"{"type":"Feature","properties":{"gridId":"LWX","gridX":90,"gridY":70,
        "forecastHourly":"https://api.weather.gov/gridpoints/LWX/90,70/forecast/hourly",
        "observationStations":"https://api.weather.gov/gridpoints/LWX/90,70/stations"}}"#;

    #[test]
    fn point_names_the_hourly_forecast() {
        let p = parse_point(POINT.as_bytes()).unwrap();
        assert_eq!((p.grid_id.as_str(), p.grid_x, p.grid_y), ("LWX", 90, 70));
        assert!(p.forecast_hourly.ends_with("/forecast/hourly"));
        let e = parse_point(
            br#"{"title":"Invalid Parameter","status":404,"detail":"Unable to provide data for requested point 60,10"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ParseError::Api(ref d) if d.contains("60,10")));
        assert_eq!(
            parse_point(br#"{"properties":{"gridId":"LWX","gridX":1,"gridY":2}}"#).unwrap_err(),
            ParseError::Missing("properties.forecastHourly".into())
        );
    }

    #[test]
    fn stations_in_api_order() {
        let doc = r#"{"features":[{"properties":{"stationIdentifier":"KIAD"}},{"properties":{}},
            {"properties":{"stationIdentifier":"KJYO"}}]}"#;
        assert_eq!(
            parse_stations(doc.as_bytes()).unwrap(),
            vec!["KIAD", "KJYO"]
        );
    }

    #[test]
    fn hourly_forecast_in_both_temperature_styles() {
        let doc = r#"{"properties":{"updateTime":"2026-06-01T10:16:24+00:00","periods":[
          {"startTime":"2026-06-01T08:00:00-04:00","temperature":77,"temperatureUnit":"F",
           "relativeHumidity":{"unitCode":"wmoUnit:percent","value":60},"dewpoint":{"unitCode":"wmoUnit:degC","value":18}},
          {"startTime":"2026-06-01T09:00:00-04:00","temperature":{"unitCode":"wmoUnit:degC","value":26.0},
           "relativeHumidity":{"unitCode":"wmoUnit:percent","value":null},"dewpoint":{"unitCode":"wmoUnit:degC","value":18}},
          {"startTime":"2026-06-01T09:00:00-04:00","temperature":78,"temperatureUnit":"F"},
          {"startTime":"2026-06-01T10:00:00-04:00","temperature":null,"temperatureUnit":"F"},
          {"startTime":"2026-06-01T11:00:00-04:00","temperature":78},
          {"startTime":"2026-06-01T12:00:00-04:00","temperature":400,"temperatureUnit":"F"},
          {"temperature":70,"temperatureUnit":"F"},
          {"startTime":"2026-06-01T07:00:00-04:00","temperature":70,"temperatureUnit":"F"}
        ]}}"#;
        let p = parse_forecast_hourly(doc.as_bytes(), "n", "nws").unwrap();
        let got: Vec<_> = p
            .rejected
            .iter()
            .map(|r| (r.record.as_str(), r.defect.reason()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("periods[2]", "repeated_timestamp"),
                ("periods[3]", "null"),
                ("periods[4]", "missing_field"),
                ("periods[5]", "out_of_range"),
                ("periods[6]", "missing_field"),
                ("periods[7]", "out_of_order"),
            ]
        );
        let f = &p.forecasts[0];
        assert_eq!(
            f.issued_at,
            Utc.with_ymd_and_hms(2026, 6, 1, 10, 16, 24).unwrap()
        );
        assert_eq!(
            f.points[0].0,
            Hour::containing(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap())
        );
        match f.points[0].1 {
            Reading::Weather {
                temp_c,
                rh_pct: Some(rh),
            } => {
                assert!((temp_c - 25.0).abs() < 1e-9);
                assert_eq!(rh, 60.0);
            }
            other => panic!("{other:?}"),
        }
        // RH null: derived from the dew point (26 C, Td 18 C -> about 61 %).
        match f.points[1].1 {
            Reading::Weather {
                rh_pct: Some(rh), ..
            } => assert!((rh - 61.5).abs() < 1.0, "{rh}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn station_observations_with_nulls_and_missing_values() {
        let latest = r#"{"type":"Feature","properties":{"timestamp":"2026-03-02T23:53:00+00:00",
            "temperature":{"unitCode":"wmoUnit:degC","value":22.8,"qualityControl":"V"},
            "dewpoint":{"unitCode":"wmoUnit:degC","value":18.3,"qualityControl":"V"},
            "relativeHumidity":{"unitCode":"wmoUnit:percent","value":null,"qualityControl":"Z"}}}"#;
        let p = parse_observations(latest.as_bytes(), "n", "nws").unwrap();
        let o = &p.observations[0];
        assert_eq!(
            o.source_ts,
            Utc.with_ymd_and_hms(2026, 3, 2, 23, 53, 0).unwrap()
        );
        assert!(
            matches!(o.reading, Reading::Weather { temp_c, rh_pct: Some(rh) } if temp_c == 22.8 && (rh - 75.77).abs() < 0.05)
        );
        let null_temp = r#"{"properties":{"timestamp":"2026-03-02T23:53:00+00:00",
            "temperature":{"unitCode":"wmoUnit:degC","value":null,"qualityControl":"Z"}}}"#;
        let p = parse_observations(null_temp.as_bytes(), "n", "nws").unwrap();
        assert!(p.observations.is_empty());
        assert_eq!(p.rejected[0].defect.reason(), "null");
        let list = r#"{"type":"FeatureCollection","features":[
            {"properties":{"timestamp":"2026-03-02T23:53:00+00:00","temperature":{"unitCode":"wmoUnit:degC","value":20}}},
            {"properties":{"@id":"x"}},
            {"id":"no-properties"},
            {"properties":{"timestamp":"2026-03-02T22:53:00+00:00","temperature":{"unitCode":"wmoUnit:degF","value":68}}}]}"#;
        let p = parse_observations(list.as_bytes(), "n", "nws").unwrap();
        assert_eq!(p.observations.len(), 2);
        assert!(p.observations[0].source_ts < p.observations[1].source_ts);
        let reasons: Vec<_> = p.rejected.iter().map(|r| r.defect.reason()).collect();
        assert_eq!(reasons, vec!["missing_field", "missing_field"]);
        assert!(parse_observations(b"[1,2]", "n", "nws").is_err());
    }
}
