//! Replay of CSV files as a signal source.
//!
//! Weather: `timestamp,temp_c,rh_pct` (rh may be empty). Prices:
//! `timestamp,price_usd_per_mwh[,forecast_usd_per_mwh]`, or four columns
//! `timestamp,real_price,forecast_a,forecast_b` (recorded day-ahead series with two
//! forecasts, e.g. `dnn_ensemble_forecast,lear_ensemble_forecast`): the first forecast
//! column is the forecast, the second is checked as a number and otherwise ignored. Timestamps are RFC 3339;
//! `YYYY-MM-DD HH:MM[:SS]` is read as UTC. A header line is optional. Every row is either
//! parsed or rejected with its line number and reason; a bad row never stops the rest.

use crate::domain::node::Node;
use crate::domain::signal::{Forecast, Observation, Reading, Rejection, SignalKind};
use crate::domain::time::Hour;
use crate::ports::{Fetched, SignalSource, SourceError};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;

/// Longest CSV line read, in bytes.
pub const MAX_CSV_LINE: usize = 4096;

/// One parsed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub ts: DateTime<Utc>,
    pub reading: Reading,
    /// The forecast published for this timestamp, when the file has one.
    pub forecast: Option<Reading>,
}

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub line: usize,
    pub why: Rejection,
}

pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|n| n.and_utc())
}

fn number(field: &'static str, s: &str) -> Result<f64, Rejection> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| Rejection::Malformed(format!("`{field}`: {:?} is not a number", s.trim())))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Rejection::NonFinite { field })
    }
}

fn parse_row(
    kind: SignalKind,
    line: &str,
) -> Result<(DateTime<Utc>, Reading, Option<Reading>), Rejection> {
    if line.len() > MAX_CSV_LINE {
        return Err(Rejection::Malformed(format!(
            "line over {MAX_CSV_LINE} bytes"
        )));
    }
    let cols: Vec<&str> = line.split(',').collect();
    let ts = parse_timestamp(cols[0]).ok_or_else(|| {
        Rejection::Malformed(format!("`timestamp`: {:?} is not RFC 3339", cols[0].trim()))
    })?;
    let (reading, forecast) = match kind {
        SignalKind::Weather => {
            if !(2..=3).contains(&cols.len()) {
                return Err(Rejection::Malformed(format!(
                    "expected 2-3 columns, got {}",
                    cols.len()
                )));
            }
            let temp_c = number("temp_c", cols[1])?;
            let rh_pct = match cols.get(2).map(|s| s.trim()) {
                None | Some("") => None,
                Some(s) => Some(number("rh_pct", s)?),
            };
            (Reading::Weather { temp_c, rh_pct }, None)
        }
        SignalKind::Price => {
            if !(2..=4).contains(&cols.len()) {
                return Err(Rejection::Malformed(format!(
                    "expected 2-4 columns, got {}",
                    cols.len()
                )));
            }
            let price = number("price_usd_per_mwh", cols[1])?;
            let forecast = match cols.get(2).map(|s| s.trim()) {
                None | Some("") => None,
                Some(s) => Some(Reading::Price {
                    usd_per_mwh: number("forecast_usd_per_mwh", s)?,
                }),
            };
            if let Some(second) = cols.get(3).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                number("second_forecast_usd_per_mwh", second)?;
            }
            (Reading::Price { usd_per_mwh: price }, forecast)
        }
    };
    reading.check()?;
    if let Some(f) = &forecast {
        f.check()?;
    }
    Ok((ts, reading, forecast))
}

/// Parses a whole file's text. Values are checked here (non-finite, impossible); order and
/// duplicates are the store's business.
pub fn parse(kind: SignalKind, text: &str) -> (Vec<Row>, Vec<BadRow>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if rows.is_empty()
            && bad.is_empty()
            && trimmed.to_ascii_lowercase().starts_with("timestamp")
        {
            continue;
        }
        match parse_row(kind, trimmed) {
            Ok((ts, reading, forecast)) => rows.push(Row {
                line: line_no,
                ts,
                reading,
                forecast,
            }),
            Err(why) => bad.push(BadRow { line: line_no, why }),
        }
    }
    (rows, bad)
}

/// Replays one file's rows for one node, shifted so its first row lands on the pipeline's
/// start (whole days, so the time of day stays true).
pub struct ReplaySource {
    node_id: String,
    kind: SignalKind,
    name: String,
    rows: Vec<Row>,
    shift: Duration,
    horizon: u32,
}

impl ReplaySource {
    pub fn new(
        node_id: &str,
        kind: SignalKind,
        text: &str,
        start: DateTime<Utc>,
        horizon: u32,
    ) -> Result<ReplaySource, String> {
        let (mut rows, bad) = parse(kind, text);
        if rows.is_empty() {
            return Err(format!(
                "no usable {} rows ({} rejected{})",
                kind.as_str(),
                bad.len(),
                bad.first()
                    .map(|b| format!(", first at line {}: {}", b.line, b.why))
                    .unwrap_or_default()
            ));
        }
        rows.sort_by_key(|r| r.ts);
        let first = rows[0].ts;
        let days = (start - first).num_seconds().div_euclid(86_400)
            + i64::from((start - first).num_seconds().rem_euclid(86_400) > 0);
        Ok(ReplaySource {
            node_id: node_id.to_string(),
            kind,
            name: format!("replay-{}", kind.as_str()),
            rows,
            shift: Duration::days(days),
            horizon,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    fn fetch_now(&self, now: DateTime<Utc>) -> Fetched {
        let mut fetched = Fetched::default();
        let idx = self.rows.partition_point(|r| r.ts + self.shift <= now);
        if idx > 0 {
            let r = &self.rows[idx - 1];
            fetched.observations.push(Observation::new(
                &self.node_id,
                &self.name,
                r.ts + self.shift,
                r.reading,
            ));
        }
        let hour = Hour::containing(now);
        let until = hour.plus(i64::from(self.horizon) + 1).start();
        let points: Vec<(Hour, Reading)> = self.rows[idx..]
            .iter()
            .take_while(|r| r.ts + self.shift < until)
            .filter_map(|r| r.forecast.map(|f| (Hour::containing(r.ts + self.shift), f)))
            .collect();
        if !points.is_empty() {
            fetched.forecasts.push(Forecast {
                node_id: self.node_id.clone(),
                kind: self.kind,
                issued_at: hour.start(),
                points,
                source: self.name.clone(),
            });
        }
        fetched
    }
}

impl SignalSource for ReplaySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SignalKind {
        self.kind
    }

    fn fetch<'a>(
        &'a self,
        node: &'a Node,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        let out = if node.id == self.node_id {
            self.fetch_now(now)
        } else {
            Fetched::default()
        };
        async move { Ok(out) }.boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WEATHER: &str = "timestamp,temp_c,rh_pct\n\
        2018-04-17T00:00:00Z,12.5,60\n\
        2018-04-17T01:00:00Z,NAN,\n\
        2018-04-17T02:00:00Z,-142.7,50\n\
        2018-04-17T03:00:00Z,11.0,\n\
        not-a-time,1,2\n\
        2018-04-17T04:00:00Z,11,20,5\n";

    #[test]
    fn weather_rows_parse_or_are_rejected_with_reasons() {
        let (rows, bad) = parse(SignalKind::Weather, WEATHER);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1].reading,
            Reading::Weather {
                temp_c: 11.0,
                rh_pct: None
            }
        );
        let reasons: Vec<_> = bad.iter().map(|b| (b.line, b.why.reason())).collect();
        assert_eq!(
            reasons,
            vec![
                (3, "non_finite"),
                (4, "out_of_range"),
                (6, "malformed"),
                (7, "malformed")
            ]
        );
    }

    #[test]
    fn prices_with_forecasts_and_lenient_timestamps() {
        let text = "2016-12-27 00:00:00,35.5,33.1\n2016-12-27 01:00:00,-12,\n";
        let (rows, bad) = parse(SignalKind::Price, text);
        assert!(bad.is_empty());
        assert_eq!(rows[0].forecast, Some(Reading::Price { usd_per_mwh: 33.1 }));
        assert_eq!(rows[1].forecast, None);
        assert_eq!(rows[1].ts.to_rfc3339(), "2016-12-27T01:00:00+00:00");
    }

    #[test]
    fn four_column_price_files_take_the_first_forecast() {
        let text = "timestamp,real_price,dnn_ensemble_forecast,lear_ensemble_forecast\n\
            2017-01-02 00:00:00,41.5,40.25,43\n\
            2017-01-02 01:00:00,39,,38\n\
            2017-01-02 02:00:00,38,37,abc\n\
            2017-01-02 03:00:00,38,37,36,35\n";
        let (rows, bad) = parse(SignalKind::Price, text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].reading, Reading::Price { usd_per_mwh: 41.5 });
        assert_eq!(
            rows[0].forecast,
            Some(Reading::Price { usd_per_mwh: 40.25 })
        );
        assert_eq!(
            rows[1].forecast, None,
            "an empty first forecast is no forecast"
        );
        let lines: Vec<_> = bad.iter().map(|b| (b.line, b.why.reason())).collect();
        assert_eq!(lines, vec![(4, "malformed"), (5, "malformed")]);
        assert!(
            bad[1].why.to_string().contains("2-4 columns"),
            "{}",
            bad[1].why
        );
    }

    #[test]
    fn replay_is_shifted_to_the_pipeline_start_and_gives_forecasts() {
        let text = "timestamp,price_usd_per_mwh,forecast_usd_per_mwh\n\
            2018-01-01T00:00:00Z,10,11\n2018-01-01T01:00:00Z,20,21\n2018-01-01T02:00:00Z,30,31\n";
        let start = parse_timestamp("2026-06-01T00:00:00Z").unwrap();
        let src = ReplaySource::new("n1", SignalKind::Price, text, start, 48).unwrap();
        let f = src.fetch_now(start + Duration::minutes(30));
        assert_eq!(f.observations.len(), 1);
        assert_eq!(f.observations[0].source_ts, start);
        assert_eq!(
            f.observations[0].reading,
            Reading::Price { usd_per_mwh: 10.0 }
        );
        let pts = &f.forecasts[0].points;
        assert_eq!(pts.len(), 2);
        assert_eq!(
            pts[0],
            (
                Hour::containing(start).plus(1),
                Reading::Price { usd_per_mwh: 21.0 }
            )
        );
        assert!(ReplaySource::new("n1", SignalKind::Price, "garbage\n", start, 48).is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any text: every non-blank, non-comment line is parsed or rejected, nothing panics,
        /// and what parses passes the physical checks.
        #[test]
        fn any_text_is_parsed_or_rejected_line_by_line(lines in prop::collection::vec(".{0,80}", 0..20),
                                                        weather in any::<bool>()) {
            let text = lines.join("\n");
            let kind = if weather { SignalKind::Weather } else { SignalKind::Price };
            let (rows, bad) = parse(kind, &text);
            for r in &rows {
                prop_assert!(r.reading.check().is_ok());
            }
            let counted = text.lines().filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#')).count();
            prop_assert!(rows.len() + bad.len() <= counted && rows.len() + bad.len() + 1 >= counted);
        }

        #[test]
        fn numeric_rows_with_any_values(t in any::<f64>(), rh in any::<f64>(), p in any::<f64>()) {
            let (rows, bad) = parse(SignalKind::Weather, &format!("2026-01-01T00:00:00Z,{t},{rh}"));
            prop_assert_eq!(rows.len() + bad.len(), 1);
            let (rows, bad) = parse(SignalKind::Price, &format!("2026-01-01T00:00:00Z,{p},{p}"));
            prop_assert_eq!(rows.len() + bad.len(), 1);
        }
    }
}
