//! Energy-Charts day-ahead prices (api.energy-charts.info `/price?bzn=DE-LU&start=..&end=..`),
//! JSON: `unix_seconds[]` (interval starts) beside `price[]` in `unit` (`EUR / MWh`), nulls
//! where no price is published. Intervals are hourly, or 15 minutes since the day-ahead market
//! moved to quarter hours. An unknown bidding zone is answered with 4xx and `{"detail": ...}`.

use super::{
    parse_json, short, split_prices, value_number, Defect, ParseError, Parsed, RecordError,
    Sequence,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Query for one bidding zone over [start, end).
pub fn query(zone: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    format!(
        "bzn={}&start={}&end={}",
        zone,
        start.format("%Y-%m-%dT%H:%MZ"),
        end.format("%Y-%m-%dT%H:%MZ")
    )
}

/// USD per unit of the document's price unit, given the EUR->USD rate.
fn usd_factor(unit: Option<&str>, eur_usd: f64) -> Result<f64, ParseError> {
    let Some(unit) = unit else {
        return Ok(eur_usd);
    };
    let u: String = unit
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match u.as_str() {
        "eur/mwh" | "€/mwh" => Ok(eur_usd),
        "usd/mwh" | "$/mwh" => Ok(1.0),
        _ => Err(ParseError::Shape(format!(
            "price unit {unit:?} is not EUR/MWh"
        ))),
    }
}

/// Parses a price answer; EUR/MWh becomes USD/MWh at `eur_usd`. Intervals started by `now`
/// become observations, later ones a forecast (see [`split_prices`]).
pub fn parse(
    bytes: &[u8],
    node_id: &str,
    source: &str,
    eur_usd: f64,
    now: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    if !(eur_usd.is_finite() && eur_usd > 0.0) {
        return Err(ParseError::Shape(format!(
            "EUR->USD rate {eur_usd} must be a positive number"
        )));
    }
    let doc = parse_json(bytes)?;
    if let Some(detail) = doc.get("detail") {
        return Err(ParseError::Api(
            detail
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| short(detail)),
        ));
    }
    let array = |key: &str| -> Result<&Vec<Value>, ParseError> {
        doc.get(key)
            .ok_or_else(|| ParseError::Missing(key.into()))?
            .as_array()
            .ok_or_else(|| ParseError::Shape(format!("`{key}` is not an array")))
    };
    let stamps = array("unix_seconds")?;
    let prices = array("price")?;
    let factor = usd_factor(doc.get("unit").and_then(Value::as_str), eur_usd)?;
    let mut out = Parsed::default();
    let mut seq = Sequence::default();
    let mut records = Vec::new();
    for (i, stamp) in stamps.iter().enumerate() {
        let at = value_number(stamp, "unix_seconds").and_then(|s| {
            if s.fract() != 0.0 {
                return Err(Defect::Malformed(format!(
                    "`unix_seconds`: {s} is not whole"
                )));
            }
            DateTime::from_timestamp(s as i64, 0)
                .ok_or_else(|| Defect::Malformed(format!("`unix_seconds`: {s} is out of range")))
        });
        let price = |_| {
            let eur = match prices.get(i) {
                None => Err(Defect::MissingField {
                    field: format!("price[{i}]"),
                }),
                Some(v) => value_number(v, "price"),
            }?;
            super::price_reading(eur * factor)
        };
        records.extend(seq.record(&mut out, || format!("[{i}]"), at, price));
    }
    for i in stamps.len()..prices.len() {
        out.rejected.push(RecordError {
            record: format!("[{i}]"),
            at: None,
            defect: Defect::MissingField {
                field: format!("unix_seconds[{i}]"),
            },
        });
    }
    let (observations, forecast) = split_prices(&records, now, node_id, source);
    out.observations = observations;
    out.forecasts.extend(forecast);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::signal::Reading;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, 0, 0).unwrap()
    }

    #[test]
    fn prices_convert_to_usd_and_split_at_now() {
        let s = t(0).timestamp();
        let doc = format!(
            r#"{{"license_info":"CC BY 4.0","unix_seconds":[{},{},{},{}],"price":[100.0,-5.5,80,90],"unit":"EUR / MWh","deprecated":false}}"#,
            s,
            s + 3600,
            s + 7200,
            s + 10800
        );
        let p = parse(doc.as_bytes(), "fra1", "energy-charts", 1.10, t(1)).unwrap();
        assert!(p.rejected.is_empty());
        assert_eq!(p.observations.len(), 2);
        assert_eq!(p.observations[1].source_ts, t(1));
        assert_eq!(
            p.observations[1].reading,
            Reading::Price {
                usd_per_mwh: -5.5 * 1.10
            }
        );
        let pts = &p.forecasts[0].points;
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].0.start(), t(2));
        assert!(
            matches!(pts[0].1, Reading::Price { usd_per_mwh } if (usd_per_mwh - 88.0).abs() < 1e-9)
        );
    }

    #[test]
    fn bad_intervals_are_rejected_one_by_one() {
        let s = t(0).timestamp();
        let doc = format!(
            r#"{{"unix_seconds":[{a},{b},{b},{a},{c},{d},"x",{e}],"price":[1,null,2,3,1e7,"NaN",4],"unit":"EUR/MWh"}}"#,
            a = s,
            b = s + 3600,
            c = s + 7200,
            d = s + 10800,
            e = s + 14400
        );
        let p = parse(doc.as_bytes(), "n", "ec", 1.0, t(0)).unwrap();
        let got: Vec<_> = p
            .rejected
            .iter()
            .map(|r| (r.record.as_str(), r.defect.reason()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("[1]", "null"),
                ("[3]", "repeated_timestamp"),
                ("[4]", "out_of_range"),
                ("[5]", "non_finite"),
                ("[6]", "malformed"),
                ("[7]", "missing_field"),
            ]
        );
        assert_eq!(p.observations.len() + p.forecast_points(), 2);
    }

    #[test]
    fn whole_document_errors_are_named() {
        let e = parse(
            br#"{"detail":"Bidding zone XX not found"}"#,
            "n",
            "ec",
            1.1,
            t(0),
        )
        .unwrap_err();
        assert!(matches!(e, ParseError::Api(ref d) if d.contains("XX")));
        assert_eq!(
            parse(br#"{"price":[]}"#, "n", "ec", 1.1, t(0)).unwrap_err(),
            ParseError::Missing("unix_seconds".into())
        );
        assert!(parse(
            br#"{"unix_seconds":[],"price":[],"unit":"EUR / kWh"}"#,
            "n",
            "ec",
            1.1,
            t(0)
        )
        .unwrap_err()
        .to_string()
        .contains("kWh"));
        assert!(parse(
            br#"{"unix_seconds":[],"price":[]}"#,
            "n",
            "ec",
            f64::NAN,
            t(0)
        )
        .is_err());
        assert!(parse(br#"{"unix_seconds":[1,2"#, "n", "ec", 1.1, t(0)).is_err());
    }

    #[test]
    fn query_names_zone_and_span() {
        assert_eq!(
            query("DE-LU", t(0), t(23)),
            "bzn=DE-LU&start=2026-06-01T00:00Z&end=2026-06-01T23:00Z"
        );
    }
}
