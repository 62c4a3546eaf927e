//! Conservation over random histories: submissions (with duplicates and malformed lines),
//! hours passing with faulty feeds, restarts on the same database, and operators holding,
//! releasing, cancelling, completing and reprioritising jobs. After every step each accepted
//! job is in exactly one state, none is missing, and reservations match dispatches.

#![allow(clippy::unwrap_used)]

use grd::adapters::sqlite::SqliteStore;
use grd::adapters::synthetic::Faults;
use grd::app::control::{control_job, ControlFailure};
use grd::domain::dispatch::JobAction;
use grd::domain::job::Priority;
use grd::domain::node::default_fleet;
use grd::domain::time::Hour;
use grd::local::{open_pipeline, workload, LocalSetup, Pipeline};
use grd::ports::{Backlog, Clock, NodeStore};
use grd_tests::{check_invariants, start};
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    /// Submit these pool indices; `broken` of them in a malformed form as well.
    Submit {
        jobs: Vec<usize>,
        broken: usize,
    },
    Hours(u8),
    Restart {
        faulty: bool,
    },
    /// An operator's action on the `pick`-th job (modulo the jobs there are).
    Control {
        action: u8,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::collection::vec(0..60usize, 1..12), 0..3usize).prop_map(|(jobs, broken)| Op::Submit { jobs, broken }),
        3 => (1..6u8).prop_map(Op::Hours),
        1 => any::<bool>().prop_map(|faulty| Op::Restart { faulty }),
        3 => (0..5u8, any::<usize>()).prop_map(|(action, pick)| Op::Control { action, pick }),
    ]
}

async fn open(path: &Path, faulty: bool) -> Pipeline {
    let store = Arc::new(SqliteStore::open(path).unwrap());
    if store.nodes().await.unwrap().is_empty() {
        for node in default_fleet(3) {
            store.put_node(&node).await.unwrap();
        }
    }
    let faults = if faulty {
        Faults::typical()
    } else {
        Faults::NONE
    };
    open_pipeline(
        store,
        &LocalSetup {
            seed: 4,
            faults,
            ..LocalSetup::default()
        },
        start(),
    )
    .await
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_accepted_job_is_always_in_exactly_one_state(ops in prop::collection::vec(op(), 1..14)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("grd.db");
            let regions: Vec<String> = default_fleet(3).into_iter().map(|n| n.region).collect();
            let pool: Vec<String> = workload::generate(9, 60, 6, Hour::containing(start()), &regions)
                .into_iter()
                .map(|(_, l)| l)
                .collect();
            let mut accepted: HashSet<usize> = HashSet::new();
            let mut p = open(&path, false).await;
            for op in ops {
                match op {
                    Op::Submit { jobs, broken } => {
                        let mut lines: Vec<String> = jobs.iter().map(|&i| pool[i].clone()).collect();
                        for i in 0..broken.min(jobs.len()) {
                            lines.push(pool[jobs[i]].replace("\"units\":", "\"units\":-"));
                        }
                        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                        let step = p.step(&refs).await.unwrap();
                        let fresh = jobs.iter().filter(|i| accepted.insert(**i)).count();
                        // Repeats (of earlier batches or within this one) are duplicates.
                        assert_eq!(step.ingest.accepted, fresh);
                        assert_eq!(step.ingest.duplicates, jobs.len() - fresh);
                        assert_eq!(step.ingest.rejected, broken.min(jobs.len()));
                    }
                    Op::Hours(n) => {
                        for _ in 0..n {
                            p.step(&[]).await.unwrap();
                        }
                    }
                    Op::Restart { faulty } => {
                        drop(p);
                        p = open(&path, faulty).await;
                    }
                    Op::Control { action, pick } => {
                        let jobs = p.store.all_jobs().await.unwrap();
                        if jobs.is_empty() {
                            continue;
                        }
                        let r = &jobs[pick % jobs.len()];
                        let action = match action {
                            0 => JobAction::Hold,
                            1 => JobAction::Release,
                            2 => JobAction::Cancel,
                            3 => JobAction::Complete,
                            _ => JobAction::Priority(Priority::try_from((pick % 10) as u8).unwrap()),
                        };
                        let applies = action.applies_to().contains(&r.status);
                        match control_job(p.store.as_ref(), r.job.id.as_str(), action, p.clock.now()).await {
                            Ok(out) => {
                                assert!(applies, "{action:?} applied to a {} job", r.status);
                                assert_eq!(out.from, r.status);
                            }
                            Err(ControlFailure::Refused(e)) => {
                                assert!(!applies, "{action:?} refused on a {} job: {e}", r.status);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                let by_status = check_invariants(&p.store).await;
                assert_eq!(by_status.values().sum::<usize>(), accepted.len(), "{by_status:?}");
                let ids: HashSet<String> = p.store.all_jobs().await.unwrap().into_iter().map(|r| r.job.id.to_string()).collect();
                assert_eq!(ids.len(), accepted.len());
            }
        });
    }
}
