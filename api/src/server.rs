//! Assembling the router and serving it until SIGTERM or Ctrl-C.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use infra::herald::Herald;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::fallback;
use crate::routes::{self, openapi::Document};
use crate::state::AppState;

/// Request bodies over this get 413.
pub const BODY_LIMIT: usize = 1 << 20;

/// The whole HTTP application.
pub fn app(herald: Arc<Herald>, stopping: watch::Receiver<bool>) -> Router {
    let (router, mut doc) = routes::router().split_for_parts();
    routes::openapi::complete(&mut doc);
    let doc = Document(Arc::new(
        doc.to_pretty_json().unwrap_or_else(|_| "{}".into()),
    ));
    router
        .fallback(fallback::not_found)
        .layer(axum::Extension(doc))
        .layer(axum::middleware::from_fn(fallback::problems_everywhere))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(AppState { herald, stopping })
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (at most the configured grace period).
pub async fn serve(
    listener: TcpListener,
    herald: Arc<Herald>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = herald.config.shutdown_grace;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let (live_tx, live_rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = live_tx.send(true);
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, app(herald.clone(), live_rx)).with_graceful_shutdown(signal);
    let server = tokio::spawn(async move { server.await });
    let drained = async {
        let _ = stopping_rx.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(std::io::Error::other)??,
        () = drained => tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish in time"),
    }
    herald.stop();
    // Closing waits for connections to come back; some are held by
    // background tasks until the process ends, so do not wait for long.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), herald.db.close()).await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
