//! NYISO zonal LBMP, CSV, from the public MIS: day-ahead
//! (`/public/csv/damlbmp/{YYYYMMDD}damlbmp_zone.csv`, hourly) and real-time
//! (`/public/csv/realtime/{YYYYMMDD}realtime_zone.csv`, 5- or 15-minute).
//!
//! Header: `"Time Stamp","Name","PTID","LBMP ($/MWHr)","Marginal Cost Losses ($/MWHr)",
//! "Marginal Cost Congestion ($/MWHr)"`, sometimes with a `"Time Zone"` column (EST/EDT);
//! blank lines may precede it. Time stamps are `MM/DD/YYYY HH:MM[:SS]` in New York time and
//! taken as interval starts; without a Time Zone column, the repeated hour when daylight
//! saving ends is read as EDT (its second copy is then a repeated timestamp). Prices are USD.

use super::{split_prices, Defect, ParseError, Parsed, RecordError, Sequence, MAX_BODY_BYTES};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};

/// Which NYISO market a file is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Market {
    DayAhead,
    RealTime,
}

impl Market {
    /// Path of the file for one market day (New York date), under the MIS base URL.
    pub fn path(self, day: NaiveDate) -> String {
        let d = day.format("%Y%m%d");
        match self {
            Market::DayAhead => format!("/public/csv/damlbmp/{d}damlbmp_zone.csv"),
            Market::RealTime => format!("/public/csv/realtime/{d}realtime_zone.csv"),
        }
    }
}

/// Splits one CSV line into fields, honouring double quotes (`""` inside quotes is a quote).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The n-th given weekday of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// New York's UTC offset at a local time (US rules since 2007: daylight time from 02:00 on
/// the second Sunday of March to 02:00 on the first Sunday of November).
pub fn new_york_offset_hours(local: NaiveDateTime) -> i64 {
    let y = local.year();
    let start = nth_weekday(y, 3, Weekday::Sun, 2).and_then(|d| d.and_hms_opt(2, 0, 0));
    let end = nth_weekday(y, 11, Weekday::Sun, 1).and_then(|d| d.and_hms_opt(2, 0, 0));
    match (start, end) {
        // The repeated hour 01:00-02:00 in November counts as daylight time (first copy).
        (Some(s), Some(e)) if local >= s && local < e => -4,
        _ => -5,
    }
}

fn parse_stamp(s: &str, zone_abbr: Option<&str>) -> Result<DateTime<Utc>, Defect> {
    let s = s.trim();
    let local = ["%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(|| Defect::Malformed(format!("`Time Stamp`: {s:?} is not MM/DD/YYYY HH:MM")))?;
    let offset = match zone_abbr.map(str::trim) {
        Some("EST") => -5,
        Some("EDT") => -4,
        None | Some("") => new_york_offset_hours(local),
        Some(other) => {
            return Err(Defect::Malformed(format!(
                "`Time Zone`: {other:?} is not EST or EDT"
            )))
        }
    };
    Ok((local - Duration::hours(offset)).and_utc())
}

/// Parses one day file for one zone (`Name`, e.g. `N.Y.C.`, case-insensitive). Rows of other
/// zones are skipped; a zone the file does not list is an error naming the zones it has.
pub fn parse(
    bytes: &[u8],
    zone: &str,
    node_id: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::Syntax {
        format: "UTF-8 CSV",
        detail: e.to_string(),
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| ParseError::Missing("header line".into()))?;
    let header = split_csv_line(header);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let ts_col =
        col("Time Stamp").ok_or_else(|| ParseError::Missing("Time Stamp column".into()))?;
    let name_col = col("Name").ok_or_else(|| ParseError::Missing("Name column".into()))?;
    let price_col = header
        .iter()
        .position(|h| h.trim().to_ascii_uppercase().starts_with("LBMP"))
        .ok_or_else(|| ParseError::Missing("LBMP ($/MWHr) column".into()))?;
    let tz_col = col("Time Zone");
    let mut out = Parsed::default();
    let mut seq = Sequence::default();
    let mut records = Vec::new();
    let mut zones = std::collections::BTreeSet::new();
    for (i, line) in lines {
        let fields = split_csv_line(line);
        let record = format!("line {}", i + 1);
        let Some(name) = fields.get(name_col) else {
            out.rejected.push(RecordError {
                record,
                at: None,
                defect: Defect::MissingField {
                    field: "Name".into(),
                },
            });
            continue;
        };
        if !name.trim().eq_ignore_ascii_case(zone.trim()) {
            if zones.len() < 40 {
                zones.insert(name.trim().to_string());
            }
            continue;
        }
        let at = fields
            .get(ts_col)
            .ok_or_else(|| Defect::MissingField {
                field: "Time Stamp".into(),
            })
            .and_then(|s| parse_stamp(s, tz_col.and_then(|c| fields.get(c)).map(String::as_str)));
        let price = |_| {
            let raw = fields
                .get(price_col)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Defect::MissingField {
                    field: "LBMP ($/MWHr)".into(),
                })?;
            let v: f64 = raw.parse().map_err(|_| {
                Defect::Malformed(format!("`LBMP ($/MWHr)`: {raw:?} is not a number"))
            })?;
            super::price_reading(v)
        };
        records.extend(seq.record(&mut out, || record, at, price));
    }
    if records.is_empty() && out.rejected.is_empty() {
        return Err(ParseError::Shape(format!(
            "zone `{zone}` is not in the file (zones: {})",
            zones.into_iter().collect::<Vec<_>>().join(", ")
        )));
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

    const DAM: &str = "\n\"Time Stamp\",\"Name\",\"PTID\",\"LBMP ($/MWHr)\",\"Marginal Cost Losses ($/MWHr)\",\"Marginal Cost Congestion ($/MWHr)\"\n\
        \"06/01/2026 00:00\",\"N.Y.C.\",61761,31.50,1.20,-0.40\n\
        \"06/01/2026 00:00\",\"WEST\",61752,20.10,0.50,0.00\n\
        \"06/01/2026 01:00\",\"N.Y.C.\",61761,NaN,1.20,0.00\n\
        \"06/01/2026 02:00\",\"N.Y.C.\",61761,,1.20,0.00\n\
        \"06/01/2026 01:00\",\"N.Y.C.\",61761,29.00,1.20,0.00\n\
        \"06/01/2026 01:00\",\"N.Y.C.\",61761,29.00,1.20,0.00\n\
        \"06/01/2026 00:30\",\"N.Y.C.\",61761,29.00,1.20,0.00\n\
        \"06/01/2026 03:00\",\"N.Y.C.\",61761,-25000,1.20,0.00\n\
        \"13/01/2026 04:00\",\"N.Y.C.\",61761,40,1.20,0.00\n\
        \"06/01/2026 05:00\",\"N.Y.C.\",61761,45.25,1.20,0.00\n";

    #[test]
    fn zone_rows_in_utc_with_named_rejections() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 5, 10, 0).unwrap();
        let p = parse(DAM.as_bytes(), "n.y.c.", "ash1", "nyiso-dam", now).unwrap();
        let got: Vec<_> = p
            .rejected
            .iter()
            .map(|r| (r.record.as_str(), r.defect.reason()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("line 5", "non_finite"),
                ("line 6", "missing_field"),
                ("line 8", "repeated_timestamp"),
                ("line 9", "out_of_order"),
                ("line 10", "out_of_range"),
                ("line 11", "malformed"),
            ]
        );
        // EDT: 00:00 in New York is 04:00 UTC; 01:00 is 05:00 UTC, started by `now`.
        assert_eq!(p.observations.len(), 2);
        assert_eq!(
            p.observations[0].source_ts,
            Utc.with_ymd_and_hms(2026, 6, 1, 4, 0, 0).unwrap()
        );
        assert_eq!(
            p.observations[1].reading,
            Reading::Price { usd_per_mwh: 29.0 }
        );
        let f = &p.forecasts[0];
        assert_eq!(
            f.points[0].0.start(),
            Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap()
        );
    }

    #[test]
    fn an_unknown_zone_lists_the_known_ones() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let e = parse(DAM.as_bytes(), "LONGIL", "n", "s", now).unwrap_err();
        assert!(
            e.to_string().contains("LONGIL") && e.to_string().contains("WEST"),
            "{e}"
        );
        assert!(parse(b"", "WEST", "n", "s", now).is_err());
        assert!(parse(b"a,b\n1,2\n", "WEST", "n", "s", now).is_err());
        assert!(parse(&[0xff, 0xfe, 0x00], "WEST", "n", "s", now).is_err());
    }

    #[test]
    fn new_york_time_and_the_time_zone_column() {
        let local = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(new_york_offset_hours(local("2026-01-15 12:00")), -5);
        assert_eq!(new_york_offset_hours(local("2026-03-08 01:59")), -5);
        assert_eq!(new_york_offset_hours(local("2026-03-08 03:00")), -4);
        assert_eq!(new_york_offset_hours(local("2026-11-01 01:30")), -4);
        assert_eq!(new_york_offset_hours(local("2026-11-01 02:00")), -5);
        let a = parse_stamp("11/01/2026 01:30:00", Some("EST")).unwrap();
        let b = parse_stamp("11/01/2026 01:30:00", Some("EDT")).unwrap();
        assert_eq!((a - b).num_hours(), 1);
        assert!(parse_stamp("11/01/2026 01:30", Some("PST")).is_err());
        assert_eq!(
            split_csv_line(r#""a ""b""",1,"x,y""#),
            vec!["a \"b\"", "1", "x,y"]
        );
    }

    #[test]
    fn file_paths_per_market() {
        let d = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        assert_eq!(
            Market::DayAhead.path(d),
            "/public/csv/damlbmp/20260601damlbmp_zone.csv"
        );
        assert_eq!(
            Market::RealTime.path(d),
            "/public/csv/realtime/20260601realtime_zone.csv"
        );
    }
}
