//! Requests by route template, method and status class: a count and a
//! duration histogram per series, updated by a middleware on every answer.
//! The route is axum's matched template (`/v1/devices/{id}`), never the raw
//! path, so the series stay few; requests no route matched are `unmatched`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use infra::metrics::instruments::{Histogram, LATENCY};
use infra::metrics::text::{Exposition, Kind};

use crate::state::AppState;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const UNMATCHED: &str = "unmatched";

/// One route's series: a histogram per method and status class.
struct RouteSeries {
    by_method_class: Vec<Histogram>,
}

impl RouteSeries {
    fn new() -> Self {
        Self {
            by_method_class: (0..METHODS.len() * CLASSES.len())
                .map(|_| Histogram::new(LATENCY))
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
}

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, method: &Method, status: u16, took: Duration) {
        let series = self.series(route);
        let i = method_index(method) * CLASSES.len() + class_index(status);
        series.by_method_class[i].observe(took);
    }

    fn series(&self, route: &str) -> Arc<RouteSeries> {
        if let Ok(routes) = self.routes.read()
            && let Some(s) = routes.get(route)
        {
            return s.clone();
        }
        let Ok(mut routes) = self.routes.write() else {
            return Arc::new(RouteSeries::new());
        };
        routes
            .entry(route.to_owned())
            .or_insert_with(|| Arc::new(RouteSeries::new()))
            .clone()
    }

    /// `herald_http_requests_total` and `herald_http_request_duration_seconds`.
    pub fn render(&self, out: &mut Exposition) {
        let mut routes: Vec<(String, Arc<RouteSeries>)> = self
            .routes
            .read()
            .map(|r| r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut series = Vec::new();
        for (route, s) in &routes {
            for (i, h) in s.by_method_class.iter().enumerate() {
                if h.count() > 0 {
                    let method = METHODS[i / CLASSES.len()];
                    let class = CLASSES[i % CLASSES.len()];
                    series.push((route.as_str(), method, class, h.snapshot()));
                }
            }
        }
        out.family(
            "herald_http_requests_total",
            Kind::Counter,
            "HTTP requests answered, by route template, method and status class.",
        );
        for (route, method, status, h) in &series {
            let labels = [("route", *route), ("method", *method), ("status", *status)];
            out.sample("herald_http_requests_total", &labels, h.count as f64);
        }
        out.family(
            "herald_http_request_duration_seconds",
            Kind::Histogram,
            "From a request reaching the router to its answer's head, by route template, method and status class.",
        );
        for (route, method, status, h) in &series {
            let labels = [("route", *route), ("method", *method), ("status", *status)];
            out.histogram("herald_http_request_duration_seconds", &labels, h);
        }
    }
}

/// The middleware: times the request and counts its answer.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.http_metrics.observe(
        route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_by_route_method_and_class() {
        let m = HttpMetrics::default();
        m.observe(
            "/v1/devices/{id}",
            &Method::PUT,
            200,
            Duration::from_millis(3),
        );
        m.observe(
            "/v1/devices/{id}",
            &Method::PUT,
            201,
            Duration::from_millis(3),
        );
        m.observe(
            "/v1/devices/{id}",
            &Method::PUT,
            429,
            Duration::from_millis(1),
        );
        m.observe(
            UNMATCHED,
            &Method::from_bytes(b"BREW").unwrap_or_default(),
            404,
            Duration::ZERO,
        );
        let mut out = Exposition::new();
        m.render(&mut out);
        let text = out.finish();
        assert!(text.contains(
            "herald_http_requests_total{route=\"/v1/devices/{id}\",method=\"PUT\",status=\"2xx\"} 2\n"
        ), "{text}");
        assert!(text.contains(
            "herald_http_requests_total{route=\"/v1/devices/{id}\",method=\"PUT\",status=\"4xx\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "herald_http_requests_total{route=\"unmatched\",method=\"OTHER\",status=\"4xx\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "herald_http_request_duration_seconds_bucket{route=\"/v1/devices/{id}\",method=\"PUT\",status=\"2xx\",le=\"0.005\"} 2\n"
        ), "{text}");
    }
}
