//! `grd serve`: the operator dashboard and its JSON API over the local database (the router
//! is `grd::dashboard`, the same one the dashboard function serves in AWS).

use anyhow::{bail, Context, Result};
use clap::Args;
use grd::dashboard::{router, AppState};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Token required on every API call (header `Authorization: Bearer TOKEN`).
    #[arg(long, env = "GRD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn serve(db: &Path, args: ServeArgs) -> Result<ExitCode> {
    let token = args.token.filter(|t| !t.is_empty());
    if !args.bind.is_loopback() && token.is_none() {
        bail!(
            "--bind {}: listening beyond loopback needs --token (or GRD_TOKEN) to protect the API",
            args.bind
        );
    }
    if !db.exists() {
        bail!(
            "no database at {} (run `grd demo` or `grd run` first, or pass --db)",
            db.display()
        );
    }
    let store = crate::local::open_store(db)?;
    let state = Arc::new(AppState { store, token });
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("listening address")?;
    println!(
        "grd dashboard on http://{local}/  (database {})",
        db.display()
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(ExitCode::SUCCESS)
}
