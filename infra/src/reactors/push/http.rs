//! The HTTP client that push sends (FCM, APNs) go through: hyper's pooled
//! client over rustls, with a timeout per request and nothing else.
//!
//! Everything else Herald sends goes through reqwest. For sends it costs
//! too much: against the same local stand-in, reqwest spent about 80 µs of
//! CPU per POST and this client about 45 µs (`herald-bench campaign
//! --plain-only`, see BENCHMARKS.md), and a campaign's sends are what
//! saturates the cores. What reqwest does per request that sends do not
//! need: redirect and retry policy, proxy matching, a URL turned into a URI.
//!
//! Connections are reused (HTTP/1.1 keep-alive, or HTTP/2 connections
//! carrying up to [`STREAMS_PER_CONNECTION`] streams each); TLS negotiates
//! HTTP/2 where the server offers it (Google's and Apple's do). Proxies are
//! not used.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Outcome;

/// Which HTTP versions a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// HTTP/2 where TLS negotiates it, else HTTP/1.1 (cleartext: HTTP/1.1).
    Negotiated,
    /// HTTP/2 only (APNs), cleartext HTTP/2 on `http://` URLs.
    Http2,
}

/// Streams one HTTP/2 connection is given at most: the limit servers
/// commonly advertise (a server that advertises fewer gets no more; hyper
/// queues the rest on that connection).
pub const STREAMS_PER_CONNECTION: usize = 100;

/// Connection pools, each a client of its own: hyper keeps one HTTP/2
/// connection per host and pool, so `concurrency` requests in flight are
/// spread over `concurrency / STREAMS_PER_CONNECTION` connections (rounded
/// up) instead of queueing behind one. Over HTTP/1.1 each pool keeps its
/// share of the idle connections.
#[derive(Clone)]
pub struct PushHttp {
    clients: Arc<[Client<HttpsConnector<HttpConnector>, Full<Bytes>>]>,
    next: Arc<AtomicUsize>,
    timeout: Duration,
}

/// A provider's answer, read to its end.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    TimedOut,
    Connect,
    Other,
}

impl Failure {
    /// A retryable outcome naming the provider and the failure, never the
    /// URL (it may carry a token).
    pub fn outcome(self, provider: &str) -> Outcome {
        let what = match self {
            Failure::TimedOut => "timed out",
            Failure::Connect => "could not connect",
            Failure::Other => "request failed",
        };
        Outcome::Retry {
            reason: format!("{provider}: {what}"),
            retry_after: None,
        }
    }
}

impl PushHttp {
    /// A client for `concurrency` requests in flight (at most that many
    /// idle connections kept per host), giving each request (connecting
    /// included) at most `timeout`.
    pub fn new(versions: Versions, concurrency: usize, timeout: Duration) -> Result<Self, String> {
        use rustls_platform_verifier::ConfigVerifierExt;
        let tls =
            rustls::ClientConfig::with_platform_verifier().map_err(|e| format!("TLS: {e}"))?;
        let pools = concurrency.div_ceil(STREAMS_PER_CONNECTION).max(1);
        let clients = (0..pools)
            .map(|_| {
                let mut tcp = HttpConnector::new();
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(Some(timeout));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls.clone())
                    .https_or_http();
                let connector = match versions {
                    Versions::Negotiated => {
                        connector.enable_http1().enable_http2().wrap_connector(tcp)
                    }
                    Versions::Http2 => connector.enable_http2().wrap_connector(tcp),
                };
                let mut builder = Client::builder(TokioExecutor::new());
                builder.pool_max_idle_per_host(concurrency.div_ceil(pools));
                if versions == Versions::Http2 {
                    builder.http2_only(true);
                }
                builder.build(connector)
            })
            .collect();
        Ok(Self {
            clients,
            next: Arc::new(AtomicUsize::new(0)),
            timeout,
        })
    }

    /// The pools, in turn.
    fn client(&self) -> &Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.clients[n % self.clients.len()]
    }

    /// POSTs `body` with `headers`; the answer is read to its end, so the
    /// connection (or stream) is done with and goes back to the pool.
    pub async fn post(&self, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Answer, Failure> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self.client().request(request).await.map_err(|e| {
                if e.is_connect() {
                    Failure::Connect
                } else {
                    Failure::Other
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|_| Failure::Other)?.to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(Failure::TimedOut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_retryable_and_name_no_url() {
        for (failure, words) in [
            (Failure::TimedOut, "timed out"),
            (Failure::Connect, "could not connect"),
            (Failure::Other, "request failed"),
        ] {
            match failure.outcome("fcm") {
                Outcome::Retry {
                    reason,
                    retry_after,
                } => {
                    assert_eq!(reason, format!("fcm: {words}"));
                    assert_eq!(retry_after, None);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
