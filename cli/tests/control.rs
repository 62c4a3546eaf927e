//! Manual control through the `grd` binary: hold, release, cancel, complete, priority,
//! drain, undrain and explain on a local database.

#![allow(clippy::unwrap_used)]

use grd::adapters::sqlite::SqliteStore;
use grd::domain::dispatch::JobStatus;
use grd_tests::check_invariants;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

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

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    let text = ok(out);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// Fails with a message on stderr that contains `needle`, and prints nothing on stdout.
fn refused(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
    assert!(out.stdout.is_empty());
}

fn status_of(db: &Path, id: &str) -> Value {
    let s = json(&grd(db, &["status", "--json"]));
    s["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no job {id}"))
}

/// A three-node pipeline with a few jobs due within a day.
fn world(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("grd.db");
    ok(&grd(
        &db,
        &[
            "run", "--hours", "1", "--nodes", "3", "--seed", "7", "--start", START,
        ],
    ));
    let s = json(&grd(&db, &["status", "--json"]));
    let clock = chrono::DateTime::parse_from_rfc3339(s["clock"].as_str().unwrap()).unwrap();
    let deadline = (clock + chrono::Duration::hours(30)).to_rfc3339();
    let lines: String = (0..6)
        .map(|i| {
            format!(
                "{{\"id\":\"c{i}\",\"priority\":{i},\"compute_hours\":{},\"units\":2,\"deadline\":\"{deadline}\"}}\n",
                4 + 2 * i
            )
        })
        .collect();
    let file = dir.join("jobs.jsonl");
    std::fs::write(&file, lines).unwrap();
    ok(&grd(&db, &["submit", file.to_str().unwrap()]));
    db
}

#[test]
fn held_jobs_are_not_planned_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let out = json(&grd(&db, &["hold", "c0", "--json"]));
    assert_eq!(out["from"], "pending");
    assert_eq!(out["to"], "held");
    let why = ok(&grd(&db, &["explain", "c0"]));
    assert!(why.contains("held by an operator"), "{why}");
    ok(&grd(&db, &["run", "--hours", "30"]));
    assert_eq!(
        status_of(&db, "c0")["status"],
        "held",
        "30 hours on, still held"
    );
    // The others ran meanwhile.
    assert_eq!(status_of(&db, "c1")["status"], "completed");
    refused(
        &grd(&db, &["release", "c1"]),
        "cannot release job `c1`: it is completed",
    );
    ok(&grd(&db, &["release", "c0"]));
    ok(&grd(&db, &["run", "--hours", "2"]));
    // Released past its deadline, it leaves the queue with a reason.
    let c0 = status_of(&db, "c0");
    assert_eq!(c0["status"], "expired", "{c0}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = SqliteStore::open(&db).unwrap();
    let by = rt.block_on(check_invariants(&store));
    assert_eq!(by.values().sum::<usize>(), 6);
}

#[test]
fn complete_and_cancel_free_capacity_and_explain_names_the_runner_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    // Run until at least two jobs are dispatched.
    let mut dispatched = Vec::new();
    for _ in 0..30 {
        ok(&grd(&db, &["run", "--hours", "1"]));
        let s = json(&grd(&db, &["status", "--json"]));
        dispatched = s["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == "dispatched")
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect();
        if dispatched.len() >= 2 {
            break;
        }
    }
    assert!(dispatched.len() >= 2, "two jobs running at once");
    let (a, b) = (&dispatched[0], &dispatched[1]);

    let e = json(&grd(&db, &["explain", a, "--json"]));
    assert_eq!(e["status"], "dispatched");
    assert!(e["chosen"]["node_id"].is_string(), "{e}");
    let ru = e["runner_up"]["cost_usd"]
        .as_f64()
        .expect("three nodes give a runner-up");
    // The planner's own runner-up (both at the prices it saw) when it recorded one, else
    // both at the stored prices.
    let chosen = match e["saving_basis"].as_str() {
        Some("planned") => {
            assert_eq!(e["runner_up"], e["planner_runner_up"], "{e}");
            e["chosen"]["cost_usd"].as_f64().unwrap()
        }
        Some("stored") => e["chosen_at_stored_prices_usd"].as_f64().unwrap(),
        other => panic!("saving basis {other:?}: {e}"),
    };
    assert!(
        (e["saving_usd"].as_f64().unwrap() - (ru - chosen)).abs() < 1e-9,
        "{e}"
    );
    assert_ne!(
        (&e["runner_up"]["node_id"], &e["runner_up"]["start"]),
        (&e["chosen"]["node_id"], &e["chosen"]["start"])
    );
    let text = ok(&grd(&db, &["explain", a]));
    assert!(text.contains("chosen (planned)"), "{text}");
    assert!(
        text.contains("runner-up") && text.contains("saving $"),
        "{text}"
    );

    let done = json(&grd(&db, &["complete", a, "--json"]));
    assert_eq!(done["to"], "completed");
    let cancel = json(&grd(&db, &["cancel", b, "--json"]));
    assert_eq!(cancel["from"], "dispatched");
    assert!(cancel["freed_unit_hours"].as_u64().unwrap() > 0, "{cancel}");
    let rb = status_of(&db, b);
    assert_eq!(rb["status"], "cancelled");
    assert!(
        rb["reason"]
            .as_str()
            .unwrap()
            .contains("while dispatched to"),
        "{rb}"
    );
    refused(&grd(&db, &["complete", b]), "it is cancelled");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = SqliteStore::open(&db).unwrap();
    let by = rt.block_on(check_invariants(&store));
    assert_eq!(by.get(&JobStatus::Cancelled), Some(&1));
}

#[test]
fn priority_and_drain_change_what_they_name_and_bad_requests_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let p = json(&grd(&db, &["priority", "c5", "0", "--json"]));
    assert_eq!(p["priority"], 0);
    assert_eq!(status_of(&db, "c5")["priority"], 0);
    refused(
        &grd(&db, &["priority", "c5", "10"]),
        "priority 10: must be 0..9",
    );
    refused(&grd(&db, &["hold", "nope"]), "unknown job `nope`");
    refused(&grd(&db, &["explain", "nope"]), "unknown job `nope`");
    refused(&grd(&db, &["drain", "nowhere"]), "unknown node `nowhere`");
    refused(
        &grd(&dir.path().join("none.db"), &["hold", "c0"]),
        "no database at",
    );

    // Drain every node: nothing new is dispatched; undrain one: work goes there only.
    let nodes = json(&grd(&db, &["nodes", "--json"]));
    let ids: Vec<String> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"]["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        let d = json(&grd(&db, &["drain", id, "--json"]));
        assert_eq!(d["drained"], true);
    }
    ok(&grd(&db, &["run", "--hours", "3"]));
    let s = json(&grd(&db, &["status", "--json"]));
    assert!(
        s["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "pending"),
        "{s}"
    );
    ok(&grd(&db, &["undrain", &ids[0]]));
    // Past every deadline: whether a job defers to a cheaper hour depends on the hour of day
    // the run started at, but every job must have run by then or expired.
    ok(&grd(&db, &["run", "--hours", "28"]));
    let s = json(&grd(&db, &["status", "--json"]));
    let placed: Vec<&Value> = s["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["node"].is_string())
        .collect();
    assert!(!placed.is_empty(), "the undrained node takes work");
    assert!(
        placed.iter().all(|j| j["node"] == ids[0].as_str()),
        "{placed:?}"
    );
}
