//! `grd backtest`: every strategy on recorded price series, planning from the recorded
//! forecasts and paying the real prices, against a perfect-foresight optimum.

use anyhow::{bail, Context, Result};
use clap::Args;
use grd::adapters::csv_replay::{parse, parse_timestamp, Row};
use grd::bench::backtest::{backtest, summary_json, BacktestSpec, NodeSeries};
use grd::domain::plan::STRATEGY_NAMES;
use grd::domain::signal::{Reading, SignalKind};
use grd::domain::time::Hour;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct BacktestArgs {
    /// Price files, one node each (comma-separated): `timestamp,price[,forecast]` or
    /// `timestamp,real_price,forecast,second_forecast` (the first forecast is used).
    #[arg(long, value_delimiter = ',', required = true)]
    prices: Vec<PathBuf>,
    /// Weather files (`timestamp,temp_c,rh_pct`), one per price file, in the same order.
    #[arg(long, value_delimiter = ',')]
    weather: Vec<PathBuf>,
    /// Jobs in the generated stream.
    #[arg(long, default_value_t = 2000)]
    jobs: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First hour of the window (`YYYY-MM-DD`, RFC 3339 or `YYYY-MM-DD HH:MM`, UTC); default: the first hour
    /// every file covers.
    #[arg(long)]
    from: Option<String>,
    /// Hours in which jobs arrive (the walk runs a day and a half longer).
    #[arg(long, default_value_t = 336)]
    hours: usize,
    /// Work over the fleet's capacity across the window.
    #[arg(long, default_value_t = 0.6)]
    load: f64,
    /// Print one JSON line at the end instead of the table.
    #[arg(long)]
    json: bool,
}

/// The rows of one file of `kind`; a bad row or no row at all is an error naming the file.
fn read_rows(path: &Path, kind: SignalKind) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (rows, bad) = parse(kind, &text);
    if let Some(b) = bad.first() {
        bail!(
            "{}: {} bad row(s), first at line {}: {}",
            path.display(),
            bad.len(),
            b.line,
            b.why
        );
    }
    if rows.is_empty() {
        bail!("{}: no {} rows", path.display(), kind.as_str());
    }
    Ok(rows)
}

/// Hour -> (value, forecast) from one file, with the file named in every error.
fn read_prices(path: &Path) -> Result<BTreeMap<i64, (f64, Option<f64>)>> {
    let rows = read_rows(path, SignalKind::Price)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match (r.reading, r.forecast) {
            (Reading::Price { usd_per_mwh }, f) => Some((
                Hour::containing(r.ts).0,
                (
                    usd_per_mwh,
                    f.and_then(|f| match f {
                        Reading::Price { usd_per_mwh } => Some(usd_per_mwh),
                        _ => None,
                    }),
                ),
            )),
            _ => None,
        })
        .collect())
}

fn read_weather(path: &Path) -> Result<BTreeMap<i64, (f64, Option<f64>)>> {
    let rows = read_rows(path, SignalKind::Weather)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.reading {
            Reading::Weather { temp_c, rh_pct } => {
                Some((Hour::containing(r.ts).0, (temp_c, rh_pct)))
            }
            _ => None,
        })
        .collect())
}

/// Values for `len` hours from `start`; a missing hour repeats the one before it (the
/// first hour must be present).
fn aligned<T: Copy>(
    what: &str,
    map: &BTreeMap<i64, T>,
    start: i64,
    len: usize,
) -> Result<(Vec<T>, usize)> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    let mut gaps = 0;
    for t in start..start + len as i64 {
        match map.get(&t) {
            Some(v) => out.push(*v),
            None => match out.last().copied() {
                Some(v) => {
                    gaps += 1;
                    out.push(v)
                }
                None => bail!("{what}: no value at the window's first hour {}", Hour(t)),
            },
        }
    }
    Ok((out, gaps))
}

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub fn run(args: BacktestArgs) -> Result<ExitCode> {
    if !args.weather.is_empty() && args.weather.len() != args.prices.len() {
        bail!(
            "--weather needs one file per --prices file ({} given for {})",
            args.weather.len(),
            args.prices.len()
        );
    }
    let spec = BacktestSpec {
        jobs: args.jobs,
        seed: args.seed,
        hours: args.hours,
        horizon: 24,
        load: args.load,
    };
    let prices: Vec<_> = args
        .prices
        .iter()
        .map(|p| read_prices(p))
        .collect::<Result<_>>()?;
    let weather: Vec<_> = args
        .weather
        .iter()
        .map(|p| read_weather(p))
        .collect::<Result<_>>()?;
    // The window starts at --from or at the first hour every price file covers.
    let common = prices
        .iter()
        .filter_map(|m| m.keys().next().copied())
        .max()
        .unwrap_or_default();
    let start = match &args.from {
        Some(s) => {
            let date = || {
                chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            };
            let Some(ts) = parse_timestamp(s).or_else(date) else {
                bail!("--from: {s:?} is not a date or timestamp (YYYY-MM-DD, RFC 3339 or YYYY-MM-DD HH:MM)");
            };
            Hour::containing(ts).0
        }
        None => common,
    };
    let need = spec.hours_needed();
    let mut series = Vec::new();
    let mut gaps = 0;
    for (k, (path, map)) in args.prices.iter().zip(&prices).enumerate() {
        let last = map.keys().next_back().copied().unwrap_or_default();
        if last < start + need as i64 - 1 {
            bail!(
                "{}: ends at {}, the walk needs hours {} to {} (--hours {} + 2 x (24 + 8))",
                path.display(),
                Hour(last),
                Hour(start),
                Hour(start + need as i64 - 1),
                args.hours
            );
        }
        let (values, g) = aligned(&path.display().to_string(), map, start, need)?;
        gaps += g;
        let weather = match weather.get(k) {
            Some(w) => {
                let (v, g) = aligned(&args.weather[k].display().to_string(), w, start, need)?;
                gaps += g;
                Some(v)
            }
            None => None,
        };
        series.push(NodeSeries {
            name: name_of(path),
            real_usd_per_mwh: values.iter().map(|v| v.0).collect(),
            // No recorded forecast for an hour: the real price stands in.
            forecast_usd_per_mwh: values.iter().map(|v| v.1.unwrap_or(v.0)).collect(),
            weather,
        });
    }
    let total = ((STRATEGY_NAMES.len() + 1) * (spec.hours + spec.horizon)) as u64;
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} simulated hours ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = backtest(&series, &spec, &STRATEGY_NAMES, &mut || bar.inc(1))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", summary_json(&report));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "backtest {} nodes ({}), {} jobs arriving over {} h from {}, load {}, seed {}; \
         {} units per node; {gaps} missing hours filled",
        series.len(),
        report.nodes.join(", "),
        args.jobs,
        args.hours,
        Hour(start),
        args.load,
        args.seed,
        report.capacity_units
    );
    println!(
        "perfect foresight (optimized on the real prices): ${:.2}, {} misses",
        report.perfect_foresight_usd, report.perfect_foresight_misses
    );
    println!(
        "{:<18} {:>12} {:>7} {:>9}",
        "strategy", "cost $", "misses", "captured"
    );
    for r in &report.strategies {
        println!(
            "{:<18} {:>12.2} {:>7} {:>8.1}%",
            r.strategy,
            r.cost_usd,
            r.deadline_misses,
            r.captured * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
