//! The JSON API: reads of the pipeline's state and the operator's controls.

use super::metrics::{self, Snapshot};
use super::{AppState, Deployment};
use crate::app::control::{self, ControlFailure};
use crate::app::explain::{explain, explain_id};
use crate::app::ingest_jobs::ingest_lines;
use crate::app::summary::summary;
use crate::app::view::View;
use crate::domain::dispatch::{ControlError, JobRecord, JobStatus};
use crate::domain::node::Node;
use crate::domain::price::PriceOverride;
use crate::domain::time::Hour;
use crate::ports::{ControlStore, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type Shared<S> = State<Arc<AppState<S>>>;

/// An error as the API returns it: a status and `{"error": "..."}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<ControlFailure> for ApiError {
    fn from(e: ControlFailure) -> Self {
        match e {
            ControlFailure::Store(s) => s.into(),
            ControlFailure::Refused(r) => r.into(),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(r: ControlError) -> Self {
        let status = match &r {
            ControlError::UnknownJob(_) | ControlError::UnknownNode(_) => StatusCode::NOT_FOUND,
            ControlError::WrongState { .. } => StatusCode::CONFLICT,
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ApiError(status, r.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult = Result<Response, ApiError>;

/// Every call carries the token when one is set.
fn authorize<S>(state: &AppState<S>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if t == token => Ok(()),
        Some(_) => Err(ApiError(StatusCode::UNAUTHORIZED, "wrong token".into())),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this server needs a token: send `Authorization: Bearer TOKEN`".into(),
        )),
    }
}

/// The pipeline's time.
fn now<S: Deployment>(state: &AppState<S>) -> Result<DateTime<Utc>, StoreError> {
    state.store.now()
}

fn job_json(r: &JobRecord) -> Value {
    let d = r.dispatch.as_ref();
    json!({
        "id": r.job.id, "status": r.status, "priority": r.job.priority.get(),
        "compute_hours": r.job.compute_hours, "units": r.job.units,
        "deadline": r.job.deadline, "submitted_at": r.submitted_at, "reason": r.reason,
        "node": d.map(|d| d.node_id.clone()), "start": d.map(|d| d.start.start()),
        "end": d.map(|d| d.end().start()), "planned_cost_usd": d.map(|d| d.planned_cost_usd),
        "usd_per_chr": d.map(|d| d.planned_cost_usd / r.job.compute_hours.max(1e-9)),
    })
}

/// Most recent jobs the page lists.
const JOBS_SHOWN: usize = 500;

pub async fn state<S: Deployment>(State(s): Shared<S>, headers: HeaderMap) -> ApiResult {
    authorize(&s, &headers)?;
    let now = now(&s)?;
    let store = s.store.as_ref();
    let view = View::load(store, now).await?;
    let totals = summary(store).await?;
    let overrides = ControlStore::price_overrides(store).await?;
    let hour = Hour::containing(now);
    let nodes: Vec<Value> = view
        .nodes
        .iter()
        .map(|row| {
            let n = &row.state.node;
            let stale = row.price.as_ref().is_none_or(|p| p.stale);
            json!({
                "id": n.id, "name": n.name, "region": n.region, "market": n.market,
                "lat": n.lat, "lon": n.lon, "capacity_units": n.capacity_units,
                "drained": row.state.drained, "price": row.price, "stale": stale,
                "what_if": row.price.as_ref().is_some_and(|p| p.market_usd_per_mwh.is_some()),
                "reserved_units": row.reserved, "running_jobs": row.running,
            })
        })
        .collect();
    let total = view.jobs.len();
    let jobs: Vec<Value> = view
        .jobs
        .iter()
        .rev()
        .take(JOBS_SHOWN)
        .map(job_json)
        .collect();
    let active: Vec<&PriceOverride> = overrides.iter().filter(|o| o.to > hour).collect();
    Ok(Json(json!({
        "clock": now, "hour": hour, "nodes": nodes, "summary": totals,
        "jobs": jobs, "jobs_total": total, "overrides": overrides,
        "what_if": !active.is_empty(),
        "replay_speed": s.store.replay_speed()?, "mode": s.store.mode(),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct LoadQuery {
    hours: Option<u32>,
}

/// Units reserved per node for each of the next hours.
pub async fn load<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Query(q): Query<LoadQuery>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=336).contains(&hours) {
        return Err(bad(format!("hours={hours}: must be 1..=336")));
    }
    let hour = Hour::containing(now(&s)?);
    let end = hour.plus(i64::from(hours));
    let nodes = s.store.nodes().await?;
    let mut units: BTreeMap<String, Vec<u32>> = nodes
        .iter()
        .map(|n| (n.node.id.clone(), vec![0; hours as usize]))
        .collect();
    for (node, h, u) in s.store.reservations(hour, end).await? {
        if let Some(v) = units.get_mut(&node) {
            v[hour.until(h) as usize] = u;
        }
    }
    let labels: Vec<DateTime<Utc>> = (0..i64::from(hours))
        .map(|k| hour.plus(k).start())
        .collect();
    let series: Vec<Value> = nodes
        .iter()
        .map(|n| json!({"node": n.node.id, "capacity_units": n.node.capacity_units, "units": units[&n.node.id]}))
        .collect();
    Ok(Json(json!({"from": hour.start(), "hours": labels, "nodes": series})).into_response())
}

#[derive(Deserialize)]
pub struct SeriesQuery {
    back: Option<u32>,
}

/// A node's stored prices: history before the current hour, forecast from it.
pub async fn series<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let back = q.back.unwrap_or(48).min(24 * 31);
    let hour = Hour::containing(now(&s)?);
    if !s.store.nodes().await?.iter().any(|n| n.node.id == id) {
        return Err(ControlError::UnknownNode(id).into());
    }
    let prices = s
        .store
        .node_prices(&id, hour.plus(-i64::from(back)), hour.plus(24 * 14))
        .await?;
    let points: Vec<Value> = prices
        .iter()
        .map(|p| {
            json!({
                "t": p.hour.start(), "usd_per_chr": p.usd_per_chr, "pue": p.pue,
                "capacity_units": p.capacity_units, "energy_usd_per_mwh": p.energy_usd_per_mwh,
                "market_usd_per_mwh": p.market_usd_per_mwh, "stale": p.stale,
                "forecast": p.hour >= hour,
            })
        })
        .collect();
    Ok(Json(json!({"node": id, "now": hour.start(), "points": points})).into_response())
}

pub async fn explain_job<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    authorize(&s, &headers)?;
    match explain_id(s.store.as_ref(), &id, now(&s)?).await? {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ControlError::UnknownJob(id).into()),
    }
}

#[derive(Deserialize)]
pub struct ExplanationsQuery {
    limit: Option<usize>,
}

/// Explanations of the most recent dispatches.
pub async fn explanations<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Query(q): Query<ExplanationsQuery>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let limit = q.limit.unwrap_or(12).min(100);
    let now = now(&s)?;
    let mut jobs: Vec<JobRecord> = s
        .store
        .all_jobs()
        .await?
        .into_iter()
        .filter(|r| r.dispatch.is_some())
        .collect();
    jobs.sort_by_key(|r| {
        std::cmp::Reverse(
            r.dispatch
                .as_ref()
                .map(|d| (d.decided_at, d.job_id.to_string())),
        )
    });
    let mut out = Vec::new();
    for r in jobs.iter().take(limit) {
        out.push(explain(s.store.as_ref(), r, now).await?);
    }
    Ok(Json(json!({ "explanations": out })).into_response())
}

/// Optional JSON body of a job action: `{"priority": N}` for `priority`.
fn body_priority(body: &str) -> Result<Option<i64>, ApiError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
    match v.get("priority") {
        None | Some(Value::Null) => Ok(None),
        Some(p) => p
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("priority {p}: must be an integer 0..9"))),
    }
}

pub async fn job_action<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: String,
) -> ApiResult {
    authorize(&s, &headers)?;
    let action = control::parse_action(&action, body_priority(&body)?)?;
    let out = control::control_job(s.store.as_ref(), &id, action, now(&s)?).await?;
    Ok(Json(out).into_response())
}

pub async fn node_action<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let drained = match action.as_str() {
        "drain" => true,
        "undrain" => false,
        other => {
            return Err(bad(format!(
                "unknown node action `{other}` (known: drain, undrain)"
            )))
        }
    };
    Ok(Json(control::set_drained(s.store.as_ref(), &id, drained).await?).into_response())
}

/// Node definitions as configured (the format `grd nodes --load` takes).
pub async fn nodes<S: Deployment>(State(s): Shared<S>, headers: HeaderMap) -> ApiResult {
    authorize(&s, &headers)?;
    Ok(Json(json!({ "nodes": s.store.nodes().await? })).into_response())
}

pub async fn add_node<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    authorize(&s, &headers)?;
    let node: Node =
        serde_json::from_str(&body).map_err(|e| bad(format!("not a node definition: {e}")))?;
    control::put_node(s.store.as_ref(), &node).await?;
    Ok((StatusCode::CREATED, Json(node)).into_response())
}

/// Job lines (JSON, one per line) into the backlog, as `grd submit` takes them.
pub async fn submit<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    authorize(&s, &headers)?;
    if body.trim().is_empty() {
        return Err(bad("no job lines in the body"));
    }
    let report = ingest_lines(s.store.as_ref(), body.lines(), now(&s)?).await?;
    s.store
        .count("lines_rejected", "", report.rejected as u64)?;
    let status = if report.rejected > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    node_id: String,
    /// First hour (RFC 3339); default the current hour.
    from: Option<DateTime<Utc>>,
    hours: u32,
    usd_per_mwh: f64,
}

pub async fn add_override<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    authorize(&s, &headers)?;
    let req: OverrideRequest = serde_json::from_str(&body).map_err(|e| {
        bad(format!(
            "expected {{\"node_id\", \"from\" (optional), \"hours\", \"usd_per_mwh\"}}: {e}"
        ))
    })?;
    let now = now(&s)?;
    let from = Hour::containing(req.from.unwrap_or(now));
    let o = PriceOverride {
        id: 0,
        node_id: req.node_id,
        from,
        to: from.plus(i64::from(req.hours)),
        usd_per_mwh: req.usd_per_mwh,
    };
    let stored = control::add_price_override(s.store.as_ref(), o, now).await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

pub async fn remove_override<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let removed = control::remove_price_override(s.store.as_ref(), id, now(&s)?)
        .await
        .map_err(|e| match e {
            ControlFailure::Refused(r) => ApiError(StatusCode::NOT_FOUND, r.to_string()),
            other => other.into(),
        })?;
    Ok(Json(removed).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedRequest {
    /// Simulated hours per wall-clock second; null clears it (each run keeps its own --speed).
    hours_per_second: Option<f64>,
}

/// Sets the replay speed of running local pipelines (they pick it up at their next hour).
pub async fn set_speed<S: Deployment>(
    State(s): Shared<S>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    authorize(&s, &headers)?;
    let req: SpeedRequest = serde_json::from_str(&body).map_err(|e| {
        bad(format!(
            "expected {{\"hours_per_second\": number or null}}: {e}"
        ))
    })?;
    s.store.set_replay_speed(req.hours_per_second)??;
    Ok(Json(json!({ "replay_speed": req.hours_per_second })).into_response())
}

pub async fn metrics<S: Deployment>(State(s): Shared<S>, headers: HeaderMap) -> ApiResult {
    authorize(&s, &headers)?;
    let now = now(&s)?;
    let store = s.store.as_ref();
    let jobs = store.all_jobs().await?;
    let totals = summary(store).await?;
    let hour = Hour::containing(now);
    let prices = store.prices(hour, hour.plus(1)).await?;
    let nodes = store.nodes().await?;
    let oldest_pending = jobs
        .iter()
        .filter(|r| matches!(r.status, JobStatus::Pending | JobStatus::Held))
        .map(|r| r.submitted_at)
        .min();
    let snap = Snapshot {
        jobs_by_status: JobStatus::ALL
            .iter()
            .map(|st| {
                (
                    st.as_str().to_string(),
                    jobs.iter().filter(|r| r.status == *st).count() as u64,
                )
            })
            .collect(),
        backlog_age_seconds: oldest_pending
            .map(|t| (now - t).num_seconds().max(0) as f64)
            .unwrap_or(0.0),
        backlog_compute_hours: jobs
            .iter()
            .filter(|r| matches!(r.status, JobStatus::Pending | JobStatus::Held))
            .map(|r| r.job.compute_hours)
            .sum::<f64>()
            + 0.0, // an empty f64 sum is -0.0, which would print as "-0"
        dispatched_chr: totals.dispatched_chr,
        cost_usd: totals.cost_usd,
        nodes: nodes
            .iter()
            .map(|n| {
                let p = prices.iter().find(|p| p.node_id == n.node.id);
                metrics::NodeMetric {
                    node: n.node.id.clone(),
                    usd_per_chr: p.map(|p| p.usd_per_chr),
                    stale: p.is_none_or(|p| p.stale),
                    drained: n.drained,
                    what_if: p.is_some_and(|p| p.market_usd_per_mwh.is_some()),
                }
            })
            .collect(),
        counters: s.store.counters()?,
        overrides_active: ControlStore::price_overrides(store)
            .await?
            .iter()
            .filter(|o| o.to > hour)
            .count() as u64,
        clock_seconds: now.timestamp() as f64,
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&snap),
    )
        .into_response())
}
