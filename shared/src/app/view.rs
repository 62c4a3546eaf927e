//! What the pipeline looks like now: each node with its current price, reserved units and
//! running jobs, and every job. Read by the console views and the dashboard.

use crate::domain::dispatch::JobRecord;
use crate::domain::price::NodePrice;
use crate::domain::time::Hour;
use crate::ports::{Backlog, DispatchLog, NodeState, NodeStore, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A node as it stands this hour.
pub struct NodeRow {
    pub state: NodeState,
    pub price: Option<NodePrice>,
    pub reserved: u32,
    pub running: usize,
}

/// Every node and every job.
pub struct View {
    pub nodes: Vec<NodeRow>,
    pub jobs: Vec<JobRecord>,
}

impl View {
    pub async fn load<S: NodeStore + DispatchLog + Backlog>(
        store: &S,
        now: DateTime<Utc>,
    ) -> Result<View, StoreError> {
        let hour = Hour::containing(now);
        let prices: HashMap<String, NodePrice> = store
            .prices(hour, hour.plus(1))
            .await?
            .into_iter()
            .map(|p| (p.node_id.clone(), p))
            .collect();
        let reserved: HashMap<String, u32> = store
            .reservations(hour, hour.plus(1))
            .await?
            .into_iter()
            .map(|(n, _, u)| (n, u))
            .collect();
        let jobs = store.all_jobs().await?;
        let mut running: HashMap<&str, usize> = HashMap::new();
        for r in &jobs {
            if let Some(d) = r
                .dispatch
                .as_ref()
                .filter(|d| d.start <= hour && hour < d.end())
            {
                *running.entry(d.node_id.as_str()).or_default() += 1;
            }
        }
        let running: HashMap<String, usize> = running
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let nodes = store
            .nodes()
            .await?
            .into_iter()
            .map(|state| NodeRow {
                price: prices.get(&state.node.id).cloned(),
                reserved: reserved.get(&state.node.id).copied().unwrap_or(0),
                running: running.get(&state.node.id).copied().unwrap_or(0),
                state,
            })
            .collect();
        Ok(View { nodes, jobs })
    }
}
