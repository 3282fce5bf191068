//! HTTP ingress (axum): a request becomes a message for its route.
//!
//! Per request, in this order, and nothing enters the broker unless every check passed:
//! 1. method and path (unknown path → 404, wrong method → 405, both as problems);
//! 2. auth: `none`, or an API key compared in constant time (→ 401 with `WWW-Authenticate`);
//! 3. body size: the route's `max_body` or the default (→ 413);
//! 4. `format: json|xml`: the body must be well-formed (→ 400; a DOCTYPE, bad UTF-8 or bytes
//!    that do not decode in the declared encoding included);
//! 5. `schema:`: the body (for XML: its JSON form) must satisfy it (→ 422 listing every
//!    failing path);
//! 6. [`Ingress::accept`]: `202 {"id", "correlation_id"}` only once the broker confirmed the
//!    message; a broker failure is `503` with `Retry-After` and nothing was accepted.
//!
//! A route with a `reply` step makes the caller wait: the message carries `knut-reply-to`
//! (this process's reply queue, see [`Replies`]) and the answer's status, content type and
//! body become the response (or `504` after the reply timeout).
//!
//! Every error is an RFC 9457 problem (see [`super::problem`]) that never echoes the body.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Ingress;
use super::openapi::AuthKind;
use super::problem::{FieldError, Problem};
use crate::broker::{BrokerError, SharedBroker};
use crate::codec::{self, JsonLimits, XmlToJsonOptions};
use crate::envelope::{self, Body, Envelope, header as knut_header};
use crate::route::model::{BodyFormat, HttpFrom, HttpMethod, Route, StepSpec};
use crate::schema::SchemaRegistry;

/// Request and response header carrying the correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// Header naming the correlation id a `reply` answers (set by the `reply` step).
pub const REPLY_FOR: &str = "knut-reply-for";
/// Envelope header holding the request's HTTP method.
pub const HTTP_METHOD: &str = "knut-http-method";
/// Default largest body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default time a caller waits for a `reply`.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// An HTTP route: the route id and its `from.http`.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// The route id.
    pub route: String,
    /// The route file's `from.http`.
    pub spec: HttpFrom,
    /// The route has a `reply` step: the caller waits for the answer.
    pub replies: bool,
    /// The route's description (the OpenAPI operation's summary).
    pub description: Option<String>,
}

impl HttpRoute {
    /// The HTTP route of a route file, if it starts with `from: http`; `replies` is set when a
    /// `reply` step occurs anywhere in its steps (choice branches included).
    pub fn from_route(route: &Route) -> Option<HttpRoute> {
        let crate::route::model::From::Http(spec) = &route.from else {
            return None;
        };
        Some(HttpRoute {
            route: route.route.clone(),
            spec: spec.clone(),
            replies: has_reply(&route.steps),
            description: route.description.clone(),
        })
    }
}

fn has_reply(steps: &[StepSpec]) -> bool {
    steps.iter().any(|s| match s {
        StepSpec::Reply(_) => true,
        StepSpec::Choice(c) => {
            c.when.iter().any(|w| has_reply(&w.steps)) || has_reply(&c.otherwise)
        }
        _ => false,
    })
}

/// Settings of the HTTP ingress that do not come from route files.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest body for routes without `max_body`.
    pub max_body: usize,
    /// Auth schemes by name (`auth: <name>` in route files); `none` needs no entry.
    pub auth: BTreeMap<String, AuthCheck>,
    /// How long a caller waits for a `reply` when its route sets no `reply_timeout`.
    pub reply_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body: DEFAULT_MAX_BODY,
            auth: BTreeMap::new(),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
        }
    }
}

/// How a request proves who sent it.
#[derive(Clone)]
pub enum AuthCheck {
    /// A shared key in a request header. The runtime fills `key` from the environment
    /// variable named in the configuration; an empty key refuses every request.
    ApiKey {
        /// Header carrying the key, e.g. `x-api-key`.
        header: String,
        /// The expected key (a secret: never logged, not shown by `Debug`).
        key: String,
    },
}

impl std::fmt::Debug for AuthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthCheck::ApiKey { header, .. } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

impl AuthCheck {
    /// What the OpenAPI document says about this scheme.
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthCheck::ApiKey { header, .. } => AuthKind::ApiKey {
                header: header.clone(),
            },
        }
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        match self {
            AuthCheck::ApiKey { header, key } => {
                if key.is_empty() {
                    return false;
                }
                headers
                    .get(header.as_str())
                    .is_some_and(|v| constant_time_eq(v.as_bytes(), key.as_bytes()))
            }
        }
    }

    fn challenge(&self) -> String {
        match self {
            AuthCheck::ApiKey { header, .. } => {
                format!("ApiKey realm=\"knutpunkt\", header=\"{header}\"")
            }
        }
    }
}

/// Compare without an early exit: the time depends only on the expected key's length.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

type Pending = Arc<Mutex<HashMap<Uuid, oneshot::Sender<Envelope>>>>;

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<Uuid, oneshot::Sender<Envelope>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for `reply` answers: owns this process's reply queue, consumes it in a task and
/// hands each answer to the request waiting for it (matched by `knut-reply-for`, the
/// correlation id). Answers nobody waits for (any more) are acked and logged (debug).
#[derive(Clone)]
pub struct Replies {
    queue: Arc<str>,
    pending: Pending,
}

impl Replies {
    /// Declare a reply queue on `broker` and start consuming it until `shutdown`.
    pub async fn start(broker: SharedBroker, shutdown: CancellationToken) -> Result<Replies, BrokerError> {
        let queue = broker.declare_reply_queue().await?;
        let mut consumer = broker.consume(&queue, 256).await?;
        let pending: Pending = Arc::default();
        let task_pending = pending.clone();
        tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    d = consumer.next() => match d {
                        Some(d) => d,
                        None => break,
                    },
                };
                let (answer, acker) = delivery.into_parts();
                let waiter = answer
                    .header(REPLY_FOR)
                    .and_then(|v| Uuid::parse_str(v).ok())
                    .and_then(|id| lock(&task_pending).remove(&id));
                match waiter {
                    Some(tx) => {
                        if tx.send(answer).is_err() {
                            tracing::debug!("a reply arrived after its caller stopped waiting");
                        }
                    }
                    None => tracing::debug!("a reply nobody waits for was dropped"),
                }
                if let Err(error) = acker.ack().await {
                    tracing::warn!(%error, "could not ack a reply");
                }
            }
            // Waiting requests learn that no answer will come.
            lock(&task_pending).clear();
        });
        Ok(Replies {
            queue: queue.into(),
            pending,
        })
    }

    /// The name of the reply queue (the value of `knut-reply-to`).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Wait for the answer to correlation id `id`; `None` when someone already waits for it.
    fn register(&self, id: Uuid) -> Option<Waiter> {
        let (tx, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        if pending.contains_key(&id) {
            return None;
        }
        pending.insert(id, tx);
        Some(Waiter {
            id,
            rx: Some(rx),
            pending: self.pending.clone(),
        })
    }
}

/// A registered wait; dropping it forgets the registration.
struct Waiter {
    id: Uuid,
    rx: Option<oneshot::Receiver<Envelope>>,
    pending: Pending,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.id);
    }
}

/// Check that `path` can be served: starts with `/`, and parameters are whole segments
/// written `{name}` (or `{*rest}` as the last segment). The error says what to change.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("an HTTP path starts with `/`".into());
    }
    if path == "/openapi.json" {
        return Err("`/openapi.json` is reserved for the OpenAPI document".into());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.starts_with(':') || seg.starts_with('*') {
            return Err(format!(
                "path segment {} uses `:`/`*` syntax: write parameters as `{{name}}`",
                i + 1
            ));
        }
        if seg.contains(['{', '}']) {
            let inner = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            let Some(inner) = inner else {
                return Err(format!(
                    "path segment {}: a parameter must be a whole segment `{{name}}`",
                    i + 1
                ));
            };
            let (catch_all, name) = match inner.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, inner),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "path segment {}: a parameter name is letters, digits and `_`",
                    i + 1
                ));
            }
            if catch_all && i + 1 != segments.len() {
                return Err("a `{*rest}` parameter must be the last segment".into());
            }
        }
    }
    Ok(())
}

fn method_filter(m: HttpMethod) -> MethodFilter {
    match m {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Delete => MethodFilter::DELETE,
    }
}

/// What every request handler shares.
struct Shared {
    settings: HttpSettings,
    schemas: Arc<SchemaRegistry>,
    ingress: Ingress,
    replies: Option<Replies>,
}

/// One route as the handler sees it.
struct RouteState {
    route: HttpRoute,
    max_body: usize,
    reply_timeout: Duration,
}

/// The ingress router: one path per HTTP route (methods merged per path), `GET
/// /openapi.json` serving `openapi`, and problem responses for unknown paths (404) and
/// methods (405). Routes whose path cannot be served (see [`check_path`]) or whose
/// path and method another route already has are left out and logged as errors; `knut check`
/// reports them before they get here.
pub fn router(
    routes: Vec<HttpRoute>,
    settings: HttpSettings,
    schemas: Arc<SchemaRegistry>,
    ingress: Ingress,
    replies: Option<Replies>,
    openapi: Value,
) -> Router {
    let shared = Arc::new(Shared {
        settings,
        schemas,
        ingress,
        replies,
    });
    // path → (methods taken, method router)
    let mut by_path: BTreeMap<String, (Vec<HttpMethod>, MethodRouter)> = BTreeMap::new();
    for route in routes {
        if let Err(reason) = check_path(&route.spec.path) {
            tracing::error!(route = route.route, %reason, "HTTP route not served");
            continue;
        }
        let state = Arc::new(RouteState {
            max_body: route
                .spec
                .max_body
                .map(|b| b.0)
                .unwrap_or(shared.settings.max_body),
            reply_timeout: route
                .spec
                .reply_timeout
                .unwrap_or(shared.settings.reply_timeout),
            route,
        });
        let (taken, mut mr) = by_path
            .remove(&state.route.spec.path)
            .unwrap_or_else(|| (Vec::new(), MethodRouter::new()));
        let mut taken = taken;
        for &m in &state.route.spec.methods {
            if taken.contains(&m) {
                tracing::error!(
                    route = state.route.route,
                    method = m.as_str(),
                    "HTTP route not served for this method: another route has the same path and method"
                );
                continue;
            }
            taken.push(m);
            let (state, shared) = (state.clone(), shared.clone());
            mr = mr.on(method_filter(m), move |req: Request| async move {
                handle(&state, &shared, req).await
            });
        }
        by_path.insert(state.route.spec.path.clone(), (taken, mr));
    }

    let doc = Arc::new(openapi);
    let mut app = Router::new().route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    );
    for (path, (taken, mr)) in by_path {
        let allow: Vec<&str> = taken.iter().map(|m| m.as_str()).collect();
        let allow = allow.join(", ");
        let mr = mr.fallback(move |req: Request| async move {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("This path accepts {allow}."),
                req.uri().path(),
            )
            .with_header(header::ALLOW, allow.clone())
            .into_response()
        });
        let before = app.clone();
        let p = path.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(move || app.route(&p, mr))) {
            Ok(a) => app = a,
            Err(_) => {
                tracing::error!(path, "HTTP path not served: it conflicts with another route's path");
                app = before;
            }
        }
    }
    app.fallback(|req: Request| async move {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such endpoint",
            "No route serves this path; GET /openapi.json lists the paths.",
            req.uri().path(),
        )
        .into_response()
    })
}

/// Serve `router` on `listener` until `shutdown`; then stop accepting connections and let
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Why a body could not be read.
enum ReadError {
    TooLarge,
    Unreadable,
}

async fn read_body(body: HttpBody, limit: usize) -> Result<Bytes, ReadError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ReadError::Unreadable)?;
        if buf.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

async fn handle(state: &RouteState, shared: &Shared, req: Request) -> Response {
    match accept_request(state, shared, req).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn accept_request(
    state: &RouteState,
    shared: &Shared,
    req: Request,
) -> Result<Response, Problem> {
    let route = &state.route;
    let (parts, body) = req.into_parts();
    let instance = parts.uri.path().to_string();

    // 2. Auth.
    if route.spec.auth != "none" {
        let Some(check) = shared.settings.auth.get(&route.spec.auth) else {
            tracing::error!(route = route.route, auth = route.spec.auth, "the route names an auth scheme that is not configured");
            return Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "auth-not-configured",
                "Authentication is not configured",
                "The service cannot check credentials for this endpoint; tell its operators.",
                instance,
            ));
        };
        if !check.allows(&parts.headers) {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or wrong credentials",
                "Send the endpoint's credentials (see the securitySchemes in /openapi.json).",
                instance,
            )
            .with_header(header::WWW_AUTHENTICATE, check.challenge()));
        }
    }

    // 3. Body size.
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The body is too large",
            format!("This endpoint accepts bodies up to {} bytes.", state.max_body),
            instance.clone(),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return Err(too_large());
    }
    let raw = match read_body(body, state.max_body).await {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return Err(too_large()),
        Err(ReadError::Unreadable) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                "The body could not be read",
                "The connection ended or the body's framing was broken; send the request again.",
                instance,
            ));
        }
    };

    let request_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // 4. Format.
    let format = match route.spec.format {
        Some(f) => Some(f),
        None if route.spec.schema.is_some() => match request_type.as_deref() {
            Some(t) if envelope::is_json_type(t) => Some(BodyFormat::Json),
            Some(t) if envelope::is_xml_type(t) => Some(BodyFormat::Xml),
            _ => {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported content type",
                    "This endpoint checks its body against a schema: send JSON (application/json) or XML (application/xml).",
                    instance,
                ));
            }
        },
        None => None,
    };
    let parsed = match format {
        Some(BodyFormat::Json) => Some(
            codec::parse_json(&raw, &JsonLimits::default()).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-json",
                    "The body is not acceptable JSON",
                    format!("{e}. Send one well-formed JSON document in UTF-8."),
                    instance.clone(),
                )
            })?,
        ),
        Some(BodyFormat::Xml) => Some(
            codec::xml_to_json(&raw, &XmlToJsonOptions::default()).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-xml",
                    "The body is not acceptable XML",
                    format!(
                        "{e}. Send one well-formed XML document without a DOCTYPE, in the encoding its prolog declares (UTF-8, ISO-8859-1 or Windows-1252)."
                    ),
                    instance.clone(),
                )
            })?,
        ),
        None => None,
    };

    // 5. Schema.
    if let (Some(schema), Some(value)) = (&route.spec.schema, &parsed)
        && let Err(violations) = shared.schemas.validate(schema, value)
    {
        return Err(schema_problem(
            violations
                .into_iter()
                .map(|v| FieldError {
                    pointer: v.instance_path,
                    detail: v.reason,
                })
                .collect(),
            instance,
        ));
    }

    // 6. The envelope.
    let mut message = match (format, parsed) {
        (Some(BodyFormat::Json), Some(value)) => Envelope::new(envelope::JSON, Body::Json(value)),
        (Some(BodyFormat::Xml), _) => Envelope::new(
            request_type.unwrap_or_else(|| envelope::XML.to_string()),
            Body::Bytes(raw),
        ),
        _ => Envelope::new(
            request_type.unwrap_or_else(|| "application/octet-stream".to_string()),
            Body::Bytes(raw),
        ),
    };
    if let Some(id) = parts
        .headers
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
    {
        message.correlation_id = id;
    }
    message
        .headers
        .insert(knut_header::ROUTE.into(), route.route.clone());
    message
        .headers
        .insert(HTTP_METHOD.into(), parts.method.as_str().to_string());

    if !route.replies {
        accept(shared, route, &message, &instance).await?;
        let body = json!({"id": message.id, "correlation_id": message.correlation_id});
        let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
        set_correlation(&mut response, message.correlation_id);
        return Ok(response);
    }

    // A route with a `reply` step: wait for the answer.
    let Some(replies) = &shared.replies else {
        tracing::error!(route = route.route, "a route with a reply step, but no reply queue is running");
        return Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replies-not-configured",
            "Answers cannot be received",
            "This endpoint answers synchronously but the service runs without a reply queue; tell its operators.",
            instance,
        ));
    };
    let mut waiter = match replies.register(message.correlation_id) {
        Some(w) => w,
        None => {
            // Someone already waits on this correlation id: this request gets its own.
            message.correlation_id = message.id;
            replies.register(message.correlation_id).ok_or_else(|| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker-unavailable",
                    "Try again",
                    "The request could not be registered; send it again.",
                    instance.clone(),
                )
                .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)
            })?
        }
    };
    message
        .headers
        .insert(knut_header::REPLY_TO.into(), replies.queue().to_string());
    accept(shared, route, &message, &instance).await?;

    let Some(rx) = waiter.rx.take() else {
        return Err(timeout_problem(state, instance));
    };
    match tokio::time::timeout(state.reply_timeout, rx).await {
        Ok(Ok(answer)) => Ok(reply_response(answer, message.correlation_id, &instance)),
        Ok(Err(_)) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "The service is shutting down",
            "The request was accepted, but the answer can no longer be delivered to this connection.",
            instance,
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)),
        Err(_) => Err(timeout_problem(state, instance)),
    }
}

async fn accept(
    shared: &Shared,
    route: &HttpRoute,
    message: &Envelope,
    instance: &str,
) -> Result<(), Problem> {
    shared
        .ingress
        .accept(&route.route, message)
        .await
        .map_err(|error| {
            tracing::warn!(route = route.route, correlation_id = %message.correlation_id, %error, "request not accepted: broker error");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker-unavailable",
                "The message could not be accepted",
                "The message broker did not take the message; nothing was accepted. Send the request again later.",
                instance,
            )
            .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)
        })
}

fn timeout_problem(state: &RouteState, instance: String) -> Problem {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "reply-timeout",
        "No answer in time",
        format!(
            "The request was accepted but no answer came within {} s; it may still be processed. Use the x-correlation-id response header when asking about it.",
            state.reply_timeout.as_secs_f64()
        ),
        instance,
    )
}

/// The 422 problem for a body that does not satisfy its schema.
pub fn schema_problem(errors: Vec<FieldError>, instance: String) -> Problem {
    let n = errors.len();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema-violation",
        "The body does not satisfy the schema",
        format!("{n} place(s) in the body do not satisfy the endpoint's schema; see `errors`."),
        instance,
    )
    .with_errors(errors)
}

fn reply_response(answer: Envelope, correlation_id: Uuid, instance: &str) -> Response {
    let status = answer
        .header(knut_header::REPLY_STATUS)
        .map(|s| s.parse::<u16>().ok().and_then(|n| StatusCode::from_u16(n).ok()))
        .unwrap_or(Some(StatusCode::OK));
    let Some(status) = status else {
        return Problem::new(
            StatusCode::BAD_GATEWAY,
            "invalid-reply",
            "The answer was not valid",
            "The route answered with a status that is not an HTTP status; tell the service's operators.",
            instance,
        )
        .into_response();
    };
    let mut response = (status, answer.body.to_bytes()).into_response();
    if let Ok(ct) = HeaderValue::from_str(&answer.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    set_correlation(&mut response, correlation_id);
    response
}

fn set_correlation(response: &mut Response, id: Uuid) {
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
}

/// The HTTP method of a route method (for callers building requests in tests and tools).
pub fn http_method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    }
}
