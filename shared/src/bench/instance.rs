//! Generated planning instances: jobs x nodes x slots at a target load.

use crate::domain::job::{JobId, Priority};
use crate::domain::plan::{PlanInput, PlanJob, SlotNode};
use crate::domain::time::Hour;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    /// (jobs, nodes, slots).
    pub fn dims(self) -> (usize, usize, usize) {
        match self {
            Size::Small => (100, 10, 24),
            Size::Medium => (1_000, 50, 48),
            Size::Large => (10_000, 200, 72),
        }
    }

    pub fn parse(s: &str) -> Option<Size> {
        match s {
            "small" => Some(Size::Small),
            "medium" => Some(Size::Medium),
            "large" => Some(Size::Large),
            _ => None,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub size: Size,
    /// Work over capacity across the horizon (0.3, 0.6, 0.9).
    pub load: f64,
    /// Daily price swing: prices move +/- this share around each node's level.
    pub swing: f64,
    pub seed: u64,
}

/// SplitMix64 draws in [0, 1): deterministic for (seed, stream, index).
pub fn draw(seed: u64, stream: u64, i: u64) -> f64 {
    let mut x =
        seed ^ stream.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The job mix of [`generate`]: `n_jobs` jobs for a horizon of `slots` hours (latest start
/// at most `slots - len`, runs of 1 to `min(slots / 3, 12)` hours in quarter hours), 10 %
/// priority 0, 30 % priority 1-3, the rest 4-9; units 1-16; a fifth restricted to one or
/// two of the regions `r0..r{n_regions - 1}`.
pub fn generate_jobs(n_jobs: usize, slots: usize, n_regions: usize, seed: u64) -> Vec<PlanJob> {
    let max_len = (slots / 3).clamp(1, 12);
    let n_regions = n_regions.max(1);
    (0..n_jobs as u64)
        .map(|i| {
            let p = draw(seed, 1, i);
            let priority = if p < 0.1 {
                0
            } else if p < 0.4 {
                1 + (draw(seed, 2, i) * 3.0) as u8
            } else {
                4 + (draw(seed, 2, i) * 6.0) as u8
            };
            let units = [1u32, 1, 2, 2, 4, 4, 8, 16][(draw(seed, 3, i) * 8.0) as usize];
            let quarters = 4 + (draw(seed, 4, i) * ((max_len - 1) * 4) as f64).round() as usize;
            let len = quarters.div_ceil(4);
            let mut fractions = vec![1.0; len];
            if !quarters.is_multiple_of(4) {
                fractions[len - 1] = (quarters % 4) as f64 / 4.0;
            }
            let slack = (draw(seed, 5, i).powf(1.5) * (slots - len) as f64) as i64;
            let latest_start = slack.min((slots - len) as i64);
            let regions = if draw(seed, 6, i) < 0.2 {
                let a = (draw(seed, 7, i) * n_regions as f64) as usize;
                let b = (draw(seed, 8, i) * n_regions as f64) as usize;
                let mut r = vec![format!("r{a}")];
                if a != b {
                    r.push(format!("r{b}"));
                }
                r
            } else {
                vec![]
            };
            PlanJob {
                id: JobId::try_from(format!("j{i:05}")).unwrap_or_else(|_| unreachable!()),
                priority: Priority::try_from(priority).unwrap_or(Priority::MOST_URGENT),
                units,
                compute_hours: f64::from(units) * fractions.iter().sum::<f64>(),
                fractions,
                latest_start,
                regions,
                seq: i,
            }
        })
        .collect()
}

/// Builds one instance. All jobs are known at slot 0 (a batch); deadlines fall inside the
/// horizon. Nodes sit in `nodes / 5` regions (at least 2) in different time zones, so their
/// daily price cycles are out of phase; a third of them lose up to 25 % of their units in the
/// hot afternoon hours (weather derating). Node capacity is set so that the work is `load`
/// of the capacity (never below 16 units, the largest job).
pub fn generate(spec: &Spec) -> PlanInput {
    let (n_jobs, n_nodes, slots) = spec.size.dims();
    let seed = spec.seed;
    let n_regions = (n_nodes / 5).max(2);
    let jobs = generate_jobs(n_jobs, slots, n_regions, seed);
    let work: f64 = jobs.iter().map(|j| j.compute_hours).sum();
    let per_node = work / (spec.load.max(0.01) * n_nodes as f64 * slots as f64);
    let nodes = (0..n_nodes as u64)
        .map(|n| {
            let region = (n as usize) % n_regions;
            let cap = ((per_node * (0.5 + draw(seed, 10, n))).round() as u32).max(16);
            let level = 0.03 + 0.05 * draw(seed, 11, n);
            let phase = region as f64 * 24.0 / n_regions as f64;
            let derates = draw(seed, 12, n) < 1.0 / 3.0;
            let (mut prices, mut free) = (Vec::new(), Vec::new());
            for t in 0..slots {
                let day = ((t as f64 + phase) / 24.0 * std::f64::consts::TAU).sin();
                let noise = 0.1 * (draw(seed, 13, n * 10_000 + t as u64) - 0.5);
                prices.push((level * (1.0 + spec.swing * day + noise)).max(0.001));
                let derate = if derates { 0.25 * day.max(0.0) } else { 0.0 };
                free.push((f64::from(cap) * (1.0 - derate)).floor() as u32);
            }
            SlotNode {
                node_id: format!("n{n:03}"),
                region: format!("r{region}"),
                capacity_units: cap,
                usd_per_chr: prices,
                free,
            }
        })
        .collect();
    PlanInput {
        now: Hour(0),
        starts: slots,
        nodes,
        jobs,
    }
}
