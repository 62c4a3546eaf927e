//! `grd fetch --once`: fetch weather and prices from the real sources the local nodes name,
//! store what arrives, and say plainly which sources could not be reached.

use crate::local::open_store;
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use grd::adapters::sources::http::SourcesConfig;
use grd::app::fetch_signals::{fetch_signals, FetchLimits, FetchReport};
use grd::domain::node::Node;
use grd::ports::{NodeStore, RawArchive, RawPayload, StoreError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct FetchArgs {
    /// Fetch once and exit (schedule it with cron or a timer for a steady feed).
    #[arg(long)]
    pub once: bool,
    /// One base URL for every source (a mirror or a test server); per source:
    /// GRD_OPEN_METEO_URL, GRD_NWS_URL, GRD_ENERGY_CHARTS_URL, GRD_NYISO_URL.
    #[arg(long, env = "GRD_SOURCES_BASE_URL")]
    pub base_url: Option<String>,
    /// Keep every raw response under this directory (raw/SOURCE/ZONE-OR-CELL/DATE/TIME.EXT).
    #[arg(long)]
    pub archive_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Raw payloads as files under a directory.
struct DirArchive(PathBuf);

impl RawArchive for DirArchive {
    fn put<'a>(
        &'a self,
        key: &'a str,
        payload: &'a RawPayload,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            // Small files, once per upstream call: plain blocking writes are fine here.
            let path = self.0.join(key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
            }
            std::fs::write(&path, &payload.bytes)
                .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))
        }
        .boxed()
    }
}

pub async fn run(db: &Path, args: FetchArgs) -> Result<ExitCode> {
    if !args.once {
        bail!("only `grd fetch --once` is supported: run it from a scheduler for a steady feed");
    }
    let mut config =
        SourcesConfig::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
    if let Some(base) = &args.base_url {
        let base = base.trim_end_matches('/').to_string();
        config.open_meteo_url = base.clone();
        config.nws_url = base.clone();
        config.energy_charts_url = base.clone();
        config.nyiso_url = base;
    }
    let store = open_store(db)?;
    let nodes: Vec<Node> = store
        .nodes()
        .await?
        .into_iter()
        .map(|s| s.node)
        .filter(|n| !n.sources.is_empty())
        .collect();
    if nodes.is_empty() {
        bail!(
            "no node names a real source: add e.g. \"sources\": {{\"weather\": \"open-meteo\", \
             \"prices\": \"energy-charts\"}} to a node and load it with `grd nodes --load FILE`"
        );
    }
    let http = config.client().map_err(anyhow::Error::msg)?;
    let archive = args
        .archive_dir
        .clone()
        .map(|d| Arc::new(DirArchive(d)) as Arc<dyn RawArchive>);
    let sources = config.sources_for(&http, &nodes, archive);
    let h = &config.http;
    // Per node: up to four sequential calls (NWS), each with its retries and backoffs.
    let per_call = h.timeout * (h.retries + 1) + h.max_backoff * h.retries;
    let limits = FetchLimits {
        concurrency: h.max_in_flight * 2,
        timeout: per_call * 4 + Duration::from_secs(1),
    };
    let now = Utc::now();
    let runs = sources.iter().map(|source| {
        let mine: Vec<Node> = nodes
            .iter()
            .filter(|n| SourcesConfig::serves(source.as_ref(), n))
            .cloned()
            .collect();
        let store = store.clone();
        let source = source.clone();
        async move { fetch_signals(store.as_ref(), &[source], &mine, now, limits, None).await }
    });
    let mut report = FetchReport::default();
    for r in join_all(runs).await {
        let r = r.context("storing fetched signals")?;
        report.sources.extend(r.sources);
        report.changed_nodes.extend(r.changed_nodes);
    }
    let failed: Vec<(&String, &Vec<String>)> = report
        .sources
        .iter()
        .filter(|(_, s)| s.failed > 0)
        .map(|(name, s)| (name, &s.errors))
        .collect();
    if args.json {
        println!(
            "{}",
            json!({"at": now, "sources": report.sources, "http_requests": http.attempts(),
                   "changed_nodes": report.changed_nodes,
                   "unreachable": failed.iter().map(|(n, _)| n).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "{:<18} {:>5} {:>6} {:>8} {:>8} {:>9}",
            "SOURCE", "NODES", "FAILED", "ACCEPTED", "REJECTED", "FORECAST"
        );
        for (name, s) in &report.sources {
            println!(
                "{:<18} {:>5} {:>6} {:>8} {:>8} {:>9}",
                name, s.requests, s.failed, s.accepted, s.rejected, s.forecast_points
            );
        }
        println!("{} HTTP requests", http.attempts());
    }
    for (name, errors) in &failed {
        eprintln!("could not get data from `{name}`:");
        for e in errors.iter() {
            eprintln!("  {e}");
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} of {} sources could not be reached or answered badly; the others were stored",
            failed.len(),
            report.sources.len()
        );
        let offline = failed.len() == report.sources.len()
            && failed
                .iter()
                .all(|(_, errs)| errs.iter().all(|e| e.contains("cannot connect")));
        if offline {
            eprintln!("no source could be reached at all: is this machine offline?");
        }
        Ok(ExitCode::FAILURE)
    }
}
