//! The contract between the code and infra/template.yaml, checked both ways:
//! - the environment each function reads is exactly what the template gives it;
//! - each function's role allows every call its code makes (recorded from the SDK while
//!   the handlers run against the local endpoint), and nothing more than those calls plus
//!   what its event source and its logs need; no `*` anywhere.

#![cfg(feature = "aws-endpoint")]
#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use chrono::{Duration, Utc};
use grd::adapters::dynamodb::{DynamoStore, Tables};
use grd::adapters::s3::S3Archive;
use grd::adapters::s3_replay::S3Replay;
use grd::adapters::sources::http::SourcesConfig;
use grd::adapters::synthetic::{Faults, Stream, SyntheticSource};
use grd::domain::node::default_fleet;
use grd::domain::plan::strategy_by_name;
use grd::domain::signal::SignalKind;
use grd::lambda::config::{self, DashboardConfig, DispatchConfig, FetchConfig, PriceConfig};
use grd::lambda::dispatch_jobs::{self, Invocation};
use grd::lambda::{fetch, price_nodes};
use grd::ports::{NodeStore, SignalSource};
use grd_tests::aws::{create_tables, sdk, unique};
use serde_yaml::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

type Calls = Arc<Mutex<BTreeSet<(String, String)>>>;

/// Records (IAM action, table[/index/NAME]) of every DynamoDB request.
#[derive(Debug, Clone)]
struct DynamoRecorder(Calls);

impl Intercept for DynamoRecorder {
    fn name(&self) -> &'static str {
        "record-calls"
    }

    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation as op;
        let input = ctx.input();
        let mut calls = self.0.lock().unwrap();
        let mut add = |action: &str, table: &str| {
            calls.insert((format!("dynamodb:{action}"), table.to_string()));
        };
        if let Some(i) = input.downcast_ref::<op::put_item::PutItemInput>() {
            add("PutItem", i.table_name().unwrap_or_default());
        } else if let Some(i) = input.downcast_ref::<op::update_item::UpdateItemInput>() {
            add("UpdateItem", i.table_name().unwrap_or_default());
        } else if let Some(i) = input.downcast_ref::<op::query::QueryInput>() {
            let t = i.table_name().unwrap_or_default();
            match i.index_name() {
                Some(ix) => add("Query", &format!("{t}/index/{ix}")),
                None => add("Query", t),
            }
        } else if let Some(i) = input.downcast_ref::<op::scan::ScanInput>() {
            add("Scan", i.table_name().unwrap_or_default());
        } else if let Some(i) = input.downcast_ref::<op::get_item::GetItemInput>() {
            add("GetItem", i.table_name().unwrap_or_default());
        } else if let Some(i) = input.downcast_ref::<op::delete_item::DeleteItemInput>() {
            add("DeleteItem", i.table_name().unwrap_or_default());
        } else if let Some(i) =
            input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>()
        {
            // IAM authorizes a transaction by the actions of its items.
            for item in i.transact_items() {
                if let Some(p) = item.put() {
                    add("PutItem", p.table_name());
                }
                if let Some(u) = item.update() {
                    add("UpdateItem", u.table_name());
                }
                if let Some(c) = item.condition_check() {
                    add("ConditionCheckItem", c.table_name());
                }
                if let Some(d) = item.delete() {
                    add("DeleteItem", d.table_name());
                }
            }
        } else {
            add("UNRECOGNISED", "?");
        }
        Ok(())
    }
}

/// Records S3 requests as (IAM action, bucket/key-prefix/*).
#[derive(Debug, Clone)]
struct S3Recorder(Calls);

impl aws_sdk_s3::config::Intercept for S3Recorder {
    fn name(&self) -> &'static str {
        "record-calls"
    }

    fn read_before_execution(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let mut calls = self.0.lock().unwrap();
        if let Some(i) = ctx
            .input()
            .downcast_ref::<aws_sdk_s3::operation::put_object::PutObjectInput>()
        {
            let prefix = i
                .key()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default();
            calls.insert((
                "s3:PutObject".into(),
                format!("{}/{prefix}/*", i.bucket().unwrap_or_default()),
            ));
        } else if let Some(i) = ctx
            .input()
            .downcast_ref::<aws_sdk_s3::operation::get_object::GetObjectInput>()
        {
            let prefix = i
                .key()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default();
            calls.insert((
                "s3:GetObject".into(),
                format!("{}/{prefix}/*", i.bucket().unwrap_or_default()),
            ));
        } else {
            calls.insert(("s3:UNRECOGNISED".into(), "?".into()));
        }
        Ok(())
    }
}

/// Records SSM requests as (IAM action, parameter name without its leading `/`).
#[derive(Debug, Clone)]
struct SsmRecorder(Calls);

impl aws_sdk_ssm::config::Intercept for SsmRecorder {
    fn name(&self) -> &'static str {
        "record-calls"
    }

    fn read_before_execution(
        &self,
        ctx: &aws_sdk_ssm::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _: &mut aws_sdk_ssm::config::ConfigBag,
    ) -> Result<(), aws_sdk_ssm::error::BoxError> {
        let mut calls = self.0.lock().unwrap();
        if let Some(i) = ctx
            .input()
            .downcast_ref::<aws_sdk_ssm::operation::get_parameter::GetParameterInput>()
        {
            calls.insert((
                "ssm:GetParameter".into(),
                i.name().unwrap_or_default().trim_start_matches('/').into(),
            ));
        } else {
            calls.insert(("ssm:UNRECOGNISED".into(), "?".into()));
        }
        Ok(())
    }
}

struct Recording {
    calls: Calls,
    store: DynamoStore,
    archive: S3Archive,
    /// The recorded S3 client and the raw bucket, for sources that read from it.
    s3: aws_sdk_s3::Client,
    bucket: String,
    /// The recorded SSM client and a SecureString parameter holding an API key.
    ssm: aws_sdk_ssm::Client,
    key_parameter: String,
    /// Physical name -> the env variable that names it.
    names: HashMap<String, &'static str>,
}

async fn recording(tables_for: &[&'static str]) -> Recording {
    let conf = sdk().await;
    // Create the tables with a plain client, then record only the handlers' calls.
    let tables = create_tables(&aws_sdk_dynamodb::Client::new(&conf)).await;
    let s3_plain = grd::aws::s3_client(&conf);
    let bucket = unique("raw");
    s3_plain
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let seeder = DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), tables.clone());
    for node in default_fleet(2) {
        seeder.put_node(&node).await.unwrap();
    }
    let calls: Calls = Arc::default();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .interceptor(DynamoRecorder(calls.clone()))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .interceptor(S3Recorder(calls.clone()))
            .build(),
    );
    let key_parameter = format!("/{}", unique("open-meteo-key"));
    aws_sdk_ssm::Client::new(&conf)
        .put_parameter()
        .name(&key_parameter)
        .value("k-123")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&conf)
            .interceptor(SsmRecorder(calls.clone()))
            .build(),
    );
    let mut names = HashMap::new();
    names.insert(
        key_parameter.trim_start_matches('/').to_string(),
        config::OPEN_METEO_API_KEY_PARAMETER,
    );
    let only = |name: &'static str, t: &Option<String>| {
        if tables_for.contains(&name) {
            t.clone()
        } else {
            None
        }
    };
    for (var, t) in [
        (config::SIGNALS_TABLE, &tables.signals),
        (config::NODES_TABLE, &tables.nodes),
        (config::BACKLOG_TABLE, &tables.backlog),
        (config::DISPATCHES_TABLE, &tables.dispatches),
    ] {
        names.insert(t.clone().unwrap(), var);
    }
    names.insert(bucket.clone(), config::RAW_BUCKET);
    let given = Tables {
        signals: only(config::SIGNALS_TABLE, &tables.signals),
        nodes: only(config::NODES_TABLE, &tables.nodes),
        backlog: only(config::BACKLOG_TABLE, &tables.backlog),
        dispatches: only(config::DISPATCHES_TABLE, &tables.dispatches),
    };
    Recording {
        calls,
        store: DynamoStore::new(ddb, given),
        archive: S3Archive::new(s3.clone(), bucket.clone()),
        s3,
        bucket,
        ssm,
        key_parameter,
        names,
    }
}

impl Recording {
    /// The recorded calls with physical names replaced by the env variable naming them.
    fn by_variable(&self) -> BTreeSet<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(action, res)| {
                let (head, tail) = res
                    .split_once('/')
                    .map_or((res.as_str(), String::new()), |(h, t)| (h, format!("/{t}")));
                let var = self.names.get(head).copied().unwrap_or("?");
                (action.clone(), format!("{var}{tail}"))
            })
            .collect()
    }
}

fn later() -> Instant {
    Instant::now() + std::time::Duration::from_secs(60)
}

fn tag_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => tag_text(&t.value),
        Value::Sequence(items) => items.iter().map(tag_text).collect::<Vec<_>>().join(" "),
        other => serde_yaml::to_string(other).unwrap_or_default(),
    }
}

/// `!GetAtt X.Arn`, `!Sub '${X.Arn}/index/i'`, `!Ref X` -> `X`, `X/index/i`, ...; the ARN of
/// the SSM parameter named by template parameter `P` -> `P`.
fn canonical(v: &Value) -> String {
    tag_text(v)
        .replace("${", "")
        .replace(".Arn}", "")
        .replace('}', "")
        .replace(".Arn", "")
        .replace(
            "arn:AWS::Partition:ssm:AWS::Region:AWS::AccountId:parameter",
            "",
        )
        .trim()
        .to_string()
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

struct Function {
    env: BTreeSet<String>,
    /// Env variable -> logical resource it names.
    env_refs: HashMap<String, String>,
    /// (action, canonical resource) the role allows.
    allowed: BTreeSet<(String, String)>,
}

fn function(template: &Value, logical: &str) -> Function {
    let resources = &template["Resources"];
    let f = &resources[logical]["Properties"];
    let mut env = BTreeSet::new();
    let mut env_refs = HashMap::new();
    if let Value::Mapping(vars) = &f["Environment"]["Variables"] {
        for (k, v) in vars {
            let k = k.as_str().unwrap().to_string();
            env_refs.insert(k.clone(), canonical(v));
            env.insert(k);
        }
    }
    // Statements from the function's own Policies, or from its explicit role.
    let mut statements = Vec::new();
    for p in list(&f["Policies"]) {
        statements.extend(list(&p["Statement"]));
    }
    if let Value::Tagged(t) = &f["Role"] {
        let role = tag_text(&t.value).trim_end_matches(".Arn").to_string();
        let props = &resources[role.as_str()]["Properties"];
        assert!(
            list(&props["ManagedPolicyArns"]).is_empty(),
            "{logical}: managed policies on its role"
        );
        for p in list(&props["Policies"]) {
            statements.extend(list(&p["PolicyDocument"]["Statement"]));
        }
        // Policies attached to the role from outside it (AWS::IAM::RolePolicy).
        if let Value::Mapping(all) = resources {
            for (_, r) in all {
                let attached = list(&r["Properties"]["Roles"])
                    .iter()
                    .chain([&r["Properties"]["RoleName"]])
                    .any(|x| canonical(x) == role);
                if r["Type"].as_str() == Some("AWS::IAM::RolePolicy") && attached {
                    statements.extend(list(&r["Properties"]["PolicyDocument"]["Statement"]));
                }
            }
        }
    }
    assert!(
        !statements.is_empty(),
        "{logical}: no policy statements found"
    );
    let mut allowed = BTreeSet::new();
    for st in statements {
        assert_eq!(st["Effect"].as_str(), Some("Allow"));
        for action in list(&st["Action"]) {
            let action = tag_text(&action);
            assert!(!action.contains('*'), "{logical}: wildcard action {action}");
            for res in list(&st["Resource"]) {
                let res = canonical(&res);
                // The one exception: ListStreams has no resource-level permissions in IAM.
                assert!(
                    !res.starts_with('*') || action == "dynamodb:ListStreams",
                    "{logical}: wildcard resource for {action}"
                );
                allowed.insert((action.clone(), res));
            }
        }
    }
    Function {
        env,
        env_refs,
        allowed,
    }
}

/// Checks coverage both ways. `infra` are actions the event source or logging needs, which
/// the code never calls itself.
fn check(
    logical: &str,
    f: &Function,
    recorded: &BTreeSet<(String, String)>,
    vars: &[&str],
    infra: &[&str],
) {
    let expected_env: BTreeSet<String> = vars.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        f.env, expected_env,
        "{logical}: environment differs from what the code reads"
    );
    // Recorded calls in template terms.
    let needed: BTreeSet<(String, String)> = recorded
        .iter()
        .map(|(action, res)| {
            let (var, tail) = res
                .split_once('/')
                .map_or((res.as_str(), String::new()), |(v, t)| (v, format!("/{t}")));
            let logical_res = f.env_refs.get(var).unwrap_or_else(|| {
                panic!("{logical}: code used {var}, which the template does not give it")
            });
            (action.clone(), format!("{logical_res}{tail}"))
        })
        .collect();
    assert!(
        !needed.iter().any(|(a, _)| a.contains("UNRECOGNISED")),
        "{logical}: a call the recorder does not know: {needed:?}"
    );
    let missing: Vec<_> = needed.difference(&f.allowed).collect();
    assert!(
        missing.is_empty(),
        "{logical}: calls its role does not allow: {missing:?}"
    );
    let extra: Vec<_> = f
        .allowed
        .iter()
        .filter(|pair| !needed.contains(*pair) && !infra.contains(&pair.0.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "{logical}: allowed but never called: {extra:?}"
    );
}

const LOGS: [&str; 2] = ["logs:CreateLogStream", "logs:PutLogEvents"];

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).unwrap()
}

/// Three days of hourly rows in the replay formats.
fn replay_csv(kind: SignalKind) -> String {
    let mut text = match kind {
        SignalKind::Weather => "timestamp,temp_c,rh_pct\n".to_string(),
        SignalKind::Price => "timestamp,price_usd_per_mwh,forecast_usd_per_mwh\n".to_string(),
    };
    for h in 0..72 {
        let ts = format!("2024-01-{:02}T{:02}:00:00Z", 1 + h / 24, h % 24);
        match kind {
            SignalKind::Weather => text += &format!("{ts},{},{}\n", 5 + h % 10, 40 + h % 30),
            SignalKind::Price => text += &format!("{ts},{},{}\n", 30 + h % 20, 31 + h % 20),
        }
    }
    text
}

#[tokio::test]
async fn fetch_functions_match_their_roles() {
    for (logical, kind) in [
        ("FetchWeatherFunction", SignalKind::Weather),
        ("FetchPricesFunction", SignalKind::Price),
    ] {
        let rec = recording(&[config::SIGNALS_TABLE, config::NODES_TABLE]).await;
        let plain = grd::aws::s3_client(&sdk().await);
        for node in default_fleet(2) {
            let source = replay_source(kind, &rec);
            plain
                .put_object()
                .bucket(&rec.bucket)
                .key(source.key(&node.id))
                .body(replay_csv(kind).into_bytes().into())
                .send()
                .await
                .unwrap();
        }
        // Every configurable source, each run twice: the second time every record is a
        // duplicate (the refusal path reads the stored item).
        // Replay first, while nothing newer is stored for these nodes.
        for choice in [
            config::SourceChoice::Replay { speed: 1 },
            config::SourceChoice::Synthetic { seed: 1 },
        ] {
            let conf = FetchConfig {
                nodes_table: String::new(),
                signals_table: String::new(),
                raw_bucket: rec.bucket.clone(),
                horizon: 48,
                source: choice.clone(),
                live: SourcesConfig::default(),
                open_meteo_key_parameter: None,
            };
            let mut conf = conf;
            conf.open_meteo_key_parameter = Some(rec.key_parameter.clone());
            fetch::load_api_key(&mut conf, kind, &rec.ssm)
                .await
                .unwrap();
            assert_eq!(
                conf.live.open_meteo_api_key.is_some(),
                kind == SignalKind::Weather,
                "only the weather function reads its key"
            );
            let sources = fetch::sources(&conf, kind, &rec.s3).unwrap();
            for round in 0..2 {
                let report = fetch::handle(&rec.store, &rec.archive, &sources, Utc::now(), later())
                    .await
                    .unwrap();
                assert_eq!(report.failed(), 0, "{choice:?}: {report:?}");
                let accepted: usize = report.sources.values().map(|s| s.accepted).sum();
                if matches!(choice, config::SourceChoice::Replay { .. }) {
                    assert_eq!(accepted > 0, round == 0, "{report:?}");
                }
            }
        }
        let f = function(&template(), logical);
        check(logical, &f, &rec.by_variable(), FetchConfig::VARS, &LOGS);
    }
}

fn replay_source(kind: SignalKind, rec: &Recording) -> S3Replay {
    S3Replay::new(
        rec.s3.clone(),
        rec.bucket.clone(),
        config::REPLAY_PREFIX,
        kind,
        48,
        1,
    )
}

#[tokio::test]
async fn price_nodes_matches_its_role() {
    let rec = recording(&[config::SIGNALS_TABLE, config::NODES_TABLE]).await;
    let event = serde_json::from_value(serde_json::json!({"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"node_id": {"S": "ash1"}, "sk": {"S": "obs#price"}},
                     "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    }]}))
    .unwrap();
    let response = price_nodes::handle(&rec.store, event, 48, Utc::now(), later()).await;
    assert!(response.batch_item_failures.is_empty());
    let f = function(&template(), "PriceNodesFunction");
    let infra = [
        LOGS[0],
        LOGS[1],
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "sqs:SendMessage",
    ];
    check(
        "PriceNodesFunction",
        &f,
        &rec.by_variable(),
        PriceConfig::VARS,
        &infra,
    );
}

#[tokio::test]
async fn dispatch_jobs_matches_its_role() {
    let rec = recording(&[
        config::BACKLOG_TABLE,
        config::DISPATCHES_TABLE,
        config::NODES_TABLE,
    ])
    .await;
    // Prices for the fleet, written outside the recording (that is price-nodes' job).
    let conf = sdk().await;
    let mut all = Tables::default();
    for (name, var) in &rec.names {
        match *var {
            config::SIGNALS_TABLE => all.signals = Some(name.clone()),
            config::NODES_TABLE => all.nodes = Some(name.clone()),
            _ => {}
        }
    }
    let helper = DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), all);
    let sources: Vec<Arc<dyn SignalSource>> = vec![
        Arc::new(SyntheticSource::new(Stream::Weather, 1, 48, Faults::NONE)),
        Arc::new(SyntheticSource::new(Stream::Price, 1, 48, Faults::NONE)),
    ];
    let fleet: Vec<_> = helper
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.node)
        .collect();
    for h in 0..4 {
        let at = Utc::now() + Duration::hours(h);
        grd::app::fetch_signals::fetch_signals(
            &helper,
            &sources,
            &fleet,
            at,
            Default::default(),
            None,
        )
        .await
        .unwrap();
        grd::app::price_nodes::price_nodes(&helper, &fleet, at, 48)
            .await
            .unwrap();
    }
    let soon = (Utc::now() + Duration::hours(3)).to_rfc3339();
    let bodies = [
        format!(r#"{{"id":"c-1","priority":0,"compute_hours":1,"deadline":"{soon}"}}"#),
        format!(r#"{{"id":"c-1","priority":0,"compute_hours":1,"deadline":"{soon}"}}"#),
        r#"{"id":"c-late","priority":0,"compute_hours":1,"deadline":"2020-01-01T00:00:00Z"}"#.to_string(),
        r#"{"id":"c-nowhere","priority":0,"compute_hours":1,"deadline":"2099-01-01T00:00:00Z","regions":["mars"]}"#.to_string(),
        "not a job".to_string(),
    ];
    let records: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| serde_json::json!({"messageId": format!("m{i}"), "receiptHandle": "h", "body": b, "eventSource": "aws:sqs"}))
        .collect();
    let strategy = strategy_by_name("optimized").unwrap();
    let invocation = Invocation::from_payload(serde_json::json!({ "Records": records })).unwrap();
    let response = dispatch_jobs::handle(
        &rec.store,
        strategy.as_ref(),
        48,
        invocation,
        Utc::now(),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 1);
    // A later tick completes the finished run.
    dispatch_jobs::handle(
        &rec.store,
        strategy.as_ref(),
        48,
        Invocation::Tick,
        Utc::now() + Duration::hours(3),
        later(),
    )
    .await
    .unwrap();
    let f = function(&template(), "DispatchJobsFunction");
    let infra = [
        LOGS[0],
        LOGS[1],
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ];
    let recorded = rec.by_variable();
    for action in [
        "dynamodb:ConditionCheckItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    ] {
        assert!(
            recorded.iter().any(|(a, _)| a == action),
            "the scenario exercises {action}: {recorded:?}"
        );
    }
    check(
        "DispatchJobsFunction",
        &f,
        &recorded,
        DispatchConfig::VARS,
        &infra,
    );
}

#[tokio::test]
async fn dashboard_matches_its_role() {
    let mut rec = recording(&[
        config::NODES_TABLE,
        config::BACKLOG_TABLE,
        config::DISPATCHES_TABLE,
    ])
    .await;
    let conf = sdk().await;
    // The token, read as the function reads it at start-up.
    let token_parameter = format!("/{}", unique("dashboard-token"));
    aws_sdk_ssm::Client::new(&conf)
        .put_parameter()
        .name(&token_parameter)
        .value(grd_tests::dashboard::TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    rec.names.insert(
        token_parameter.trim_start_matches('/').to_string(),
        config::DASHBOARD_TOKEN_PARAMETER,
    );
    let token = grd::lambda::secure_parameter(&rec.ssm, &token_parameter, "the dashboard token")
        .await
        .unwrap();
    assert_eq!(token, grd_tests::dashboard::TOKEN);
    // The operator's whole scenario through the API served over the recording store; the
    // world around it (signals, pricing, planning) through a plain client.
    let mut all = Tables::default();
    for (name, var) in &rec.names {
        match *var {
            config::SIGNALS_TABLE => all.signals = Some(name.clone()),
            config::NODES_TABLE => all.nodes = Some(name.clone()),
            config::BACKLOG_TABLE => all.backlog = Some(name.clone()),
            config::DISPATCHES_TABLE => all.dispatches = Some(name.clone()),
            _ => {}
        }
    }
    let helper = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), all));
    let served = Arc::new(std::mem::replace(
        &mut rec.store,
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), Tables::default()),
    ));
    grd_tests::dashboard::scenario(served, helper, "aws").await;
    let f = function(&template(), "DashboardFunction");
    check(
        "DashboardFunction",
        &f,
        &rec.by_variable(),
        DashboardConfig::VARS,
        &LOGS,
    );
}

/// Lambda gives CPU in proportion to memory, one vCPU at 1,769 MB. The README's planning
/// times are for one core: the planner's function must get at least that much.
#[test]
fn the_planner_gets_a_whole_vcpu() {
    let t = template();
    let own = &t["Resources"]["DispatchJobsFunction"]["Properties"]["MemorySize"];
    let global = &t["Globals"]["Function"]["MemorySize"];
    let mb = own
        .as_u64()
        .or_else(|| global.as_u64())
        .expect("a MemorySize for DispatchJobsFunction or in Globals");
    assert!(
        mb >= 1769,
        "DispatchJobsFunction: MemorySize {mb} MB is less than one vCPU (1,769 MB)"
    );
}
