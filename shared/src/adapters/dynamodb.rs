//! The ports on DynamoDB: the same semantics as the embedded store, with conditional writes
//! and one TransactWriteItems per dispatch.
//!
//! Tables (see infra/template.yaml):
//! - signals `node_id`+`sk`: `obs#<kind>` newest observation, `fc#<kind>` newest forecast;
//! - nodes `pk`+`sk`: `nodes`/`<id>` node configs; `node#<id>`/`hour#<hour>` price, priced
//!   capacity and reserved units of one node-hour;
//!   `overrides`/`<id>` operators' what-if prices, `counters`/`override` their last id;
//! - backlog `job_id`, GSI `status-index` (`status`, `submitted_at`);
//! - dispatches `job_id`.

use crate::domain::dispatch::{
    ControlError, ControlOutcome, Dispatch, DispatchChange, JobAction, JobRecord, JobStatus,
};
use crate::domain::job::{Job, JobId};
use crate::domain::node::Node;
use crate::domain::price::{NodePrice, NodeSignals, PriceOverride};
use crate::domain::signal::{supersedes, Forecast, Observation, Reading};
use crate::domain::time::Hour;
use crate::ports::{
    Added, Backlog, Committed, ControlStore, DispatchLog, NodeState, NodeStore, SignalStore,
    StoreError, Stored,
};
use aws_sdk_dynamodb::types::{
    AttributeValue as AV, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// TransactWriteItems takes at most 100 actions; a dispatch uses three plus one per hour.
pub const MAX_TRANSACT_HOURS: u32 = 97;
/// Forecast and observation items expire a week after they stop mattering (TTL).
const SIGNAL_TTL_SECS: i64 = 7 * 24 * 3600;

/// Table names; a function is given only the ones it uses.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub signals: Option<String>,
    pub nodes: Option<String>,
    pub backlog: Option<String>,
    pub dispatches: Option<String>,
}

pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

type Item = HashMap<String, AV>;

/// A cancelled `TransactWriteItems`: the index of the first action that failed (None when
/// none says why) and every action's reason code. Any other error is a backend error named
/// `what`.
fn cancelled_action(
    what: &str,
    err: aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> Result<(Option<usize>, Vec<Option<String>>), StoreError> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let reasons: Vec<Option<String>> = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().map(str::to_string))
            .collect(),
        _ => return Err(backend(what, err)),
    };
    let failed = reasons
        .iter()
        .position(|r| r.as_deref().is_some_and(|c| c != "None"));
    Ok((failed, reasons))
}

fn backend<E>(what: &str, e: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    StoreError::Backend(format!(
        "dynamodb {what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    ))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("request: {e}"))
}

fn s(v: impl Into<String>) -> AV {
    AV::S(v.into())
}

fn n(v: impl ToString) -> AV {
    AV::N(v.to_string())
}

fn from_ts(secs: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| corrupt(format!("timestamp {secs}")))
}

fn hour_sk(h: Hour) -> String {
    format!("hour#{:010}", h.0)
}

fn node_pk(node_id: &str) -> String {
    format!("node#{node_id}")
}

fn is_condition_failure<E>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// The outcome of a conditional write: true if it was applied, false if its condition did
/// not hold, an error for anything else.
fn applied<T, E>(
    what: &str,
    res: Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
) -> Result<bool, StoreError>
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
{
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(backend(what, e)),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SignalItem {
    node_id: String,
    sk: String,
    source: String,
    /// Observation: the source timestamp. Forecast: the issue time.
    source_ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_until: Option<i64>,
    /// Observation: the reading (JSON). Forecast: the points (JSON).
    reading: String,
    expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct JobItem {
    job_id: String,
    status: String,
    submitted_at: i64,
    /// Acceptance order in milliseconds, for ties.
    seq: u64,
    job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dispatch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_hour: Option<i64>,
    updated_at: i64,
}

impl JobItem {
    fn record(self) -> Result<JobRecord, StoreError> {
        Ok(JobRecord {
            job: serde_json::from_str::<Job>(&self.job).map_err(corrupt)?,
            status: self.status.parse().map_err(corrupt)?,
            reason: self.reason,
            submitted_at: from_ts(self.submitted_at)?,
            seq: self.seq,
            dispatch: self
                .dispatch
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt)?,
        })
    }
}

/// What one node-hour item holds.
#[derive(Debug, Default, Clone)]
struct HourItem {
    price: Option<NodePrice>,
    capacity: Option<u32>,
    reserved: Option<u32>,
}

fn num<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    match item.get(key) {
        Some(AV::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn text<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    match item.get(key) {
        Some(AV::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> DynamoStore {
        DynamoStore { client, tables }
    }

    fn table<'a>(&self, t: &'a Option<String>, env: &str) -> Result<&'a str, StoreError>
    where
        Self: 'a,
    {
        t.as_deref().ok_or_else(|| {
            StoreError::Backend(format!("{env} is not configured for this function"))
        })
    }

    fn signals(&self) -> Result<&str, StoreError> {
        self.table(&self.tables.signals, "GRD_SIGNALS_TABLE")
    }
    fn nodes_t(&self) -> Result<&str, StoreError> {
        self.table(&self.tables.nodes, "GRD_NODES_TABLE")
    }
    fn backlog(&self) -> Result<&str, StoreError> {
        self.table(&self.tables.backlog, "GRD_BACKLOG_TABLE")
    }
    fn dispatches(&self) -> Result<&str, StoreError> {
        self.table(&self.tables.dispatches, "GRD_DISPATCHES_TABLE")
    }

    /// Every item of one partition (optionally an sk range), all pages, strongly consistent.
    async fn query_all(
        &self,
        table: &str,
        pk_name: &str,
        pk: &str,
        sk_range: Option<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(table)
                .consistent_read(true)
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            q = match &sk_range {
                None => q.key_condition_expression("#pk = :pk"),
                Some((a, b)) => q
                    .key_condition_expression("#pk = :pk AND sk BETWEEN :a AND :b")
                    .expression_attribute_values(":a", s(a))
                    .expression_attribute_values(":b", s(b)),
            };
            let out = q.send().await.map_err(|e| backend("query", e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }

    async fn hour_items(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<HashMap<Hour, HourItem>, StoreError> {
        if to <= from {
            return Ok(HashMap::new());
        }
        let table = self.nodes_t()?;
        let items = self
            .query_all(
                table,
                "pk",
                &node_pk(node_id),
                Some((hour_sk(from), hour_sk(to.plus(-1)))),
            )
            .await?;
        let mut out = HashMap::new();
        for item in items {
            let Some(sk) = text(&item, "sk") else {
                continue;
            };
            let Some(h) = sk.strip_prefix("hour#").and_then(|h| h.parse::<i64>().ok()) else {
                continue;
            };
            let price = text(&item, "price")
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt)?;
            out.insert(
                Hour(h),
                HourItem {
                    price,
                    capacity: num(&item, "capacity"),
                    reserved: num(&item, "reserved"),
                },
            );
        }
        Ok(out)
    }

    async fn job_item(&self, id: &str) -> Result<Option<JobItem>, StoreError> {
        let items = self.query_all(self.backlog()?, "job_id", id, None).await?;
        items
            .into_iter()
            .next()
            .map(|i| serde_dynamo::from_item(i).map_err(corrupt))
            .transpose()
    }

    async fn query_status(&self, status: JobStatus) -> Result<Vec<JobItem>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(self.backlog()?)
                .index_name("status-index")
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":s", s(status.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("query status-index", e))?;
            for item in res.items() {
                out.push(serde_dynamo::from_item::<_, JobItem>(item.clone()).map_err(corrupt)?);
            }
            match res.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        // The index is eventually consistent: keep only items still in that status.
        out.retain(|i| i.status == status.as_str());
        Ok(out)
    }

    /// Every item of a table, all pages (a Scan: for operators' tools, never the functions).
    async fn scan_all(&self, table: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("scan", e))?;
            items.extend(res.items().iter().cloned());
            match res.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Every job, in acceptance order.
    pub async fn scan_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = self
            .scan_all(self.backlog()?)
            .await?
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item::<_, JobItem>(item)
                    .map_err(corrupt)?
                    .record()
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    /// Every dispatch record of the dispatches table (for `grd status --table`).
    pub async fn scan_dispatches(&self) -> Result<Vec<Dispatch>, StoreError> {
        let mut out = self
            .scan_all(self.dispatches()?)
            .await?
            .iter()
            .map(|item| {
                let body =
                    text(item, "body").ok_or_else(|| corrupt("dispatch item without body"))?;
                serde_json::from_str(body).map_err(corrupt)
            })
            .collect::<Result<Vec<Dispatch>, _>>()?;
        out.sort_by(|a, b| (a.start, &a.job_id).cmp(&(b.start, &b.job_id)));
        Ok(out)
    }

    pub async fn set_drained(&self, node_id: &str, drained: bool) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(self.nodes_t()?)
            .key("pk", s("nodes"))
            .key("sk", s(node_id))
            .update_expression("SET #d = :d")
            .expression_attribute_names("#d", "drained")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":d", AV::Bool(drained))
            .send()
            .await;
        applied("update node", res)
    }
}

impl SignalStore for DynamoStore {
    async fn put_observation(&self, obs: &Observation) -> Result<Stored, StoreError> {
        let table = self.signals()?;
        let item = SignalItem {
            node_id: obs.node_id.clone(),
            sk: format!("obs#{}", obs.kind().as_str()),
            source: obs.source.clone(),
            source_ts: obs.source_ts.timestamp(),
            valid_until: Some(obs.valid_until.timestamp()),
            reading: serde_json::to_string(&obs.reading).map_err(corrupt)?,
            expires_at: obs.valid_until.timestamp() + SIGNAL_TTL_SECS,
        };
        let res = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(serde_dynamo::to_item(&item).map_err(corrupt)?))
            .condition_expression("attribute_not_exists(sk) OR source_ts < :ts")
            .expression_attribute_values(":ts", n(item.source_ts))
            .send()
            .await;
        if applied("put signal", res)? {
            return Ok(Stored::Accepted);
        }
        // Tell a duplicate from an out-of-order resend by the stored timestamp.
        let stored = self
            .query_all(table, "node_id", &obs.node_id, None)
            .await?
            .into_iter()
            .find(|i| text(i, "sk") == Some(item.sk.as_str()))
            .and_then(|i| num::<i64>(&i, "source_ts"))
            .map(from_ts)
            .transpose()?;
        Ok(match supersedes(stored, obs.source_ts) {
            Err(why) => Stored::Refused(why),
            Ok(()) => Stored::Refused(crate::domain::signal::Rejection::OutOfOrder),
        })
    }

    async fn put_forecast(&self, fc: &Forecast) -> Result<usize, StoreError> {
        let points: Vec<&(Hour, Reading)> = fc
            .points
            .iter()
            .filter(|(_, r)| r.check().is_ok() && r.kind() == fc.kind)
            .collect();
        if points.is_empty() {
            return Ok(0);
        }
        let last = points.iter().map(|(h, _)| h.0).max().unwrap_or_default();
        let item = SignalItem {
            node_id: fc.node_id.clone(),
            sk: format!("fc#{}", fc.kind.as_str()),
            source: fc.source.clone(),
            source_ts: fc.issued_at.timestamp(),
            valid_until: None,
            reading: serde_json::to_string(&points).map_err(corrupt)?,
            expires_at: Hour(last).start().timestamp() + SIGNAL_TTL_SECS,
        };
        let res = self
            .client
            .put_item()
            .table_name(self.signals()?)
            .set_item(Some(serde_dynamo::to_item(&item).map_err(corrupt)?))
            .condition_expression("attribute_not_exists(sk) OR source_ts < :ts")
            .expression_attribute_values(":ts", n(item.source_ts))
            .send()
            .await;
        Ok(if applied("put forecast", res)? {
            points.len()
        } else {
            0
        })
    }

    async fn node_signals(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<NodeSignals, StoreError> {
        let mut sig = NodeSignals::default();
        for item in self
            .query_all(self.signals()?, "node_id", node_id, None)
            .await?
        {
            let it: SignalItem = serde_dynamo::from_item(item).map_err(corrupt)?;
            let ts = from_ts(it.source_ts)?;
            if let Some(kind) = it.sk.strip_prefix("obs#") {
                let obs = Observation {
                    node_id: node_id.to_string(),
                    source_ts: ts,
                    valid_until: from_ts(it.valid_until.unwrap_or(it.source_ts))?,
                    reading: serde_json::from_str(&it.reading).map_err(corrupt)?,
                    source: it.source,
                };
                match kind {
                    "weather" => sig.weather = Some(obs),
                    _ => sig.price = Some(obs),
                }
            } else if it.sk.starts_with("fc#") {
                let points: Vec<(Hour, Reading)> =
                    serde_json::from_str(&it.reading).map_err(corrupt)?;
                for (h, r) in points.into_iter().filter(|(h, _)| *h >= from && *h < to) {
                    match r {
                        Reading::Weather { temp_c, rh_pct } => {
                            sig.weather_forecast.insert(h, (temp_c, rh_pct, ts));
                        }
                        Reading::Price { usd_per_mwh } => {
                            sig.price_forecast.insert(h, (usd_per_mwh, ts));
                        }
                    }
                }
            }
        }
        Ok(sig)
    }
}

impl NodeStore for DynamoStore {
    async fn nodes(&self) -> Result<Vec<NodeState>, StoreError> {
        let items = self.query_all(self.nodes_t()?, "pk", "nodes", None).await?;
        items
            .into_iter()
            .map(|i| {
                let config =
                    text(&i, "config").ok_or_else(|| corrupt("node item without config"))?;
                let drained = matches!(i.get("drained"), Some(AV::Bool(true)));
                Ok(NodeState {
                    node: serde_json::from_str(config).map_err(corrupt)?,
                    drained,
                })
            })
            .collect()
    }

    async fn put_node(&self, node: &Node) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(self.nodes_t()?)
            .key("pk", s("nodes"))
            .key("sk", s(&node.id))
            .update_expression("SET #cfg = :c, #d = if_not_exists(#d, :f)")
            .expression_attribute_names("#cfg", "config")
            .expression_attribute_names("#d", "drained")
            .expression_attribute_values(":c", s(serde_json::to_string(node).map_err(corrupt)?))
            .expression_attribute_values(":f", AV::Bool(false))
            .send()
            .await
            .map_err(|e| backend("put node", e))?;
        Ok(())
    }

    async fn put_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
        prices: &[NodePrice],
    ) -> Result<(), StoreError> {
        let table = self.nodes_t()?;
        let by_hour: HashMap<Hour, &NodePrice> = prices.iter().map(|p| (p.hour, p)).collect();
        let mut h = from;
        while h < to {
            let req = self
                .client
                .update_item()
                .table_name(table)
                .key("pk", s(node_pk(node_id)))
                .key("sk", s(hour_sk(h)));
            // `reserved` belongs to the dispatcher: pricing never writes it.
            let res = match by_hour.get(&h) {
                Some(p) => {
                    req.update_expression("SET #p = :p, #c = :c")
                        .expression_attribute_names("#p", "price")
                        .expression_attribute_names("#c", "capacity")
                        .expression_attribute_values(
                            ":p",
                            s(serde_json::to_string(p).map_err(corrupt)?),
                        )
                        .expression_attribute_values(":c", n(p.dispatchable_units()))
                        .send()
                        .await
                }
                None => {
                    req.update_expression("REMOVE #p, #c")
                        .expression_attribute_names("#p", "price")
                        .expression_attribute_names("#c", "capacity")
                        .condition_expression("attribute_exists(pk)")
                        .send()
                        .await
                }
            };
            applied("put price", res)?;
            h = h.plus(1);
        }
        Ok(())
    }

    async fn prices(&self, from: Hour, to: Hour) -> Result<Vec<NodePrice>, StoreError> {
        let mut out = Vec::new();
        for state in self.nodes().await? {
            let mut hours: Vec<(Hour, NodePrice)> = self
                .hour_items(&state.node.id, from, to)
                .await?
                .into_iter()
                .filter_map(|(h, i)| i.price.map(|p| (h, p)))
                .collect();
            hours.sort_by_key(|(h, _)| *h);
            out.extend(hours.into_iter().map(|(_, p)| p));
        }
        Ok(out)
    }
}

impl Backlog for DynamoStore {
    async fn add(&self, job: &Job, at: DateTime<Utc>) -> Result<Added, StoreError> {
        let item = JobItem {
            job_id: job.id.to_string(),
            status: JobStatus::Pending.as_str().into(),
            submitted_at: at.timestamp(),
            seq: Utc::now().timestamp_millis().max(0) as u64,
            job: serde_json::to_string(job).map_err(corrupt)?,
            reason: None,
            dispatch: None,
            end_hour: None,
            updated_at: at.timestamp(),
        };
        let res = self
            .client
            .put_item()
            .table_name(self.backlog()?)
            .set_item(Some(serde_dynamo::to_item(&item).map_err(corrupt)?))
            .condition_expression("attribute_not_exists(job_id)")
            .send()
            .await;
        Ok(if applied("put job", res)? {
            Added::Accepted
        } else {
            Added::Duplicate
        })
    }

    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>, StoreError> {
        let mut out: Vec<JobRecord> = self
            .query_status(status)
            .await?
            .into_iter()
            .map(JobItem::record)
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    async fn all_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.scan_jobs().await
    }

    async fn close_pending(
        &self,
        id: &JobId,
        status: JobStatus,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(self.backlog()?)
            .key("job_id", s(id.as_str()))
            .update_expression("SET #s = :new, reason = :r, updated_at = :t")
            .condition_expression("#s = :pending")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":new", s(status.as_str()))
            .expression_attribute_values(":pending", s(JobStatus::Pending.as_str()))
            .expression_attribute_values(":r", s(reason))
            .expression_attribute_values(":t", n(at.timestamp()))
            .send()
            .await;
        applied("close job", res)
    }
}

impl DispatchLog for DynamoStore {
    async fn commit(&self, d: &Dispatch) -> Result<Committed, StoreError> {
        if d.slots > MAX_TRANSACT_HOURS {
            return Err(StoreError::Backend(format!(
                "job {}: a {}-hour run exceeds the {MAX_TRANSACT_HOURS} hours one DynamoDB transaction can reserve",
                d.job_id, d.slots
            )));
        }
        match self.job_item(d.job_id.as_str()).await? {
            None => return Ok(Committed::UnknownJob),
            Some(j) if j.status != JobStatus::Pending.as_str() => {
                return Ok(Committed::NotPending(j.status.parse().map_err(corrupt)?))
            }
            Some(_) => {}
        }
        let nodes_t = self.nodes_t()?;
        // Read what the reservation will be conditioned on.
        let config = self
            .query_all(
                nodes_t,
                "pk",
                "nodes",
                Some((d.node_id.clone(), d.node_id.clone())),
            )
            .await?;
        let Some(config) = config.into_iter().next() else {
            return Ok(Committed::NoCapacity { hour: d.start });
        };
        if matches!(config.get("drained"), Some(AV::Bool(true))) {
            return Ok(Committed::NoCapacity { hour: d.start });
        }
        let nameplate = text(&config, "config")
            .map(serde_json::from_str::<Node>)
            .transpose()
            .map_err(corrupt)?
            .map(|n| n.capacity_units)
            .unwrap_or(0);
        let hours = self.hour_items(&d.node_id, d.start, d.end()).await?;

        let mut actions = vec![
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(nodes_t)
                        .key("pk", s("nodes"))
                        .key("sk", s(&d.node_id))
                        .condition_expression("#d = :f")
                        .expression_attribute_names("#d", "drained")
                        .expression_attribute_values(":f", AV::Bool(false))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.backlog()?)
                        .key("job_id", s(d.job_id.as_str()))
                        .update_expression(
                            "SET #s = :dispatched, dispatch = :d, end_hour = :e, updated_at = :t",
                        )
                        .condition_expression("#s = :pending")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(
                            ":dispatched",
                            s(JobStatus::Dispatched.as_str()),
                        )
                        .expression_attribute_values(":pending", s(JobStatus::Pending.as_str()))
                        .expression_attribute_values(
                            ":d",
                            s(serde_json::to_string(d).map_err(corrupt)?),
                        )
                        .expression_attribute_values(":e", n(d.end().0))
                        .expression_attribute_values(":t", n(d.decided_at.timestamp()))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(self.dispatches()?)
                        .item("job_id", s(d.job_id.as_str()))
                        .item("node_id", s(&d.node_id))
                        .item("start_hour", n(d.start.0))
                        .item("end_hour", n(d.end().0))
                        .item("body", s(serde_json::to_string(d).map_err(corrupt)?))
                        .condition_expression("attribute_not_exists(job_id)")
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        ];
        let first_hour_action = actions.len();
        for (hour, units) in d.reservations() {
            let seen = hours.get(&hour).cloned().unwrap_or_default();
            let capacity = seen.capacity.unwrap_or(nameplate);
            let reserved = seen.reserved.unwrap_or(0);
            if reserved + units > capacity {
                return Ok(Committed::NoCapacity { hour });
            }
            // Optimistic: the write holds only if nobody changed the reservation or the
            // priced capacity since we read them.
            let mut cond = vec![match seen.reserved {
                Some(_) => "#r = :seen",
                None => "attribute_not_exists(#r)",
            }];
            cond.push(match seen.capacity {
                Some(_) => "#c = :cap",
                None => "attribute_not_exists(#c)",
            });
            let mut u = Update::builder()
                .table_name(nodes_t)
                .key("pk", s(node_pk(&d.node_id)))
                .key("sk", s(hour_sk(hour)))
                .update_expression("SET #r = :new")
                .condition_expression(cond.join(" AND "))
                .expression_attribute_names("#r", "reserved")
                .expression_attribute_names("#c", "capacity")
                .expression_attribute_values(":new", n(reserved + units));
            if let Some(r) = seen.reserved {
                u = u.expression_attribute_values(":seen", n(r));
            }
            if let Some(c) = seen.capacity {
                u = u.expression_attribute_values(":cap", n(c));
            }
            actions.push(
                TransactWriteItem::builder()
                    .update(u.build().map_err(build_err)?)
                    .build(),
            );
        }
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(token(d))
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(Committed::Committed),
            Err(e) => e,
        };
        let (failed, _) = cancelled_action("transact dispatch", err)?;
        let failed = failed.unwrap_or(first_hour_action);
        Ok(match failed {
            0 => Committed::NoCapacity { hour: d.start },
            1 | 2 => match self.job_item(d.job_id.as_str()).await? {
                None => Committed::UnknownJob,
                Some(j) => Committed::NotPending(j.status.parse().map_err(corrupt)?),
            },
            // A reservation lost its race (or the job's price changed): re-plan later.
            k => Committed::NoCapacity {
                hour: d.start.plus((k - first_hour_action) as i64),
            },
        })
    }

    async fn reservations(
        &self,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<(String, Hour, u32)>, StoreError> {
        let mut out = Vec::new();
        for state in self.nodes().await? {
            for (h, item) in self.hour_items(&state.node.id, from, to).await? {
                if let Some(r) = item.reserved.filter(|r| *r > 0) {
                    out.push((state.node.id.clone(), h, r));
                }
            }
        }
        Ok(out)
    }

    async fn complete_due(&self, now: Hour, at: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut done = 0;
        for item in self.query_status(JobStatus::Dispatched).await? {
            if item.end_hour.is_none_or(|e| e > now.0) {
                continue;
            }
            let res = self
                .client
                .update_item()
                .table_name(self.backlog()?)
                .key("job_id", s(&item.job_id))
                .update_expression("SET #s = :c, updated_at = :t")
                .condition_expression("#s = :d")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":c", s(JobStatus::Completed.as_str()))
                .expression_attribute_values(":d", s(JobStatus::Dispatched.as_str()))
                .expression_attribute_values(":t", n(at.timestamp()))
                .send()
                .await;
            if applied("complete job", res)? {
                done += 1;
            }
        }
        Ok(done)
    }
}

/// How many times a control re-reads the job after a concurrent change before giving up.
const CONTROL_ATTEMPTS: usize = 5;

impl DynamoStore {
    /// One attempt at a job control: `None` when the job changed between the read and the
    /// write (the caller reads again).
    async fn try_control_job(
        &self,
        id: &str,
        action: JobAction,
        now: Hour,
        at: DateTime<Utc>,
    ) -> Result<Option<Result<ControlOutcome, ControlError>>, StoreError> {
        let Some(item) = self.job_item(id).await? else {
            return Ok(Some(Err(ControlError::UnknownJob(id.to_string()))));
        };
        let seen_status = item.status.clone();
        let record = item.record()?;
        let change = match action.change(
            &record.job,
            record.status,
            record.dispatch.as_ref(),
            record.reason.as_deref(),
            now,
        ) {
            Ok(c) => c,
            Err(e) => return Ok(Some(Err(e))),
        };
        let nodes_t = self.nodes_t()?;
        let mut sets = vec!["#s = :to", "updated_at = :t", "job = :job"];
        let mut removes: Vec<&str> = Vec::new();
        let mut values: Vec<(&str, AV)> = vec![
            (":to", s(change.to.as_str())),
            (":from", s(&seen_status)),
            (":t", n(at.timestamp())),
            (
                ":job",
                s(serde_json::to_string(&change.job).map_err(corrupt)?),
            ),
        ];
        let mut actions = Vec::new();
        if let Some(d) = &record.dispatch {
            for (hour, units) in &change.release {
                let u = Update::builder()
                    .table_name(nodes_t)
                    .key("pk", s(node_pk(&d.node_id)))
                    .key("sk", s(hour_sk(*hour)))
                    .update_expression("SET #r = #r - :u")
                    .condition_expression("#r >= :u")
                    .expression_attribute_names("#r", "reserved")
                    .expression_attribute_values(":u", n(units))
                    .build()
                    .map_err(build_err)?;
                actions.push(TransactWriteItem::builder().update(u).build());
            }
        }
        match &change.dispatch {
            DispatchChange::Unchanged => {}
            DispatchChange::Cut(kept) => {
                let body = serde_json::to_string(kept).map_err(corrupt)?;
                sets.extend(["dispatch = :d", "end_hour = :e"]);
                values.extend([(":d", s(&body)), (":e", n(kept.end().0))]);
                let u = Update::builder()
                    .table_name(self.dispatches()?)
                    .key("job_id", s(id))
                    .update_expression("SET body = :b, end_hour = :e")
                    .condition_expression("attribute_exists(job_id)")
                    .expression_attribute_values(":b", s(body))
                    .expression_attribute_values(":e", n(kept.end().0))
                    .build()
                    .map_err(build_err)?;
                actions.push(TransactWriteItem::builder().update(u).build());
            }
            DispatchChange::Removed => {
                removes.extend(["dispatch", "end_hour"]);
                let del = Delete::builder()
                    .table_name(self.dispatches()?)
                    .key("job_id", s(id))
                    .build()
                    .map_err(build_err)?;
                actions.push(TransactWriteItem::builder().delete(del).build());
            }
        }
        match &change.reason {
            Some(r) => {
                sets.push("reason = :r");
                values.push((":r", s(r)));
            }
            None => removes.push("reason"),
        }
        let mut expr = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let mut u = Update::builder()
            .table_name(self.backlog()?)
            .key("job_id", s(id))
            .update_expression(expr)
            .condition_expression("#s = :from")
            .expression_attribute_names("#s", "status");
        for (k, v) in values {
            u = u.expression_attribute_values(k, v);
        }
        actions.insert(
            0,
            TransactWriteItem::builder()
                .update(u.build().map_err(build_err)?)
                .build(),
        );
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        if let Err(err) = res {
            let (failed, reasons) = cancelled_action("transact job control", err)?;
            return match failed {
                // The job changed since it was read: read it again.
                Some(0) | None => Ok(None),
                Some(k) => Err(StoreError::Corrupt(format!(
                    "job {id}: {action} could not give back its reservation (action {k}: {:?})",
                    reasons.get(k).cloned().flatten(),
                    action = action.name()
                ))),
            };
        }
        Ok(Some(Ok(change.outcome(action))))
    }
}

impl ControlStore for DynamoStore {
    async fn control_job(
        &self,
        id: &str,
        action: JobAction,
        now: Hour,
        at: DateTime<Utc>,
    ) -> Result<Result<ControlOutcome, ControlError>, StoreError> {
        for _ in 0..CONTROL_ATTEMPTS {
            if let Some(done) = self.try_control_job(id, action, now, at).await? {
                return Ok(done);
            }
        }
        Err(StoreError::Backend(format!(
            "job {id}: it kept changing while {} was applied ({CONTROL_ATTEMPTS} attempts)",
            action.name()
        )))
    }

    async fn set_drained(&self, node_id: &str, drained: bool) -> Result<bool, StoreError> {
        DynamoStore::set_drained(self, node_id, drained).await
    }

    async fn add_price_override(&self, o: &PriceOverride) -> Result<i64, StoreError> {
        let table = self.nodes_t()?;
        let out = self
            .client
            .update_item()
            .table_name(table)
            .key("pk", s("counters"))
            .key("sk", s("override"))
            .update_expression("ADD #n :one")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("next override id", e))?;
        let id: i64 = out
            .attributes()
            .and_then(|a| num(a, "n"))
            .ok_or_else(|| corrupt("override counter without a value"))?;
        self.client
            .put_item()
            .table_name(table)
            .item("pk", s("overrides"))
            .item("sk", s(format!("{id:020}")))
            .item("id", n(id))
            .item("node_id", s(&o.node_id))
            .item("from_hour", n(o.from.0))
            .item("to_hour", n(o.to.0))
            .item("usd_per_mwh", n(o.usd_per_mwh))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("put override", e))?;
        Ok(id)
    }

    async fn remove_price_override(&self, id: i64) -> Result<bool, StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(self.nodes_t()?)
            .key("pk", s("overrides"))
            .key("sk", s(format!("{id:020}")))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        applied("delete override", res)
    }

    async fn price_overrides(&self) -> Result<Vec<PriceOverride>, StoreError> {
        let items = self
            .query_all(self.nodes_t()?, "pk", "overrides", None)
            .await?;
        items
            .iter()
            .map(|i| {
                let field = |k: &str| corrupt(format!("override item without {k}"));
                Ok(PriceOverride {
                    id: num(i, "id").ok_or_else(|| field("id"))?,
                    node_id: text(i, "node_id")
                        .ok_or_else(|| field("node_id"))?
                        .to_string(),
                    from: Hour(num(i, "from_hour").ok_or_else(|| field("from_hour"))?),
                    to: Hour(num(i, "to_hour").ok_or_else(|| field("to_hour"))?),
                    usd_per_mwh: num(i, "usd_per_mwh").ok_or_else(|| field("usd_per_mwh"))?,
                })
            })
            .collect()
    }

    async fn node_prices(
        &self,
        node_id: &str,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<NodePrice>, StoreError> {
        let mut hours: Vec<(Hour, NodePrice)> = self
            .hour_items(node_id, from, to)
            .await?
            .into_iter()
            .filter_map(|(h, i)| i.price.map(|p| (h, p)))
            .collect();
        hours.sort_by_key(|(h, _)| *h);
        Ok(hours.into_iter().map(|(_, p)| p).collect())
    }
}

/// Idempotency token of a dispatch transaction (AWS keeps it for ten minutes): the same
/// decision retried is one transaction.
fn token(d: &Dispatch) -> String {
    let raw = format!("{}|{}|{}", d.job_id, d.node_id, d.start.0);
    // At most 36 characters of [a-zA-Z0-9-]: a stable hash of the decision.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in raw.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("grd-{h:016x}-{:x}", d.start.0)
}
