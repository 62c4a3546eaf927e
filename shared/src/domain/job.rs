//! Jobs: what users submit, parsed at the edge into types that cannot be invalid.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest job line accepted, in bytes: a job is a handful of fields.
pub const MAX_JOB_LINE_BYTES: usize = 16 * 1024;
/// Largest compute size of one job, in compute-hours.
pub const MAX_COMPUTE_HOURS: f64 = 1e6;
/// Most regions a job may list.
pub const MAX_REGIONS: usize = 64;
/// Most units a job may ask for at once.
pub const MAX_UNITS: u32 = 1_000_000;

/// Why a job line was refused. Each variant names the field and the bad value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("line is {0} bytes, over the {MAX_JOB_LINE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("not a job object: {0}")]
    Json(String),
    #[error("field `{field}`: {problem} (got {value})")]
    Field {
        field: &'static str,
        value: String,
        problem: &'static str,
    },
}

impl JobError {
    fn field(field: &'static str, value: impl fmt::Display, problem: &'static str) -> Self {
        JobError::Field {
            field,
            value: value.to_string(),
            problem,
        }
    }

    /// A short, stable name for counting rejections by kind.
    pub fn kind(&self) -> String {
        match self {
            JobError::TooLarge(_) => "too_large".into(),
            JobError::Json(_) => "invalid_json".into(),
            JobError::Field { field, .. } => format!("invalid_{field}"),
        }
    }
}

/// A job id: 1-128 characters of letters, digits and `-_.:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = JobError;
    fn try_from(s: String) -> Result<Self, JobError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if s.is_empty() || s.len() > 128 {
            return Err(JobError::field(
                "id",
                format!("{s:?}"),
                "must be 1-128 characters",
            ));
        }
        if !s.chars().all(ok_char) {
            return Err(JobError::field(
                "id",
                format!("{s:?}"),
                "only letters, digits and -_.: are allowed",
            ));
        }
        Ok(JobId(s))
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Priority 0 (most urgent) to 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

impl Priority {
    pub const MOST_URGENT: Priority = Priority(0);
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Priority {
    type Error = JobError;
    fn try_from(p: u8) -> Result<Self, JobError> {
        if p <= 9 {
            Ok(Priority(p))
        } else {
            Err(JobError::field(
                "priority",
                p,
                "must be 0..9 (0 most urgent)",
            ))
        }
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

/// A job as it arrives on the wire, before parsing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    id: serde_json::Value,
    priority: serde_json::Value,
    compute_hours: serde_json::Value,
    #[serde(default)]
    units: Option<serde_json::Value>,
    deadline: serde_json::Value,
    #[serde(default)]
    regions: Option<serde_json::Value>,
}

/// A valid job: the unit of work grd places on a node and an hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub priority: Priority,
    /// Size in compute-hours (units x hours).
    pub compute_hours: f64,
    /// Units it needs at once (vCPU-equivalents).
    pub units: u32,
    pub deadline: DateTime<Utc>,
    /// Regions it may run in; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

impl Job {
    /// Parses one JSON line (see the README for the format).
    pub fn parse_line(line: &str) -> Result<Job, JobError> {
        if line.len() > MAX_JOB_LINE_BYTES {
            return Err(JobError::TooLarge(line.len()));
        }
        let raw: RawJob = serde_json::from_str(line).map_err(|e| JobError::Json(e.to_string()))?;
        Job::try_from(raw)
    }

    /// Wall-clock hours the job runs for: compute-hours spread over its units.
    pub fn duration_hours(&self) -> f64 {
        self.compute_hours / f64::from(self.units)
    }

    /// Whole hourly slots the job occupies.
    pub fn slots(&self) -> u32 {
        // Tiny float residue (e.g. 3.0000000001) must not cost a whole extra hour.
        (self.duration_hours() - 1e-9).ceil().max(1.0) as u32
    }

    /// Fraction of each occupied slot the job runs (1.0 but for a partial last hour).
    pub fn slot_fraction(&self, slot_index: u32) -> f64 {
        let d = self.duration_hours();
        (d - f64::from(slot_index)).clamp(0.0, 1.0)
    }

    pub fn allows_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }

    /// Serialises back to one JSON line in the wire format.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl TryFrom<RawJob> for Job {
    type Error = JobError;
    fn try_from(raw: RawJob) -> Result<Job, JobError> {
        let id = match raw.id {
            serde_json::Value::String(s) => JobId::try_from(s)?,
            other => return Err(JobError::field("id", other, "must be a string")),
        };
        let priority = match raw.priority.as_u64() {
            Some(p) if p <= 9 => Priority(p as u8),
            _ => {
                return Err(JobError::field(
                    "priority",
                    raw.priority,
                    "must be an integer 0..9 (0 most urgent)",
                ))
            }
        };
        let compute_hours = match raw.compute_hours.as_f64() {
            Some(h) if h.is_finite() && h > 0.0 && h <= MAX_COMPUTE_HOURS => h,
            _ => {
                return Err(JobError::field(
                    "compute_hours",
                    raw.compute_hours,
                    "must be a number > 0 and <= 1e6",
                ))
            }
        };
        let units = match raw.units {
            None | Some(serde_json::Value::Null) => 1,
            Some(v) => match v.as_u64() {
                Some(u) if (1..=u64::from(MAX_UNITS)).contains(&u) => u as u32,
                _ => {
                    return Err(JobError::field(
                        "units",
                        v,
                        "must be an integer >= 1 and <= 1000000",
                    ))
                }
            },
        };
        let deadline = match &raw.deadline {
            serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| JobError::field("deadline", &raw.deadline, "must be RFC 3339"))?,
            other => {
                return Err(JobError::field(
                    "deadline",
                    other,
                    "must be an RFC 3339 string",
                ))
            }
        };
        let regions = match raw.regions {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) if items.len() <= MAX_REGIONS => {
                let mut regions = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 64 => {
                            regions.push(s)
                        }
                        other => {
                            return Err(JobError::field(
                                "regions",
                                other,
                                "each region must be a string of 1-64 characters",
                            ))
                        }
                    }
                }
                regions
            }
            Some(other) => {
                return Err(JobError::field(
                    "regions",
                    other,
                    "must be an array of at most 64 region names",
                ))
            }
        };
        Ok(Job {
            id,
            priority,
            compute_hours,
            units,
            deadline,
            regions,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err_of(line: &str) -> String {
        Job::parse_line(line).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_line() {
        let job = Job::parse_line(
            r#"{"id":"etl-7:a","priority":2,"compute_hours":12.5,"units":4,"deadline":"2026-01-02T03:00:00+01:00","regions":["eu-west"]}"#,
        )
        .unwrap();
        assert_eq!(job.id.as_str(), "etl-7:a");
        assert_eq!(job.priority.get(), 2);
        assert_eq!(job.units, 4);
        assert_eq!(job.deadline.to_rfc3339(), "2026-01-02T02:00:00+00:00");
        assert_eq!(job.regions, vec!["eu-west"]);
        assert_eq!(job.slots(), 4);
        assert!((job.slot_fraction(3) - 0.125).abs() < 1e-12);
        let again = Job::parse_line(&job.to_line()).unwrap();
        assert_eq!(again, job);
    }

    #[test]
    fn units_default_to_one() {
        let job = Job::parse_line(
            r#"{"id":"a","priority":0,"compute_hours":3,"deadline":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(job.units, 1);
        assert_eq!(job.slots(), 3);
        assert!(job.regions.is_empty());
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let base = |field: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(
                r#"{"id":"a","priority":1,"compute_hours":2,"deadline":"2026-01-01T00:00:00Z"}"#,
            )
            .unwrap();
            v[field] = serde_json::from_str(value).unwrap();
            v.to_string()
        };
        assert!(err_of(&base("priority", "10")).contains("`priority`"));
        assert!(err_of(&base("priority", "10")).contains("10"));
        assert!(err_of(&base("compute_hours", "0")).contains("`compute_hours`"));
        assert!(err_of(&base("compute_hours", "-1")).contains("-1"));
        assert!(err_of(&base("compute_hours", "2e6")).contains("compute_hours"));
        assert!(err_of(&base("compute_hours", "\"NaN\"")).contains("compute_hours"));
        assert!(err_of(&base("units", "0")).contains("`units`"));
        assert!(err_of(&base("deadline", "\"tomorrow\"")).contains("tomorrow"));
        assert!(err_of(&base("id", "\"a b\"")).contains("`id`"));
        assert!(err_of(&base("id", "\"\"")).contains("1-128"));
        let long = format!("\"{}\"", "x".repeat(129));
        assert!(err_of(&base("id", &long)).contains("1-128"));
        assert!(err_of(&base("regions", "\"eu\"")).contains("`regions`"));
        assert!(err_of(r#"{"id":"a"}"#).contains("not a job object"));
        assert!(err_of("not json").contains("not a job object"));
        assert!(err_of(&base("color", "1")).contains("unknown field"));
        let huge = "x".repeat(MAX_JOB_LINE_BYTES + 1);
        assert_eq!(Job::parse_line(&huge).unwrap_err().kind(), "too_large");
    }

    #[test]
    fn id_accepts_exactly_its_alphabet() {
        assert!(JobId::try_from("A-z_0.9:x".to_string()).is_ok());
        assert!(JobId::try_from("x".repeat(128)).is_ok());
        for bad in ["é", "a/b", "a b", "a\n"] {
            assert!(JobId::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)),
            ".{0,40}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::hash_map(".{0,12}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes: a job or a typed error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(line in ".{0,300}") {
            let _ = Job::parse_line(&line);
        }

        /// Job-shaped objects with any values in any field: parsed jobs are always valid.
        #[test]
        fn job_shaped_values_parse_to_valid_jobs_or_name_a_field(
            id in json_value(), priority in json_value(), hours in json_value(),
            units in json_value(), deadline in json_value(), regions in json_value()
        ) {
            let line = serde_json::json!({
                "id": id, "priority": priority, "compute_hours": hours,
                "units": units, "deadline": deadline, "regions": regions,
            })
            .to_string();
            match Job::parse_line(&line) {
                Ok(job) => {
                    prop_assert!(job.compute_hours > 0.0 && job.compute_hours <= MAX_COMPUTE_HOURS);
                    prop_assert!(job.units >= 1 && job.priority.get() <= 9);
                    prop_assert!(!job.id.as_str().is_empty() && job.id.as_str().len() <= 128);
                    prop_assert!(job.slots() >= 1);
                }
                Err(JobError::Field { field, .. }) => {
                    prop_assert!(["id", "priority", "compute_hours", "units", "deadline", "regions"].contains(&field));
                }
                Err(other) => prop_assert!(false, "unexpected error kind {other:?}"),
            }
        }
    }
}
