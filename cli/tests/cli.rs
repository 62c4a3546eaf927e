//! The `grd` binary as users run it.

#![allow(clippy::unwrap_used)]

use grd::adapters::sqlite::SqliteStore;
use grd::domain::dispatch::JobStatus;
use grd_tests::check_invariants;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A fixed start for the simulated clock, so the generated signals, and what the planner
/// does with them, do not depend on the day the tests run.
const START: &str = "2026-07-01T00:00:00Z";

fn grd(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grd"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run grd")
}

fn grd_stdin(db: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grd"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grd");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn last_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn job_lines(prefix: &str, n: usize, deadline: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"{prefix}-{i}","priority":{},"compute_hours":{},"units":{},"deadline":"{deadline}"}}"#,
                i % 10,
                2 + i % 9,
                1 + i % 4
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn submit_reports_each_line_and_status_lists_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grd.db");
    // Deadlines five hours out leave little room to wait for a cheaper hour.
    let soon = (chrono::Utc::now() + chrono::Duration::hours(5)).to_rfc3339();
    let a = format!(r#"{{"id":"a","priority":0,"compute_hours":4,"deadline":"{soon}"}}"#);
    let b = format!(
        r#"{{"id":"b","priority":3,"compute_hours":2,"units":2,"deadline":"{soon}","regions":["eu-west"]}}"#
    );
    let a_again = r#"{"id":"a","priority":5,"compute_hours":9,"deadline":"2099-01-01T00:00:00Z"}"#;
    let bad_priority =
        r#"{"id":"c","priority":12,"compute_hours":4,"deadline":"2099-01-01T00:00:00Z"}"#;
    let input = format!("{a}\n\n{b}\n{a_again}\nnot json\n{bad_priority}\n");
    let out = grd_stdin(&db, &["submit", "-", "--json"], &input);
    assert_eq!(out.status.code(), Some(3), "some lines were rejected");
    let r = last_json(&out);
    assert_eq!(r["lines"], 5);
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["duplicates"], 1);
    assert_eq!(r["rejected"], 2);
    assert_eq!(r["reasons"]["invalid_json"], 1);
    assert_eq!(r["reasons"]["invalid_priority"], 1);
    assert!(r["errors"].to_string().contains("priority"));

    let status = last_json(&grd(&db, &["status", "--json"]));
    let jobs = status["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j["status"] == "pending"));

    let out = grd(&db, &["run", "--hours", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = last_json(&grd(&db, &["status", "--json"]));
    for j in status["jobs"].as_array().unwrap() {
        assert!(
            ["dispatched", "completed"].contains(&j["status"].as_str().unwrap()),
            "{j}"
        );
        assert!(j["node"].is_string());
    }
    assert_eq!(status["nodes"].as_array().unwrap().len(), 6);
    let text = grd(&db, &["status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("QUEUE"));
}

#[test]
fn bad_arguments_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grd.db");
    let out = grd(&db, &["run", "--hours", "1", "--faults", "loss=3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loss"));
    let out = grd(&db, &["run", "--hours", "1", "--strategy", "magic"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown strategy `magic`"));
    let out = grd(&db, &["submit", "/no/such/file"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file"));
    let out = grd(&dir.path().join("absent.db"), &["status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
}

#[test]
fn demo_dispatches_for_less_than_the_2019_rule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let args = [
        "demo",
        "--json",
        "--jobs",
        "150",
        "--hours",
        "24",
        "--seed",
        "5",
        "--start",
        "2026-03-02T00:00:00Z",
    ];
    let out = grd(&db, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = last_json(&out);
    for key in [
        "total_cost_usd",
        "baseline_cost_usd",
        "jobs_dispatched",
        "jobs_pending",
        "deadline_misses",
        "nodes",
    ] {
        assert!(!r[key].is_null(), "missing {key}: {r}");
    }
    assert!(
        r["total_cost_usd"].as_f64().unwrap() < r["baseline_cost_usd"].as_f64().unwrap(),
        "{r}"
    );
    assert!(r["jobs_dispatched"].as_u64().unwrap() >= 145);
    assert_eq!(r["nodes"].as_array().unwrap().len(), 6);
    // The same seed and start repeat exactly.
    let again = last_json(&grd(&db, &args));
    assert_eq!(again["total_cost_usd"], r["total_cost_usd"]);
    // The run stays in the database for `grd status`.
    let status = last_json(&grd(&db, &["status", "--json"]));
    assert_eq!(status["jobs"].as_array().unwrap().len(), 150);
    // A database the demo did not create is never replaced.
    let other = dir.path().join("mine.db");
    grd_stdin(
        &other,
        &["submit", "-"],
        r#"{"id":"x","priority":0,"compute_hours":1,"deadline":"2099-01-01T00:00:00Z"}"#,
    );
    let out = grd(&other, &["demo", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not create"));
}

/// `--start` fixes the simulated clock of a new database, so a run repeats exactly; a
/// database that already has a clock keeps it.
#[test]
fn start_fixes_the_clock_and_a_run_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = job_lines("t", 20, "2026-07-02T12:00:00Z");
    let once = |name: &str| {
        let db = dir.path().join(name);
        assert!(grd(
            &db,
            &[
                "run",
                "--hours",
                "1",
                "--seed",
                "5",
                "--start",
                "2026-07-01T00:40:00Z"
            ]
        )
        .status
        .success());
        assert!(grd_stdin(&db, &["submit", "-"], &jobs).status.success());
        let out = grd(&db, &["run", "--hours", "3", "--json"]);
        assert!(out.status.success());
        let status = last_json(&grd(&db, &["status", "--json"]));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            status,
            db,
        )
    };
    let (a, status, db) = once("a.db");
    let (b, again, _) = once("b.db");
    assert_eq!(a, b);
    assert_eq!(status["jobs"], again["jobs"]);
    assert_eq!(status["clock"], "2026-07-01T04:00:00Z", "{status}");

    // The same start again is fine; another one is refused and changes nothing.
    assert!(grd(
        &db,
        &["run", "--hours", "1", "--start", "2026-07-01T00:00:00Z"]
    )
    .status
    .success());
    let out = grd(
        &db,
        &["run", "--hours", "1", "--start", "2026-08-01T00:00:00Z"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--start") && err.contains("2026-07-01T00:00:00"),
        "{err}"
    );
    let out = grd(&db, &["run", "--hours", "1", "--start", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let status = last_json(&grd(&db, &["status", "--json"]));
    assert_eq!(status["clock"], "2026-07-01T05:00:00Z", "{status}");
}

/// A local run killed part way (SIGKILL, mid-write or not) resumes on the same database
/// and loses, doubles and double-reserves nothing.
#[test]
fn a_killed_run_resumes_without_losing_or_doubling_anything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grd.db");
    let out = grd(
        &db,
        &["run", "--hours", "1", "--seed", "9", "--start", START],
    );
    assert!(out.status.success());
    let out = grd_stdin(
        &db,
        &["submit", "-", "--json"],
        &job_lines("k", 300, "2099-01-01T00:00:00Z"),
    );
    assert_eq!(last_json(&out)["accepted"], 300);

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (round, wait_ms) in [150u64, 400, 90, 700].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grd"))
            .arg("--db")
            .arg(&db)
            .args(["run", "--hours", "500", "--faults", "typical"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = SqliteStore::open(&db).unwrap();
        let by_status = rt.block_on(check_invariants(&store));
        assert_eq!(
            by_status.values().sum::<usize>(),
            300,
            "round {round}: {by_status:?}"
        );
        // Resubmitting after a crash is safe: every line is a known id.
        let again = grd_stdin(
            &db,
            &["submit", "-", "--json"],
            &job_lines("k", 300, "2099-01-01T00:00:00Z"),
        );
        assert_eq!(last_json(&again)["duplicates"], 300);
    }
    let out = grd(&db, &["run", "--hours", "200"]);
    assert!(out.status.success());
    let store = SqliteStore::open(&db).unwrap();
    let by_status = rt.block_on(check_invariants(&store));
    assert_eq!(
        by_status.get(&JobStatus::Completed).copied().unwrap_or(0),
        300,
        "{by_status:?}"
    );
}

/// Planners in separate processes racing on one database, while more jobs arrive from other
/// processes: every accepted job is in exactly one state, reservations equal the dispatches
/// that cover them and no node-hour is reserved beyond its capacity.
#[test]
fn concurrent_processes_never_overbook_or_lose_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grd.db");
    let out = grd(
        &db,
        &["run", "--hours", "1", "--seed", "3", "--start", START],
    );
    assert!(out.status.success());
    let out = grd_stdin(
        &db,
        &["submit", "-", "--json"],
        &job_lines("p", 200, "2099-01-01T00:00:00Z"),
    );
    assert_eq!(last_json(&out)["accepted"], 200);

    let spawn = |args: &[&str], input: Option<String>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grd"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        drop(stdin);
        child
    };
    let mut children: Vec<_> = (0..4)
        .map(|_| spawn(&["run", "--hours", "24"], None))
        .collect();
    for batch in ["q", "r"] {
        children.push(spawn(
            &["submit", "-", "--json"],
            Some(job_lines(batch, 100, "2099-01-01T00:00:00Z")),
        ));
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = SqliteStore::open(&db).unwrap();
    let by_status = rt.block_on(check_invariants(&store));
    assert_eq!(by_status.values().sum::<usize>(), 400, "{by_status:?}");
    let placed = by_status.get(&JobStatus::Dispatched).copied().unwrap_or(0)
        + by_status.get(&JobStatus::Completed).copied().unwrap_or(0);
    assert!(
        placed > 0,
        "the racing planners placed nothing: {by_status:?}"
    );
}
