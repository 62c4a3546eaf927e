//! `grd bench`: every strategy on the same generated instance, against the lower bound.

use anyhow::{bail, Context, Result};
use clap::Args;
use grd::bench::instance::{generate, Size, Spec};
use grd::bench::run::{run_strategies, summary_json};
use grd::domain::plan::{penalty_per_chr, strategy_by_name, Optimized, Strategy, STRATEGY_NAMES};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct BenchArgs {
    /// small (100 jobs x 10 nodes x 24 slots), medium (1,000 x 50 x 48), large (10,000 x 200 x 72).
    #[arg(long, default_value = "small")]
    size: String,
    /// Work over capacity across the horizon.
    #[arg(long, default_value_t = 0.6)]
    load: f64,
    /// Daily price swing (share of each node's price level).
    #[arg(long, default_value_t = 0.3)]
    swing: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hours `optimized` keeps before a deferred job's latest start, at every priority. In
    /// operation (and `grd backtest`) it is 3: the slack guards against later, more urgent
    /// arrivals and forecast changes. This batch benchmark has neither (every job known,
    /// exact prices), so the slack only costs, and the default here is 0.
    #[arg(long, default_value_t = 0)]
    defer_slack: i64,
    /// Print one JSON line at the end instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the instance, the bound and each solution as JSON files into this directory.
    #[arg(long)]
    export: Option<PathBuf>,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let Some(size) = Size::parse(&args.size) else {
        bail!("--size must be small, medium or large, not {:?}", args.size);
    };
    if !(args.load > 0.0 && args.load <= 1.5) {
        bail!("--load must be in (0, 1.5], not {}", args.load);
    }
    let spec = Spec {
        size,
        load: args.load,
        swing: args.swing,
        seed: args.seed,
    };
    let input = generate(&spec);
    if args.defer_slack < 0 {
        bail!(
            "--defer-slack must be 0 or more hours, not {}",
            args.defer_slack
        );
    }
    let strategies: Vec<Box<dyn Strategy>> = STRATEGY_NAMES
        .iter()
        .filter_map(|&name| match name {
            "optimized" => Some(Box::new(Optimized {
                defer_slack_hours: args.defer_slack,
            }) as Box<dyn Strategy>),
            _ => strategy_by_name(name),
        })
        .collect();
    let (bound, bound_ms, outcomes) = run_strategies(&input, &strategies);
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut inst = serde_json::to_value(&input)?;
        inst["penalty_usd_per_chr_by_priority"] = serde_json::json!((0..10u8)
            .map(|p| penalty_per_chr(&input, p))
            .collect::<Vec<_>>());
        inst["spec"] = serde_json::to_value(spec)?;
        std::fs::write(dir.join("instance.json"), serde_json::to_string(&inst)?)?;
        std::fs::write(dir.join("bound.json"), serde_json::to_string(&bound)?)?;
        for o in &outcomes {
            let mut v = serde_json::to_value(o)?;
            v["placements"] = serde_json::to_value(&o.plan.placements)?;
            v["unplaced"] = serde_json::to_value(&o.plan.unplaced)?;
            std::fs::write(
                dir.join(format!("solution-{}.json", o.strategy)),
                serde_json::to_string(&v)?,
            )?;
        }
    }
    let (jobs, nodes, slots) = size.dims();
    if args.json {
        let mut v = summary_json(&bound, &outcomes);
        v["bound_ms"] = serde_json::json!(bound_ms);
        v["instance"] = serde_json::json!({"size": args.size, "jobs": jobs, "nodes": nodes,
            "slots": slots, "load": args.load, "swing": args.swing, "seed": args.seed,
            "defer_slack": args.defer_slack});
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "instance {} ({jobs} jobs x {nodes} nodes x {slots} slots), load {}, swing {}, seed {}, \
         optimized defer slack {} h",
        args.size, args.load, args.swing, args.seed, args.defer_slack
    );
    println!(
        "lower bound ${:.2} (flow {}, Lagrangian ${:.2} in {} rounds; flow penalty ${:.2} for {:.1} of {:.1} c-hr unserved), {:.0} ms",
        bound.usd,
        bound
            .flow_usd
            .map_or("not solved".to_string(), |f| format!("${f:.2}")),
        bound.lagrangian_usd,
        bound.lagrangian_rounds,
        bound.penalty_usd,
        bound.unserved_chr.iter().sum::<f64>(),
        bound.demand_chr,
        bound_ms
    );
    println!(
        "{:<18} {:>12} {:>12} {:>8} {:>10} {:>7}  {:<28} {:>9}",
        "strategy",
        "cost $",
        "penalised $",
        "gap",
        "gap_served",
        "misses",
        "misses by priority 0..9",
        "solve ms"
    );
    for o in &outcomes {
        println!(
            "{:<18} {:>12.2} {:>12.2} {:>7.2}% {:>9.2}% {:>7}  {:<28} {:>9.1}",
            o.strategy,
            o.cost_usd,
            o.penalised_usd,
            o.gap * 100.0,
            o.gap_served * 100.0,
            o.deadline_misses,
            format!("{:?}", o.misses_by_priority),
            o.solve_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
