//! The operator commands against a local AWS endpoint (moto): nodes into a stack, jobs to
//! its queue, dispatch records out.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used)]

use grd::adapters::dynamodb::DynamoStore;
use grd::domain::dispatch::Dispatch;
use grd::domain::job::Job;
use grd::domain::time::Hour;
use grd::ports::{Backlog, DispatchLog, NodeStore};
use grd_tests::aws::{create_queues, create_tables, sdk};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn grd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text} / {}", String::from_utf8_lossy(&out.stderr)))
}

/// A job's status and priority as the stack's backlog holds them.
async fn job_state(store: &DynamoStore, id: &str) -> (String, u8) {
    let all = store.all_jobs().await.unwrap();
    let r = all.into_iter().find(|r| r.job.id.as_str() == id).unwrap();
    (r.status.to_string(), r.job.priority.get())
}

/// Units reserved on all nodes over the hours `from..to`.
async fn reserved(store: &DynamoStore, (from, to): (Hour, Hour)) -> u32 {
    let r = store.reservations(from, to).await.unwrap();
    r.iter().map(|(_, _, units)| units).sum()
}

async fn is_drained(store: &DynamoStore, node: &str) -> bool {
    let nodes = store.nodes().await.unwrap();
    nodes
        .into_iter()
        .find(|s| s.node.id == node)
        .unwrap()
        .drained
}

#[tokio::test]
async fn nodes_submit_status_and_control_against_a_stack() {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let tables = create_tables(&ddb).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let (queue, _) = create_queues(&sqs, 5).await;
    let nodes_table = tables.nodes.clone().unwrap();
    let dispatches_table = tables.dispatches.clone().unwrap();

    let out = grd(
        &[
            "nodes",
            "--table",
            &nodes_table,
            "--load",
            "default:2",
            "--json",
        ],
        "",
    );
    succeeded(&out);
    assert_eq!(json(&out)["nodes"].as_array().unwrap().len(), 2);

    let lines = r#"{"id":"q-1","priority":1,"compute_hours":2,"deadline":"2099-01-01T00:00:00Z"}
{"id":"q-2","priority":3,"compute_hours":4,"units":2,"deadline":"2099-01-01T00:00:00Z"}
{"id":"q-3","priority":3,"compute_hours":-4,"deadline":"2099-01-01T00:00:00Z"}
"#;
    let out = grd(&["submit", "--queue-url", &queue, "--json", "-"], lines);
    assert_eq!(out.status.code(), Some(3), "a line was rejected");
    let report = json(&out);
    assert_eq!(
        (
            report["lines"].as_u64(),
            report["sent"].as_u64(),
            report["rejected"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert!(report["errors"].to_string().contains("compute_hours"));
    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let bodies: Vec<Job> = got
        .messages()
        .iter()
        .map(|m| Job::parse_line(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);

    // A dispatch record as the dispatcher writes it, then read back through the CLI.
    let store_tables = tables.clone();
    let store = DynamoStore::new(ddb, tables);
    let job = &bodies[0];
    store.add(job, chrono::Utc::now()).await.unwrap();
    let h = Hour::containing(chrono::Utc::now());
    let node = store.nodes().await.unwrap()[0].node.id.clone();
    let d = Dispatch {
        job_id: job.id.clone(),
        node_id: node.clone(),
        start: h,
        slots: job.slots(),
        units: job.units,
        planned_cost_usd: 0.5,
        strategy: "optimized".into(),
        decided_at: chrono::Utc::now(),
        runner_up: None,
    };
    assert_eq!(
        store.commit(&d).await.unwrap(),
        grd::ports::Committed::Committed
    );
    let out = grd(&["status", "--table", &dispatches_table, "--json"], "");
    succeeded(&out);
    let records = json(&out)["dispatches"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["job_id"], job.id.as_str());
    assert_eq!(records[0]["node_id"], node.as_str());
    let text = grd(&["status", "--table", &dispatches_table], "");
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 dispatch records"));

    // Manual control of the stack's jobs and nodes.
    let backlog_table = store_tables.backlog.clone().unwrap();
    let stack = [
        "--backlog-table",
        backlog_table.as_str(),
        "--dispatches-table",
        dispatches_table.as_str(),
        "--nodes-table",
        nodes_table.as_str(),
        "--json",
    ];
    let control = |args: &[&str]| grd(&[args, &stack[..]].concat(), "");
    let other = &bodies[1];
    store.add(other, chrono::Utc::now()).await.unwrap();
    let out = control(&["hold", other.id.as_str()]);
    succeeded(&out);
    assert_eq!(
        (json(&out)["from"].as_str(), json(&out)["to"].as_str()),
        (Some("pending"), Some("held"))
    );
    assert_eq!(job_state(&store, other.id.as_str()).await.0, "held");
    let out = control(&["priority", other.id.as_str(), "0"]);
    succeeded(&out);
    assert_eq!(
        job_state(&store, other.id.as_str()).await,
        ("held".to_string(), 0)
    );
    let out = control(&["release", other.id.as_str()]);
    succeeded(&out);
    assert_eq!(job_state(&store, other.id.as_str()).await.0, "pending");
    // A request that does not apply fails and says why; nothing changes.
    let out = control(&["release", other.id.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot release"));
    assert_eq!(job_state(&store, other.id.as_str()).await.0, "pending");
    // Why each job is where it is, as the dashboard's job view says.
    let out = control(&["explain", job.id.as_str()]);
    succeeded(&out);
    let e = json(&out);
    assert_eq!(e["status"], "dispatched");
    assert_eq!(e["chosen"]["node_id"], node.as_str());
    assert_eq!(e["chosen"]["cost_usd"].as_f64(), Some(0.5));
    let out = control(&["explain", other.id.as_str()]);
    succeeded(&out);
    assert_eq!(json(&out)["status"], "pending");
    assert!(json(&out)["chosen"].is_null());
    let text = grd(
        &[
            "explain",
            job.id.as_str(),
            "--backlog-table",
            &backlog_table,
            "--dispatches-table",
            &dispatches_table,
            "--nodes-table",
            &nodes_table,
        ],
        "",
    );
    succeeded(&text);
    assert!(String::from_utf8_lossy(&text.stdout).contains("chosen (planned)"));
    let out = control(&["explain", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown job `nowhere`"));
    // Cancelling the dispatched job gives back every node-hour it held.
    let hours = (h, h.plus(job.slots() as i64));
    let before = reserved(&store, hours).await;
    let out = control(&["cancel", job.id.as_str()]);
    succeeded(&out);
    let freed = u64::from(job.units) * job.slots() as u64;
    assert_eq!(json(&out)["freed_unit_hours"].as_u64(), Some(freed));
    assert_eq!(job_state(&store, job.id.as_str()).await.0, "cancelled");
    let after = reserved(&store, hours).await;
    assert_eq!(u64::from(before - after), freed);
    // The tables go together.
    let out = grd(
        &["hold", other.id.as_str(), "--backlog-table", &backlog_table],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dispatches-table"));
    // Drain and undrain a node.
    let out = grd(&["drain", &node, "--table", &nodes_table, "--json"], "");
    succeeded(&out);
    assert_eq!(json(&out)["drained"].as_bool(), Some(true));
    assert!(is_drained(&store, &node).await);
    let out = grd(&["undrain", &node, "--table", &nodes_table], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("drained -> in service"));
    assert!(!is_drained(&store, &node).await);
    let out = grd(&["drain", "nowhere", "--table", &nodes_table], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown node `nowhere`"));
}
