//! `grd soak`: a load and soak run on the embedded store, with an audit.

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use grd::local::soak::{soak, SoakConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct SoakArgs {
    /// Jobs in the stream.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Share of job lines sent twice.
    #[arg(long, default_value_t = 0.10)]
    pub duplicates: f64,
    /// Share of job lines also sent in a broken form.
    #[arg(long, default_value_t = 0.02)]
    pub malformed: f64,
    /// Planners racing on the one database, each on its own connection and thread.
    #[arg(long, default_value_t = 4)]
    pub planners: usize,
    /// Hours over which the jobs arrive.
    #[arg(long, default_value_t = 120)]
    pub hours: u32,
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 48)]
    pub nodes: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Database file for the run (replaced).
    #[arg(long, default_value = "grd-soak.db")]
    pub out: PathBuf,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SoakArgs) -> Result<ExitCode> {
    for (name, v) in [
        ("--duplicates", args.duplicates),
        ("--malformed", args.malformed),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{name} {v}: must be a share 0..1");
        }
    }
    if args.planners == 0 || args.planners > 64 {
        bail!("--planners {}: must be 1..=64", args.planners);
    }
    let cfg = SoakConfig {
        jobs: args.jobs,
        duplicate_rate: args.duplicates,
        malformed_rate: args.malformed,
        planners: args.planners,
        hours: args.hours.max(1),
        nodes: args.nodes.clamp(1, 200),
        seed: args.seed,
        start: chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .context("start")?,
    };
    let r = soak(&args.out, &cfg)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} jobs, {:.0}% duplicates, {:.0}% malformed, {} concurrent planners: {} lost, {} doubled, {} overbooked, \
             p99 plan latency {:.1} ms (p50 {:.1}, max {:.1}; {} rounds, {} commits lost to another planner)",
            r.jobs,
            args.duplicates * 100.0,
            args.malformed * 100.0,
            r.planners,
            r.lost,
            r.doubled,
            r.overbooked,
            r.plan_ms_p99,
            r.plan_ms_p50,
            r.plan_ms_max,
            r.plan_rounds,
            r.commit_conflicts
        );
        println!(
            "lines sent {} ({} duplicates, {} malformed, {} rejected); jobs by status {:?}; {} simulated hours in {:.1} s",
            r.lines_sent, r.duplicates_sent, r.malformed_sent, r.rejected_lines, r.by_status, r.hours_simulated, r.wall_s
        );
    }
    Ok(if r.lost + r.doubled + r.overbooked == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
