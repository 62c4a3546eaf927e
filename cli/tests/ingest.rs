//! `grd ingest` and `grd fetch --once` as users run them.

#![allow(clippy::unwrap_used)]

#[path = "../../tests/fixtures/sources/fake_server.rs"]
mod fake_server;

use fake_server::{FakeServer, Reply};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn grd(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_grd"));
    c.arg("--db").arg(db).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run grd")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sources")
        .join(name)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn db_with_default_nodes(dir: &Path) -> PathBuf {
    let db = dir.join("grd.db");
    let out = grd(&db, &["nodes", "--load", "default"], &[]);
    assert!(out.status.success(), "{out:?}");
    db
}

#[test]
fn dirty_station_log_rows_are_each_accepted_or_rejected_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_default_nodes(dir.path());
    let file = fixture("station_dirty.dat");
    let out = grd(
        &db,
        &[
            "ingest",
            "weather",
            file.to_str().unwrap(),
            "--node",
            "ash1",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "some rows rejected: {out:?}");
    let v = json_of(&out);
    assert_eq!(v["rows"], 9);
    assert_eq!(v["accepted"], 3);
    assert_eq!(v["rejected"], 6);
    assert_eq!(
        v["reasons"],
        serde_json::json!({"duplicate": 1, "malformed": 1, "non_finite": 1,
                           "out_of_order": 1, "out_of_range": 2})
    );
    // The same file again: every good row is now a duplicate or older than the newest.
    let again = json_of(&grd(
        &db,
        &[
            "ingest",
            "weather",
            file.to_str().unwrap(),
            "--node",
            "ash1",
            "--json",
        ],
        &[],
    ));
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["rows"], 9);
}

#[test]
fn dirty_price_csv_with_a_human_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_default_nodes(dir.path());
    let file = fixture("prices_dirty.csv");
    let out = grd(
        &db,
        &[
            "ingest",
            "prices",
            file.to_str().unwrap(),
            "--node",
            "fra1",
            "--json",
        ],
        &[],
    );
    let v = json_of(&out);
    assert_eq!(
        (v["rows"].as_u64(), v["accepted"].as_u64()),
        (Some(8), Some(3))
    );
    assert_eq!(
        v["reasons"],
        serde_json::json!({"duplicate": 1, "malformed": 1, "non_finite": 1,
                           "out_of_order": 1, "out_of_range": 1})
    );
    let out = grd(
        &db,
        &["ingest", "prices", file.to_str().unwrap(), "--node", "par1"],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("price CSV") && text.contains("accepted"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: rejected"), "{err}");
}

#[test]
fn unknown_node_and_wrong_kind_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_default_nodes(dir.path());
    let file = fixture("station_dirty.dat");
    let out = grd(
        &db,
        &[
            "ingest",
            "weather",
            file.to_str().unwrap(),
            "--node",
            "nowhere",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown node `nowhere`"));
    let out = grd(
        &db,
        &["ingest", "prices", file.to_str().unwrap(), "--node", "ash1"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("weather station log"));
}

const NODES: &str = r#"[
 {"id":"fra1","name":"Frankfurt","region":"eu-central","lat":50.11,"lon":8.68,"capacity_units":64,
  "non_energy_usd_per_chr":0.026,"market":"entsoe:DE-LU",
  "sources":{"weather":"open-meteo","prices":"energy-charts"}},
 {"id":"fra2","name":"Frankfurt 2","region":"eu-central","lat":50.112,"lon":8.681,"capacity_units":64,
  "non_energy_usd_per_chr":0.026,"market":"entsoe:DE-LU",
  "sources":{"weather":"open-meteo","prices":"energy-charts"}}
]"#;

fn db_with_source_nodes(dir: &Path) -> PathBuf {
    let db = dir.join("grd.db");
    let nodes = dir.join("nodes.json");
    std::fs::write(&nodes, NODES).unwrap();
    let out = grd(&db, &["nodes", "--load", nodes.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{out:?}");
    db
}

fn open_meteo_now() -> String {
    let now = chrono::Utc::now().timestamp();
    let hour = now - now.rem_euclid(3600);
    format!(
        r#"{{"utc_offset_seconds":0,"current":{{"time":{now},"temperature_2m":12.5,"relative_humidity_2m":70}},
            "hourly":{{"time":[{},{}],"temperature_2m":[12.0,13.0],"relative_humidity_2m":[70,72]}}}}"#,
        hour + 3600,
        hour + 7200
    )
}

#[test]
fn fetch_once_stores_what_arrives_and_names_the_failing_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_source_nodes(dir.path());
    let server = FakeServer::start(|target, _| {
        if target.starts_with("/v1/forecast") {
            Reply::json(200, open_meteo_now())
        } else {
            Reply::json(500, r#"{"detail":"database on fire"}"#)
        }
    });
    let archive = dir.path().join("raw");
    let out = grd(
        &db,
        &[
            "fetch",
            "--once",
            "--json",
            "--base-url",
            &server.base,
            "--archive-dir",
            archive.to_str().unwrap(),
        ],
        &[("GRD_HTTP_RETRIES", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json_of(&out);
    let om = &v["sources"]["open-meteo"];
    assert_eq!(om["requests"], 2);
    assert_eq!(om["failed"], 0);
    assert_eq!(om["accepted"], 2, "both nodes got the current weather");
    assert_eq!(om["forecast_points"], 4);
    assert_eq!(v["sources"]["energy-charts"]["failed"], 2);
    assert_eq!(v["unreachable"], serde_json::json!(["energy-charts"]));
    // Two nodes in one grid cell and one zone: one call each (plus one retry of the 500).
    assert_eq!(server.hits("/v1/forecast"), 1);
    assert_eq!(server.hits("/price"), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not get data from `energy-charts`"),
        "{err}"
    );
    assert!(err.contains("HTTP 500"), "{err}");
    // The raw payload was archived under source/cell/date/time.
    let archived: Vec<_> = walk(&archive.join("raw/open-meteo"));
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert!(archived[0].to_string_lossy().contains("50.11_8.68"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn fetch_once_without_a_network_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_source_nodes(dir.path());
    // Nothing listens on port 1.
    let out = grd(
        &db,
        &["fetch", "--once", "--base-url", "http://127.0.0.1:1"],
        &[("GRD_HTTP_RETRIES", "0")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not get data from `open-meteo`"),
        "{err}"
    );
    assert!(
        err.contains("could not get data from `energy-charts`"),
        "{err}"
    );
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("2 of 2 sources"), "{err}");
    let out = grd(&dir.path().join("empty.db"), &["fetch", "--once"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node names a real source"));
}
