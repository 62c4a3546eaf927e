//! Dispatch records and the life of a job in the backlog.

use super::job::{Job, JobId};
use super::plan::Alternative;
use super::time::Hour;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an accepted job is. Every accepted job is in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Dispatched,
    Completed,
    Rejected,
    Expired,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Dispatched,
        JobStatus::Completed,
        JobStatus::Rejected,
        JobStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Dispatched => "dispatched",
            JobStatus::Completed => "completed",
            JobStatus::Rejected => "rejected",
            JobStatus::Expired => "expired",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Rejected | JobStatus::Expired
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

/// A committed decision: this job runs on this node from this hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatch {
    pub job_id: JobId,
    pub node_id: String,
    pub start: Hour,
    pub slots: u32,
    pub units: u32,
    /// Cost at the prices the planner saw when it decided.
    pub planned_cost_usd: f64,
    pub strategy: String,
    pub decided_at: DateTime<Utc>,
    pub runner_up: Option<Alternative>,
}

impl Dispatch {
    /// The hour after the job's last slot.
    pub fn end(&self) -> Hour {
        self.start.plus(i64::from(self.slots))
    }

    /// (hour, units) this dispatch reserves on its node.
    pub fn reservations(&self) -> impl Iterator<Item = (Hour, u32)> + '_ {
        (0..i64::from(self.slots)).map(move |k| (self.start.plus(k), self.units))
    }
}

/// A job in the backlog with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: Job,
    pub status: JobStatus,
    /// Why it was rejected or expired.
    pub reason: Option<String>,
    pub submitted_at: DateTime<Utc>,
    /// Acceptance order.
    pub seq: u64,
    pub dispatch: Option<Dispatch>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("lost".parse::<JobStatus>().is_err());
    }

    #[test]
    fn reservations_cover_each_slot() {
        let d = Dispatch {
            job_id: JobId::try_from("j".to_string()).unwrap(),
            node_id: "n".into(),
            start: Hour(10),
            slots: 3,
            units: 4,
            planned_cost_usd: 1.0,
            strategy: "optimized".into(),
            decided_at: Hour(10).start(),
            runner_up: None,
        };
        let r: Vec<_> = d.reservations().collect();
        assert_eq!(r, vec![(Hour(10), 4), (Hour(11), 4), (Hour(12), 4)]);
        assert_eq!(d.end(), Hour(13));
    }
}
