//! Assembling the router and serving it until SIGTERM or Ctrl-C.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use infra::herald::Herald;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::extract::BodyTimeout;
use crate::rate_limit::{self, RateLimits};
use crate::routes::{self, openapi::Document};
use crate::state::AppState;
use crate::{
    connections, correlation, edge, fail_fast, fallback, idempotency, metrics, minimal, position,
};

/// Request bodies over this get 413.
pub const BODY_LIMIT: usize = 1 << 20;

/// The whole HTTP application.
pub fn app(herald: Arc<Herald>, stopping: watch::Receiver<bool>) -> Router {
    router(state(herald, stopping))
}

/// What every handler can reach, made once per server.
fn state(herald: Arc<Herald>, stopping: watch::Receiver<bool>) -> AppState {
    let rate_limits = Arc::new(RateLimits::new(
        herald.config().api_rate_limit,
        herald.config().clock.clone(),
    ));
    AppState {
        rate_limits,
        http_metrics: Arc::default(),
        services: herald.services().clone(),
        herald,
        stopping,
    }
}

fn router(state: AppState) -> Router {
    let (router, mut doc) = routes::router().split_for_parts();
    routes::openapi::complete(&mut doc);
    let doc = Document(Arc::new(
        doc.to_pretty_json().unwrap_or_else(|_| "{}".into()),
    ));
    let body_timeout = BodyTimeout(state.herald.config().http.body_timeout);
    router
        .fallback(fallback::not_found)
        .layer(axum::middleware::from_fn(edge::refuse_unstorable))
        .layer(axum::middleware::from_fn(position::answer_position))
        .layer(axum::middleware::from_fn(minimal::return_minimal))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::replay_or_run,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fail_fast::while_the_database_is_down,
        ))
        .layer(axum::Extension(doc))
        .layer(axum::Extension(body_timeout))
        .layer(axum::middleware::from_fn(fallback::problems_everywhere))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::http::observe,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A 5xx is a warning here: the ones that are the server's fault
        // (500) log their error themselves; a 503 (database down, a read
        // model behind a consistency token) is the client's to retry.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)).make_span_with(|request: &Request<_>| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let path = loggable_path(request.uri().path());
            let span = tracing::info_span!("request", method = %request.method(), path = %path, request_id);
            // The caller's span, if it sent one, is this span's parent.
            let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok());
            infra::telemetry::context::adopt_parent(&span, traceparent);
            span
        }))
        .layer(axum::middleware::from_fn(correlation::echo))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A request's path as logs and traces show it: a callback URL's token is
/// a credential, so it is left out.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(crate::routes::CALLBACKS_PATH) {
        Some(token) if !token.is_empty() => {
            format!("{}[token]", crate::routes::CALLBACKS_PATH).into()
        }
        _ => path.into(),
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (at most the configured grace period).
pub async fn serve(
    listener: TcpListener,
    herald: Arc<Herald>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = herald.config().shutdown_grace;
    let limits = herald.config().http;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = state(herald.clone(), stop_rx.clone());
    if let Some(address) = herald.config().metrics_listen {
        let metrics_listener = metrics::bind(address).await?;
        tokio::spawn(metrics::serve_alone(
            metrics_listener,
            state.clone(),
            stop_rx.clone(),
        ));
    }
    let router = router(state);
    let server = tokio::spawn(connections::serve(listener, router, limits, stop_rx));
    shutdown.await;
    let stopping = std::time::Instant::now();
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "in-flight requests did not finish in time"
        );
    }
    // Deliveries in flight get what is left of the grace period.
    herald.drain(grace.saturating_sub(stopping.elapsed())).await;
    herald.leave().await;
    // Closing waits for connections to come back; some are held by
    // background tasks until the process ends, so do not wait for long.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), herald.db().close()).await;
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
