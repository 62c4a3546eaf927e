//! Open-Meteo forecast API (`/v1/forecast`), JSON.
//!
//! Request: `?latitude=..&longitude=..&current=temperature_2m,relative_humidity_2m,dew_point_2m
//! &hourly=temperature_2m,relative_humidity_2m,dew_point_2m&timezone=GMT&forecast_days=3`.
//! Answer: `current` {time, temperature_2m, ...} and `hourly` {time[], temperature_2m[], ...},
//! times in local time without offset (`utc_offset_seconds` says which) or unix seconds with
//! `timeformat=unixtime`; units in `current_units`/`hourly_units` (`°C` or `°F`). An error is
//! `{"error": true, "reason": "..."}` with HTTP 400.

use super::{
    json_number, parse_json, short, to_celsius, weather_reading, Defect, ParseError, Parsed,
    RecordError, Sequence,
};
use crate::domain::signal::Observation;
use crate::domain::time::Hour;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;

/// The query string for one location (values rounded to what the model grid resolves).
pub fn query(lat: f64, lon: f64, forecast_days: u32) -> String {
    const VARS: &str = "temperature_2m,relative_humidity_2m,dew_point_2m";
    format!(
        "latitude={lat:.2}&longitude={lon:.2}&current={VARS}&hourly={VARS}&timezone=GMT&forecast_days={forecast_days}"
    )
}

fn time_of(v: &Value, offset: Duration, label: &str) -> Result<DateTime<Utc>, Defect> {
    match v {
        Value::Null => Err(Defect::Null {
            field: label.to_string(),
        }),
        Value::Number(n) => n
            .as_i64()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or_else(|| Defect::Malformed(format!("`{label}`: {n} is not a unix time"))),
        Value::String(s) => ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .and_then(|n| n.and_utc().checked_sub_signed(offset))
            .ok_or_else(|| Defect::Malformed(format!("`{label}`: {s:?} is not an ISO 8601 time"))),
        other => Err(Defect::Malformed(format!(
            "`{label}`: {} is not a time",
            short(other)
        ))),
    }
}

fn unit_of(doc: &Value, block: &str, var: &str) -> String {
    doc.get(format!("{block}_units"))
        .and_then(|u| u.get(var))
        .and_then(Value::as_str)
        .unwrap_or("°C")
        .to_string()
}

/// One record's temperature, RH and dew point, wherever they sit (`current` or one hourly
/// index), checked.
fn record(
    get: impl Fn(&str) -> Result<f64, Defect>,
    temp_unit: &str,
    dew_unit: &str,
) -> Result<crate::domain::signal::Reading, Defect> {
    let temp_c = to_celsius(get("temperature_2m")?, temp_unit)?;
    let optional = |var: &str| match get(var) {
        Ok(x) => Ok(Some(x)),
        Err(Defect::Null { .. } | Defect::MissingField { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    let rh = optional("relative_humidity_2m")?;
    let dew = optional("dew_point_2m")?
        .map(|d| to_celsius(d, dew_unit))
        .transpose()?;
    weather_reading(temp_c, rh, dew)
}

/// Parses a forecast answer: `current` becomes an observation, `hourly` one forecast issued
/// at `issued_at`.
pub fn parse(
    bytes: &[u8],
    node_id: &str,
    source: &str,
    issued_at: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let doc = parse_json(bytes)?;
    if !doc.is_object() {
        return Err(ParseError::Shape(format!(
            "expected a JSON object, got {}",
            short(&doc)
        )));
    }
    if doc.get("error").and_then(Value::as_bool) == Some(true) {
        let reason = doc
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(ParseError::Api(reason.to_string()));
    }
    let offset = Duration::seconds(
        doc.get("utc_offset_seconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .clamp(-86_400, 86_400),
    );
    let current = doc.get("current").filter(|v| !v.is_null());
    let hourly = doc.get("hourly").filter(|v| !v.is_null());
    if current.is_none() && hourly.is_none() {
        return Err(ParseError::Missing("current or hourly".into()));
    }
    let mut out = Parsed::default();

    if let Some(cur) = current {
        let tu = unit_of(&doc, "current", "temperature_2m");
        let du = unit_of(&doc, "current", "dew_point_2m");
        let at = cur
            .get("time")
            .ok_or_else(|| Defect::MissingField {
                field: "current.time".into(),
            })
            .and_then(|t| time_of(t, offset, "current.time"));
        let result = at.clone().and_then(|ts| {
            record(
                |var| json_number(cur, var, &format!("current.{var}")),
                &tu,
                &du,
            )
            .map(|r| (ts, r))
        });
        match result {
            Ok((ts, reading)) => out
                .observations
                .push(Observation::new(node_id, source, ts, reading)),
            Err(defect) => out.rejected.push(RecordError {
                record: "current".into(),
                at: at.ok(),
                defect,
            }),
        }
    }

    if let Some(h) = hourly {
        let times = h
            .get("time")
            .ok_or_else(|| ParseError::Missing("hourly.time".into()))?
            .as_array()
            .ok_or_else(|| ParseError::Shape("`hourly.time` is not an array".into()))?;
        let column = |var: &str| -> Result<Option<&Vec<Value>>, ParseError> {
            match h.get(var) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(a)) => Ok(Some(a)),
                Some(_) => Err(ParseError::Shape(format!("`hourly.{var}` is not an array"))),
            }
        };
        let temps = column("temperature_2m")?
            .ok_or_else(|| ParseError::Missing("hourly.temperature_2m".into()))?;
        let rhs = column("relative_humidity_2m")?;
        let dews = column("dew_point_2m")?;
        let tu = unit_of(&doc, "hourly", "temperature_2m");
        let du = unit_of(&doc, "hourly", "dew_point_2m");
        let mut seq = Sequence::default();
        let mut points = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let at = time_of(t, offset, "hourly.time");
            let get = |var: &str| -> Result<f64, Defect> {
                let col = match var {
                    "temperature_2m" => Some(temps),
                    "relative_humidity_2m" => rhs,
                    _ => dews,
                };
                let label = format!("hourly.{var}");
                match col {
                    None => Err(Defect::MissingField { field: label }),
                    Some(c) => match c.get(i) {
                        None => Err(Defect::MissingField {
                            field: format!("{label}[{i}]"),
                        }),
                        Some(v) => super::value_number(v, &label),
                    },
                }
            };
            let name = || format!("hourly[{i}]");
            if let Some((ts, r)) = seq.record(&mut out, name, at, |_| record(get, &tu, &du)) {
                points.push((Hour::containing(ts), r));
            }
        }
        out.add_weather_forecast(node_id, source, issued_at, points);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::signal::Reading;
    use chrono::TimeZone;

    fn issued() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 3, 11, 0, 0).unwrap()
    }

    /// Written after the documented format, with a local offset like a `timezone=` request.
    const GOOD: &str = r#"{"latitude":52.27,"longitude":6.87,"utc_offset_seconds":7200,
      "current_units":{"time":"iso8601","temperature_2m":"°C","relative_humidity_2m":"%","dew_point_2m":"°C"},
      "current":{"time":"2026-10-03T12:30","interval":900,"temperature_2m":17.7,"relative_humidity_2m":66,"dew_point_2m":11.3},
      "hourly_units":{"time":"iso8601","temperature_2m":"°C","relative_humidity_2m":"%","dew_point_2m":"°C"},
      "hourly":{"time":["2026-10-03T00:00","2026-10-03T01:00","2026-10-03T02:00"],
                "temperature_2m":[11.8,11.2,11.0],"relative_humidity_2m":[87,90,92],"dew_point_2m":[9.7,9.6,9.7]}}"#;

    #[test]
    fn current_and_hourly_in_utc() {
        let p = parse(GOOD.as_bytes(), "n1", "open-meteo", issued()).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let o = &p.observations[0];
        assert_eq!(
            o.source_ts,
            Utc.with_ymd_and_hms(2026, 10, 3, 10, 30, 0).unwrap()
        );
        assert_eq!(
            o.reading,
            Reading::Weather {
                temp_c: 17.7,
                rh_pct: Some(66.0)
            }
        );
        let f = &p.forecasts[0];
        assert_eq!(f.issued_at, issued());
        assert_eq!(f.points.len(), 3);
        assert_eq!(
            f.points[0].0,
            Hour::containing(Utc.with_ymd_and_hms(2026, 10, 2, 22, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_hours_are_rejected_one_by_one() {
        let doc = r#"{"hourly_units":{"temperature_2m":"°F"},
          "hourly":{"time":["2026-01-01T00:00","2026-01-01T01:00","2026-01-01T01:00","2026-01-01T00:30",
                            "2026-01-01T03:00","2026-01-01T04:00","garbage","2026-01-01T06:00","2026-01-01T07:00"],
                    "temperature_2m":[50,null,51,52,-224.8,53,54,"NaN"],
                    "relative_humidity_2m":[40,40,40,40,40,140,40,40,null]}}"#;
        let p = parse(doc.as_bytes(), "n1", "om", issued()).unwrap();
        let got: Vec<_> = p
            .rejected
            .iter()
            .map(|r| (r.record.as_str(), r.defect.reason()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("hourly[1]", "null"),
                ("hourly[3]", "out_of_order"),
                ("hourly[4]", "out_of_range"),
                ("hourly[5]", "out_of_range"),
                ("hourly[6]", "malformed"),
                ("hourly[7]", "non_finite"),
                ("hourly[8]", "missing_field"),
            ]
        );
        // 50 F = 10 C; the repeated 01:00 came after a null one, so it is the first valid 01:00.
        let pts = &p.forecasts[0].points;
        assert_eq!(pts.len(), 2);
        assert!(
            matches!(pts[0].1, Reading::Weather { temp_c, rh_pct: Some(rh) } if (temp_c - 10.0).abs() < 1e-9 && rh == 40.0)
        );
        let doc =
            r#"{"hourly":{"time":["2026-01-01T00:00","2026-01-01T00:00"],"temperature_2m":[1,2]}}"#;
        let p = parse(doc.as_bytes(), "n1", "om", issued()).unwrap();
        assert_eq!(p.rejected[0].defect, Defect::RepeatedTimestamp);
    }

    #[test]
    fn rh_falls_back_to_the_dew_point() {
        let doc = r#"{"current":{"time":1700000000,"temperature_2m":22.8,"relative_humidity_2m":null,"dew_point_2m":18.3}}"#;
        let p = parse(doc.as_bytes(), "n1", "om", issued()).unwrap();
        match p.observations[0].reading {
            Reading::Weather {
                rh_pct: Some(rh), ..
            } => assert!((rh - 75.77).abs() < 0.05),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.observations[0].source_ts.timestamp(), 1_700_000_000);
    }

    #[test]
    fn whole_document_errors_are_named() {
        let e = parse(
            br#"{"error":true,"reason":"Latitude must be in range of -90 to 90"}"#,
            "n",
            "om",
            issued(),
        )
        .unwrap_err();
        assert!(matches!(e, ParseError::Api(ref r) if r.contains("Latitude")));
        assert!(matches!(
            parse(b"<html>", "n", "om", issued()).unwrap_err(),
            ParseError::Syntax { .. }
        ));
        assert_eq!(
            parse(b"{}", "n", "om", issued()).unwrap_err(),
            ParseError::Missing("current or hourly".into())
        );
        assert_eq!(
            parse(br#"{"hourly":{"time":[]}}"#, "n", "om", issued()).unwrap_err(),
            ParseError::Missing("hourly.temperature_2m".into())
        );
        assert!(parse(
            br#"{"hourly":{"time":3,"temperature_2m":[]}}"#,
            "n",
            "om",
            issued()
        )
        .is_err());
        let p = parse(br#"{"current":{"temperature_2m":3}}"#, "n", "om", issued()).unwrap();
        assert_eq!(p.rejected[0].defect.reason(), "missing_field");
    }

    #[test]
    fn query_rounds_and_names_variables() {
        let q = query(52.27612, 6.873, 3);
        assert!(q.starts_with("latitude=52.28&longitude=6.87&current=temperature_2m"));
        assert!(q.contains("timezone=GMT"));
    }
}
