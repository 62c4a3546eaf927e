//! Metrics in CloudWatch embedded metric format: one JSON line on stdout per emission,
//! which Lambda's log pipeline turns into metrics without any API call.

use serde_json::json;
use std::io::Write;

/// Writes counts as metrics of namespace `grd`, without dimensions.
pub fn emit(metrics: &[(&str, f64)]) {
    let names: Vec<_> = metrics
        .iter()
        .map(|(n, _)| json!({"Name": n, "Unit": "Count"}))
        .collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": "grd", "Dimensions": [[]], "Metrics": names}],
        }
    });
    for (name, value) in metrics {
        doc[*name] = json!(value);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{doc}");
}
