//! Traces over OTLP/HTTP (issue 16; docs/telemetry.md), against a real OTLP receiver
//! started by the test: an axum server on 127.0.0.1 decoding each export request with the
//! OTLP protobuf types.
//!
//! One message through three routes — an HTTP ingress publishing to an exchange, a route
//! calling a small HTTP system of the test and publishing on, and a route in per-key order
//! (`ordered_by`) writing a file — is one trace: the caller's `traceparent` honoured, the spans expected (the request, a
//! message span per route, a span per step, the adapter call), each the child of the one
//! before it across the three routes, with their attributes, and no body or personnummer
//! anywhere in a span. The spans reach the receiver at the latest when knut stops (the
//! flush on exit). Without `telemetry.otlp_endpoint` nothing is exported — even with
//! OpenTelemetry's own `OTEL_EXPORTER_OTLP_ENDPOINT` set — and the system still gets the
//! message's own `traceparent`.

#[path = "support/knut.rs"]
mod knut;
#[path = "support/root.rs"]
mod root;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

/// A fictional personnummer (Skatteverket's test person), in the path and the body.
const PNR: &str = "19121212-1212";
/// The caller's trace and its span (W3C's example ids).
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// What the receiver got: each span with its resource's `service.name`, and each export
/// request's headers.
#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    requests: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
    fn requests(&self) -> Vec<HeaderMap> {
        self.requests.lock().unwrap().clone()
    }
}

/// The OTLP/HTTP receiver: `POST /v1/traces` with an `ExportTraceServiceRequest`.
async fn otlp_receiver() -> (String, Received) {
    async fn export(State(got): State<Received>, headers: HeaderMap, body: Bytes) -> Vec<u8> {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
        got.requests.lock().unwrap().push(headers);
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(text)
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    got.spans.lock().unwrap().push((service.clone(), span));
                }
            }
        }
        ExportTraceServiceResponse::default().encode_to_vec()
    }
    let got = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

/// The downstream system: `POST /sink/deliver`, keeping each call's `traceparent`.
async fn sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/sink/deliver",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let tp = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push(tp);
                axum::Json(serde_json::json!({"received": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/sink"), calls)
}

/// A root of three routes chained through two exchanges; the third keeps per-key order
/// (`ordered_by`), so its messages pass the intake and a partition worker.
fn three_routes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    std::fs::create_dir_all(p.join("routes")).unwrap();
    std::fs::create_dir_all(p.join("adapters")).unwrap();
    std::fs::write(
        p.join("adapters/trace-sink.yaml"),
        "adapter: trace-sink\ndescription: The telemetry test's system (KNUT_ADAPTER_TRACE_SINK_URL)\n\
         base_url: http://127.0.0.1:9/sink\ntimeout: 5s\n\
         operations:\n  deliver:\n    method: POST\n    path: /deliver\n",
    )
    .unwrap();
    std::fs::write(
        p.join("routes/trace-in.yaml"),
        "route: trace-in\nfrom:\n  http: { path: '/in/trace/{person}', methods: [POST], auth: none, format: json }\n\
         steps:\n  - publish: { exchange: trace.work, key: call }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("routes/trace-call.yaml"),
        "route: trace-call\nfrom:\n  queue: { exchange: trace.work, keys: [call] }\n\
         steps:\n  - to: { adapter: trace-sink, operation: deliver }\n\
         \x20 - publish: { exchange: trace.done, key: done }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("routes/trace-end.yaml"),
        "route: trace-end\nfrom:\n  queue: { exchange: trace.done, keys: [done] }\n\
         ordered_by: .name\npartitions: 2\n\
         steps:\n  - transform: { jq: '{done: true}' }\n  - to: { file: { dir: out/trace } }\n",
    )
    .unwrap();
    dir
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Post the message (a body holding a personnummer, the personnummer in the path too) with
/// the caller's `traceparent`; its correlation id.
async fn send_one(http: &reqwest::Client, port: u16) -> String {
    let resp = http
        .post(format!("http://127.0.0.1:{port}/in/trace/{PNR}"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&serde_json::json!({"personnummer": PNR, "name": "Tolvan Tolvansson"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["correlation_id"].as_str().unwrap().to_string()
}

async fn wait_for_file(dir: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        if n > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the message never reached the third route"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(text)
}

/// The one span named `name` (of `route`, when given).
fn one<'a>(spans: &'a [Span], name: &str, route: Option<&str>) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == name && route.is_none_or(|r| attr(s, "route").as_deref() == Some(r)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one span {name} ({route:?}) in {}",
        describe(spans)
    );
    found[0]
}

fn describe(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "\n  {} {} parent {} kind {} {:?}",
                hex(&s.span_id),
                s.name,
                hex(&s.parent_span_id),
                s.kind,
                s.attributes
                    .iter()
                    .map(|kv| format!("{}={}", kv.key, text(kv).unwrap_or_default()))
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

fn assert_child(child: &Span, parent: &Span, spans: &[Span]) {
    assert_eq!(
        hex(&child.parent_span_id),
        hex(&parent.span_id),
        "{} is not a child of {}:{}",
        child.name,
        parent.name,
        describe(spans)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_through_three_routes_is_one_trace() {
    let (collector, received) = otlp_receiver().await;
    let (system, calls) = sink().await;
    let dir = three_routes();
    let http = client();
    let mut knut = knut::Knut::new(
        dir.path(),
        None,
        &[
            // The base URL: knut adds /v1/traces.
            ("KNUT__TELEMETRY__OTLP_ENDPOINT", collector.as_str()),
            ("KNUT__TELEMETRY__SAMPLING", "1.0"),
            ("KNUT__TELEMETRY__SERVICE_NAME", "knut-telemetry-test"),
            (
                "KNUT__TELEMETRY__HEADERS_ENV",
                "TELEMETRY_TEST_OTLP_HEADERS",
            ),
            (
                "TELEMETRY_TEST_OTLP_HEADERS",
                "authorization=Bearer fiktiv-otlp-nyckel",
            ),
            ("KNUT_ADAPTER_TRACE_SINK_URL", system.as_str()),
        ],
    );
    knut.start(&http).await;
    let correlation = send_one(&http, knut.http).await;
    wait_for_file(&dir.path().join("out/trace"), 30).await;
    // Stopping flushes the spans still queued (the batch goes out every 5 s otherwise).
    let status = knut.terminate().await;
    assert!(status.success(), "{status:?}:\n{}", knut.log_tail());
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.spans().len() < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let got = received.spans();
    let spans: Vec<Span> = got.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(
        spans.len(),
        10,
        "the spans expected, no more:{}",
        describe(&spans)
    );
    // One trace: the caller's.
    for (service, s) in &got {
        assert_eq!(hex(&s.trace_id), TRACE, "{} in another trace", s.name);
        assert_eq!(service, "knut-telemetry-test");
        assert!(
            s.events.is_empty(),
            "no log line becomes a span event: {:?}",
            s.events
        );
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
    }
    // Exported as OTLP/HTTP protobuf, with the headers of `headers_env`.
    for h in received.requests() {
        assert_eq!(h["content-type"], "application/x-protobuf");
        assert_eq!(h["authorization"], "Bearer fiktiv-otlp-nyckel");
    }

    // The request: a server span under the caller's span, named by the path template.
    let ingress = one(&spans, "POST /in/trace/{person}", None);
    assert_eq!(hex(&ingress.parent_span_id), CALLER_SPAN);
    assert_eq!(ingress.kind, SpanKind::Server as i32);
    assert_eq!(
        attr(ingress, "http.route").as_deref(),
        Some("/in/trace/{person}")
    );
    assert_eq!(
        attr(ingress, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr(ingress, "http.response.status_code").as_deref(),
        Some("202")
    );
    assert_eq!(attr(ingress, "route").as_deref(), Some("trace-in"));
    assert_eq!(
        attr(ingress, "correlation_id").as_deref(),
        Some(correlation.as_str())
    );

    // Route 1: its message span under the request, its publish step under that.
    let m1 = one(&spans, "trace-in", None);
    let publish1 = one(&spans, "steps[0].publish", Some("trace-in"));
    // Route 2: under route 1's publish step: the call (its adapter span) and the publish.
    let m2 = one(&spans, "trace-call", None);
    let to2 = one(&spans, "steps[0].to", Some("trace-call"));
    let call = one(&spans, "trace-sink.deliver", None);
    let publish2 = one(&spans, "steps[1].publish", Some("trace-call"));
    // Route 3: under route 2's publish step.
    let m3 = one(&spans, "trace-end", None);
    let transform3 = one(&spans, "steps[0].transform", Some("trace-end"));
    let file3 = one(&spans, "steps[1].to", Some("trace-end"));

    assert_child(m1, ingress, &spans);
    assert_child(publish1, m1, &spans);
    assert_child(m2, publish1, &spans);
    assert_child(to2, m2, &spans);
    assert_child(call, to2, &spans);
    assert_child(publish2, m2, &spans);
    assert_child(m3, publish2, &spans);
    assert_child(transform3, m3, &spans);
    assert_child(file3, m3, &spans);

    for (m, route) in [(m1, "trace-in"), (m2, "trace-call"), (m3, "trace-end")] {
        assert_eq!(m.kind, SpanKind::Consumer as i32);
        assert_eq!(attr(m, "route").as_deref(), Some(route));
        assert_eq!(attr(m, "attempt").as_deref(), Some("1"));
        assert_eq!(attr(m, "outcome").as_deref(), Some("ok"));
        assert_eq!(
            attr(m, "correlation_id").as_deref(),
            Some(correlation.as_str())
        );
        assert!(attr(m, "message_id").is_some());
    }
    for (s, kind) in [
        (publish1, "publish"),
        (to2, "to"),
        (publish2, "publish"),
        (transform3, "transform"),
        (file3, "to"),
    ] {
        assert_eq!(s.kind, SpanKind::Internal as i32);
        assert_eq!(attr(s, "kind").as_deref(), Some(kind));
        assert_eq!(attr(s, "step").as_deref(), Some(s.name.as_str()));
        assert_eq!(attr(s, "outcome").as_deref(), Some("ok"));
    }
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(attr(call, "adapter").as_deref(), Some("trace-sink"));
    assert_eq!(attr(call, "operation").as_deref(), Some("deliver"));
    assert_eq!(attr(call, "attempt").as_deref(), Some("1"));
    assert_eq!(
        attr(call, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(call, "outcome").as_deref(), Some("ok"));
    // The system got the adapter call's span as its parent.
    assert_eq!(
        calls.lock().unwrap().clone(),
        vec![format!("00-{TRACE}-{}-01", hex(&call.span_id))]
    );

    // No body, no personnummer: not in a name, an attribute's key or value.
    let digits: String = PNR.chars().filter(char::is_ascii_digit).collect();
    for s in &spans {
        let mut texts = vec![s.name.clone()];
        for kv in &s.attributes {
            texts.push(kv.key.clone());
            texts.push(text(kv).unwrap_or_default());
        }
        for t in texts {
            for needle in [PNR, &digits, &digits[2..], "Tolvan", "personnummer", "done"] {
                assert!(!t.contains(needle), "{needle} in span {}: {t}", s.name);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported() {
    let (collector, received) = otlp_receiver().await;
    let (system, calls) = sink().await;
    let dir = three_routes();
    let http = client();
    let mut knut = knut::Knut::new(
        dir.path(),
        None,
        &[
            // OpenTelemetry's own variables do not turn traces on: only otlp_endpoint does.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{collector}/v1/traces").as_str(),
            ),
            ("KNUT_ADAPTER_TRACE_SINK_URL", system.as_str()),
        ],
    );
    knut.start(&http).await;
    let correlation = send_one(&http, knut.http).await;
    wait_for_file(&dir.path().join("out/trace"), 30).await;
    let status = knut.terminate().await;
    assert!(status.success(), "{status:?}:\n{}", knut.log_tail());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(received.requests().is_empty(), "nothing is exported");
    // The system still gets a traceparent: the message's own, its trace the correlation id.
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let trace = correlation.replace('-', "");
    assert!(
        calls[0].starts_with(&format!("00-{trace}-")),
        "{calls:?} for {correlation}"
    );
}

/// An external-plane caller (anyone on the internet) may not choose the trace id that
/// travels on into the internal plane, nor force sampling: its `traceparent` is only linked,
/// and the request starts a trace of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_callers_traceparent_is_linked_not_continued() {
    let (collector, received) = otlp_receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("routes")).unwrap();
    std::fs::write(
        dir.path().join("routes/trace-ext.yaml"),
        "route: trace-ext\nplane: external\n\
         from:\n  http: { path: /ext/trace, methods: [POST], auth: none, format: json }\n\
         steps:\n  - transform: { jq: '{done: true}' }\n  - to: { file: { dir: out/ext } }\n",
    )
    .unwrap();
    let http = client();
    let mut knut = knut::Knut::new(
        dir.path(),
        None,
        &[("KNUT__TELEMETRY__OTLP_ENDPOINT", collector.as_str())],
    );
    knut.start(&http).await;
    let resp = http
        .post(format!("http://127.0.0.1:{}/ext/trace", knut.external_http))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&serde_json::json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{}", knut.log_tail());
    wait_for_file(&dir.path().join("out/ext"), 30).await;
    let status = knut.terminate().await;
    assert!(status.success(), "{status:?}:\n{}", knut.log_tail());
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.spans().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spans: Vec<Span> = received.spans().into_iter().map(|(_, s)| s).collect();
    let ingress = one(&spans, "POST /ext/trace", None);
    assert_ne!(
        hex(&ingress.trace_id),
        TRACE,
        "the caller chose the trace id"
    );
    assert!(
        ingress.parent_span_id.is_empty(),
        "the request's span is a root: {}",
        describe(&spans)
    );
    assert!(
        ingress
            .links
            .iter()
            .any(|l| hex(&l.trace_id) == TRACE && hex(&l.span_id) == CALLER_SPAN),
        "the caller's context is linked: {:?}",
        ingress.links
    );
    let message = one(&spans, "trace-ext", Some("trace-ext"));
    assert_eq!(message.trace_id, ingress.trace_id, "{}", describe(&spans));
}
