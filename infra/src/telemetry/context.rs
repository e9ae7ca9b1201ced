//! W3C Trace Context across Herald: a request's `traceparent` becomes the
//! parent of its span; the trace id is recorded on every event it writes;
//! a reactor acting on an event continues that event's trace; outgoing
//! webhook and push requests carry a `traceparent`.
//!
//! With trace export on (`HERALD_OTLP_ENDPOINT`) these are real spans: the
//! request span's parent is the caller's span, a reactor's span is a child
//! of the event (whose span id is derived from the event id: the request
//! span that wrote it is not known to the reactor, possibly on another
//! node), and outgoing requests name the reactor's span. Without export,
//! the trace id still flows: events record the caller's trace id, and
//! outgoing requests carry it with a fresh span id, so receivers can join
//! their traces to the caller's.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// A parsed `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

impl TraceParent {
    /// `00-<32 hex>-<16 hex>-<2 hex>`; later versions are read by their
    /// first four fields, as the specification asks. All-zero ids and
    /// version `ff` are invalid.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || !lower_hex(version) {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !(lower_hex(trace) && lower_hex(span) && lower_hex(flags)) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    fn context(&self) -> opentelemetry::Context {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            self.trace_id,
            self.span_id,
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(remote)
    }
}

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Makes the caller's span (from its `traceparent`) the parent of `span`,
/// which must not have been entered yet. Nothing happens without export.
pub fn adopt_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(TraceParent::parse) {
        let _ = span.set_parent(parent.context());
    }
}

/// The span id standing for an event in its trace.
fn event_span_id(event_id: Uuid) -> SpanId {
    let bytes = event_id.as_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[8..]);
    if id == [0; 8] {
        id[7] = 1;
    }
    SpanId::from_bytes(id)
}

/// Makes `span` (not entered yet) a child of the event `event_id`, in the
/// trace `trace_id` the event recorded.
pub fn continue_event(span: &tracing::Span, trace_id: Option<&str>, event_id: Uuid) {
    let Some(trace_id) = trace_id.and_then(|t| TraceId::from_hex(t).ok()) else {
        return;
    };
    if trace_id == TraceId::INVALID {
        return;
    }
    let parent = TraceParent {
        trace_id,
        span_id: event_span_id(event_id),
        sampled: true,
    };
    let _ = span.set_parent(parent.context());
}

/// The `traceparent` for a request made inside `span`: the span itself
/// when spans are exported, else the recorded `trace_id` with a fresh span
/// id; none without either.
pub fn outgoing(span: &tracing::Span, trace_id: Option<&str>) -> Option<String> {
    let context = span.context();
    let current = context.span();
    let own = current.span_context();
    if own.is_valid() {
        return Some(
            TraceParent {
                trace_id: own.trace_id(),
                span_id: own.span_id(),
                sampled: own.is_sampled(),
            }
            .header(),
        );
    }
    let trace_id = TraceId::from_hex(trace_id?).ok()?;
    if trace_id == TraceId::INVALID {
        return None;
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).ok()?;
    id[0] |= 1;
    Some(
        TraceParent {
            trace_id,
            span_id: SpanId::from_bytes(id),
            sampled: true,
        }
        .header(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_w3c_examples() {
        let tp = TraceParent::parse(VALID).unwrap_or_else(|| panic!("valid"));
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id.to_string(), "00f067aa0ba902b7");
        assert!(tp.sampled);
        assert_eq!(tp.header(), VALID);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(
            TraceParent::parse(unsampled).map(|t| t.sampled),
            Some(false)
        );
        // A later version: its first four fields, more may follow.
        assert!(TraceParent::parse(&format!("cc{}-extra", &VALID[2..])).is_some());
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_export_an_outgoing_request_carries_the_recorded_trace() {
        let span = tracing::Span::none();
        let header = outgoing(&span, Some("4bf92f3577b34da6a3ce929d0e0e4736"))
            .unwrap_or_else(|| panic!("a header"));
        let tp = TraceParent::parse(&header).unwrap_or_else(|| panic!("{header}"));
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(tp.span_id, SpanId::INVALID);
        assert_eq!(outgoing(&span, None), None);
        assert_eq!(outgoing(&span, Some("zz")), None);
    }
}
