//! Traces: OpenTelemetry spans of ingress requests, messages, steps and adapter calls,
//! exported over OTLP/HTTP with protobuf when `[telemetry] otlp_endpoint` is set
//! (docs/telemetry.md). Unset, nothing is installed: [`enabled`] is false, the span
//! constructors here give [`Span::none`] and the propagation helpers do nothing, so the
//! message path pays one relaxed atomic load.
//!
//! What is exported is decided here and nowhere else: only spans of this crate that declare
//! `otel.kind` (the ones made below and the worker's `message` span), with the attributes
//! they declare — names and ids: route, step, kind, adapter, operation, HTTP method, route
//! template and status, attempt, outcome, message and correlation ids. Never a body, a
//! header's value, a raw path or an error text (which may quote a message), and no events:
//! log lines inside a span are not span events (they go to the redacted log only), because
//! the export does not pass through the log's redaction.
//!
//! The trace context travels as W3C `traceparent`: taken from an ingress request's header,
//! put into the headers of every message published from a step (and of the message an HTTP
//! request becomes), read by the consuming route's worker, and sent to adapters from the
//! adapter call's span. One message through many routes is thus one trace.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Metadata, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetryConfig;

/// The W3C trace-context header (on HTTP requests and in message headers).
pub const TRACEPARENT: &str = "traceparent";

/// Whether traces are exported (set once, when the layer is installed).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The tracer provider, kept for the flush at exit.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// How long the flush at exit may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The exporter could not be built (an endpoint it cannot use).
    #[error("traces: the OTLP exporter could not be set up ({0}); check telemetry.otlp_endpoint")]
    Exporter(String),
    /// The variable `headers_env` names is unset or not `name=value,…`.
    #[error(
        "traces: the environment variable {0} (telemetry.headers_env) is unset or not `name=value` pairs separated by commas"
    )]
    Headers(String),
}

/// Are spans exported? False unless [`layer`] built one (with `otlp_endpoint` set).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The layer exporting spans, or `None` when `otlp_endpoint` is unset (then nothing is
/// built, started or installed). Must be called inside a tokio runtime: the batch exporter
/// runs on it, off the message path (spans are queued, sent in batches every few seconds).
pub fn layer<S>(
    config: &TelemetryConfig,
) -> Result<Option<Box<dyn Layer<S> + Send + Sync + 'static>>, OtelError>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let Some(url) = config.traces_url() else {
        return Ok(None);
    };
    let headers = match &config.headers_env {
        Some(var) => parse_headers(&std::env::var(var).unwrap_or_default())
            .ok_or_else(|| OtelError::Headers(var.clone()))?,
        None => Default::default(),
    };
    // This crate's reqwest (its rustls with the ring provider): no second TLS stack.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_headers(headers)
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let batches =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("knutpunkt");
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Attributes are what the spans declare, nothing of where in the source or which
        // thread.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(FilterFn::new(exported));
    Ok(Some(Box::new(layer)))
}

/// The spans the layer exports: this crate's, declaring `otel.kind`. Events never (a log
/// line may quote a message; the redaction is the log writer's, not the exporter's).
fn exported(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && meta.target().starts_with("knutpunkt")
        && meta.fields().field("otel.kind").is_some()
}

/// `name=value,name=value` (OTLP's header format); `None` when a pair has no `=` or an
/// empty name. Values are never shown.
fn parse_headers(text: &str) -> Option<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        out.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    (!out.is_empty()).then_some(out)
}

/// Flush the spans still queued and stop the exporter (at the end of `knut run`); at most a
/// few seconds. Nothing when traces are off.
pub async fn shutdown() {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    ENABLED.store(false, Ordering::Relaxed);
    // The SDK blocks its caller until the exporter task has sent the last batch.
    let flush =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
    match tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1), flush).await {
        Ok(Ok(Ok(()))) => tracing::debug!("traces flushed"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "traces: the last spans could not be sent"),
        _ => tracing::warn!("traces: the last spans were not sent in time"),
    }
}

/// The span of one HTTP ingress request: the method, the route's path template (never the
/// path itself, which may hold a personnummer) and the route; the answer's status is added
/// by [`finish_ingress`]. Its parent is the caller's `traceparent`, when it sent a valid
/// one and `trusted` (the internal plane's callers); an untrusted caller's (the external
/// plane's: anyone on the internet) is only linked, so that it can neither choose the trace
/// id that travels on into the internal plane nor force its sampling.
pub fn ingress_span(
    method: &str,
    template: &str,
    route: &str,
    traceparent: Option<&str>,
    trusted: bool,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "ingress",
        otel.name = format!("{method} {template}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = template,
        route,
        http.response.status_code = tracing::field::Empty,
        message_id = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
    );
    if trusted {
        set_parent(&span, traceparent);
    } else if let Some(cx) = remote(traceparent) {
        span.add_link(cx.span().span_context().clone());
    }
    span
}

/// Record the answer of an ingress request on its span: a 5xx is an error.
pub fn finish_ingress(span: &Span, status: u16) {
    if !enabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Name the message the current span (an ingress request's) became, and carry its trace
/// context in `headers` to the route that takes it.
pub fn accepted(
    message_id: &uuid::Uuid,
    correlation_id: &uuid::Uuid,
    headers: &mut BTreeMap<String, String>,
) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    span.record("message_id", tracing::field::display(message_id));
    span.record("correlation_id", tracing::field::display(correlation_id));
    inject(headers);
}

/// Make `span` (the worker's `message` span of `route`, declaring `otel.name` and
/// `otel.kind` empty) a consumer span of the trace in `traceparent`, when there is one.
pub fn message_span(span: &Span, route: &str, traceparent: Option<&str>) {
    if !enabled() {
        return;
    }
    span.record("otel.name", route);
    span.record("otel.kind", "consumer");
    set_parent(span, traceparent);
}

/// Record how a message's hop ended on its span (declaring `outcome` and
/// `otel.status_code`): a retry, dead letter or requeue is an error.
pub fn message_outcome(span: &Span, outcome: &str, failed: bool) {
    if !enabled() {
        return;
    }
    span.record("outcome", outcome);
    if failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one step of `route`: its path (`steps[2].to`) and kind.
pub fn step_span(route: &str, path: &str, kind: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "step",
        otel.name = path,
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        route,
        step = path,
        kind,
        outcome = tracing::field::Empty,
    )
}

/// Record a step's end: `ok`, `stopped` (no message goes on) or the failure's kind
/// (`transient`, `permanent`) — never its text.
pub fn step_outcome(span: &Span, outcome: &str, failed: bool) {
    if !enabled() {
        return;
    }
    span.record("outcome", outcome);
    if failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one adapter call: the adapter, the operation and the message's delivery
/// attempt; the HTTP status and outcome are added by [`adapter_status`] and
/// [`step_outcome`].
pub fn adapter_span(adapter: &str, operation: &str, attempt: u32) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "adapter call",
        otel.name = format!("{adapter}.{operation}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        adapter,
        operation,
        attempt,
        http.response.status_code = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Record the HTTP status a system answered on the current span (an adapter call's).
pub fn adapter_status(status: u16) {
    if !enabled() {
        return;
    }
    Span::current().record("http.response.status_code", status);
}

/// The W3C `traceparent` of `span`, when traces are on and the span is exported.
pub fn traceparent_of(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut out = Collect(None);
    TraceContextPropagator::new().inject_context(&cx, &mut out);
    out.0
}

/// Put the current span's trace context into a message's headers as `traceparent`, so the
/// route that consumes it continues the trace. Nothing when traces are off.
pub fn inject(headers: &mut BTreeMap<String, String>) {
    if let Some(tp) = traceparent_of(&Span::current()) {
        headers.insert(TRACEPARENT.to_string(), tp);
    }
}

/// Make the trace context in `traceparent` (W3C; anything else is ignored) the parent of
/// `span`, which must not have started yet.
fn set_parent(span: &Span, traceparent: Option<&str>) {
    if let Some(cx) = remote(traceparent) {
        let _ = span.set_parent(cx);
    }
}

/// The trace context in `traceparent`, when it is a valid W3C one.
fn remote(traceparent: Option<&str>) -> Option<opentelemetry::Context> {
    let cx = TraceContextPropagator::new().extract(&One(traceparent?));
    cx.span().span_context().is_valid().then_some(cx)
}

/// One `traceparent` value to extract from.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The `traceparent` a propagator writes (its `tracestate` is left out).
struct Collect(Option<String>);

impl Injector for Collect {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `otlp_endpoint` nothing is built or installed, and every helper on the message
    /// path is a no-op: no span, no header, no traceparent.
    #[test]
    fn nothing_is_installed_or_exported_without_an_endpoint() {
        let config = TelemetryConfig::default();
        let built = layer::<tracing_subscriber::Registry>(&config).unwrap();
        assert!(built.is_none());
        assert!(!enabled());
        assert!(PROVIDER.get().is_none(), "no exporter was started");
        assert!(
            ingress_span(
                "POST",
                "/in/{id}",
                "r",
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                true,
            )
            .is_none()
        );
        assert!(step_span("r", "steps[0].to", "to").is_none());
        assert!(adapter_span("a", "op", 1).is_none());
        let mut headers = BTreeMap::new();
        accepted(&uuid::Uuid::nil(), &uuid::Uuid::nil(), &mut headers);
        inject(&mut headers);
        assert!(headers.is_empty(), "{headers:?}");
        // Even inside a span of a subscriber that logs everything.
        let sub = super::super::subscriber(crate::config::LogFormat::Text, "trace", std::io::sink)
            .unwrap();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("message", otel.kind = tracing::field::Empty);
            let _g = span.enter();
            assert_eq!(traceparent_of(&span), None);
            inject(&mut headers);
        });
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn only_this_crates_spans_with_a_kind_are_exported() {
        use std::sync::{Arc, Mutex};
        use tracing::subscriber::Interest;
        use tracing_subscriber::layer::SubscriberExt;

        /// Every callsite registered, and whether the traces' filter takes it.
        #[derive(Clone, Default)]
        struct Probe(Arc<Mutex<Vec<(String, bool)>>>);
        impl<S: Subscriber> Layer<S> for Probe {
            fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
                let taken = exported(meta);
                self.0
                    .lock()
                    .unwrap()
                    .push((meta.name().to_string(), taken));
                Interest::always()
            }
        }
        let probe = Probe::default();
        let sub = tracing_subscriber::registry().with(probe.clone());
        tracing::subscriber::with_default(sub, || {
            let _kinded = tracing::info_span!("kinded", otel.kind = "internal");
            let _plain = tracing::info_span!("plain", route = "r");
            tracing::info!(otel.kind = "internal", "an event");
        });
        let seen = probe.0.lock().unwrap().clone();
        let taken = |name: &str| seen.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
        assert_eq!(taken("kinded"), Some(true), "{seen:?}");
        assert_eq!(taken("plain"), Some(false), "{seen:?}");
        let events: Vec<_> = seen
            .iter()
            .filter(|(n, _)| n.starts_with("event "))
            .collect();
        assert!(
            !events.is_empty() && events.iter().all(|(_, t)| !t),
            "{seen:?}"
        );
    }

    #[test]
    fn headers_parse_without_showing_values() {
        let h = parse_headers("Authorization=Bearer abc, x-scope = knut").unwrap();
        assert_eq!(h["authorization"], "Bearer abc");
        assert_eq!(h["x-scope"], "knut");
        assert!(parse_headers("").is_none());
        assert!(parse_headers("no-equals-sign").is_none());
        assert!(parse_headers("=value").is_none());
    }

    #[test]
    fn traceparent_is_read_only_when_well_formed() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        ] {
            let cx = TraceContextPropagator::new().extract(&One(bad));
            assert!(!cx.span().span_context().is_valid(), "{bad}");
        }
        let cx = TraceContextPropagator::new().extract(&One(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
    }
}
