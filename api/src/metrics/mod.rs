//! The `/metrics` scrape (Prometheus text format): the HTTP layer's series
//! ([`http`]) followed by the node's (`infra::metrics`). Served on the API
//! address to the root token, and without authentication on its own
//! address when `--metrics-listen` / `HERALD_METRICS_LISTEN` is set (keep
//! that one on a private network).

pub mod http;

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use infra::metrics::text::{CONTENT_TYPE, Exposition};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::AppState;

/// The whole exposition, as of now.
pub async fn scrape(state: &AppState) -> String {
    let mut out = Exposition::new();
    state.http_metrics.render(&mut out);
    state.herald.metrics(&mut out).await;
    out.finish()
}

/// The answer to a scrape.
pub async fn answer(state: &AppState) -> impl IntoResponse + use<> {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], scrape(state).await)
}

/// Binds the metrics address (at start, so a taken port fails the start).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {address}: {e}"),
        )
    })
}

/// Serves `GET /metrics` (no authentication) until `stopping` turns true.
pub async fn serve_alone(
    listener: TcpListener,
    state: AppState,
    mut stopping: watch::Receiver<bool>,
) {
    let router = Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    answer(&state).await
                },
            ),
        )
        .with_state(state);
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "metrics are served without authentication");
    }
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}
