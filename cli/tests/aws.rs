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

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text} / {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn nodes_submit_and_status_against_a_stack() {
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json(&out)["dispatches"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["job_id"], job.id.as_str());
    assert_eq!(records[0]["node_id"], node.as_str());
    let text = grd(&["status", "--table", &dispatches_table], "");
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 dispatch records"));
}
