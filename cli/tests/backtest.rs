//! `grd backtest` on small generated price files.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn grd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grd"))
        .arg("--db")
        .arg(dir.join("grd.db"))
        .args(args)
        .output()
        .expect("run grd")
}

/// A price file of `hours` hours from 2017-03-01: a daily cycle shifted by `phase` hours,
/// with a forecast column (four columns when `four`, as the recorded day-ahead files).
fn price_file(dir: &Path, name: &str, hours: usize, phase: f64, four: bool) -> PathBuf {
    let mut text = if four {
        "timestamp,real_price,dnn_ensemble_forecast,lear_ensemble_forecast\n".to_string()
    } else {
        "timestamp,price_usd_per_mwh,forecast_usd_per_mwh\n".to_string()
    };
    for t in 0..hours {
        let day = ((t as f64 + phase) / 24.0 * std::f64::consts::TAU).sin();
        let real = 50.0 + 35.0 * day;
        // The forecast misses by a few dollars, differently each hour.
        let forecast = real + ((t * 7919) % 11) as f64 - 5.0;
        let ts = format!("2017-03-{:02} {:02}:00:00", 1 + t / 24, t % 24);
        if four {
            text.push_str(&format!(
                "{ts},{real:.2},{forecast:.2},{:.2}\n",
                forecast + 3.0
            ));
        } else {
            text.push_str(&format!("{ts},{real:.2},{forecast:.2}\n"));
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn files(dir: &Path, hours: usize) -> String {
    [
        price_file(dir, "a.csv", hours, 0.0, true),
        price_file(dir, "b.csv", hours, 8.0, false),
        price_file(dir, "c.csv", hours, 16.0, true),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(",")
}

#[test]
fn backtest_reports_every_strategy_and_the_perfect_foresight_share() {
    let dir = tempfile::tempdir().unwrap();
    // 48 h of arrivals need 48 + 2 x (24 + 8) = 112 hours of prices.
    let prices = files(dir.path(), 120);
    let out = grd(
        dir.path(),
        &[
            "backtest", "--prices", &prices, "--jobs", "150", "--seed", "2", "--hours", "48",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let pf = last["perfect_foresight_usd"].as_f64().unwrap();
    assert!(pf > 0.0);
    let s = &last["strategies"];
    for name in ["optimized", "greedy-time-aware", "baseline-2019"] {
        assert!(s[name]["cost_usd"].as_f64().unwrap() > 0.0, "{name}");
        assert!(s[name]["deadline_misses"].as_u64().is_some(), "{name}");
        assert!(s[name]["captured"].as_f64().is_some(), "{name}");
    }
    assert_eq!(s["baseline-2019"]["captured"].as_f64().unwrap(), 0.0);
    assert!(
        s["optimized"]["cost_usd"].as_f64().unwrap()
            < s["baseline-2019"]["cost_usd"].as_f64().unwrap(),
        "{last}"
    );

    // The table names the window and every strategy.
    let out = grd(
        dir.path(),
        &[
            "backtest",
            "--prices",
            &prices,
            "--jobs",
            "150",
            "--hours",
            "48",
            "--from",
            "2017-03-01",
        ],
    );
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("2017-03-01T00:00Z"), "{table}");
    assert!(table.contains("perfect foresight"), "{table}");
    assert!(table.contains("greedy-time-aware"), "{table}");
}

#[test]
fn backtest_rejects_short_or_broken_files_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let prices = files(dir.path(), 60);
    let out = grd(
        dir.path(),
        &[
            "backtest", "--prices", &prices, "--hours", "48", "--jobs", "50",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.csv") && err.contains("ends at"), "{err}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "timestamp,price\n2017-03-01 00:00:00,abc\n").unwrap();
    let out = grd(
        dir.path(),
        &["backtest", "--prices", &bad.display().to_string()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv") && err.contains("line 2"), "{err}");

    let out = grd(
        dir.path(),
        &["backtest", "--prices", &prices, "--from", "March"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from"));
}
