//! `grd ingest weather|prices FILE --node ID`: load a file of records for one node into the
//! local database, each row accepted or rejected with a reason.

use crate::local::{open_store, EXIT_SOME_REJECTED};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use grd::app::ingest_file::{ingest_file, FileReport};
use grd::domain::signal::SignalKind;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Rejected rows listed in the text report (all are counted).
const SHOWN_ERRORS: usize = 20;

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Weather,
    Prices,
}

#[derive(Args)]
pub struct IngestArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub kind: Kind,
    /// A CSV (weather: timestamp,temp_c,rh_pct; prices: timestamp,price_usd_per_mwh[,forecast])
    /// or a datalogger station log (quoted "TIMESTAMP","RECORD",...,"T_air","RH_air", deg F).
    pub file: PathBuf,
    /// The node the records belong to (it must exist: `grd nodes --load`).
    #[arg(long)]
    pub node: String,
    /// Print one JSON object: {"rows","accepted","rejected","reasons"}.
    #[arg(long)]
    pub json: bool,
}

fn print_table(file: &Path, r: &FileReport) {
    for (line, why) in r.errors.iter().take(SHOWN_ERRORS) {
        eprintln!("line {line}: rejected: {why}");
    }
    if r.errors.len() > SHOWN_ERRORS {
        eprintln!(
            "... and {} more rejected rows",
            r.errors.len() - SHOWN_ERRORS
        );
    }
    println!("{} ({})", file.display(), r.format.as_str());
    println!("{:<14} {:>8}", "rows", r.rows);
    println!("{:<14} {:>8}", "accepted", r.accepted);
    println!("{:<14} {:>8}", "rejected", r.rejected);
    for (reason, n) in &r.reasons {
        println!("  {reason:<12} {n:>8}");
    }
}

pub async fn run(db: &Path, args: IngestArgs) -> Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{}: not UTF-8 text", args.file.display()))?;
    let kind = match args.kind {
        Kind::Weather => SignalKind::Weather,
        Kind::Prices => SignalKind::Price,
    };
    let store = open_store(db)?;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let report = ingest_file(
        store.as_ref(),
        &args.node,
        kind,
        &text,
        &format!("file:{name}"),
    )
    .await
    .with_context(|| args.file.display().to_string())?;
    if args.json {
        println!(
            "{}",
            json!({"rows": report.rows, "accepted": report.accepted,
                   "rejected": report.rejected, "reasons": report.reasons})
        );
    } else {
        print_table(&args.file, &report);
    }
    Ok(if report.rejected > 0 {
        ExitCode::from(EXIT_SOME_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}
