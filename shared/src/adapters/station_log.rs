//! Datalogger station logs (Campbell Scientific TOA5-style export): a quoted header naming
//! the columns, `"TIMESTAMP","RECORD",...,"T_air","RH_air",...`, optionally preceded by a
//! `"TOA5",...` environment line and followed by units and processing lines; then one row per
//! scan, e.g. `"2018-04-17 18:10:00",0,52.57,-224.8,"NAN",...`.
//!
//! Air temperature is in deg F unless the units line says deg C; `"NAN"` marks a missing
//! value. A row without a finite air temperature is rejected; a `"NAN"` humidity leaves the
//! humidity unknown (the temperature is still good). Timestamps are read as UTC. Order and
//! repeats are left to the store, which refuses duplicates and stale resends itself.

use crate::adapters::csv_replay::{parse_timestamp, BadRow, Row};
use crate::adapters::sources::fahrenheit_to_celsius;
use crate::adapters::sources::nyiso::split_csv_line;
use crate::domain::signal::{Reading, Rejection};

/// Column of the air temperature and of the relative humidity.
const T_AIR: &str = "T_air";
const RH_AIR: &str = "RH_air";

fn first_line(text: &str) -> Option<Vec<String>> {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(split_csv_line)
}

/// Whether the text is a station log: a TOA5 environment line, or a header with TIMESTAMP and
/// T_air columns.
pub fn detect(text: &str) -> bool {
    match first_line(text) {
        None => false,
        Some(f) => {
            f.first().is_some_and(|c| c.trim() == "TOA5")
                || (f.iter().any(|c| c.trim() == "TIMESTAMP")
                    && f.iter().any(|c| c.trim() == T_AIR))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TempUnit {
    Fahrenheit,
    Celsius,
}

fn cell_number(field: &'static str, cell: &str) -> Result<Option<f64>, Rejection> {
    let s = cell.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let v: f64 = s
        .parse()
        .map_err(|_| Rejection::Malformed(format!("`{field}`: {s:?} is not a number")))?;
    Ok(Some(v))
}

/// Parses a whole log: every data row is a [`Row`] (deg C) or a [`BadRow`] with its line and
/// reason; an error when the header is not a station log's.
pub fn parse(text: &str) -> Result<(Vec<Row>, Vec<BadRow>), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let mut header = lines
        .next()
        .map(|(_, l)| split_csv_line(l))
        .ok_or("empty file")?;
    if header.first().is_some_and(|c| c.trim() == "TOA5") {
        header = lines
            .next()
            .map(|(_, l)| split_csv_line(l))
            .ok_or("TOA5 file without a field-name line")?;
    }
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let ts_col = col("TIMESTAMP").ok_or("no \"TIMESTAMP\" column in the header")?;
    let t_col = col(T_AIR).ok_or("no \"T_air\" column in the header")?;
    let rh_col = col(RH_AIR);
    let mut unit = TempUnit::Fahrenheit;
    // Units and processing lines (TOA5): their first cell is not a timestamp.
    while let Some((_, l)) = lines.peek() {
        let cells = split_csv_line(l);
        if cells
            .get(ts_col)
            .is_some_and(|c| parse_timestamp(c).is_some())
        {
            break;
        }
        if let Some(u) = cells.get(t_col) {
            let u = u.trim().to_ascii_lowercase().replace(' ', "");
            if u == "degc" || u == "c" || u == "°c" {
                unit = TempUnit::Celsius;
            }
        }
        lines.next();
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        let cells = split_csv_line(line);
        let row = (|| {
            if cells.len() != header.len() {
                return Err(Rejection::Malformed(format!(
                    "expected {} columns, got {}",
                    header.len(),
                    cells.len()
                )));
            }
            let raw_ts = cells[ts_col].trim();
            let ts = parse_timestamp(raw_ts).ok_or_else(|| {
                Rejection::Malformed(format!("`TIMESTAMP`: {raw_ts:?} is not a time"))
            })?;
            let t = cell_number("temp_c", &cells[t_col])?
                .ok_or_else(|| Rejection::Malformed("`T_air` is empty".into()))?;
            let temp_c = match unit {
                TempUnit::Fahrenheit => fahrenheit_to_celsius(t),
                TempUnit::Celsius => t,
            };
            let rh_pct = match rh_col {
                None => None,
                Some(c) => cell_number("rh_pct", &cells[c])?.filter(|v| v.is_finite()),
            };
            let reading = Reading::Weather { temp_c, rh_pct };
            reading.check()?;
            Ok((ts, reading))
        })();
        match row {
            Ok((ts, reading)) => rows.push(Row {
                line: line_no,
                ts,
                reading,
                forecast: None,
            }),
            Err(why) => bad.push(BadRow { line: line_no, why }),
        }
    }
    Ok((rows, bad))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Written after the export format: glitch, spike, NAN temperature, repeats, a resend.
    const LOG: &str =
        "\"TIMESTAMP\",\"RECORD\",\"T_panel\",\"T_air\",\"RH_air\",\"P_barometric\"\n\
        \"2026-04-17 18:10:00\",0,52.5,50.0,\"NAN\",375.2\n\
        \"2026-04-17 18:15:00\",1,52.6,-224.8,\"NAN\",375.2\n\
        \"2026-04-17 18:20:00\",2,52.6,394.1,\"NAN\",375.3\n\
        \"2026-04-17 18:25:00\",3,52.6,\"NAN\",\"NAN\",375.3\n\
        \"2026-04-17 18:30:00\",4,52.6,59.0,45.5,375.3\n\
        \"2026-04-17 18:30:00\",4,52.6,59.0,45.5\n\
        \"2026-04-17 18:35:00\",5,52.6,59.0,140,375.3\n\
        \"not a time\",6,52.6,59.0,40,375.3\n";

    #[test]
    fn rows_convert_fahrenheit_and_reject_glitches() {
        assert!(detect(LOG));
        assert!(!detect("timestamp,temp_c,rh_pct\n"));
        let (rows, bad) = parse(LOG).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].reading,
            Reading::Weather {
                temp_c: 10.0,
                rh_pct: None
            }
        );
        assert_eq!(
            rows[1].reading,
            Reading::Weather {
                temp_c: 15.0,
                rh_pct: Some(45.5)
            }
        );
        let reasons: Vec<_> = bad.iter().map(|b| (b.line, b.why.reason())).collect();
        assert_eq!(
            reasons,
            vec![
                (3, "out_of_range"),
                (4, "out_of_range"),
                (5, "non_finite"),
                (7, "malformed"),
                (8, "out_of_range"),
                (9, "malformed"),
            ]
        );
    }

    #[test]
    fn toa5_preamble_and_celsius_units() {
        let text = "\"TOA5\",\"station\",\"CR1000\"\n\
            \"TIMESTAMP\",\"RECORD\",\"T_air\",\"RH_air\"\n\
            \"TS\",\"RN\",\"Deg C\",\"%\"\n\
            \"\",\"\",\"Smp\",\"Smp\"\n\
            \"2026-01-01 00:00:00\",0,21.5,50\n";
        assert!(detect(text));
        let (rows, bad) = parse(text).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            rows[0].reading,
            Reading::Weather {
                temp_c: 21.5,
                rh_pct: Some(50.0)
            }
        );
        assert!(parse("\"TIMESTAMP\",\"RECORD\"\n")
            .unwrap_err()
            .contains("T_air"));
        assert!(parse("").is_err());
    }
}
