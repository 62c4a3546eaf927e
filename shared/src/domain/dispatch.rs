//! Dispatch records and the life of a job in the backlog.

use super::job::{Job, JobId, Priority};
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
    /// Kept out of planning by an operator until released.
    Held,
    /// Withdrawn by an operator (before or while it ran).
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Dispatched,
        JobStatus::Completed,
        JobStatus::Rejected,
        JobStatus::Expired,
        JobStatus::Held,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Dispatched => "dispatched",
            JobStatus::Completed => "completed",
            JobStatus::Rejected => "rejected",
            JobStatus::Expired => "expired",
            JobStatus::Held => "held",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Rejected | JobStatus::Expired | JobStatus::Cancelled
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

impl Dispatch {
    /// The dispatch cut short at `now`: only the slots before `now` stay (none if it had
    /// not started), with the planned cost of the slots kept. `job` is the job it runs.
    pub fn cut_at(&self, job: &Job, now: Hour) -> Dispatch {
        let ran = self.start.until(now).clamp(0, i64::from(self.slots)) as u32;
        let weight = |n: u32| (0..n).map(|k| job.slot_fraction(k)).sum::<f64>();
        let all = weight(self.slots);
        let share = if all > 0.0 { weight(ran) / all } else { 0.0 };
        Dispatch {
            slots: ran,
            planned_cost_usd: self.planned_cost_usd * share,
            ..self.clone()
        }
    }
}

/// What an operator can do to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "priority")]
pub enum JobAction {
    /// Keep a pending job out of planning.
    Hold,
    /// Return a held job to the queue.
    Release,
    /// Withdraw a pending, held or dispatched job (a dispatched job frees its capacity).
    Cancel,
    /// Mark a dispatched job finished now (its remaining reserved capacity is freed).
    Complete,
    /// Change the priority of a pending or held job.
    Priority(Priority),
}

impl JobAction {
    pub fn name(self) -> &'static str {
        match self {
            JobAction::Hold => "hold",
            JobAction::Release => "release",
            JobAction::Cancel => "cancel",
            JobAction::Complete => "complete",
            JobAction::Priority(_) => "priority",
        }
    }

    /// The states the action applies to.
    pub fn applies_to(self) -> &'static [JobStatus] {
        match self {
            JobAction::Hold => &[JobStatus::Pending],
            JobAction::Release => &[JobStatus::Held],
            JobAction::Cancel => &[JobStatus::Pending, JobStatus::Held, JobStatus::Dispatched],
            JobAction::Complete => &[JobStatus::Dispatched],
            JobAction::Priority(_) => &[JobStatus::Pending, JobStatus::Held],
        }
    }

    /// The state a job in `from` moves to, or why it cannot.
    pub fn next_status(self, job: &JobId, from: JobStatus) -> Result<JobStatus, ControlError> {
        if !self.applies_to().contains(&from) {
            return Err(ControlError::WrongState {
                job: job.to_string(),
                action: self.name(),
                status: from,
                needs: self
                    .applies_to()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            });
        }
        Ok(match self {
            JobAction::Hold => JobStatus::Held,
            JobAction::Release => JobStatus::Pending,
            JobAction::Cancel => JobStatus::Cancelled,
            JobAction::Complete => JobStatus::Completed,
            JobAction::Priority(_) => from,
        })
    }
}

/// What an operator's action does to one job, decided before any store writes: the store
/// applies it in one transaction, conditioned on the job still being in `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlChange {
    pub from: JobStatus,
    pub to: JobStatus,
    /// The job afterwards (with its new priority).
    pub job: Job,
    /// The job's reason afterwards.
    pub reason: Option<String>,
    pub dispatch: DispatchChange,
    /// Reservations given back as (hour, units), on the dispatch's node.
    pub release: Vec<(Hour, u32)>,
}

/// What becomes of a job's dispatch record.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchChange {
    Unchanged,
    /// Completed early: only the slots that ran stay.
    Cut(Dispatch),
    /// Cancelled: the record goes.
    Removed,
}

impl ControlChange {
    /// Unit-hours of capacity the change gives back.
    pub fn freed_unit_hours(&self) -> u64 {
        self.release.iter().map(|(_, u)| u64::from(*u)).sum()
    }

    /// What the action did, as the API reports it.
    pub fn outcome(&self, action: JobAction) -> ControlOutcome {
        ControlOutcome {
            job_id: self.job.id.to_string(),
            action: action.name(),
            from: self.from,
            to: self.to,
            freed_unit_hours: self.freed_unit_hours(),
            priority: self.job.priority.get(),
        }
    }
}

impl JobAction {
    /// The change this action makes to `job` (in `from`, with its dispatch and reason) at
    /// hour `now`, or why it is refused.
    pub fn change(
        self,
        job: &Job,
        from: JobStatus,
        dispatch: Option<&Dispatch>,
        reason: Option<&str>,
        now: Hour,
    ) -> Result<ControlChange, ControlError> {
        let to = self.next_status(&job.id, from)?;
        let mut change = ControlChange {
            from,
            to,
            job: job.clone(),
            reason: None,
            dispatch: DispatchChange::Unchanged,
            release: Vec::new(),
        };
        match (self, dispatch) {
            (JobAction::Complete, Some(d)) => {
                let kept = d.cut_at(job, now);
                change.release = d.reservations().skip(kept.slots as usize).collect();
                change.dispatch = DispatchChange::Cut(kept);
            }
            (JobAction::Cancel, Some(d)) => {
                change.release = d.reservations().collect();
                change.dispatch = DispatchChange::Removed;
                let ran = d.cut_at(job, now).slots;
                change.reason = Some(format!(
                    "cancelled by operator while dispatched to {} from {} ({ran} of {} hours run)",
                    d.node_id, d.start, d.slots
                ));
            }
            (JobAction::Cancel, None) => change.reason = Some("cancelled by operator".into()),
            (JobAction::Hold, _) => change.reason = Some("held by operator".into()),
            (JobAction::Priority(p), _) => {
                change.job.priority = p;
                change.reason = reason.map(str::to_string);
            }
            _ => {}
        }
        Ok(change)
    }
}

/// Why an operator's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("unknown job `{0}`")]
    UnknownJob(String),
    #[error("unknown node `{0}`")]
    UnknownNode(String),
    #[error(
        "cannot {action} job `{job}`: it is {status}, {action} applies to a job that is {needs}"
    )]
    WrongState {
        job: String,
        action: &'static str,
        status: JobStatus,
        needs: String,
    },
    #[error("{0}")]
    Invalid(String),
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

/// What an operator's action on a job did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlOutcome {
    pub job_id: String,
    pub action: &'static str,
    pub from: JobStatus,
    pub to: JobStatus,
    /// Unit-hours of reserved capacity given back (cancel or complete of a dispatched job).
    pub freed_unit_hours: u64,
    pub priority: u8,
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

    fn id(s: &str) -> JobId {
        JobId::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn a_control_change_gives_back_exactly_the_hours_not_yet_run() {
        let job = Job::parse_line(
            r#"{"id":"c1","priority":4,"compute_hours":8,"units":2,"deadline":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let h = Hour(1_000);
        let d = Dispatch {
            job_id: job.id.clone(),
            node_id: "fra1".into(),
            start: h,
            slots: 4,
            units: 2,
            planned_cost_usd: 4.0,
            strategy: "optimized".into(),
            decided_at: h.start(),
            runner_up: None,
        };
        // Completed after one hour of four: three hours of 2 units back, one kept.
        let done = JobAction::Complete
            .change(&job, JobStatus::Dispatched, Some(&d), Some("x"), h.plus(1))
            .unwrap();
        assert_eq!(done.to, JobStatus::Completed);
        assert_eq!(
            done.release,
            vec![(h.plus(1), 2), (h.plus(2), 2), (h.plus(3), 2)]
        );
        assert_eq!(done.freed_unit_hours(), 6);
        let DispatchChange::Cut(kept) = &done.dispatch else {
            panic!("{:?}", done.dispatch)
        };
        assert_eq!((kept.slots, kept.planned_cost_usd), (1, 1.0));
        assert_eq!(done.reason, None);
        // Cancelled at the same hour: everything back, the record gone, the reason says where.
        let gone = JobAction::Cancel
            .change(&job, JobStatus::Dispatched, Some(&d), None, h.plus(1))
            .unwrap();
        assert_eq!(gone.freed_unit_hours(), 8);
        assert_eq!(gone.dispatch, DispatchChange::Removed);
        assert_eq!(
            gone.reason.unwrap(),
            format!("cancelled by operator while dispatched to fra1 from {h} (1 of 4 hours run)")
        );
        // A new priority keeps the reason; a hold gives its own; neither touches capacity.
        let p = Priority::try_from(1).unwrap();
        let re = JobAction::Priority(p)
            .change(&job, JobStatus::Pending, None, Some("waiting"), h)
            .unwrap();
        assert_eq!(
            (re.job.priority, re.reason.as_deref()),
            (p, Some("waiting"))
        );
        assert_eq!(re.outcome(JobAction::Priority(p)).priority, 1);
        let held = JobAction::Hold
            .change(&job, JobStatus::Pending, None, None, h)
            .unwrap();
        assert_eq!((held.to, held.freed_unit_hours()), (JobStatus::Held, 0));
        assert_eq!(held.reason.as_deref(), Some("held by operator"));
        assert!(JobAction::Complete
            .change(&job, JobStatus::Pending, None, None, h)
            .is_err());
    }

    #[test]
    fn actions_move_only_from_the_states_they_apply_to() {
        use JobStatus::*;
        let p = Priority::try_from(3).unwrap();
        let cases = [
            (JobAction::Hold, Pending, Some(Held)),
            (JobAction::Release, Held, Some(Pending)),
            (JobAction::Cancel, Pending, Some(Cancelled)),
            (JobAction::Cancel, Held, Some(Cancelled)),
            (JobAction::Cancel, Dispatched, Some(Cancelled)),
            (JobAction::Complete, Dispatched, Some(Completed)),
            (JobAction::Priority(p), Held, Some(Held)),
            (JobAction::Priority(p), Pending, Some(Pending)),
        ];
        for (action, from, to) in cases {
            assert_eq!(
                action.next_status(&id("j"), from).ok(),
                to,
                "{action:?} from {from}"
            );
        }
        for from in JobStatus::ALL {
            for action in [
                JobAction::Hold,
                JobAction::Release,
                JobAction::Cancel,
                JobAction::Complete,
                JobAction::Priority(p),
            ] {
                let ok = action.next_status(&id("j"), from).is_ok();
                assert_eq!(ok, action.applies_to().contains(&from));
            }
        }
        let err = JobAction::Release
            .next_status(&id("j7"), Pending)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot release job `j7`: it is pending, release applies to a job that is held"
        );
    }

    #[test]
    fn a_cut_dispatch_keeps_the_slots_that_ran() {
        let job = Job::parse_line(
            r#"{"id":"j","priority":1,"compute_hours":12,"units":4,"deadline":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let d = Dispatch {
            job_id: id("j"),
            node_id: "n".into(),
            start: Hour(10),
            slots: 3,
            units: 4,
            planned_cost_usd: 3.0,
            strategy: "optimized".into(),
            decided_at: Hour(10).start(),
            runner_up: None,
        };
        let cut = d.cut_at(&job, Hour(12));
        assert_eq!(cut.slots, 2);
        assert!((cut.planned_cost_usd - 2.0).abs() < 1e-9);
        assert_eq!(d.cut_at(&job, Hour(9)).slots, 0);
        assert_eq!(d.cut_at(&job, Hour(20)), d);
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
