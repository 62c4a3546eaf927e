//! Metrics in CloudWatch embedded metric format: one JSON line on stdout per emission,
//! which Lambda's log pipeline turns into metrics without any API call.

use serde_json::{json, Value};
use std::io::Write;

/// Namespace of every metric; each carries the dimension `FunctionName`, so two stacks in
/// one account (and the two fetch functions, one per source) stay apart.
pub const NAMESPACE: &str = "grd";

/// Writes counts as metrics of namespace `grd`, dimension `FunctionName` = this function.
pub fn emit(metrics: &[(&str, f64)]) {
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_string());
    let doc = document(metrics, &function, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{doc}");
}

/// The embedded-metric-format document for one emission.
pub fn document(metrics: &[(&str, f64)], function: &str, timestamp_ms: i64) -> Value {
    let names: Vec<_> = metrics
        .iter()
        .map(|(n, _)| json!({"Name": n, "Unit": "Count"}))
        .collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": names,
            }],
        },
        "FunctionName": function,
    });
    for (name, value) in metrics {
        doc[*name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_declared_and_has_its_value_and_the_function_dimension() {
        let doc = document(&[("JobsAccepted", 3.0), ("FetchErrors", 1.0)], "f-1", 42);
        let spec = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "grd");
        assert_eq!(spec["Dimensions"], json!([["FunctionName"]]));
        let names: Vec<&str> = spec["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(names, ["JobsAccepted", "FetchErrors"]);
        assert_eq!(doc["JobsAccepted"], 3.0);
        assert_eq!(doc["FetchErrors"], 1.0);
        assert_eq!(doc["FunctionName"], "f-1");
        assert_eq!(doc["_aws"]["Timestamp"], 42);
    }
}
