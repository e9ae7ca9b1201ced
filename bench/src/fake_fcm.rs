//! The FCM stand-in the campaign benchmark sends to, in a process of its
//! own (as FCM is: its work is not Herald's, and it does not share Herald's
//! scheduler): hands out an OAuth token, accepts every message, and counts
//! them (`GET /count`). Speaks HTTP/1.1 and cleartext HTTP/2.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::http::Uri;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sent = Arc::new(AtomicUsize::new(0));
    // The body is taken (read) as a real server does: over HTTP/2, leaving
    // it unread resets streams and the connection is soon refused.
    let app = axum::Router::new().fallback(move |uri: Uri, _body: Bytes| {
        let sent = sent.clone();
        async move {
            match uri.path() {
                "/token" => axum::Json(
                    json!({"access_token": "bench", "expires_in": 3600, "token_type": "Bearer"}),
                ),
                "/count" => axum::Json(json!({"count": sent.load(Ordering::Relaxed)})),
                _ => {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    axum::Json(json!({"name": format!("projects/bench/messages/{n}")}))
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The first line of output is the address, for the process that started this one.
    let mut out = std::io::stdout();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
