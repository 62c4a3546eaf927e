//! Turn each node's newest signals into a price curve (per compute-hour) and capacity.

use crate::domain::node::Node;
use crate::domain::price::{apply_overrides, price_curve, NodePrice, PriceOverride};
use crate::domain::time::Hour;
use crate::ports::{NodeStore, SignalStore, StoreError};
use chrono::{DateTime, Utc};

/// Reprices `nodes` from `now` over `horizon` hours; returns the current-hour price of
/// each node that has one.
pub async fn price_nodes<S: SignalStore + NodeStore>(
    store: &S,
    nodes: &[Node],
    now: DateTime<Utc>,
    horizon: u32,
) -> Result<Vec<NodePrice>, StoreError> {
    price_nodes_with_overrides(store, nodes, now, horizon, &[]).await
}

/// As [`price_nodes`], with operators' what-if energy prices applied to the hours they
/// cover (each such hour keeps the market price it replaced).
pub async fn price_nodes_with_overrides<S: SignalStore + NodeStore>(
    store: &S,
    nodes: &[Node],
    now: DateTime<Utc>,
    horizon: u32,
    overrides: &[PriceOverride],
) -> Result<Vec<NodePrice>, StoreError> {
    let from = Hour::containing(now);
    let to = from.plus(i64::from(horizon));
    let mut current = Vec::new();
    for node in nodes {
        let signals = store.node_signals(&node.id, from, to).await?;
        let mut curve = price_curve(node, now, horizon, &signals);
        if overrides.iter().any(|o| o.node_id == node.id) {
            curve = apply_overrides(node, &curve, overrides);
        }
        store.put_prices(&node.id, from, to, &curve).await?;
        if let Some(p) = curve.first().filter(|p| p.hour == from) {
            if p.stale {
                tracing::warn!(node = %node.id, "node priced stale: an input is past its validity");
            }
            current.push(p.clone());
        }
    }
    Ok(current)
}
