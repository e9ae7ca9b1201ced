//! The HTTP baseline: axum answering a JSON body with itself, nothing else.

use axum::Json;
use axum::routing::put;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: std::net::SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // Anything else (a webhook delivery, say) is taken with 204.
    let app = axum::Router::new()
        .route(
            "/v1/devices/{id}",
            put(|Json(body): Json<serde_json::Value>| async move { Json(body) }),
        )
        .fallback(|| async { axum::http::StatusCode::NO_CONTENT });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
