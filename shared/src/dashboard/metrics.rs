//! `/metrics` in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;

/// One node's current state.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMetric {
    pub node: String,
    pub usd_per_chr: Option<f64>,
    /// No price for the current hour, or an input past its validity.
    pub stale: bool,
    pub drained: bool,
    pub what_if: bool,
}

/// Everything the endpoint reports, read from the store at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub jobs_by_status: BTreeMap<String, u64>,
    /// Age of the oldest pending or held job, in simulated seconds.
    pub backlog_age_seconds: f64,
    pub backlog_compute_hours: f64,
    pub dispatched_chr: f64,
    pub cost_usd: f64,
    pub nodes: Vec<NodeMetric>,
    /// (name, label, value) counters kept by the pipeline.
    pub counters: Vec<(String, String, u64)>,
    pub overrides_active: u64,
    pub clock_seconds: f64,
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(s: &Snapshot, name: &str, label_value: &str) -> u64 {
    s.counters
        .iter()
        .filter(|(n, l, _)| n == name && l == label_value)
        .map(|(_, _, v)| *v)
        .sum()
}

pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let accepted: u64 = s.jobs_by_status.values().sum();
    head(
        &mut o,
        "grd_jobs_accepted_total",
        "counter",
        "Jobs accepted into the backlog.",
    );
    let _ = writeln!(o, "grd_jobs_accepted_total {accepted}");
    head(
        &mut o,
        "grd_jobs_rejected_total",
        "counter",
        "Jobs refused: malformed lines at intake, or closed by the planner (no allowed or large enough node).",
    );
    let _ = writeln!(
        o,
        "grd_jobs_rejected_total{{stage=\"intake\"}} {}",
        counter(s, "lines_rejected", "")
    );
    let _ = writeln!(
        o,
        "grd_jobs_rejected_total{{stage=\"planner\"}} {}",
        s.jobs_by_status.get("rejected").copied().unwrap_or(0)
    );
    head(
        &mut o,
        "grd_jobs",
        "gauge",
        "Accepted jobs by current status.",
    );
    for (status, n) in &s.jobs_by_status {
        let _ = writeln!(o, "grd_jobs{{status=\"{}\"}} {n}", label(status));
    }
    head(
        &mut o,
        "grd_dispatched_compute_hours_total",
        "counter",
        "Compute-hours dispatched (running or completed).",
    );
    let _ = writeln!(o, "grd_dispatched_compute_hours_total {}", s.dispatched_chr);
    head(
        &mut o,
        "grd_dispatched_cost_usd",
        "gauge",
        "Cost of the dispatched compute-hours at the prices their hours had (forecast for hours to come); falls when a price is negative or a forecast is revised down.",
    );
    let _ = writeln!(o, "grd_dispatched_cost_usd {}", s.cost_usd);
    head(
        &mut o,
        "grd_backlog_age_seconds",
        "gauge",
        "Age of the oldest pending or held job on the pipeline clock (0 when the backlog is empty).",
    );
    let _ = writeln!(o, "grd_backlog_age_seconds {}", s.backlog_age_seconds);
    head(
        &mut o,
        "grd_backlog_compute_hours",
        "gauge",
        "Compute-hours waiting (pending or held).",
    );
    let _ = writeln!(o, "grd_backlog_compute_hours {}", s.backlog_compute_hours);
    head(
        &mut o,
        "grd_nodes_stale",
        "gauge",
        "Nodes with no valid price for the current hour (not dispatchable).",
    );
    let _ = writeln!(
        o,
        "grd_nodes_stale {}",
        s.nodes.iter().filter(|n| n.stale).count()
    );
    head(
        &mut o,
        "grd_node_stale",
        "gauge",
        "1 when the node's current price is stale or missing.",
    );
    for n in &s.nodes {
        let _ = writeln!(
            o,
            "grd_node_stale{{node=\"{}\"}} {}",
            label(&n.node),
            u8::from(n.stale)
        );
    }
    head(
        &mut o,
        "grd_node_drained",
        "gauge",
        "1 when the node is drained.",
    );
    for n in &s.nodes {
        let _ = writeln!(
            o,
            "grd_node_drained{{node=\"{}\"}} {}",
            label(&n.node),
            u8::from(n.drained)
        );
    }
    head(
        &mut o,
        "grd_node_price_usd_per_chr",
        "gauge",
        "Current price per compute-hour (what_if=\"true\" when an operator override sets the energy price).",
    );
    for n in &s.nodes {
        if let Some(p) = n.usd_per_chr {
            let _ = writeln!(
                o,
                "grd_node_price_usd_per_chr{{node=\"{}\",what_if=\"{}\"}} {p}",
                label(&n.node),
                n.what_if
            );
        }
    }
    head(
        &mut o,
        "grd_fetch_errors_total",
        "counter",
        "Failed fetches per signal source.",
    );
    for (name, source, v) in &s.counters {
        if name == "fetch_errors" {
            let _ = writeln!(
                o,
                "grd_fetch_errors_total{{source=\"{}\"}} {v}",
                label(source)
            );
        }
    }
    head(
        &mut o,
        "grd_signals_rejected_total",
        "counter",
        "Signals refused by the checks, per source.",
    );
    for (name, source, v) in &s.counters {
        if name == "signals_rejected" {
            let _ = writeln!(
                o,
                "grd_signals_rejected_total{{source=\"{}\"}} {v}",
                label(source)
            );
        }
    }
    head(
        &mut o,
        "grd_price_overrides_active",
        "gauge",
        "What-if price overrides covering now or later.",
    );
    let _ = writeln!(o, "grd_price_overrides_active {}", s.overrides_active);
    head(
        &mut o,
        "grd_clock_seconds",
        "gauge",
        "The pipeline clock (Unix seconds).",
    );
    let _ = writeln!(o, "grd_clock_seconds {}", s.clock_seconds);
    o
}

#[cfg(test)]
/// Samples of a text exposition: (name with labels, value). Comments and blank lines are
/// skipped; a malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line:?}"))?;
        let name_end = key.find('{').unwrap_or(key.len());
        let name = &key[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("bad metric name: {line:?}"));
        }
        if name_end < key.len() && !key.ends_with('}') {
            return Err(format!("unclosed labels: {line:?}"));
        }
        let v: f64 = value
            .parse()
            .map_err(|_| format!("bad value {value:?}: {line:?}"))?;
        out.push((key.to_string(), v));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_samples_with_every_family_typed() {
        let s = Snapshot {
            jobs_by_status: [("pending".to_string(), 2), ("completed".to_string(), 5)]
                .into_iter()
                .collect(),
            backlog_age_seconds: 7200.0,
            dispatched_chr: 12.5,
            cost_usd: 0.75,
            nodes: vec![NodeMetric {
                node: "a\"b".into(),
                usd_per_chr: Some(0.05),
                stale: true,
                drained: false,
                what_if: true,
            }],
            counters: vec![
                ("fetch_errors".into(), "synthetic-price".into(), 3),
                ("lines_rejected".into(), String::new(), 4),
            ],
            ..Default::default()
        };
        let text = render(&s);
        let samples: BTreeMap<String, f64> = parse(&text).unwrap().into_iter().collect();
        assert_eq!(samples["grd_jobs_accepted_total"], 7.0);
        assert_eq!(samples["grd_jobs_rejected_total{stage=\"intake\"}"], 4.0);
        assert_eq!(
            samples["grd_fetch_errors_total{source=\"synthetic-price\"}"],
            3.0
        );
        assert_eq!(samples["grd_nodes_stale"], 1.0);
        assert_eq!(samples["grd_node_stale{node=\"a\\\"b\"}"], 1.0);
        assert_eq!(samples["grd_backlog_age_seconds"], 7200.0);
        for key in samples.keys() {
            let name = key.split('{').next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
        assert!(parse("grd_x{a=\"1\" 3").is_err());
        assert!(parse("grd_x notanumber").is_err());
    }
}
