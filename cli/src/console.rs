//! Text views for people: node table, queue summary, job list.

use grd::app::summary::Summary;
pub use grd::app::view::View;
use grd::domain::dispatch::{JobRecord, JobStatus};
use serde_json::json;
use std::fmt::Write;

pub fn render_nodes(view: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<11} {:<14} {:>9} {:>9} {:>5} {:>7} {:>9} {:>5}  STATE",
        "NODE", "REGION", "MARKET", "$/C-HR", "$/MWH", "PUE", "TEMP", "LOAD/CAP", "JOBS",
    );
    for row in &view.nodes {
        let n = &row.state.node;
        let (price, mwh, pue, temp, cap, state) = match &row.price {
            Some(p) => (
                format!("{:.5}", p.usd_per_chr),
                format!("{:.1}", p.energy_usd_per_mwh),
                format!("{:.2}", p.pue),
                format!("{:.1}C", p.temp_c),
                p.capacity_units,
                if p.stale {
                    "STALE"
                } else if p.humidity_assumed {
                    "ok (rh assumed)"
                } else {
                    "ok"
                },
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), 0, "no data"),
        };
        let state = if row.state.drained { "DRAINED" } else { state };
        let _ = writeln!(
            out,
            "{:<8} {:<11} {:<14} {:>9} {:>9} {:>5} {:>7} {:>9} {:>5}  {}",
            n.id,
            n.region,
            n.market,
            price,
            mwh,
            pue,
            temp,
            format!("{}/{}", row.reserved, cap),
            row.running,
            state
        );
    }
    out
}

pub fn nodes_json(view: &View) -> serde_json::Value {
    view.nodes
        .iter()
        .map(|row| {
            let n = &row.state.node;
            json!({
                "id": n.id, "name": n.name, "region": n.region, "market": n.market,
                "lat": n.lat, "lon": n.lon, "capacity_units": n.capacity_units,
                "drained": row.state.drained, "reserved_units": row.reserved, "running_jobs": row.running,
                "price": row.price,
            })
        })
        .collect()
}

pub fn render_summary(s: &Summary) -> String {
    let n = |st: JobStatus| s.jobs.get(st.as_str()).copied().unwrap_or(0);
    let h = |st: JobStatus| s.compute_hours.get(st.as_str()).copied().unwrap_or(0.0);
    format!(
        "QUEUE  pending {} ({:.0} c-hr) | held {} | dispatched {} ({:.0} c-hr) | completed {} ({:.0} c-hr) | rejected {} | expired {} | cancelled {}\n\
         COST   ${:.2} for {:.0} c-hr = ${:.5}/c-hr",
        n(JobStatus::Pending),
        h(JobStatus::Pending),
        n(JobStatus::Held),
        n(JobStatus::Dispatched),
        h(JobStatus::Dispatched),
        n(JobStatus::Completed),
        h(JobStatus::Completed),
        n(JobStatus::Rejected),
        n(JobStatus::Expired),
        n(JobStatus::Cancelled),
        s.cost_usd,
        s.dispatched_chr,
        s.usd_per_chr
    )
}

pub fn render_jobs(jobs: &[JobRecord], limit: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>3} {:>8} {:<11} {:<8} {:<18} {:>9}  NOTE",
        "JOB", "PRI", "C-HR", "STATUS", "NODE", "START", "PLANNED$"
    );
    // Most recent first: what an operator looks at.
    for r in jobs.iter().rev().take(limit) {
        let d = r.dispatch.as_ref();
        let _ = writeln!(
            out,
            "{:<22} {:>3} {:>8.1} {:<11} {:<8} {:<18} {:>9}  {}",
            r.job.id.as_str(),
            r.job.priority.get(),
            r.job.compute_hours,
            r.status.as_str(),
            d.map(|d| d.node_id.as_str()).unwrap_or("-"),
            d.map(|d| d.start.to_string()).unwrap_or_else(|| "-".into()),
            d.map(|d| format!("{:.4}", d.planned_cost_usd))
                .unwrap_or_else(|| "-".into()),
            r.reason.as_deref().unwrap_or("")
        );
    }
    if jobs.len() > limit {
        let _ = writeln!(
            out,
            "... {} more (grd status --json lists all)",
            jobs.len() - limit
        );
    }
    out
}
