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
//! Every error is an RFC 9457 problem (see [`crate::core::problem`]) that never echoes the body.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter};
use futures::FutureExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub mod auth;
mod ingress;
mod rate;
mod replies;

pub use auth::{AuthCheck, AuthKind, Caller, Refused};
pub use ingress::{CLAIM_HEADER_PREFIX, schema_problem};
pub use replies::Replies;

use super::Ingress;
use crate::config::RateLimitConfig;
use crate::core::problem::Problem;
use crate::route::model::{HttpFrom, HttpMethod, Route, StepSpec};
use crate::schema::SchemaRegistry;
use ingress::handle;
use rate::RateLimiter;

/// Request and response header carrying the correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub use crate::core::envelope::header::REPLY_FOR;
/// Envelope header holding the request's HTTP method.
pub const HTTP_METHOD: &str = "knut-http-method";
/// Envelope header holding when the request came (RFC 3339, UTC, milliseconds).
pub const RECEIVED_AT: &str = "knut-received-at";
/// Envelope header holding the request's path (a `reply` problem's `instance`).
pub use crate::core::envelope::header::HTTP_PATH;
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
    /// How long a client may take to send its body (→ 408).
    pub request_timeout: Duration,
    /// Requests per client and route, unless the route sets its own.
    pub rate_limit: RateLimitConfig,
    /// Where refusals at the door of routes that keep the access audit are written.
    pub refusals: Option<RefusalAudit>,
    /// Whether a caller's W3C `traceparent` becomes the parent of the request's span (the
    /// internal plane); otherwise it is only linked (the external plane's callers are
    /// anyone: they must not choose the trace id or force sampling).
    pub trust_traceparent: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body: DEFAULT_MAX_BODY,
            auth: BTreeMap::new(),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            request_timeout: Duration::from_secs(30),
            rate_limit: RateLimitConfig::default(),
            refusals: None,
            trust_traceparent: true,
        }
    }
}

/// The access audit as the ingress writes to it: a request to a route that keeps the audit
/// (an `audit` step) but is refused at the door — no or a bad token (401), a token without
/// the claims the route reads (403) — never reaches the route's own step, so the ingress
/// writes that refusal itself (actor `anonymous`, or the token as rate limits know it,
/// `jwt:<scheme>:<sub>`; hashed by the store like every actor).
#[derive(Clone)]
pub struct RefusalAudit {
    /// The state store, with the audit's key.
    pub store: crate::store::Store,
    /// The routes that write the access audit.
    pub routes: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for RefusalAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalAudit")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
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
    limiter: RateLimiter,
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
            limiter: RateLimiter::new(route.spec.rate_limit.unwrap_or(shared.settings.rate_limit)),
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
                // Counted by status class whatever the answer; a panicking handler as the
                // 500 the panic layer in `serve` answers.
                let route = &state.route.route;
                match AssertUnwindSafe(handle(&state, &shared, req))
                    .catch_unwind()
                    .await
                {
                    Ok(response) => {
                        crate::telemetry::metrics::http_request(route, response.status().as_u16());
                        response
                    }
                    Err(panic) => {
                        crate::telemetry::metrics::http_request(route, 500);
                        std::panic::resume_unwind(panic)
                    }
                }
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
                tracing::error!(
                    path,
                    "HTTP path not served: it conflicts with another route's path"
                );
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
    let router = router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send>| {
            // Never the panic's text: it may name internals or hold data.
            tracing::error!("an ingress request handler panicked");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
                "The request could not be handled; nothing was accepted. Send it again later.",
                "",
            )
            .into_response()
        },
    ));
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
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

#[cfg(test)]
mod tests {
    use super::auth::{basic_credentials, constant_time_eq};
    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, RouteQueue, Topology, work_queue};
    use crate::core::envelope::{self, Body, header as knut_header};
    use crate::core::problem::FieldError;
    use crate::route::model::BodyFormat;
    use crate::route::model::ByteSize;
    use axum::body::Body as HttpBody;
    use axum::http::{HeaderMap, HeaderValue};
    use bytes::Bytes;
    use futures::StreamExt;
    use serde_json::json;
    use tower::ServiceExt;

    fn spec(path: &str, auth: &str, format: Option<BodyFormat>, schema: Option<&str>) -> HttpFrom {
        HttpFrom {
            path: path.into(),
            methods: vec![HttpMethod::Post],
            auth: auth.into(),
            format,
            schema: schema.map(str::to_string),
            max_body: None,
            rate_limit: None,
            reply_timeout: None,
            claims: Default::default(),
        }
    }

    fn http_route(route: &str, spec: HttpFrom) -> HttpRoute {
        HttpRoute {
            route: route.into(),
            spec,
            replies: false,
            description: None,
        }
    }

    async fn broker(routes: &[&str]) -> EmbeddedBroker {
        let b = EmbeddedBroker::new();
        b.declare(&Topology {
            exchanges: vec![],
            outlets: Vec::new(),
            routes: routes
                .iter()
                .map(|r| RouteQueue {
                    route: r.to_string(),
                    bindings: vec![],
                    partitions: None,
                })
                .collect(),
        })
        .await
        .unwrap();
        b
    }

    fn settings() -> HttpSettings {
        let mut s = HttpSettings::default();
        s.auth.insert(
            "portal".into(),
            AuthCheck::ApiKey {
                header: "x-api-key".into(),
                key: "s3cret-key".into(),
            },
        );
        s.auth.insert(
            "oep".into(),
            AuthCheck::Basic {
                username: "oep-export".into(),
                password: "fiktivt-losenord".into(),
            },
        );
        s
    }

    fn app(b: &EmbeddedBroker, routes: Vec<HttpRoute>, replies: Option<Replies>) -> Router {
        router(
            routes,
            settings(),
            Arc::new(SchemaRegistry::empty()),
            Ingress::new(Arc::new(b.clone())),
            replies,
            json!({"openapi": "3.1.0"}),
        )
    }

    fn post(path: &str, ct: &str, body: &'static [u8]) -> Request {
        Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, ct)
            .body(HttpBody::from(body))
            .unwrap()
    }

    async fn send(app: &Router, req: Request) -> (StatusCode, HeaderMap, Value) {
        let r = app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, v)
    }

    fn assert_problem(
        status: StatusCode,
        headers: &HeaderMap,
        doc: &Value,
        expected: u16,
        kind: &str,
    ) {
        assert_eq!(status.as_u16(), expected, "{doc}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(doc["status"], expected);
        assert_eq!(
            doc["type"],
            format!("https://knutpunkt.sundsvall.se/problems/{kind}")
        );
        assert!(doc["title"].is_string() && doc["detail"].is_string());
    }

    #[tokio::test]
    async fn accepts_json_with_202_after_the_broker_has_it() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route(
                "pc",
                spec("/api/pc", "none", Some(BodyFormat::Json), None),
            )],
            None,
        );
        let corr = "0190b1a4-0000-7000-8000-000000000001";
        let mut req = post("/api/pc", "application/json", br#"{"kind":"start"}"#);
        req.headers_mut()
            .insert(CORRELATION_HEADER, HeaderValue::from_static(corr));
        let (status, headers, doc) = send(&app, req).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(doc["correlation_id"], corr);
        assert_eq!(headers[CORRELATION_HEADER], corr);
        let mut c = b.consume(&work_queue("pc"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.id.to_string(), doc["id"].as_str().unwrap());
        assert_eq!(d.envelope.correlation_id.to_string(), corr);
        assert_eq!(
            d.envelope.json_body().unwrap().into_owned(),
            json!({"kind": "start"})
        );
        assert_eq!(d.envelope.header(knut_header::ROUTE), Some("pc"));
    }

    #[tokio::test]
    async fn an_invalid_correlation_header_is_ignored() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route("pc", spec("/api/pc", "none", None, None))],
            None,
        );
        let mut req = post("/api/pc", "text/plain", b"hello");
        req.headers_mut()
            .insert(CORRELATION_HEADER, HeaderValue::from_static("not-a-uuid"));
        let (status, _, doc) = send(&app, req).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(doc["id"], doc["correlation_id"]);
        let mut c = b.consume(&work_queue("pc"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.content_type, "text/plain");
        assert_eq!(d.envelope.body.to_bytes(), Bytes::from_static(b"hello"));
    }

    #[tokio::test]
    async fn malformed_json_is_400_and_never_enters_the_broker() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route(
                "pc",
                spec("/api/pc", "none", Some(BodyFormat::Json), None),
            )],
            None,
        );
        // A fictional personnummer (2012-03-04, valid Luhn digit) inside a broken document.
        let (status, headers, doc) = send(
            &app,
            post(
                "/api/pc",
                "application/json",
                br#"{"civicNo": "201203042383""#,
            ),
        )
        .await;
        assert_problem(status, &headers, &doc, 400, "invalid-json");
        assert_eq!(doc["instance"], "/api/pc");
        assert!(!doc.to_string().contains("201203042383"));
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 0);
    }

    /// A personnummer in the path (a path parameter), plain or percent-encoded, is masked in
    /// the problem's `instance` and in the header a `reply` names it by.
    #[tokio::test]
    async fn a_personnummer_in_the_path_is_masked_in_the_problem() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route(
                "pc",
                spec("/api/pc/{person}", "none", Some(BodyFormat::Json), None),
            )],
            None,
        );
        for path in [
            "/api/pc/20120304-2383",
            "/api/pc/201203%2D2383",
            "/api/pc/%32%30%31%32%30%33%30%34%32%33%38%33",
        ] {
            let (status, headers, doc) =
                send(&app, post(path, "application/json", br#"{"x": "#)).await;
            assert_problem(status, &headers, &doc, 400, "invalid-json");
            let text = doc.to_string();
            assert!(
                !text.contains("2383") && !text.contains("%32"),
                "{path}: {text}"
            );
            assert!(
                doc["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("/api/pc/"),
                "{text}"
            );
        }
    }

    /// Settings whose scheme `scheme` trusts a fresh test issuer (its key set in the
    /// returned folder, which must live as long as the settings are used).
    fn bearer_settings(scheme: &str) -> (knut_sandbox::idp::Idp, HttpSettings, tempfile::TempDir) {
        use crate::endpoint::jwt::{JwksSource, JwtVerifier};
        let idp = knut_sandbox::idp::Idp::generate().expect("key");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("jwks.json"), idp.jwks().to_string()).expect("write");
        let verifier = JwtVerifier::new(
            JwksSource::File("jwks.json".into()),
            knut_sandbox::idp::ISSUER.into(),
            None,
            crate::endpoint::jwt::DEFAULT_LEEWAY,
            dir.path(),
        )
        .expect("verifier");
        let mut settings = settings();
        settings
            .auth
            .insert(scheme.into(), AuthCheck::BearerJwt(Arc::new(verifier)));
        (idp, settings, dir)
    }

    /// A token of `idp` with these claims (a JSON object).
    fn issue(idp: &knut_sandbox::idp::Idp, claims: Value) -> String {
        let Value::Object(m) = claims else {
            panic!("claims are a JSON object")
        };
        idp.issue(m).expect("token")
    }

    /// A JSON POST to `path` with a bearer token.
    fn bearer_post(path: &str, body: &'static [u8], token: &str) -> Request {
        let mut r = post(path, "application/json", body);
        r.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
        );
        r
    }

    #[tokio::test]
    async fn claims_of_a_verified_token_become_headers_and_a_missing_one_is_403() {
        let (idp, settings, _jwks) = bearer_settings("operators");
        let b = broker(&["pc"]).await;
        let mut s = spec("/api/pc", "operators", Some(BodyFormat::Json), None);
        s.claims = crate::route::model::Claims::Names(vec!["orgnr".into()]);
        let app = router(
            vec![http_route("pc", s)],
            settings,
            Arc::new(SchemaRegistry::empty()),
            Ingress::new(Arc::new(b.clone())),
            None,
            json!({"openapi": "3.1.0"}),
        );
        let token = |claims: Value| issue(&idp, claims);
        let with = |t: &str| bearer_post("/api/pc", br#"{"a":1}"#, t);
        let (status, _, _) = send(&app, with(&token(json!({"orgnr": "559999-9991"})))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let mut c = b.consume(&work_queue("pc"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.header("knut-claim-orgnr"), Some("559999-9991"));
        // When the request came, for routes that reckon from it.
        let received = d
            .envelope
            .header(RECEIVED_AT)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .expect("knut-received-at");
        assert!((chrono::Utc::now() - received.to_utc()).num_seconds().abs() < 60);
        let (status, headers, doc) = send(&app, with(&token(json!({"sub": "x"})))).await;
        assert_problem(status, &headers, &doc, 403, "claim-missing");
        assert!(doc["detail"].as_str().unwrap().contains("`orgnr`"));
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_claim_goes_under_the_header_name_the_route_gives_it() {
        use crate::route::model::Claims;
        const CLAIM: &str = "https://claims.oidc.se/1.0/personalNumber";
        let (idp, settings, _jwks) = bearer_settings("citizens");
        let b = broker(&["me"]).await;
        let mut s = spec("/api/me", "citizens", Some(BodyFormat::Json), None);
        s.claims = Claims::Named([("personalNumber".to_string(), CLAIM.to_string())].into());
        let app = router(
            vec![http_route("me", s)],
            settings,
            Arc::new(SchemaRegistry::empty()),
            Ingress::new(Arc::new(b.clone())),
            None,
            json!({"openapi": "3.1.0"}),
        );
        let token = |claims: Value| issue(&idp, claims);
        let with = |t: &str| bearer_post("/api/me", br#"{}"#, t);
        let pnr = "201304122383";
        let (status, _, _) = send(&app, with(&token(json!({"sub": "s1", CLAIM: pnr})))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let mut c = b.consume(&work_queue("me"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.header("knut-claim-personalNumber"), Some(pnr));
        assert_eq!(d.envelope.header(&format!("knut-claim-{CLAIM}")), None);
        // A token without the claim (here: the number under another name) is refused with
        // 403, naming the claim and never a value.
        let (status, headers, doc) = send(
            &app,
            with(&token(json!({"sub": "s1", "personalNumber": pnr}))),
        )
        .await;
        assert_problem(status, &headers, &doc, 403, "claim-missing");
        assert!(doc["detail"].as_str().unwrap().contains(CLAIM));
        assert!(!doc.to_string().contains(pnr));
        assert_eq!(b.queue_depth(&work_queue("me")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_get_carries_its_query_as_the_message() {
        let b = broker(&["q"]).await;
        let mut s = spec("/api/q", "none", None, None);
        s.methods = vec![HttpMethod::Get];
        let app = app(&b, vec![http_route("q", s)], None);
        let req = Request::builder()
            .method("GET")
            .uri("/api/q?schoolUnitCode=38120001&period=2026-09&tag=a&tag=b%20c")
            .body(HttpBody::empty())
            .unwrap();
        let (status, _, _) = send(&app, req).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let mut c = b.consume(&work_queue("q"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.content_type, envelope::JSON);
        assert_eq!(
            d.envelope.json_body().unwrap().into_owned(),
            json!({"schoolUnitCode": "38120001", "period": "2026-09", "tag": ["a", "b c"]})
        );
    }

    #[tokio::test]
    async fn a_path_parameter_is_a_header_percent_decoded() {
        let b = broker(&["case"]).await;
        let mut s = spec("/api/cases/{id}", "none", None, None);
        s.methods = vec![HttpMethod::Get];
        let app = app(&b, vec![http_route("case", s)], None);
        let get = |uri: &str| {
            Request::builder()
                .method("GET")
                .uri(uri)
                .body(HttpBody::empty())
                .unwrap()
        };
        let (status, _, _) = send(&app, get("/api/cases/oep-12%2034")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let mut c = b.consume(&work_queue("case"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.header("knut-param-id"), Some("oep-12 34"));
        // Bytes that do not decode to UTF-8 are a 400, and nothing enters the broker.
        let (status, _, body) = send(&app, get("/api/cases/%FF")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["type"],
            format!("{}invalid-path", crate::core::problem::TYPE_BASE)
        );
    }

    #[tokio::test]
    async fn an_empty_body_without_a_declared_format_is_json_null() {
        let b = broker(&["ping"]).await;
        let app = app(
            &b,
            vec![http_route("ping", spec("/api/ping", "none", None, None))],
            None,
        );
        let req = Request::builder()
            .method("POST")
            .uri("/api/ping")
            .body(HttpBody::empty())
            .unwrap();
        let (status, _, _) = send(&app, req).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let mut c = b.consume(&work_queue("ping"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(d.envelope.content_type, envelope::JSON);
        assert_eq!(d.envelope.json_body().unwrap().into_owned(), Value::Null);
    }

    #[tokio::test]
    async fn api_key_auth() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route("pc", spec("/api/pc", "portal", None, None))],
            None,
        );
        let (status, headers, doc) = send(&app, post("/api/pc", "text/plain", b"x")).await;
        assert_problem(status, &headers, &doc, 401, "unauthorized");
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("x-api-key")
        );

        let mut wrong = post("/api/pc", "text/plain", b"x");
        wrong
            .headers_mut()
            .insert("x-api-key", HeaderValue::from_static("s3cret-kez"));
        assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 0);

        let mut right = post("/api/pc", "text/plain", b"x");
        right
            .headers_mut()
            .insert("x-api-key", HeaderValue::from_static("s3cret-key"));
        assert_eq!(send(&app, right).await.0, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn basic_auth() {
        use base64::Engine as _;
        let b = broker(&["oep"]).await;
        let app = app(
            &b,
            vec![http_route("oep", spec("/in/oep", "oep", None, None))],
            None,
        );
        let basic = |user: &str, password: &str| {
            let mut r = post("/in/oep", "text/plain", b"x");
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            r.headers_mut().insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&value).unwrap(),
            );
            r
        };
        let (status, headers, doc) = send(&app, post("/in/oep", "text/plain", b"x")).await;
        assert_problem(status, &headers, &doc, 401, "unauthorized");
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let (status, _, doc) = send(&app, basic("oep-export", "fel-losenord")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!doc.to_string().contains("fel-losenord"), "{doc}");
        assert_eq!(
            send(&app, basic("someone", "fiktivt-losenord")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(b.queue_depth(&work_queue("oep")).await.unwrap(), 0);
        assert_eq!(
            send(&app, basic("oep-export", "fiktivt-losenord")).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Bearer abc"), None);
    }

    /// Each client has its own bucket per route: over it, 429 with `Retry-After`, and
    /// nothing is accepted; another client is not held back. Failed credentials count too.
    #[tokio::test]
    async fn rate_limit_is_429_with_retry_after() {
        let b = broker(&["pc", "open"]).await;
        let mut limited = spec("/api/pc", "portal", None, None);
        limited.rate_limit = Some(RateLimitConfig {
            per_second: 0.5,
            burst: 2,
        });
        let mut open = spec("/api/open", "none", None, None);
        open.rate_limit = Some(RateLimitConfig {
            per_second: 0.5,
            burst: 1,
        });
        let app = app(
            &b,
            vec![http_route("pc", limited), http_route("open", open)],
            None,
        );
        let keyed = || {
            let mut r = post("/api/pc", "text/plain", b"x");
            r.headers_mut()
                .insert("x-api-key", HeaderValue::from_static("s3cret-key"));
            r
        };
        assert_eq!(send(&app, keyed()).await.0, StatusCode::ACCEPTED);
        assert_eq!(send(&app, keyed()).await.0, StatusCode::ACCEPTED);
        let (status, headers, doc) = send(&app, keyed()).await;
        assert_problem(status, &headers, &doc, 429, "too-many-requests");
        let wait: u64 = headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "Retry-After {wait}");
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 2);
        // Wrong keys are counted against the peer, so guessing is slowed down as well.
        let guess = || {
            let mut r = post("/api/pc", "text/plain", b"x");
            r.headers_mut()
                .insert("x-api-key", HeaderValue::from_static("guess"));
            r
        };
        assert_eq!(send(&app, guess()).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(send(&app, guess()).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(send(&app, guess()).await.0, StatusCode::TOO_MANY_REQUESTS);
        // Another route has a bucket of its own.
        assert_eq!(
            send(&app, post("/api/open", "text/plain", b"x")).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            send(&app, post("/api/open", "text/plain", b"x")).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    /// A body that does not arrive within the request timeout is 408; nothing is accepted.
    #[tokio::test]
    async fn a_slow_body_is_408() {
        let b = broker(&["pc"]).await;
        let mut settings = settings();
        settings.request_timeout = Duration::from_millis(200);
        let app = router(
            vec![http_route("pc", spec("/api/pc", "none", None, None))],
            settings,
            Arc::new(SchemaRegistry::empty()),
            Ingress::new(Arc::new(b.clone())),
            None,
            json!({}),
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = HttpBody::from_stream(tokio_stream_of(rx));
        let req = Request::builder()
            .method("POST")
            .uri("/api/pc")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body)
            .unwrap();
        tx.send(Ok(Bytes::from_static(b"first part")))
            .await
            .unwrap();
        let (status, headers, doc) = send(&app, req).await;
        assert_problem(status, &headers, &doc, 408, "request-timeout");
        drop(tx);
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 0);
    }

    fn tokio_stream_of(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    /// A route that declares its format takes that content type only.
    #[tokio::test]
    async fn a_declared_format_is_the_content_type_it_takes() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route(
                "pc",
                spec("/api/pc", "none", Some(BodyFormat::Json), None),
            )],
            None,
        );
        let (status, headers, doc) = send(&app, post("/api/pc", "text/plain", b"{}")).await;
        assert_problem(status, &headers, &doc, 415, "unsupported-media-type");
        assert!(doc["detail"].as_str().unwrap().contains("application/json"));
        assert_eq!(
            send(
                &app,
                post("/api/pc", "application/json; charset=utf-8", b"{}")
            )
            .await
            .0,
            StatusCode::ACCEPTED
        );
    }

    #[tokio::test]
    async fn unknown_auth_scheme_refuses() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route("pc", spec("/api/pc", "nosuch", None, None))],
            None,
        );
        let (status, headers, doc) = send(&app, post("/api/pc", "text/plain", b"x")).await;
        assert_problem(status, &headers, &doc, 500, "auth-not-configured");
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        // An empty configured key refuses everything.
        let check = AuthCheck::ApiKey {
            header: "k".into(),
            key: String::new(),
        };
        let mut h = HeaderMap::new();
        h.insert("k", HeaderValue::from_static(""));
        assert!(check.check("k", &h).await.is_err());
        assert!(matches!(
            check.check("k", &h).await,
            Err(Refused::Credentials(_))
        ));
        // Debug never shows the key.
        let secret = AuthCheck::ApiKey {
            header: "k".into(),
            key: "s3cret-key".into(),
        };
        assert!(!format!("{secret:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn unknown_path_is_404_and_wrong_method_is_405() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route("pc", spec("/api/pc", "none", None, None))],
            None,
        );
        let (status, headers, doc) = send(&app, post("/api/nope", "text/plain", b"x")).await;
        assert_problem(status, &headers, &doc, 404, "not-found");
        let req = Request::builder()
            .method("DELETE")
            .uri("/api/pc")
            .body(HttpBody::empty())
            .unwrap();
        let (status, headers, doc) = send(&app, req).await;
        assert_problem(status, &headers, &doc, 405, "method-not-allowed");
        assert_eq!(headers[header::ALLOW], "POST");
    }

    #[tokio::test]
    async fn routes_sharing_a_path_split_by_method() {
        let b = broker(&["a", "b"]).await;
        let mut get = spec("/api/x", "none", None, None);
        get.methods = vec![HttpMethod::Get];
        let app = app(
            &b,
            vec![
                http_route("a", spec("/api/x", "none", None, None)),
                http_route("b", get),
            ],
            None,
        );
        assert_eq!(
            send(&app, post("/api/x", "text/plain", b"1")).await.0,
            StatusCode::ACCEPTED
        );
        let req = Request::builder()
            .method("GET")
            .uri("/api/x")
            .body(HttpBody::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.0, StatusCode::ACCEPTED);
        assert_eq!(b.queue_depth(&work_queue("a")).await.unwrap(), 1);
        assert_eq!(b.queue_depth(&work_queue("b")).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn body_limit_is_413() {
        let b = broker(&["pc"]).await;
        let mut s = spec("/api/pc", "none", None, None);
        s.max_body = Some(ByteSize(8));
        let app = app(&b, vec![http_route("pc", s)], None);
        // Streamed body without Content-Length.
        let (status, headers, doc) = send(&app, post("/api/pc", "text/plain", b"123456789")).await;
        assert_problem(status, &headers, &doc, 413, "body-too-large");
        // Declared Content-Length.
        let mut req = post("/api/pc", "text/plain", b"123456789");
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("9"));
        assert_eq!(send(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        // At the limit is fine.
        assert_eq!(
            send(&app, post("/api/pc", "text/plain", b"12345678"))
                .await
                .0,
            StatusCode::ACCEPTED
        );
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn broker_failure_is_503_with_retry_after() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route("pc", spec("/api/pc", "none", None, None))],
            None,
        );
        b.close().await;
        let (status, headers, doc) = send(&app, post("/api/pc", "text/plain", b"x")).await;
        assert_problem(status, &headers, &doc, 503, "broker-unavailable");
        assert_eq!(headers[header::RETRY_AFTER], "5");
    }

    /// `knut_http_requests_total` counts each answer by route and status class (the
    /// alert on ingress 5xx reads it): here a 202 and, with the broker gone, a 503.
    #[test]
    fn answers_are_counted_by_route_and_status_class() {
        let recorder = crate::telemetry::metrics::recorder();
        let handle = recorder.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            rt.block_on(async {
                let b = broker(&["pc"]).await;
                let app = app(
                    &b,
                    vec![http_route("pc", spec("/api/pc", "none", None, None))],
                    None,
                );
                assert_eq!(send(&app, post("/api/pc", "text/plain", b"x")).await.0, 202);
                b.close().await;
                assert_eq!(send(&app, post("/api/pc", "text/plain", b"x")).await.0, 503);
            })
        });
        let text = handle.render();
        for line in [
            "knut_http_requests_total{route=\"pc\",status_class=\"2xx\"} 1",
            "knut_http_requests_total{route=\"pc\",status_class=\"5xx\"} 1",
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
    }

    #[tokio::test]
    async fn schema_route_needs_json_or_xml() {
        let b = broker(&["pc"]).await;
        let app = app(
            &b,
            vec![http_route(
                "pc",
                spec("/api/pc", "none", None, Some("pc.v1")),
            )],
            None,
        );
        let (status, headers, doc) = send(&app, post("/api/pc", "text/plain", b"x")).await;
        assert_problem(status, &headers, &doc, 415, "unsupported-media-type");
    }

    #[tokio::test]
    async fn serves_the_openapi_document() {
        let b = broker(&[]).await;
        let app = app(&b, vec![], None);
        let req = Request::builder()
            .uri("/openapi.json")
            .body(HttpBody::empty())
            .unwrap();
        let (status, _, doc) = send(&app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn paths() {
        assert!(check_path("/api/v1/placement-changes").is_ok());
        assert!(check_path("/api/{municipalityId}/x").is_ok());
        assert!(check_path("/files/{*rest}").is_ok());
        assert!(check_path("api").is_err());
        assert!(check_path("/api/:id").is_err());
        assert!(check_path("/api/x{id}").is_err());
        assert!(check_path("/{*rest}/x").is_err());
        assert!(check_path("/openapi.json").is_err());
    }

    #[tokio::test]
    async fn invalid_paths_are_left_out_not_panicking() {
        let b = broker(&["a", "b", "c"]).await;
        let app = app(
            &b,
            vec![
                http_route("a", spec("/api/:id", "none", None, None)),
                http_route("b", spec("/api/{x}", "none", None, None)),
                http_route("c", spec("/api/{y}", "none", None, None)),
            ],
            None,
        );
        assert_eq!(
            send(&app, post("/api/1", "text/plain", b"x")).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(b.queue_depth(&work_queue("b")).await.unwrap(), 1);
    }

    #[test]
    fn schema_problem_lists_every_path() {
        let p = schema_problem(
            vec![
                FieldError {
                    pointer: "/student/civicNo".into(),
                    detail: "is not a valid personnummer".into(),
                },
                FieldError {
                    pointer: "".into(),
                    detail: "is a required property: \"kind\"".into(),
                },
            ],
            "/api/pc".into(),
        );
        let doc = p.to_json();
        assert_eq!(doc["status"], 422);
        assert_eq!(doc["errors"].as_array().unwrap().len(), 2);
        assert_eq!(doc["errors"][0]["pointer"], "/student/civicNo");
    }

    /// Answers every message on `route`'s work queue like the `reply` step does.
    async fn answer(b: EmbeddedBroker, route: &str, status: &str) {
        let mut c = b.consume(&work_queue(route), 1).await.unwrap();
        let d = c.next().await.unwrap();
        let m = d.envelope.clone();
        let reply_to = m.header(knut_header::REPLY_TO).unwrap().to_string();
        let mut a = m.derive("reply", Body::Json(json!({"ok": true})), envelope::JSON);
        a.headers
            .insert(knut_header::REPLY_STATUS.into(), status.into());
        a.headers
            .insert(REPLY_FOR.into(), m.correlation_id.to_string());
        b.send_to_queue(&reply_to, &a).await.unwrap();
        d.ack().await.unwrap();
    }

    #[tokio::test]
    async fn reply_routes_answer_with_the_reply() {
        let b = broker(&["ask"]).await;
        let shutdown = CancellationToken::new();
        let replies = Replies::start(Arc::new(b.clone()), shutdown.clone())
            .await
            .unwrap();
        let mut r = http_route(
            "ask",
            spec("/api/ask", "none", Some(BodyFormat::Json), None),
        );
        r.replies = true;
        let app = app(&b, vec![r], Some(replies));
        let responder = tokio::spawn(answer(b.clone(), "ask", "201"));
        let (status, headers, doc) = send(&app, post("/api/ask", "application/json", b"{}")).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(doc, json!({"ok": true}));
        responder.await.unwrap();
        shutdown.cancel();
    }

    #[tokio::test]
    async fn reply_timeout_is_504() {
        let b = broker(&["ask"]).await;
        let shutdown = CancellationToken::new();
        let replies = Replies::start(Arc::new(b.clone()), shutdown.clone())
            .await
            .unwrap();
        let mut s = spec("/api/ask", "none", None, None);
        s.reply_timeout = Some(Duration::from_millis(50));
        let mut r = http_route("ask", s);
        r.replies = true;
        let app = app(&b, vec![r], Some(replies.clone()));
        let (status, headers, doc) = send(&app, post("/api/ask", "text/plain", b"q")).await;
        assert_problem(status, &headers, &doc, 504, "reply-timeout");
        // The message was accepted, and the wait was forgotten.
        assert_eq!(b.queue_depth(&work_queue("ask")).await.unwrap(), 1);
        assert!(replies.is_idle());
        shutdown.cancel();
    }

    #[tokio::test]
    async fn reply_route_without_reply_queue_refuses_before_accepting() {
        let b = broker(&["ask"]).await;
        let mut r = http_route("ask", spec("/api/ask", "none", None, None));
        r.replies = true;
        let app = app(&b, vec![r], None);
        let (status, headers, doc) = send(&app, post("/api/ask", "text/plain", b"q")).await;
        assert_problem(status, &headers, &doc, 500, "replies-not-configured");
        assert_eq!(b.queue_depth(&work_queue("ask")).await.unwrap(), 0);
    }

    // STUB-DEPENDENT: the codec in this tree is a stub whose `xml_to_json` accepts anything.
    // Un-ignore after the codec branch is merged.
    #[tokio::test]
    async fn xml_with_doctype_is_400() {
        let b = broker(&["x"]).await;
        let app = app(
            &b,
            vec![http_route(
                "x",
                spec("/api/x", "none", Some(BodyFormat::Xml), None),
            )],
            None,
        );
        let body: &'static [u8] =
            b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>";
        let (status, headers, doc) = send(&app, post("/api/x", "application/xml", body)).await;
        assert_problem(status, &headers, &doc, 400, "invalid-xml");
        let (status, _, _) = send(&app, post("/api/x", "application/xml", b"<a><b></a>")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(b.queue_depth(&work_queue("x")).await.unwrap(), 0);
    }

    // STUB-DEPENDENT: the schema registry in this tree is a stub that accepts everything.
    // Un-ignore after the expr/schema branch is merged.
    #[tokio::test]
    async fn schema_violations_are_422_with_every_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pc.v1.json"),
            serde_json::to_vec(&json!({
                "type": "object",
                "required": ["kind", "student"],
                "properties": {
                    "kind": {"enum": ["start", "end"]},
                    "student": {"type": "object", "properties": {"civicNo": {"type": "string", "format": "personnummer"}}}
                }
            }))
            .unwrap(),
        )
        .unwrap();
        let schemas = SchemaRegistry::load(dir.path())
            .map_err(|_| "load")
            .unwrap();
        let b = broker(&["pc"]).await;
        let app = router(
            vec![http_route(
                "pc",
                spec("/api/pc", "none", Some(BodyFormat::Json), Some("pc.v1")),
            )],
            settings(),
            Arc::new(schemas),
            Ingress::new(Arc::new(b.clone())),
            None,
            json!({}),
        );
        // Fictional personnummer with a wrong check digit (2011-05-06).
        let body: &'static [u8] =
            br#"{"kind": "sideways", "student": {"civicNo": "201105061230"}}"#;
        let (status, headers, doc) = send(&app, post("/api/pc", "application/json", body)).await;
        assert_problem(status, &headers, &doc, 422, "schema-violation");
        let pointers: Vec<&str> = doc["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(
            pointers.contains(&"/kind") && pointers.contains(&"/student/civicNo"),
            "{doc}"
        );
        assert!(!doc.to_string().contains("201105061230"));
        assert_eq!(b.queue_depth(&work_queue("pc")).await.unwrap(), 0);
    }
}
