//! Operators' manual control of the pipeline (local or AWS): hold, release, cancel, complete
//! and reprioritise jobs; drain and undrain nodes; what-if energy prices for a window.
//!
//! Each request is checked first and refused with an error naming what was wrong; the
//! store applies it in one transaction.

use crate::domain::dispatch::{ControlError, ControlOutcome, JobAction};
use crate::domain::job::Priority;
use crate::domain::node::Node;
use crate::domain::price::{apply_overrides, PriceOverride};
use crate::domain::time::Hour;
use crate::ports::{ControlStore, NodeStore, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A refused request or a failed store.
#[derive(Debug, thiserror::Error)]
pub enum ControlFailure {
    #[error(transparent)]
    Refused(#[from] ControlError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses an action name as the command line and the API spell it (`priority` needs `n`).
pub fn parse_action(name: &str, priority: Option<i64>) -> Result<JobAction, ControlError> {
    Ok(match name {
        "hold" => JobAction::Hold,
        "release" => JobAction::Release,
        "cancel" => JobAction::Cancel,
        "complete" => JobAction::Complete,
        "priority" => {
            let n = priority.ok_or_else(|| {
                ControlError::Invalid("priority: a new priority 0..9 is required".into())
            })?;
            let p = u8::try_from(n)
                .ok()
                .and_then(|n| Priority::try_from(n).ok())
                .ok_or_else(|| {
                    ControlError::Invalid(format!("priority {n}: must be 0..9 (0 most urgent)"))
                })?;
            JobAction::Priority(p)
        }
        other => {
            return Err(ControlError::Invalid(format!(
                "unknown action `{other}` (known: hold, release, cancel, complete, priority)"
            )))
        }
    })
}

/// Applies `action` to job `id` at simulated time `now`.
pub async fn control_job<S: ControlStore>(
    store: &S,
    id: &str,
    action: JobAction,
    now: DateTime<Utc>,
) -> Result<ControlOutcome, ControlFailure> {
    Ok(store
        .control_job(id, action, Hour::containing(now), now)
        .await??)
}

/// What draining or undraining did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainOutcome {
    pub node_id: String,
    pub drained: bool,
    /// Whether the node was drained before.
    pub was_drained: bool,
}

/// Drains (no new dispatches; running work carries on) or undrains a node.
pub async fn set_drained<S: ControlStore + NodeStore>(
    store: &S,
    node_id: &str,
    drained: bool,
) -> Result<DrainOutcome, ControlFailure> {
    let before = store
        .nodes()
        .await?
        .into_iter()
        .find(|s| s.node.id == node_id)
        .ok_or_else(|| ControlError::UnknownNode(node_id.to_string()))?;
    ControlStore::set_drained(store, node_id, drained).await?;
    Ok(DrainOutcome {
        node_id: node_id.to_string(),
        drained,
        was_drained: before.drained,
    })
}

/// Adds or updates a node after checking its definition.
pub async fn put_node<S: NodeStore>(store: &S, node: &Node) -> Result<(), ControlFailure> {
    node.validate()
        .map_err(|e| ControlError::Invalid(e.to_string()))?;
    store.put_node(node).await?;
    Ok(())
}

/// Re-applies every stored override to the stored prices of `node` for hours in
/// [from, to) (only hours from `now` on: history stays as it was).
async fn reapply<S: ControlStore + NodeStore>(
    store: &S,
    node: &Node,
    from: Hour,
    to: Hour,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let from = from.max(Hour::containing(now));
    if to <= from {
        return Ok(());
    }
    let overrides = ControlStore::price_overrides(store).await?;
    let stored = ControlStore::node_prices(store, &node.id, from, to).await?;
    let curve = apply_overrides(node, &stored, &overrides);
    // put_prices replaces the window with exactly the given hours, so an hour without a
    // price stays without one.
    store.put_prices(&node.id, from, to, &curve).await
}

async fn node_of<S: NodeStore>(store: &S, node_id: &str) -> Result<Node, ControlFailure> {
    Ok(store
        .nodes()
        .await?
        .into_iter()
        .find(|s| s.node.id == node_id)
        .ok_or_else(|| ControlError::UnknownNode(node_id.to_string()))?
        .node)
}

/// Stores a what-if energy price for a node and window and reprices the stored hours it
/// covers at once (the pipeline keeps applying it on every later repricing).
pub async fn add_price_override<S: ControlStore + NodeStore>(
    store: &S,
    mut o: PriceOverride,
    now: DateTime<Utc>,
) -> Result<PriceOverride, ControlFailure> {
    o.validate().map_err(ControlError::Invalid)?;
    let node = node_of(store, &o.node_id).await?;
    o.id = ControlStore::add_price_override(store, &o).await?;
    reapply(store, &node, o.from, o.to, now).await?;
    Ok(o)
}

/// Removes a what-if override; the hours it covered go back to the market price (or to
/// an older override that still covers them).
pub async fn remove_price_override<S: ControlStore + NodeStore>(
    store: &S,
    id: i64,
    now: DateTime<Utc>,
) -> Result<PriceOverride, ControlFailure> {
    let o = ControlStore::price_overrides(store)
        .await?
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| ControlError::Invalid(format!("unknown price override {id}")))?;
    ControlStore::remove_price_override(store, id).await?;
    if let Ok(node) = node_of(store, &o.node_id).await {
        reapply(store, &node, o.from, o.to, now).await?;
    }
    Ok(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::dispatch::{Dispatch, JobStatus};
    use crate::domain::job::{Job, JobId};
    use crate::domain::node::default_fleet;
    use crate::domain::price::mild_prices;
    use crate::ports::{Backlog, Committed, DispatchLog};

    fn job(id: &str, units: u32, chr: u32) -> Job {
        Job::parse_line(&format!(
            r#"{{"id":"{id}","priority":5,"compute_hours":{chr},"units":{units},"deadline":"2030-01-01T00:00:00Z"}}"#
        ))
        .unwrap()
    }

    async fn world(h: Hour) -> (SqliteStore, Node) {
        let store = SqliteStore::in_memory().unwrap();
        let node = default_fleet(1).remove(0);
        store.put_node(&node).await.unwrap();
        let prices = mild_prices(&node, h, 6);
        store
            .put_prices(&node.id, h, h.plus(6), &prices)
            .await
            .unwrap();
        (store, node)
    }

    async fn dispatch(store: &SqliteStore, node: &Node, id: &str, start: Hour, slots: u32) {
        store
            .add(&job(id, 2, 2 * slots), start.start())
            .await
            .unwrap();
        let d = Dispatch {
            job_id: JobId::try_from(id.to_string()).unwrap(),
            node_id: node.id.clone(),
            start,
            slots,
            units: 2,
            planned_cost_usd: 4.0,
            strategy: "optimized".into(),
            decided_at: start.start(),
            runner_up: None,
        };
        assert_eq!(store.commit(&d).await.unwrap(), Committed::Committed);
    }

    fn reserved(store: &SqliteStore) -> Vec<(i64, u32)> {
        store
            .reservation_rows()
            .unwrap()
            .into_iter()
            .map(|(_, h, u, _)| (h.0, u))
            .collect()
    }

    #[tokio::test]
    async fn hold_release_and_priority_change_only_what_they_name() {
        let h = Hour(500_000);
        let (store, _) = world(h).await;
        store.add(&job("a", 1, 2), h.start()).await.unwrap();
        let held = control_job(&store, "a", JobAction::Hold, h.start())
            .await
            .unwrap();
        assert_eq!((held.from, held.to), (JobStatus::Pending, JobStatus::Held));
        assert!(store
            .jobs_with_status(JobStatus::Pending)
            .await
            .unwrap()
            .is_empty());
        let p = parse_action("priority", Some(1)).unwrap();
        assert_eq!(
            control_job(&store, "a", p, h.start())
                .await
                .unwrap()
                .priority,
            1
        );
        let again = control_job(&store, "a", JobAction::Hold, h.start())
            .await
            .unwrap_err();
        assert!(again.to_string().contains("it is held"), "{again}");
        control_job(&store, "a", JobAction::Release, h.start())
            .await
            .unwrap();
        let r = &store.jobs_with_status(JobStatus::Pending).await.unwrap()[0];
        assert_eq!(r.job.priority.get(), 1);
        assert_eq!(r.reason, None);
        let unknown = control_job(&store, "zz", JobAction::Hold, h.start())
            .await
            .unwrap_err();
        assert_eq!(unknown.to_string(), "unknown job `zz`");
        assert!(parse_action("priority", Some(10))
            .unwrap_err()
            .to_string()
            .contains("0..9"));
        assert!(parse_action("priority", None).is_err());
        assert!(parse_action("pause", None)
            .unwrap_err()
            .to_string()
            .contains("pause"));
    }

    #[tokio::test]
    async fn complete_and_cancel_free_the_capacity_not_used() {
        let h = Hour(500_000);
        let (store, node) = world(h).await;
        dispatch(&store, &node, "a", h, 4).await;
        dispatch(&store, &node, "b", h, 4).await;
        assert_eq!(
            reserved(&store),
            vec![(h.0, 4), (h.0 + 1, 4), (h.0 + 2, 4), (h.0 + 3, 4)]
        );
        // Two hours in, a is done: hours h+2 and h+3 are given back.
        let done = control_job(&store, "a", JobAction::Complete, h.plus(2).start())
            .await
            .unwrap();
        assert_eq!(done.freed_unit_hours, 4);
        assert_eq!(
            reserved(&store),
            vec![(h.0, 4), (h.0 + 1, 4), (h.0 + 2, 2), (h.0 + 3, 2)]
        );
        let a = store.jobs_with_status(JobStatus::Completed).await.unwrap();
        assert_eq!(a[0].dispatch.as_ref().unwrap().slots, 2);
        // b is cancelled after one hour: its record goes, and every unit it held.
        let c = control_job(&store, "b", JobAction::Cancel, h.plus(1).start())
            .await
            .unwrap();
        assert_eq!(c.freed_unit_hours, 8);
        assert_eq!(reserved(&store), vec![(h.0, 2), (h.0 + 1, 2)]);
        let b = &store.jobs_with_status(JobStatus::Cancelled).await.unwrap()[0];
        assert!(b.dispatch.is_none());
        assert!(
            b.reason.as_deref().unwrap().contains("1 of 4 hours run"),
            "{:?}",
            b.reason
        );
        let twice = control_job(&store, "b", JobAction::Complete, h.start())
            .await
            .unwrap_err();
        assert!(twice.to_string().contains("it is cancelled"), "{twice}");
    }

    #[tokio::test]
    async fn drain_names_unknown_nodes() {
        let (store, node) = world(Hour(500_000)).await;
        let d = set_drained(&store, &node.id, true).await.unwrap();
        assert!(d.drained && !d.was_drained);
        assert!(store.nodes().await.unwrap()[0].drained);
        let e = set_drained(&store, "nowhere", true).await.unwrap_err();
        assert_eq!(e.to_string(), "unknown node `nowhere`");
    }

    #[tokio::test]
    async fn an_override_reprices_now_and_its_removal_restores_the_market() {
        let h = Hour(500_000);
        let (store, node) = world(h).await;
        let before = store.node_prices(&node.id, h, h.plus(6)).unwrap();
        let o = PriceOverride {
            id: 0,
            node_id: node.id.clone(),
            from: h.plus(2),
            to: h.plus(4),
            usd_per_mwh: 900.0,
        };
        let stored = add_price_override(&store, o, h.start()).await.unwrap();
        assert!(stored.id > 0);
        let with = store.node_prices(&node.id, h, h.plus(6)).unwrap();
        let marked: Vec<i64> = with
            .iter()
            .filter(|p| p.market_usd_per_mwh == Some(40.0))
            .map(|p| p.hour.0 - h.0)
            .collect();
        assert_eq!(marked, vec![2, 3]);
        assert!(with[2].usd_per_chr > before[2].usd_per_chr);
        remove_price_override(&store, stored.id, h.start())
            .await
            .unwrap();
        assert_eq!(store.node_prices(&node.id, h, h.plus(6)).unwrap(), before);
        assert!(remove_price_override(&store, stored.id, h.start())
            .await
            .is_err());
        let bad = PriceOverride {
            id: 0,
            node_id: "nowhere".into(),
            from: h,
            to: h.plus(1),
            usd_per_mwh: 1.0,
        };
        let e = add_price_override(&store, bad, h.start())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown node `nowhere`");
    }
}
