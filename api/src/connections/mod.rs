//! Accepting client connections and serving HTTP on them, with the limits
//! that keep one client from holding Herald up:
//!
//! - at most `max_connections` at once (further clients wait in the
//!   listen backlog until one closes), and the process's open-file limit
//!   raised to its hard limit so the cap, not `EMFILE`, is what binds;
//! - a request head must arrive whole within `header_timeout` of its first
//!   byte (or of the connection opening), and a kept-alive connection is
//!   closed `keep_alive_timeout` after its last answer if no new request
//!   begins (see `head_timer`);
//! - a request body must arrive within `body_timeout` (408, see
//!   `extract::json`);
//! - a connection on which no byte moves either way for `idle_timeout` is
//!   closed, whatever it is doing (an HTTP/2 connection without streams, a
//!   client that stopped reading its answer).
//!
//! On shutdown the listener closes, every connection is asked to finish
//! its in-flight requests and close, and `serve` returns once they have.

mod head_timer;
mod io;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use infra::config::HttpLimits;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use self::head_timer::HeadTimer;
use self::io::{Activity, Watched};

/// hyper's buffer for a request head: a little over its own URI limit
/// (64 KiB, 414), so that it, not the buffer, answers long URIs. Heads past
/// the buffer get hyper's 431; `edge` refuses heads over 64 KiB below it.
const HEAD_BUFFER_BYTES: usize = 80 * 1024;
/// Header lines per request at most (more: 431).
pub const MAX_HEADERS: usize = 100;

/// Serves `router` on `listener` until `stop` turns true, then waits for
/// the open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    raise_open_file_limit();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: wait for connections to close.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            serve_one(stream, router, limits, stop).await;
            drop(permit);
        });
        // Reap finished tasks as we go.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let service = TowerToHyperService::new(
        router.map_request(|request: Request<Incoming>| request.map(Body::new)),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(HeadTimer {
            activity: activity.clone(),
            header_timeout: limits.header_timeout,
            keep_alive_timeout: limits.keep_alive_timeout,
        })
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(HEAD_BUFFER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = idle(&activity, &limits) => {
                tracing::debug!("closing an idle connection");
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves once no byte has moved for `idle_timeout`, or when a new
/// connection has sent nothing within `header_timeout` (before its first
/// bytes hyper is still telling HTTP/1 from HTTP/2, and no header timer runs).
async fn idle(activity: &Activity, limits: &HttpLimits) {
    loop {
        let deadline = match activity.last_read() {
            None => activity.opened() + limits.header_timeout,
            Some(_) => activity.last() + limits.idle_timeout,
        };
        if tokio::time::Instant::now().into_std() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Raises the soft limit on open files to the hard one, so that the
/// connection cap is what binds, not `EMFILE`.
fn raise_open_file_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            limit.current = limit.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                tracing::debug!(error = %e, "cannot raise the open-file limit");
            }
        }
    }
}
