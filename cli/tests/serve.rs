//! `grd serve`: the dashboard's API as scripts and the page use it.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grd"))
        .arg("--db")
        .arg(db)
        .args(["serve", "--port", "0"])
        .args(extra)
        .env_remove("GRD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, addr }
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection.
fn call(s: &Server, method: &str, path: &str, body: &str, token: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        s.addr,
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply {
        status,
        content_type,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A small pipeline with dispatched jobs (due soon) and pending ones (due far ahead).
fn world(dir: &Path) -> PathBuf {
    let db = dir.join("grd.db");
    assert!(grd(
        &db,
        &["run", "--hours", "1", "--nodes", "3", "--seed", "3", "--start", START]
    )
    .status
    .success());
    let status = grd(&db, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let clock = chrono::DateTime::parse_from_rfc3339(status["clock"].as_str().unwrap()).unwrap();
    let soon = (clock + chrono::Duration::hours(4)).to_rfc3339();
    let lines: String = (0..8)
        .map(|i| {
            let deadline = if i % 2 == 0 { soon.as_str() } else { "2099-01-01T00:00:00Z" };
            format!(
                "{{\"id\":\"s{i}\",\"priority\":{},\"compute_hours\":6,\"units\":2,\"deadline\":\"{deadline}\"}}\n",
                i % 10
            )
        })
        .collect();
    let file = dir.join("jobs.jsonl");
    std::fs::write(&file, lines).unwrap();
    assert!(grd(&db, &["submit", file.to_str().unwrap()])
        .status
        .success());
    assert!(grd(&db, &["run", "--hours", "2"]).status.success());
    db
}

fn job<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap()
}

#[test]
fn state_controls_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let s = serve(&db, &[]);

    let page = call(&s, "GET", "/", "", None);
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("id=\"map-svg\""));
    assert!(
        !page.body.contains("https://"),
        "no CDN: the page loads only its own files"
    );
    let lib = call(&s, "GET", "/vendor/chart.umd.min.js", "", None);
    assert_eq!(lib.status, 200);
    assert!(lib.body.contains("Chart.js v4"));
    assert_eq!(call(&s, "GET", "/vendor/none.js", "", None).status, 404);

    let st = call(&s, "GET", "/api/state", "", None);
    assert_eq!(st.status, 200);
    assert!(st.content_type.starts_with("application/json"));
    let state = st.json();
    let nodes = state["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert!(n["lat"].is_f64() && n["lon"].is_f64(), "{n}");
        assert!(n["price"]["usd_per_chr"].is_f64(), "{n}");
        assert!(n["stale"].is_boolean());
    }
    assert_eq!(state["jobs"].as_array().unwrap().len(), 8);
    assert!(state["summary"]["compute_hours"]["pending"].is_f64());
    assert_eq!(state["what_if"], false);

    let pending = state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["status"] == "pending")
        .expect("a pending job")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dispatched = state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["status"] == "dispatched")
        .expect("a dispatched job")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A control call changes the state, as the API and the command line see it.
    let held = call(&s, "POST", &format!("/api/jobs/{pending}/hold"), "", None);
    assert_eq!(held.status, 200, "{}", held.body);
    assert_eq!(held.json()["to"], "held");
    let state = call(&s, "GET", "/api/state", "", None).json();
    assert_eq!(job(&state, &pending)["status"], "held");
    let cli = grd(&db, &["status", "--json"]);
    assert!(String::from_utf8_lossy(&cli.stdout).contains("\"held\""));
    let p = call(
        &s,
        "POST",
        &format!("/api/jobs/{pending}/priority"),
        r#"{"priority":0}"#,
        None,
    );
    assert_eq!(p.json()["priority"], 0);

    // Errors: status codes and a message naming what was wrong.
    let r = call(
        &s,
        "POST",
        &format!("/api/jobs/{dispatched}/release"),
        "",
        None,
    );
    assert_eq!(r.status, 409);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("it is dispatched"));
    let r = call(&s, "POST", "/api/jobs/nope/hold", "", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "unknown job `nope`");
    let r = call(&s, "POST", "/api/jobs/s1/pause", "", None);
    assert_eq!(r.status, 400);
    let r = call(
        &s,
        "POST",
        "/api/jobs/s1/priority",
        r#"{"priority":12}"#,
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("0..9"));
    let r = call(&s, "GET", "/api/jobs/nope/explain", "", None);
    assert_eq!(r.status, 404);
    let r = call(&s, "POST", "/api/nodes/nowhere/drain", "", None);
    assert_eq!(r.status, 404);

    // Explanations of dispatches name the chosen node.
    let e = call(
        &s,
        "GET",
        &format!("/api/jobs/{dispatched}/explain"),
        "",
        None,
    )
    .json();
    assert!(e["chosen"]["node_id"].is_string(), "{e}");
    let all = call(&s, "GET", "/api/explanations?limit=5", "", None).json();
    assert!(!all["explanations"].as_array().unwrap().is_empty());

    // Load per node over the next hours: the dispatched job's units are there.
    let load = call(&s, "GET", "/api/load?hours=6", "", None).json();
    assert_eq!(load["hours"].as_array().unwrap().len(), 6);
    let first: u64 = load["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["units"][0].as_u64().unwrap())
        .sum();
    assert!(first >= 2, "{load}");
    assert_eq!(call(&s, "GET", "/api/load?hours=0", "", None).status, 400);

    // Submit through the API: one good line, one bad.
    let r = call(
        &s,
        "POST",
        "/api/jobs",
        "{\"id\":\"web1\",\"priority\":1,\"compute_hours\":2,\"units\":1,\"deadline\":\"2099-01-01T00:00:00Z\"}\n{\"id\":\"web2\",\"units\":-1}",
        None,
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["accepted"], 1);
    assert_eq!(r.json()["rejected"], 1);
}

#[test]
fn overrides_are_visible_and_undone() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let s = serve(&db, &[]);
    let state = call(&s, "GET", "/api/state", "", None).json();
    let node = state["nodes"][0]["id"].as_str().unwrap().to_string();
    let before = state["nodes"][0]["price"]["usd_per_chr"].as_f64().unwrap();
    let bad = call(
        &s,
        "POST",
        "/api/overrides",
        r#"{"node_id":"x","hours":0,"usd_per_mwh":1}"#,
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("empty"));
    let o = call(
        &s,
        "POST",
        "/api/overrides",
        &format!(r#"{{"node_id":"{node}","hours":4,"usd_per_mwh":2000}}"#),
        None,
    );
    assert_eq!(o.status, 201, "{}", o.body);
    let id = o.json()["id"].as_i64().unwrap();
    let state = call(&s, "GET", "/api/state", "", None).json();
    assert_eq!(state["what_if"], true);
    assert_eq!(state["nodes"][0]["what_if"], true);
    assert!(state["nodes"][0]["price"]["usd_per_chr"].as_f64().unwrap() > before);
    let series = call(&s, "GET", &format!("/api/nodes/{node}/series"), "", None).json();
    let marked = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["market_usd_per_mwh"].is_f64())
        .count();
    assert_eq!(marked, 4);
    let m = call(&s, "GET", "/metrics", "", None).body;
    assert!(m.contains("grd_price_overrides_active 1"), "{m}");
    assert_eq!(
        call(&s, "DELETE", &format!("/api/overrides/{id}"), "", None).status,
        200
    );
    assert_eq!(
        call(&s, "DELETE", &format!("/api/overrides/{id}"), "", None).status,
        404
    );
    let state = call(&s, "GET", "/api/state", "", None).json();
    assert_eq!(state["what_if"], false);
    assert!((state["nodes"][0]["price"]["usd_per_chr"].as_f64().unwrap() - before).abs() < 1e-12);
}

#[test]
fn replay_speed_is_set_for_running_pipelines_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let s = serve(&db, &[]);
    assert!(call(&s, "GET", "/api/state", "", None).json()["replay_speed"].is_null());
    let r = call(&s, "POST", "/api/speed", r#"{"hours_per_second":4}"#, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        call(&s, "GET", "/api/state", "", None).json()["replay_speed"],
        4.0
    );
    // A run on this database now paces itself at 4 simulated hours per second.
    let t = std::time::Instant::now();
    assert!(grd(&db, &["run", "--hours", "2"]).status.success());
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    let r = call(&s, "POST", "/api/speed", r#"{"hours_per_second":-1}"#, None);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("replay speed -1"));
    let r = call(
        &s,
        "POST",
        "/api/speed",
        r#"{"hours_per_second":null}"#,
        None,
    );
    assert_eq!(r.status, 200);
    assert!(call(&s, "GET", "/api/state", "", None).json()["replay_speed"].is_null());
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let s = serve(&db, &[]);
    let r = call(&s, "GET", "/metrics", "", None);
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
    let mut samples = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in r.body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap();
            let kind = it.next();
            assert!(matches!(kind, Some("counter" | "gauge")), "{line}");
            // A counter never falls and is named so; a gauge is not.
            assert_eq!(kind == Some("counter"), name.ends_with("_total"), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap();
        let name = key.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(typed.contains(name), "{name} sampled before its TYPE");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(key.to_string(), v);
    }
    assert_eq!(samples["grd_jobs_accepted_total"], 8.0);
    assert!(samples["grd_dispatched_compute_hours_total"] > 0.0);
    // Prices may be negative (a glut of wind or sun), so a cost may be too; it is never 0 for
    // dispatched hours at generated prices.
    let cost = samples["grd_dispatched_cost_usd"];
    assert!(cost.is_finite() && cost != 0.0, "{cost}");
    assert!(!r.body.contains(" -0\n"), "a zero prints as 0");
    assert!(samples.contains_key("grd_backlog_age_seconds"));
    assert!(samples.contains_key("grd_nodes_stale"));
    assert!(
        samples
            .keys()
            .any(|k| k.starts_with("grd_fetch_errors_total{source=")),
        "{samples:?}"
    );
}

#[test]
fn token_guards_every_call_and_is_required_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = world(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_grd"))
        .arg("--db")
        .arg(&db)
        .args(["serve", "--port", "0", "--bind", "0.0.0.0"])
        .env_remove("GRD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --token"));

    let s = serve(&db, &["--token", "sesame"]);
    assert_eq!(
        call(&s, "GET", "/", "", None).status,
        200,
        "the page holds no data"
    );
    for path in ["/api/state", "/api/load", "/api/explanations", "/metrics"] {
        assert_eq!(call(&s, "GET", path, "", None).status, 401, "{path}");
        assert_eq!(
            call(&s, "GET", path, "", Some("sesame")).status,
            200,
            "{path}"
        );
    }
    let r = call(&s, "POST", "/api/nodes/nowhere/drain", "", None);
    assert_eq!(r.status, 401);
    let r = call(&s, "POST", "/api/jobs/s1/hold", "", Some("wrong"));
    assert_eq!(r.status, 401);
    let r = call(&s, "POST", "/api/jobs/s1/cancel", "", Some("sesame"));
    assert_eq!(r.status, 200, "{}", r.body);
}
