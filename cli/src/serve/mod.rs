//! `grd serve`: the operator dashboard and its JSON API over the local database.
//!
//! One page (embedded, with its chart and map libraries: no network needed) polls the API;
//! controls post to it. Mutating calls need the token when one is set, and a token is
//! required to listen beyond loopback.

mod api;
mod assets;
pub mod metrics;

use anyhow::{bail, Context, Result};
use axum::routing::{delete, get, post};
use axum::Router;
use clap::Args;
use grd::adapters::sqlite::SqliteStore;
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
    /// Token required on every mutating API call (header `Authorization: Bearer TOKEN`).
    #[arg(long, env = "GRD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<SqliteStore>,
    pub token: Option<String>,
}

/// The routes of the page and the API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/vendor/{file}", get(assets::vendor))
        .route("/metrics", get(api::metrics))
        .route("/api/state", get(api::state))
        .route("/api/load", get(api::load))
        .route("/api/nodes", get(api::nodes).post(api::add_node))
        .route("/api/nodes/{id}/series", get(api::series))
        .route("/api/nodes/{id}/{action}", post(api::node_action))
        .route("/api/explanations", get(api::explanations))
        .route("/api/jobs", post(api::submit))
        .route("/api/jobs/{id}/explain", get(api::explain_job))
        .route("/api/jobs/{id}/{action}", post(api::job_action))
        .route("/api/speed", post(api::set_speed))
        .route("/api/overrides", post(api::add_override))
        .route("/api/overrides/{id}", delete(api::remove_override))
        .with_state(state)
}

pub async fn serve(db: &Path, args: ServeArgs) -> Result<ExitCode> {
    let token = args.token.filter(|t| !t.is_empty());
    if !args.bind.is_loopback() && token.is_none() {
        bail!(
            "--bind {}: listening beyond loopback needs --token (or GRD_TOKEN) to protect the controls",
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
