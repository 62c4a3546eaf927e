//! The dashboard's JSON API driven over HTTP through an operator's scenario: the same steps
//! on both deployments (tests/tests/dashboard.rs) and under the recording clients of the
//! role check (tests/tests/contract.rs). Each step checks the API's answer and what the
//! store holds afterwards.

#![allow(clippy::unwrap_used)]

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use chrono::{DateTime, Duration, Utc};
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::app::fetch_signals::{fetch_signals, FetchLimits};
use grd::app::plan_dispatch::plan_dispatch;
use grd::app::price_nodes::price_nodes;
use grd::dashboard::{router, AppState, Deployment};
use grd::domain::dispatch::JobStatus;
use grd::domain::node::{default_fleet, Node};
use grd::domain::plan::strategy_by_name;
use grd::domain::time::Hour;
use grd::ports::{ControlStore, NodeStore, SignalSource, SignalStore};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

const STREAM: &str = include_str!("../infra/events/signals-stream.json");
pub const TOKEN: &str = "open-sesame";

/// The router on a loopback port; answers until the test ends.
pub async fn serve<S: Deployment>(store: Arc<S>) -> String {
    let app = router(Arc::new(AppState {
        store,
        token: Some(TOKEN.into()),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn new<S: Deployment>(store: Arc<S>) -> Api {
        // reqwest is built without a TLS provider of its own (plain HTTP here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            base: serve(store).await,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// A call with the token that must answer `want`.
    pub async fn ok(&self, method: &str, path: &str, body: &str, want: u16) -> Value {
        let (status, v) = self.call(method, path, body, Some(TOKEN)).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        v
    }
}

/// Nodes ash1 and fra1 (the ones the sample stream event names), signals and prices.
pub async fn world<S: SignalStore + NodeStore>(store: &S, now: DateTime<Utc>) -> Vec<Node> {
    let fleet: Vec<Node> = default_fleet(6)
        .into_iter()
        .filter(|n| n.id == "ash1" || n.id == "fra1")
        .collect();
    assert_eq!(fleet.len(), 2);
    for n in &fleet {
        store.put_node(n).await.unwrap();
    }
    let sources: Vec<Arc<dyn SignalSource>> = vec![
        Arc::new(SyntheticSource::new(Stream::Weather, 7, 48, Faults::NONE)),
        Arc::new(SyntheticSource::new(Stream::Price, 7, 48, Faults::NONE)),
    ];
    fetch_signals(store, &sources, &fleet, now, FetchLimits::default(), None)
        .await
        .unwrap();
    price_nodes(store, &fleet, now, 48).await.unwrap();
    fleet
}

fn reserved_unit_hours(load: &Value) -> u64 {
    load["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["units"].as_array().unwrap().iter())
        .map(|u| u.as_u64().unwrap())
        .sum()
}

fn job<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("job {id} not in {state}"))
}

/// The operator's scenario through the API served over `served`; `store` (the same tables,
/// possibly through other clients) sets the world up, plans, reprices and checks what is
/// stored. `mode` is what the deployment says it is.
pub async fn scenario<S: Deployment, H: Deployment + SignalStore>(
    served: Arc<S>,
    store: Arc<H>,
    mode: &str,
) {
    let now = store.now().unwrap();
    let fleet = world(store.as_ref(), now).await;
    let api = Api::new(served).await;

    // The page is open; the data is not.
    let (status, _) = api.call("GET", "/", "", None).await;
    assert_eq!(status, 200);
    for path in ["/api/state", "/api/load", "/api/nodes", "/metrics"] {
        assert_eq!(api.call("GET", path, "", None).await.0, 401, "{path}");
        assert_eq!(
            api.call("GET", path, "", Some("wrong")).await.0,
            401,
            "{path}"
        );
    }
    let state = api.ok("GET", "/api/state", "", 200).await;
    assert_eq!(state["mode"], mode);
    let nodes_before = store.nodes().await.unwrap().len();
    assert_eq!(state["nodes"].as_array().unwrap().len(), nodes_before);
    let ash1 = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "ash1")
        .unwrap();
    assert!(
        ash1["price"]["usd_per_chr"].as_f64().unwrap() > 0.0,
        "{ash1}"
    );

    // Submit: three good lines, one bad; the good ones are kept.
    let soon = (now + Duration::hours(3)).to_rfc3339();
    let later = (now + Duration::hours(30)).to_rfc3339();
    let lines = [
        format!(r#"{{"id":"d-a","priority":0,"compute_hours":4,"units":2,"deadline":"{soon}"}}"#),
        format!(r#"{{"id":"d-b","priority":1,"compute_hours":3,"deadline":"{soon}"}}"#),
        format!(r#"{{"id":"d-c","priority":5,"compute_hours":2,"deadline":"{later}"}}"#),
        r#"{"id":"d-bad","priority":12,"compute_hours":2,"deadline":"2030-01-01T00:00:00Z"}"#
            .to_string(),
    ];
    let report = api.ok("POST", "/api/jobs", &lines.join("\n"), 422).await;
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["accepted"], 3, "{report}");

    // Hold one before planning: it is not dispatched.
    let held = api.ok("POST", "/api/jobs/d-c/hold", "", 200).await;
    assert_eq!(
        (held["from"].as_str(), held["to"].as_str()),
        (Some("pending"), Some("held"))
    );
    let refused = api.ok("POST", "/api/jobs/d-c/hold", "", 409).await;
    assert!(
        refused["error"].as_str().unwrap().contains("held"),
        "{refused}"
    );
    api.ok("POST", "/api/jobs/nope/hold", "", 404).await;
    api.ok("POST", "/api/jobs/d-c/fly", "", 400).await;

    let strategy = strategy_by_name("optimized").unwrap();
    plan_dispatch(store.as_ref(), strategy.as_ref(), now, 48)
        .await
        .unwrap();
    let state = api.ok("GET", "/api/state", "", 200).await;
    assert_eq!(job(&state, "d-a")["status"], "dispatched", "{state}");
    assert_eq!(job(&state, "d-b")["status"], "dispatched", "{state}");
    assert_eq!(job(&state, "d-c")["status"], "held");
    // d-a: 2 units x 2 h, d-b: 1 unit x 3 h.
    let load = api.ok("GET", "/api/load?hours=24", "", 200).await;
    assert_eq!(reserved_unit_hours(&load), 7, "{load}");
    let explained = api.ok("GET", "/api/jobs/d-a/explain", "", 200).await;
    assert!(explained.to_string().contains("d-a"), "{explained}");

    // Cancel gives back all of d-b's capacity and its dispatch record.
    let cancelled = api.ok("POST", "/api/jobs/d-b/cancel", "", 200).await;
    assert_eq!(cancelled["freed_unit_hours"], 3, "{cancelled}");
    let load = api.ok("GET", "/api/load?hours=24", "", 200).await;
    assert_eq!(reserved_unit_hours(&load), 4, "{load}");
    let hour = Hour::containing(now);
    let kept: u32 = store
        .reservations(hour, hour.plus(48))
        .await
        .unwrap()
        .iter()
        .map(|(_, _, u)| u)
        .sum();
    assert_eq!(kept, 4, "d-a keeps its 2 units for 2 hours");
    let state = api.ok("GET", "/api/state", "", 200).await;
    let b = job(&state, "d-b");
    assert_eq!(b["status"], "cancelled");
    assert!(b["node"].is_null() && b["reason"].as_str().unwrap().contains("cancelled"));

    // Complete: d-a is done now; the hours it no longer needs are freed.
    let done = api.ok("POST", "/api/jobs/d-a/complete", "", 200).await;
    assert_eq!(done["to"], "completed");
    let running_hours = api.ok("GET", "/api/load?hours=24", "", 200).await;
    assert_eq!(
        reserved_unit_hours(&running_hours) + done["freed_unit_hours"].as_u64().unwrap(),
        4,
        "{done} {running_hours}"
    );

    // Release and reprioritise the held job; a bad priority is refused.
    api.ok("POST", "/api/jobs/d-c/release", "", 200).await;
    let p = api
        .ok("POST", "/api/jobs/d-c/priority", r#"{"priority":1}"#, 200)
        .await;
    assert_eq!(p["priority"], 1);
    api.ok("POST", "/api/jobs/d-c/priority", r#"{"priority":10}"#, 400)
        .await;
    let state = api.ok("GET", "/api/state", "", 200).await;
    assert_eq!(job(&state, "d-c")["status"], "pending");
    assert_eq!(job(&state, "d-c")["priority"], 1);

    // Drain and undrain.
    let drained = api.ok("POST", "/api/nodes/fra1/drain", "", 200).await;
    assert_eq!(drained["drained"], true);
    let nodes = store.nodes().await.unwrap();
    assert!(nodes.iter().any(|n| n.node.id == "fra1" && n.drained));
    api.ok("POST", "/api/nodes/nowhere/drain", "", 404).await;
    api.ok("POST", "/api/nodes/fra1/undrain", "", 200).await;
    assert!(store.nodes().await.unwrap().iter().all(|n| !n.drained));

    // A what-if price: marked, applied to the stored hours, kept by the pricing function's
    // next run, and gone when removed.
    let body = json!({"node_id": "ash1", "hours": 3, "usd_per_mwh": 900.0}).to_string();
    let o = api.ok("POST", "/api/overrides", &body, 201).await;
    let id = o["id"].as_i64().unwrap();
    let bad = json!({"node_id": "nowhere", "hours": 3, "usd_per_mwh": 9.0}).to_string();
    api.ok("POST", "/api/overrides", &bad, 404).await;
    let what_if = |state: &Value| {
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "ash1")
            .unwrap()["what_if"]
            .as_bool()
            .unwrap()
    };
    let state = api.ok("GET", "/api/state", "", 200).await;
    assert!(
        state["what_if"].as_bool().unwrap() && what_if(&state),
        "{state}"
    );
    let ev: StreamEvent = serde_json::from_str(STREAM).unwrap();
    let far = Instant::now() + std::time::Duration::from_secs(60);
    let resp = grd::lambda::price_nodes::handle(store.as_ref(), ev, 48, now, far).await;
    assert!(resp.batch_item_failures.is_empty());
    let series = api.ok("GET", "/api/nodes/ash1/series", "", 200).await;
    let overridden: Vec<&Value> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["energy_usd_per_mwh"] == 900.0)
        .collect();
    assert_eq!(overridden.len(), 3, "{series}");
    assert!(overridden
        .iter()
        .all(|p| p["market_usd_per_mwh"].as_f64().unwrap() < 900.0));
    api.ok("DELETE", &format!("/api/overrides/{id}"), "", 200)
        .await;
    api.ok("DELETE", &format!("/api/overrides/{id}"), "", 404)
        .await;
    assert!(ControlStore::price_overrides(store.as_ref())
        .await
        .unwrap()
        .is_empty());
    let state = api.ok("GET", "/api/state", "", 200).await;
    assert!(!what_if(&state), "{state}");

    // Add a node.
    let mut node = fleet[0].clone();
    node.id = "new1".into();
    api.ok(
        "POST",
        "/api/nodes",
        &serde_json::to_string(&node).unwrap(),
        201,
    )
    .await;
    node.capacity_units = 0;
    api.ok(
        "POST",
        "/api/nodes",
        &serde_json::to_string(&node).unwrap(),
        400,
    )
    .await;
    assert_eq!(store.nodes().await.unwrap().len(), nodes_before + 1);

    let metrics = api.ok("GET", "/metrics", "", 200).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("grd_jobs{status=\"cancelled\"} 1"),
        "{metrics}"
    );

    // Every accepted job is in exactly one state, and the bad one was never stored.
    let jobs = store.all_jobs().await.unwrap();
    let statuses: Vec<(String, JobStatus)> = jobs
        .iter()
        .map(|r| (r.job.id.to_string(), r.status))
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
}
