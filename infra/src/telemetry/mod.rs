//! Logs and traces. An `EnvFilter` from `RUST_LOG` (default `herald=info`
//! plus Herald's crates), JSON lines when asked, and OTLP trace export over
//! gRPC when `HERALD_OTLP_ENDPOINT` is set (`https://` with rustls and the
//! platform's roots, or `HERALD_OTLP_CA_FILE`). How a trace crosses
//! requests, events and reactors: [`context`].

pub mod context;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

const DEFAULT_FILTER: &str = "herald=info,api=info,infra=info,projections=info,tower_http=warn";

/// Flushes and stops trace export when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber. Must run inside the tokio runtime (the
/// batch exporter spawns onto it).
pub fn init(otlp_endpoint: Option<&str>, json: bool) -> anyhow::Result<TelemetryGuard> {
    init_with(otlp_endpoint, None, json)
}

/// [`init`], trusting `ca_file` (PEM) for an `https://` collector.
pub fn init_with(
    otlp_endpoint: Option<&str>,
    ca_file: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<TelemetryGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed()
    } else {
        use std::io::IsTerminal;
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed()
    };
    let provider = otlp_endpoint
        .map(|endpoint| tracer_provider(endpoint, ca_file))
        .transpose()?;
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("herald")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

fn tracer_provider(
    endpoint: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithTonicConfig;
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read HERALD_OTLP_CA_FILE {}: {e}", path.display())
            })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        builder = builder.with_tls_config(tls);
    }
    let exporter = builder
        .build()
        .map_err(|e| anyhow::anyhow!("cannot export traces to {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("herald").build())
        .build())
}

/// The current trace id, when spans are exported.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_https_collector_is_accepted() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = super::tracer_provider("https://collector.invalid:4317", None);
        assert!(provider.is_ok(), "{:?}", provider.err());
        let missing = super::tracer_provider(
            "https://collector.invalid:4317",
            Some(std::path::Path::new("/nonexistent/ca.pem")),
        );
        let error = missing.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("HERALD_OTLP_CA_FILE"), "{error}");
    }
}
