//! Ingest job lines into the backlog: each line accepted, a duplicate, or rejected.

use crate::domain::job::{Job, JobError};
use crate::ports::{Added, Backlog, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What happened to each line of a submission.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    pub lines: usize,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Rejections counted by kind (e.g. `invalid_priority`).
    pub reasons: BTreeMap<String, usize>,
    /// (line number from 1, what was wrong) for every rejected line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<(usize, String)>,
}

/// The outcome of one line.
#[derive(Debug, Clone, PartialEq)]
pub enum LineOutcome {
    Accepted(Job),
    Duplicate(Job),
    Rejected(JobError),
}

impl IngestReport {
    pub fn record(&mut self, line_no: usize, outcome: &LineOutcome) {
        self.lines += 1;
        match outcome {
            LineOutcome::Accepted(_) => self.accepted += 1,
            LineOutcome::Duplicate(_) => self.duplicates += 1,
            LineOutcome::Rejected(e) => {
                self.rejected += 1;
                *self.reasons.entry(e.kind()).or_default() += 1;
                self.errors.push((line_no, e.to_string()));
            }
        }
    }
}

/// Parses and stores one line. Blank lines are not job lines: callers skip them.
pub async fn ingest_line<B: Backlog>(
    backlog: &B,
    line: &str,
    at: DateTime<Utc>,
) -> Result<LineOutcome, StoreError> {
    match Job::parse_line(line.trim()) {
        Err(e) => Ok(LineOutcome::Rejected(e)),
        Ok(job) => Ok(match backlog.add(&job, at).await? {
            Added::Accepted => LineOutcome::Accepted(job),
            Added::Duplicate => LineOutcome::Duplicate(job),
        }),
    }
}

/// Ingests every non-blank line. A bad line never stops the rest; a store failure does
/// (and what was stored before it stays stored).
pub async fn ingest_lines<'a, B: Backlog>(
    backlog: &B,
    lines: impl IntoIterator<Item = &'a str>,
    at: DateTime<Utc>,
) -> Result<IngestReport, StoreError> {
    let mut report = IngestReport::default();
    for (i, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let outcome = ingest_line(backlog, line, at).await?;
        if let LineOutcome::Rejected(e) = &outcome {
            tracing::warn!(line = i + 1, error = %e, "job line rejected");
        }
        report.record(i + 1, &outcome);
    }
    Ok(report)
}
