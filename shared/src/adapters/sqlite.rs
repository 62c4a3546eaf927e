//! The embedded store: every port on one SQLite database.
//!
//! WAL mode with a busy timeout lets several processes share one file; every write that
//! must be atomic runs in a `BEGIN IMMEDIATE` transaction, so two planners cannot both
//! take the last units of a slot.

use crate::domain::dispatch::{
    ControlError, ControlOutcome, Dispatch, DispatchChange, JobAction, JobRecord, JobStatus,
};
use crate::domain::job::{Job, JobId};
use crate::domain::node::Node;
use crate::domain::price::{NodePrice, NodeSignals, PriceOverride};
use crate::domain::signal::{supersedes, Forecast, Observation, Reading, SignalKind};
use crate::domain::time::Hour;
use crate::ports::{
    Added, Backlog, Committed, ControlStore, DispatchLog, NodeState, NodeStore, SignalStore,
    StoreError, Stored,
};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    drained INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS observations (
    node_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_ts INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    reading TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (node_id, kind)
);
CREATE TABLE IF NOT EXISTS signal_log (
    node_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_ts INTEGER NOT NULL,
    reading TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (node_id, kind, source_ts)
);
CREATE TABLE IF NOT EXISTS forecasts (
    node_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    hour INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    reading TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (node_id, kind, hour)
);
CREATE TABLE IF NOT EXISTS node_prices (
    node_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (node_id, hour)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending','dispatched','completed','rejected','expired','held','cancelled')),
    reason TEXT,
    submitted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS dispatches (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    node_id TEXT NOT NULL,
    start_hour INTEGER NOT NULL,
    end_hour INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatches_by_end ON dispatches (end_hour);
CREATE TABLE IF NOT EXISTS reservations (
    node_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    units INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    PRIMARY KEY (node_id, hour),
    CHECK (units >= 0 AND units <= capacity)
);
CREATE TABLE IF NOT EXISTS price_overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL,
    from_hour INTEGER NOT NULL,
    to_hour INTEGER NOT NULL,
    usd_per_mwh REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
);
"#;

/// Databases made before jobs could be held or cancelled check the status against the
/// older list: the jobs table is rebuilt with the current one (same rows).
const MIGRATE_JOB_STATES: &str = r#"
CREATE TABLE jobs_new (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending','dispatched','completed','rejected','expired','held','cancelled')),
    reason TEXT,
    submitted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO jobs_new SELECT id, seq, body, status, reason, submitted_at, updated_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
"#;

/// The embedded store. One connection; open several for concurrent planners.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_ts(s: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_opt(s, 0)
        .single()
        .ok_or_else(|| corrupt(format!("timestamp {s} out of range")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(corrupt)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| backend(format!("{}: {e}", dir.display())))?;
            }
        }
        let conn =
            Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        Self::init(conn)
    }

    /// A private in-memory database (for what-if runs and tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        let jobs_sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
                [],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !jobs_sql.contains("'cancelled'") {
            conn.pragma_update(None, "foreign_keys", "OFF")
                .map_err(backend)?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute_batch(MIGRATE_JOB_STATES).map_err(backend)?;
            tx.commit().map_err(backend)?;
            conn.pragma_update(None, "foreign_keys", "ON")
                .map_err(backend)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| backend("connection lock poisoned"))?;
        f(&mut conn)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(backend)
        })
    }

    pub fn set_drained(&self, node_id: &str, drained: bool) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE nodes SET drained = ?2 WHERE id = ?1",
                params![node_id, drained],
            )
            .map(|n| n == 1)
            .map_err(backend)
        })
    }

    /// Accepted observations of one kind for a node, oldest first (for history views).
    pub fn signal_history(
        &self,
        node_id: &str,
        kind: SignalKind,
    ) -> Result<Vec<(DateTime<Utc>, Reading)>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT source_ts, reading FROM signal_log WHERE node_id = ?1 AND kind = ?2 ORDER BY source_ts")
                .map_err(backend)?;
            let rows = st
                .query_map(params![node_id, kind.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend)?;
            rows.map(|r| {
                let (t, body) = r.map_err(backend)?;
                Ok((from_ts(t)?, from_json(&body)?))
            })
            .collect()
        })
    }

    /// Units reserved per hour on one node, and the capacity each was checked against.
    pub fn reservation_rows(&self) -> Result<Vec<(String, Hour, u32, u32)>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT node_id, hour, units, capacity FROM reservations ORDER BY node_id, hour")
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, Hour(r.get(1)?), r.get(2)?, r.get(3)?)))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
    }

    /// Applies an operator's action to a job in one transaction: the state change, a new
    /// priority, and for a dispatched job that is cancelled or completed, the capacity it
    /// no longer needs (from the hour `now` on; a cancelled job gives back all of it and
    /// loses its dispatch record, the reason saying where it was running).
    pub fn control_job(
        &self,
        id: &str,
        action: JobAction,
        now: Hour,
        at: DateTime<Utc>,
    ) -> Result<Result<ControlOutcome, ControlError>, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let row: Option<(String, String, Option<String>, Option<String>)> = tx
                .query_row(
                    "SELECT j.body, j.status, d.body, j.reason FROM jobs j LEFT JOIN dispatches d ON d.job_id = j.id WHERE j.id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((body, status, dispatch, reason)) = row else {
                return Ok(Err(ControlError::UnknownJob(id.to_string())));
            };
            let job: Job = from_json(&body)?;
            let from: JobStatus = status.parse().map_err(corrupt)?;
            let dispatch: Option<Dispatch> = dispatch.as_deref().map(from_json).transpose()?;
            let change = match action.change(&job, from, dispatch.as_ref(), reason.as_deref(), now) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            if let Some(d) = &dispatch {
                for (hour, units) in &change.release {
                    tx.execute(
                        "UPDATE reservations SET units = units - ?3 WHERE node_id = ?1 AND hour = ?2",
                        params![d.node_id, hour.0, units],
                    )
                    .map_err(backend)?;
                }
                tx.execute(
                    "DELETE FROM reservations WHERE node_id = ?1 AND units = 0",
                    [&d.node_id],
                )
                .map_err(backend)?;
            }
            match &change.dispatch {
                DispatchChange::Unchanged => {}
                DispatchChange::Cut(kept) => {
                    tx.execute(
                        "UPDATE dispatches SET end_hour = ?2, body = ?3 WHERE job_id = ?1",
                        params![id, kept.end().0, to_json(kept)?],
                    )
                    .map_err(backend)?;
                }
                DispatchChange::Removed => {
                    tx.execute("DELETE FROM dispatches WHERE job_id = ?1", [id])
                        .map_err(backend)?;
                }
            }
            tx.execute(
                "UPDATE jobs SET status = ?2, reason = ?3, updated_at = ?4, body = ?5 WHERE id = ?1",
                params![id, change.to.as_str(), change.reason, ts(at), to_json(&change.job)?],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Ok(change.outcome(action)))
        })
    }

    /// Stores a what-if override (validated by the caller); returns its id.
    pub fn add_price_override(&self, o: &PriceOverride) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO price_overrides (node_id, from_hour, to_hour, usd_per_mwh) VALUES (?1, ?2, ?3, ?4)",
                params![o.node_id, o.from.0, o.to.0, o.usd_per_mwh],
            )
            .map_err(backend)?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Removes an override; false if there was none with that id.
    pub fn remove_price_override(&self, id: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM price_overrides WHERE id = ?1", [id])
                .map(|n| n == 1)
                .map_err(backend)
        })
    }

    /// Every stored override, oldest first.
    pub fn price_overrides(&self) -> Result<Vec<PriceOverride>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached("SELECT id, node_id, from_hour, to_hour, usd_per_mwh FROM price_overrides ORDER BY id")
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| {
                    Ok(PriceOverride {
                        id: r.get(0)?,
                        node_id: r.get(1)?,
                        from: Hour(r.get(2)?),
                        to: Hour(r.get(3)?),
                        usd_per_mwh: r.get(4)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
    }

    /// Adds to a named counter (for metrics that outlive one process); adding 0 makes the
    /// counter known, so it is reported as 0.
    pub fn count(&self, name: &str, label: &str, by: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO counters (name, label, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
                params![name, label, by as i64],
            )
            .map(|_| ())
            .map_err(backend)
        })
    }

    /// Every counter as (name, label, value).
    pub fn counters(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached("SELECT name, label, value FROM counters ORDER BY name, label")
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
    }

    /// Stored prices of one node for hours in [from, to).
    pub fn node_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<NodePrice>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached("SELECT body FROM node_prices WHERE node_id = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour")
                .map_err(backend)?;
            let rows = st.query_map(params![node_id, from.0, to.0], |r| r.get::<_, String>(0)).map_err(backend)?;
            rows.map(|b| from_json(&b.map_err(backend)?)).collect()
        })
    }

    fn job_rows(&self, filter: Option<JobStatus>) -> Result<Vec<JobRecord>, StoreError> {
        self.with(|c| {
            let sql = "SELECT j.body, j.status, j.reason, j.submitted_at, j.seq, d.body
                       FROM jobs j LEFT JOIN dispatches d ON d.job_id = j.id
                       WHERE ?1 IS NULL OR j.status = ?1 ORDER BY j.seq";
            let mut st = c.prepare_cached(sql).map_err(backend)?;
            let rows = st
                .query_map([filter.map(JobStatus::as_str)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (body, status, reason, submitted, seq, dispatch) = row.map_err(backend)?;
                Ok(JobRecord {
                    job: from_json::<Job>(&body)?,
                    status: status.parse().map_err(corrupt)?,
                    reason,
                    submitted_at: from_ts(submitted)?,
                    seq: seq as u64,
                    dispatch: dispatch.as_deref().map(from_json).transpose()?,
                })
            })
            .collect()
        })
    }
}

impl SignalStore for SqliteStore {
    async fn put_observation(&self, obs: &Observation) -> Result<Stored, StoreError> {
        let kind = obs.kind().as_str();
        let reading = to_json(&obs.reading)?;
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT source_ts FROM observations WHERE node_id = ?1 AND kind = ?2",
                    params![obs.node_id, kind],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let stored = stored.map(from_ts).transpose()?;
            if let Err(why) = supersedes(stored, obs.source_ts) {
                return Ok(Stored::Refused(why));
            }
            tx.execute(
                "INSERT INTO observations (node_id, kind, source_ts, valid_until, reading, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (node_id, kind) DO UPDATE SET source_ts = excluded.source_ts,
                   valid_until = excluded.valid_until, reading = excluded.reading, source = excluded.source",
                params![obs.node_id, kind, ts(obs.source_ts), ts(obs.valid_until), reading, obs.source],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT OR IGNORE INTO signal_log (node_id, kind, source_ts, reading, source)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![obs.node_id, kind, ts(obs.source_ts), reading, obs.source],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Stored::Accepted)
        })
    }

    async fn put_forecast(&self, fc: &Forecast) -> Result<usize, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let mut kept = 0;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT INTO forecasts (node_id, kind, hour, issued_at, reading, source)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (node_id, kind, hour) DO UPDATE SET issued_at = excluded.issued_at,
                           reading = excluded.reading, source = excluded.source
                         WHERE excluded.issued_at > forecasts.issued_at",
                    )
                    .map_err(backend)?;
                for (hour, reading) in &fc.points {
                    if reading.check().is_err() || reading.kind() != fc.kind {
                        continue;
                    }
                    kept += st
                        .execute(params![
                            fc.node_id,
                            fc.kind.as_str(),
                            hour.0,
                            ts(fc.issued_at),
                            to_json(reading)?,
                            fc.source
                        ])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(kept)
        })
    }

    async fn node_signals(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<NodeSignals, StoreError> {
        self.with(|c| {
            let mut s = NodeSignals::default();
            let mut st = c
                .prepare_cached(
                    "SELECT kind, source_ts, valid_until, reading, source FROM observations WHERE node_id = ?1",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([node_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (kind, source_ts, valid_until, reading, source) = row.map_err(backend)?;
                let obs = Observation {
                    node_id: node_id.to_string(),
                    source_ts: from_ts(source_ts)?,
                    valid_until: from_ts(valid_until)?,
                    reading: from_json(&reading)?,
                    source,
                };
                match kind.as_str() {
                    "weather" => s.weather = Some(obs),
                    "price" => s.price = Some(obs),
                    other => return Err(corrupt(format!("signal kind {other:?}"))),
                }
            }
            let mut st = c
                .prepare_cached(
                    "SELECT hour, issued_at, reading FROM forecasts
                     WHERE node_id = ?1 AND hour >= ?2 AND hour < ?3",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![node_id, from.0, to.0], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(backend)?;
            for row in rows {
                let (hour, issued, reading) = row.map_err(backend)?;
                let issued = from_ts(issued)?;
                match from_json::<Reading>(&reading)? {
                    Reading::Weather { temp_c, rh_pct } => {
                        s.weather_forecast.insert(Hour(hour), (temp_c, rh_pct, issued));
                    }
                    Reading::Price { usd_per_mwh } => {
                        s.price_forecast.insert(Hour(hour), (usd_per_mwh, issued));
                    }
                }
            }
            Ok(s)
        })
    }
}

impl NodeStore for SqliteStore {
    async fn nodes(&self) -> Result<Vec<NodeState>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached("SELECT config, drained FROM nodes ORDER BY id")
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
                .map_err(backend)?;
            rows.map(|row| {
                let (config, drained) = row.map_err(backend)?;
                Ok(NodeState {
                    node: from_json(&config)?,
                    drained,
                })
            })
            .collect()
        })
    }

    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        let config = to_json(node)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO nodes (id, config) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET config = excluded.config",
                params![node.id, config],
            )
            .map(|_| ())
            .map_err(backend)
        })
    }

    async fn put_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
        prices: &[NodePrice],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            tx.execute(
                "DELETE FROM node_prices WHERE node_id = ?1 AND hour >= ?2 AND hour < ?3",
                params![node_id, from.0, to.0],
            )
            .map_err(backend)?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT INTO node_prices (node_id, hour, capacity, body) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (node_id, hour) DO UPDATE SET capacity = excluded.capacity, body = excluded.body",
                    )
                    .map_err(backend)?;
                for p in prices {
                    st.execute(params![node_id, p.hour.0, p.dispatchable_units(), to_json(p)?])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
    }

    async fn prices(&self, from: Hour, to: Hour) -> Result<Vec<NodePrice>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached("SELECT body FROM node_prices WHERE hour >= ?1 AND hour < ?2 ORDER BY node_id, hour")
                .map_err(backend)?;
            let rows = st.query_map(params![from.0, to.0], |r| r.get::<_, String>(0)).map_err(backend)?;
            rows.map(|b| from_json(&b.map_err(backend)?)).collect()
        })
    }
}

impl Backlog for SqliteStore {
    async fn add(&self, job: &Job, at: DateTime<Utc>) -> Result<Added, StoreError> {
        let body = to_json(job)?;
        self.with(|c| {
            let n = c
                .execute(
                    "INSERT INTO jobs (id, seq, body, status, submitted_at, updated_at)
                     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?2, 'pending', ?3, ?3)
                     ON CONFLICT (id) DO NOTHING",
                    params![job.id.as_str(), body, ts(at)],
                )
                .map_err(backend)?;
            Ok(if n == 1 { Added::Accepted } else { Added::Duplicate })
        })
    }

    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>, StoreError> {
        self.job_rows(Some(status))
    }

    async fn all_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.job_rows(None)
    }

    async fn close_pending(
        &self,
        id: &JobId,
        status: JobStatus,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1 AND status = 'pending'",
                params![id.as_str(), status.as_str(), reason, ts(at)],
            )
            .map(|n| n == 1)
            .map_err(backend)
        })
    }
}

impl DispatchLog for SqliteStore {
    async fn commit(&self, d: &Dispatch) -> Result<Committed, StoreError> {
        let body = to_json(d)?;
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let status: Option<String> = tx
                .query_row("SELECT status FROM jobs WHERE id = ?1", [d.job_id.as_str()], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            match status.as_deref() {
                None => return Ok(Committed::UnknownJob),
                Some("pending") => {}
                Some(other) => return Ok(Committed::NotPending(other.parse().map_err(corrupt)?)),
            }
            let node: Option<(String, bool)> = tx
                .query_row("SELECT config, drained FROM nodes WHERE id = ?1", [&d.node_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(backend)?;
            let nameplate = match node {
                Some((config, false)) => from_json::<Node>(&config)?.capacity_units,
                _ => return Ok(Committed::NoCapacity { hour: d.start }),
            };
            for (hour, units) in d.reservations() {
                // The capacity to check against is the priced capacity of that node-hour,
                // read inside this transaction (the planner's copy may be out of date);
                // past the priced horizon, the nameplate capacity.
                let capacity: Option<u32> = tx
                    .query_row(
                        "SELECT capacity FROM node_prices WHERE node_id = ?1 AND hour = ?2",
                        params![d.node_id, hour.0],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                let capacity = capacity.unwrap_or(nameplate);
                tx.execute(
                    "INSERT OR IGNORE INTO reservations (node_id, hour, units, capacity) VALUES (?1, ?2, 0, ?3)",
                    params![d.node_id, hour.0, capacity],
                )
                .map_err(backend)?;
                let n = tx
                    .execute(
                        "UPDATE reservations SET units = units + ?3, capacity = ?4
                         WHERE node_id = ?1 AND hour = ?2 AND units + ?3 <= ?4",
                        params![d.node_id, hour.0, units, capacity],
                    )
                    .map_err(backend)?;
                if n != 1 {
                    return Ok(Committed::NoCapacity { hour });
                }
            }
            tx.execute(
                "INSERT INTO dispatches (job_id, node_id, start_hour, end_hour, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.job_id.as_str(), d.node_id, d.start.0, d.end().0, body],
            )
            .map_err(backend)?;
            tx.execute(
                "UPDATE jobs SET status = 'dispatched', updated_at = ?2 WHERE id = ?1",
                params![d.job_id.as_str(), ts(d.decided_at)],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Committed::Committed)
        })
    }

    async fn reservations(
        &self,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<(String, Hour, u32)>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT node_id, hour, units FROM reservations WHERE hour >= ?1 AND hour < ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![from.0, to.0], |r| {
                    Ok((r.get(0)?, Hour(r.get(1)?), r.get(2)?))
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
    }

    async fn complete_due(&self, now: Hour, at: DateTime<Utc>) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = 'completed', updated_at = ?2
                 WHERE status = 'dispatched' AND id IN (SELECT job_id FROM dispatches WHERE end_hour <= ?1)",
                params![now.0, ts(at)],
            )
            .map_err(backend)
        })
    }
}

/// The generic face of the controls above (inherent methods, called directly by the local
/// pipeline, take precedence on a concrete `SqliteStore`).
impl ControlStore for SqliteStore {
    async fn control_job(
        &self,
        id: &str,
        action: JobAction,
        now: Hour,
        at: DateTime<Utc>,
    ) -> Result<Result<ControlOutcome, ControlError>, StoreError> {
        SqliteStore::control_job(self, id, action, now, at)
    }
    async fn set_drained(&self, node_id: &str, drained: bool) -> Result<bool, StoreError> {
        SqliteStore::set_drained(self, node_id, drained)
    }
    async fn add_price_override(&self, o: &PriceOverride) -> Result<i64, StoreError> {
        SqliteStore::add_price_override(self, o)
    }
    async fn remove_price_override(&self, id: i64) -> Result<bool, StoreError> {
        SqliteStore::remove_price_override(self, id)
    }
    async fn price_overrides(&self) -> Result<Vec<PriceOverride>, StoreError> {
        SqliteStore::price_overrides(self)
    }
    async fn node_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<NodePrice>, StoreError> {
        SqliteStore::node_prices(self, node_id, from, to)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::node::default_fleet;
    use crate::domain::price::mild_prices;
    use crate::domain::signal::Rejection;

    fn job(id: &str, units: u32) -> Job {
        Job::parse_line(&format!(
            r#"{{"id":"{id}","priority":1,"compute_hours":{},"units":{units},"deadline":"2030-01-01T00:00:00Z"}}"#,
            2 * units
        ))
        .unwrap()
    }

    fn dispatch(id: &str, node: &str, start: Hour, units: u32) -> Dispatch {
        Dispatch {
            job_id: JobId::try_from(id.to_string()).unwrap(),
            node_id: node.into(),
            start,
            slots: 2,
            units,
            planned_cost_usd: 1.0,
            strategy: "optimized".into(),
            decided_at: start.start(),
            runner_up: None,
        }
    }

    /// One node of `capacity` units, priced for hours [h, h+4).
    async fn store_with_node(path: Option<&Path>, capacity: u32, h: Hour) -> SqliteStore {
        let store = match path {
            Some(p) => SqliteStore::open(p).unwrap(),
            None => SqliteStore::in_memory().unwrap(),
        };
        let mut node = default_fleet(1).remove(0);
        node.capacity_units = capacity;
        store.put_node(&node).await.unwrap();
        let prices = mild_prices(&node, h, 4);
        store
            .put_prices(&node.id, h, h.plus(4), &prices)
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn adding_a_known_id_is_a_duplicate_with_no_effect() {
        let store = SqliteStore::in_memory().unwrap();
        let at = Hour(500_000).start();
        assert_eq!(store.add(&job("a", 1), at).await.unwrap(), Added::Accepted);
        assert_eq!(store.add(&job("a", 7), at).await.unwrap(), Added::Duplicate);
        let jobs = store.all_jobs().await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].job.units, 1, "the first version stays");
        assert_eq!(jobs[0].status, JobStatus::Pending);
    }

    #[tokio::test]
    async fn newest_observation_wins_and_others_are_refused_with_reasons() {
        let store = SqliteStore::in_memory().unwrap();
        let t = Hour(500_000).start();
        let obs = |h: i64, v: f64| {
            Observation::new(
                "n1",
                "s",
                t + chrono::Duration::hours(h),
                Reading::Price { usd_per_mwh: v },
            )
        };
        assert_eq!(
            store.put_observation(&obs(1, 10.0)).await.unwrap(),
            Stored::Accepted
        );
        assert_eq!(
            store.put_observation(&obs(1, 99.0)).await.unwrap(),
            Stored::Refused(Rejection::Duplicate)
        );
        assert_eq!(
            store.put_observation(&obs(0, 99.0)).await.unwrap(),
            Stored::Refused(Rejection::OutOfOrder)
        );
        assert_eq!(
            store.put_observation(&obs(2, 20.0)).await.unwrap(),
            Stored::Accepted
        );
        let s = store.node_signals("n1", Hour(0), Hour(1)).await.unwrap();
        assert_eq!(
            s.price.unwrap().reading,
            Reading::Price { usd_per_mwh: 20.0 }
        );
        let history = store.signal_history("n1", SignalKind::Price).unwrap();
        assert_eq!(history.len(), 2);
    }

    #[tokio::test]
    async fn a_forecast_point_is_replaced_only_by_a_newer_issue() {
        let store = SqliteStore::in_memory().unwrap();
        let h = Hour(500_000);
        let fc = |issued: i64, v: f64| Forecast {
            node_id: "n1".into(),
            kind: SignalKind::Price,
            issued_at: h.plus(issued).start(),
            points: vec![(h.plus(5), Reading::Price { usd_per_mwh: v })],
            source: "s".into(),
        };
        assert_eq!(store.put_forecast(&fc(1, 10.0)).await.unwrap(), 1);
        assert_eq!(store.put_forecast(&fc(0, 99.0)).await.unwrap(), 0);
        assert_eq!(store.put_forecast(&fc(2, 30.0)).await.unwrap(), 1);
        let s = store.node_signals("n1", h, h.plus(10)).await.unwrap();
        assert_eq!(s.price_forecast[&h.plus(5)].0, 30.0);
    }

    #[tokio::test]
    async fn commit_is_all_or_nothing_and_idempotent() {
        let h = Hour(500_000);
        let store = store_with_node(None, 10, h).await;
        let node = store.nodes().await.unwrap()[0].node.id.clone();
        for id in ["a", "b", "c"] {
            store.add(&job(id, 4), h.start()).await.unwrap();
        }
        assert_eq!(
            store.commit(&dispatch("a", &node, h, 4)).await.unwrap(),
            Committed::Committed
        );
        assert_eq!(
            store.commit(&dispatch("a", &node, h, 4)).await.unwrap(),
            Committed::NotPending(JobStatus::Dispatched),
            "a retried commit changes nothing"
        );
        assert_eq!(
            store
                .commit(&dispatch("b", &node, h.plus(1), 4))
                .await
                .unwrap(),
            Committed::Committed
        );
        // Hour h+1 now holds 8 of 10: c (4 units over h+1, h+2) must not fit, and must
        // leave no trace at h+2 either.
        assert_eq!(
            store
                .commit(&dispatch("c", &node, h.plus(1), 4))
                .await
                .unwrap(),
            Committed::NoCapacity { hour: h.plus(1) }
        );
        let rows = store.reservation_rows().unwrap();
        let units: Vec<(i64, u32)> = rows.iter().map(|(_, hr, u, _)| (hr.0 - h.0, *u)).collect();
        assert_eq!(units, vec![(0, 4), (1, 8), (2, 4)]);
        let c = store
            .all_jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.job.id.as_str() == "c")
            .unwrap();
        assert_eq!(c.status, JobStatus::Pending);
        assert!(c.dispatch.is_none());
        assert_eq!(
            store.commit(&dispatch("zz", &node, h, 1)).await.unwrap(),
            Committed::UnknownJob
        );
    }

    #[tokio::test]
    async fn drained_nodes_take_no_dispatch() {
        let h = Hour(500_000);
        let store = store_with_node(None, 10, h).await;
        let node = store.nodes().await.unwrap()[0].node.id.clone();
        store.add(&job("a", 1), h.start()).await.unwrap();
        assert!(store.set_drained(&node, true).unwrap());
        assert_eq!(
            store.commit(&dispatch("a", &node, h, 1)).await.unwrap(),
            Committed::NoCapacity { hour: h }
        );
        store.set_drained(&node, false).unwrap();
        assert_eq!(
            store.commit(&dispatch("a", &node, h, 1)).await.unwrap(),
            Committed::Committed
        );
    }

    #[tokio::test]
    async fn finished_runs_complete() {
        let h = Hour(500_000);
        let store = store_with_node(None, 10, h).await;
        let node = store.nodes().await.unwrap()[0].node.id.clone();
        store.add(&job("a", 1), h.start()).await.unwrap();
        store.commit(&dispatch("a", &node, h, 1)).await.unwrap();
        assert_eq!(
            store
                .complete_due(h.plus(1), h.plus(1).start())
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .complete_due(h.plus(2), h.plus(2).start())
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .jobs_with_status(JobStatus::Completed)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_database_from_before_held_and_cancelled_is_migrated_with_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let old = SCHEMA.replace(",'held','cancelled'", "");
            assert!(!old.contains("'cancelled'"));
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&old).unwrap();
            c.execute(
                "INSERT INTO jobs (id, seq, body, status, submitted_at, updated_at) VALUES ('a', 1, ?1, 'pending', 0, 0)",
                [to_json(&job("a", 1)).unwrap()],
            )
            .unwrap();
            assert!(c
                .execute("UPDATE jobs SET status = 'held' WHERE id = 'a'", [])
                .is_err());
        }
        let store = SqliteStore::open(&path).unwrap();
        let h = Hour(500_000);
        let out = store
            .control_job("a", JobAction::Hold, h, h.start())
            .unwrap()
            .unwrap();
        assert_eq!(out.to, JobStatus::Held);
        assert_eq!(store.all_jobs().await.unwrap().len(), 1);
        drop(store);
        // Opening again leaves the migrated table alone.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.jobs_with_status(JobStatus::Held).await.unwrap().len(),
            1
        );
    }

    /// Many planners on their own connections race for one node-hour: the database, not
    /// the planners, decides, and it never hands out more than the capacity.
    #[test]
    fn concurrent_planners_never_overbook() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let h = Hour(500_000);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let node = rt.block_on(async {
            let store = store_with_node(Some(&path), 10, h).await;
            for i in 0..32 {
                store
                    .add(&job(&format!("j{i}"), 3), h.start())
                    .await
                    .unwrap();
            }
            store.nodes().await.unwrap()[0].node.id.clone()
        });
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                let node = node.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let store = SqliteStore::open(&path).unwrap();
                    let mut won = 0;
                    // Every thread tries every job, in its own order.
                    for k in 0..32 {
                        let i = (k * 5 + t * 3) % 32;
                        let d = dispatch(&format!("j{i}"), &node, h, 3);
                        if rt.block_on(store.commit(&d)).unwrap() == Committed::Committed {
                            won += 1;
                        }
                    }
                    won
                })
            })
            .collect();
        let won: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(won, 3, "10 units fit three 3-unit jobs, once each");
        let store = SqliteStore::open(&path).unwrap();
        for (_, _, units, capacity) in store.reservation_rows().unwrap() {
            assert!(units <= capacity);
            assert_eq!(units, 9);
        }
    }
}
