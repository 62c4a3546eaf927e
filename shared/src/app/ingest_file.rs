//! Load a file of weather or price records for one node into the store, row by row: each row
//! is accepted, rejected by the value checks (non-finite, impossible, unparseable), or refused
//! by the store itself (a duplicate or an older timestamp than the newest stored).
//!
//! Formats: the CSV files the replay reads (`timestamp,temp_c,rh_pct` and
//! `timestamp,price_usd_per_mwh[,forecast_usd_per_mwh]`, see `adapters::csv_replay`), and
//! datalogger station logs (`adapters::station_log`), recognised by their header.
//! Rows are history: they are not checked for expiry, only against the store's newest.

use crate::adapters::csv_replay::{self, BadRow, Row};
use crate::adapters::station_log;
use crate::domain::signal::{Observation, SignalKind};
use crate::ports::{NodeStore, SignalStore, StoreError, Stored};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which format a file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    WeatherCsv,
    PriceCsv,
    StationLog,
}

impl FileFormat {
    /// A station log by its header; otherwise the CSV for the kind asked for.
    pub fn detect(kind: SignalKind, text: &str) -> FileFormat {
        if station_log::detect(text) {
            FileFormat::StationLog
        } else {
            match kind {
                SignalKind::Weather => FileFormat::WeatherCsv,
                SignalKind::Price => FileFormat::PriceCsv,
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::WeatherCsv => "weather CSV",
            FileFormat::PriceCsv => "price CSV",
            FileFormat::StationLog => "station log",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestFileError {
    #[error("unknown node `{0}` (add it first: `grd nodes --load FILE`)")]
    UnknownNode(String),
    #[error("{0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to the file's rows: `rows = accepted + rejected`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    #[serde(skip)]
    pub format: FileFormat,
    pub rows: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Rejections counted by reason (`non_finite`, `out_of_range`, `duplicate`,
    /// `out_of_order`, `malformed`).
    pub reasons: BTreeMap<String, usize>,
    /// (line, why) for every rejected row, in file order.
    #[serde(skip)]
    pub errors: Vec<(usize, String)>,
}

impl FileReport {
    fn new(format: FileFormat) -> FileReport {
        FileReport {
            format,
            rows: 0,
            accepted: 0,
            rejected: 0,
            reasons: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    fn reject(&mut self, line: usize, reason: &str, why: String) {
        self.rows += 1;
        self.rejected += 1;
        *self.reasons.entry(reason.to_string()).or_default() += 1;
        self.errors.push((line, why));
    }
}

/// Reads `text` as `kind` records for `node_id` and stores them through the store's own
/// newest-wins rule, naming the reason for every row it refuses.
pub async fn ingest_file<S: SignalStore + NodeStore>(
    store: &S,
    node_id: &str,
    kind: SignalKind,
    text: &str,
    source: &str,
) -> Result<FileReport, IngestFileError> {
    if !store.nodes().await?.iter().any(|n| n.node.id == node_id) {
        return Err(IngestFileError::UnknownNode(node_id.to_string()));
    }
    let format = FileFormat::detect(kind, text);
    let (rows, bad): (Vec<Row>, Vec<BadRow>) = match format {
        FileFormat::StationLog if kind != SignalKind::Weather => {
            return Err(IngestFileError::Unreadable(
                "this is a weather station log: ingest it as weather, not prices".into(),
            ))
        }
        FileFormat::StationLog => station_log::parse(text).map_err(IngestFileError::Unreadable)?,
        _ => csv_replay::parse(kind, text),
    };
    let mut report = FileReport::new(format);
    if rows.is_empty() && bad.is_empty() {
        return Err(IngestFileError::Unreadable(format!(
            "no {} rows in the file",
            format.as_str()
        )));
    }
    // Rows and rejects in file order, so the store sees the file as it was sent.
    let mut bad = bad.into_iter().peekable();
    for row in rows {
        while let Some(b) = bad.next_if(|b| b.line < row.line) {
            report.reject(b.line, b.why.reason(), b.why.to_string());
        }
        let obs = Observation::new(node_id, source, row.ts, row.reading);
        match store.put_observation(&obs).await? {
            Stored::Accepted => {
                report.rows += 1;
                report.accepted += 1;
            }
            Stored::Refused(why) => report.reject(row.line, why.reason(), why.to_string()),
        }
    }
    for b in bad {
        report.reject(b.line, b.why.reason(), b.why.to_string());
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::node::default_fleet;

    async fn store() -> SqliteStore {
        let s = SqliteStore::in_memory().unwrap();
        for n in default_fleet(2) {
            s.put_node(&n).await.unwrap();
        }
        s
    }

    #[tokio::test]
    async fn dirty_weather_csv_rows_are_each_accounted_for() {
        let s = store().await;
        let text = "timestamp,temp_c,rh_pct\n\
            2026-04-17T00:00:00Z,12.5,60\n\
            2026-04-17T01:00:00Z,NAN,\n\
            2026-04-17T02:00:00Z,13.0,\n\
            2026-04-17T02:00:00Z,13.0,\n\
            2026-04-17T01:30:00Z,12.0,\n\
            2026-04-17T03:00:00Z,-142.7,50\n\
            garbage\n\
            2026-04-17T04:00:00Z,14.0,55\n";
        let r = ingest_file(&s, "ash1", SignalKind::Weather, text, "file")
            .await
            .unwrap();
        assert_eq!(r.format, FileFormat::WeatherCsv);
        assert_eq!((r.rows, r.accepted, r.rejected), (8, 3, 5));
        let reasons: Vec<_> = r.reasons.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            reasons,
            vec![
                ("duplicate", 1),
                ("malformed", 1),
                ("non_finite", 1),
                ("out_of_order", 1),
                ("out_of_range", 1)
            ]
        );
        let lines: Vec<_> = r.errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![3, 5, 6, 7, 8]);
        // A resend of the same file changes nothing.
        let again = ingest_file(&s, "ash1", SignalKind::Weather, text, "file")
            .await
            .unwrap();
        assert_eq!(again.accepted, 0);
        assert_eq!(again.rows, 8);
    }

    #[tokio::test]
    async fn station_logs_are_detected_and_converted() {
        let s = store().await;
        let text = "\"TIMESTAMP\",\"RECORD\",\"T_air\",\"RH_air\"\n\
            \"2026-04-17 18:10:00\",0,50.0,\"NAN\"\n\
            \"2026-04-17 18:15:00\",1,-224.8,\"NAN\"\n\
            \"2026-04-17 18:20:00\",2,\"NAN\",\"NAN\"\n\
            \"2026-04-17 18:05:00\",0,50.0,\"NAN\"\n\
            \"2026-04-17 18:25:00\",3,51.0,\"NAN\"\n\
            \"2026-04-17 18:25:00\",3,51.0,\"NAN\"\n";
        let r = ingest_file(&s, "ash1", SignalKind::Weather, text, "file")
            .await
            .unwrap();
        assert_eq!(r.format, FileFormat::StationLog);
        assert_eq!((r.rows, r.accepted, r.rejected), (6, 2, 4));
        assert_eq!(r.reasons.get("out_of_order"), Some(&1));
        assert_eq!(r.reasons.get("duplicate"), Some(&1));
        assert_eq!(r.reasons.get("out_of_range"), Some(&1));
        assert_eq!(r.reasons.get("non_finite"), Some(&1));
        let e = ingest_file(&s, "ash1", SignalKind::Price, text, "file")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("weather"), "{e}");
    }

    #[tokio::test]
    async fn unknown_nodes_and_empty_files_are_errors() {
        let s = store().await;
        let e = ingest_file(
            &s,
            "nope",
            SignalKind::Price,
            "2026-01-01T00:00:00Z,1\n",
            "f",
        )
        .await
        .unwrap_err();
        assert!(matches!(e, IngestFileError::UnknownNode(ref n) if n == "nope"));
        let e = ingest_file(&s, "ash1", SignalKind::Price, "# nothing\n\n", "f")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no price CSV rows"), "{e}");
        let r = ingest_file(
            &s,
            "ash1",
            SignalKind::Price,
            "2026-01-01 00:00,35.5,33\n2026-01-01 01:00,-12\n",
            "f",
        )
        .await
        .unwrap();
        assert_eq!((r.rows, r.accepted, r.rejected), (2, 2, 0));
    }
}
