//! The admin HTTP server: liveness, readiness, Prometheus metrics and the admin API.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 {"status":"ok"}` while the process runs |
//! | `GET /readyz` | `200` once routes are started and the broker is connected, `503` before, with a JSON body naming what is missing |
//! | `GET /metrics` | Prometheus text format (see [`metrics`]) |
//! | `GET /api/routes` | the running routes as a JSON list of [`RouteInfo`] |
//! | `POST /api/routes/{id}/messages` | hand a message to a route (`knut send`; [`crate::runtime::send_router`]) |
//! | `/api/routes/{id}/dlq…` | the route's dead letters: list, show, replay, discard ([`dlq`], `knut dlq`) |
//! | `GET /api/trace/{id}` | a message's journey from the journal, by correlation id or business key ([`trace`], `knut trace`) |
//! | `/console…` | the web console: routes, journeys, dead letters, the sandbox ([`console`]) |
//!
//! Anything else is answered with an RFC 9457 `application/problem+json` body.
//! The admin port is meant for operators and scrapers on the internal network (it binds
//! to `127.0.0.1:9090` by default).

pub mod auth;
pub mod console;
pub mod dead_letters;
pub mod dlq;
pub mod trace;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the admin server reads to answer.
#[derive(Clone)]
pub struct AdminState {
    /// Set to `true` by the runtime once every route is started.
    pub ready: Arc<AtomicBool>,
    /// Whether the broker connection is up right now.
    pub broker_connected: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The running routes, for `/api/routes`.
    pub routes: Arc<RwLock<Vec<RouteInfo>>>,
    /// Renders `/metrics` (from [`crate::telemetry::metrics::install`]).
    pub metrics: PrometheusHandle,
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .field("broker_connected", &(self.broker_connected)())
            .finish_non_exhaustive()
    }
}

/// One running route as `/api/routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The route id.
    pub id: String,
    /// Its source, e.g. `http POST /api/v1/placement-changes`.
    pub from: String,
    /// The kinds of its steps, in order (`validate`, `transform`, …).
    pub steps: Vec<String>,
    /// Its work queue.
    pub queue: String,
    /// Its dead-letter queue.
    pub dead_letter_queue: String,
    /// The partition queues of an ordered route (`ordered_by`), in partition order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_queues: Vec<String>,
}

/// The admin endpoints as a router (with its state applied).
pub fn router(state: AdminState) -> Router {
    router_with(state, true)
}

/// The admin endpoints, `/metrics` only `with_metrics` (the external plane's listener of a
/// process that runs both planes leaves it out: the recorder holds the internal plane's
/// names too).
pub fn router_with(state: AdminState, with_metrics: bool) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if with_metrics {
        r = r.route("/metrics", get(metrics_text));
    }
    r.route("/api/routes", get(routes))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves the admin endpoints on `bind` until `shutdown` completes.
pub async fn serve(
    bind: SocketAddr,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "admin server cannot listen on {bind}: {e}; change admin.bind or free the port"
            ),
        )
    })?;
    tracing::info!(%bind, "admin server listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let routes_started = state.ready.load(Ordering::Acquire);
    let broker_connected = (state.broker_connected)();
    let mut missing = Vec::new();
    if !routes_started {
        missing.push("routes_started");
    }
    if !broker_connected {
        missing.push("broker_connected");
    }
    let ready = missing.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "routes_started": routes_started,
        "broker_connected": broker_connected,
        "missing": missing,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn routes(State(state): State<AdminState>) -> Response {
    let routes = match state.routes.read() {
        Ok(routes) => routes.clone(),
        // A writer panicked mid-update; the list is still the best we have.
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    axum::Json(routes).into_response()
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not Found",
        "There is no admin endpoint at this path. The admin endpoints are GET /healthz, \
         /readyz, /metrics and /api/routes; POST /api/routes/{id}/messages; and the dead \
         letters under /api/routes/{id}/dlq.",
    )
}

pub(crate) async fn method_not_allowed() -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        "This admin endpoint does not answer this method: health, readiness, metrics and \
         the route list answer GET; see the admin API in docs/operations.md for the others.",
    )
}

/// An RFC 9457 problem response.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use std::sync::atomic::AtomicBool;
    use tower::ServiceExt;

    fn state(broker: Arc<AtomicBool>) -> AdminState {
        AdminState {
            ready: Arc::new(AtomicBool::new(false)),
            broker_connected: Arc::new(move || broker.load(Ordering::Relaxed)),
            routes: Arc::new(RwLock::new(Vec::new())),
            metrics: metrics::install(),
        }
    }

    async fn get(
        state: &AdminState,
        method: &str,
        path: &str,
    ) -> (StatusCode, String, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = router(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, ctype, json)
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        let s = state(Arc::new(AtomicBool::new(false)));
        let (status, ctype, body) = get(&s, "GET", "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ctype.starts_with("application/json"));
        assert_eq!(body, json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn readyz_flips_when_routes_started_and_broker_connected() {
        let broker = Arc::new(AtomicBool::new(false));
        let s = state(broker.clone());

        let (status, _, body) = get(&s, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body["missing"],
            json!(["routes_started", "broker_connected"])
        );

        s.ready.store(true, Ordering::Release);
        let (status, _, body) = get(&s, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["missing"], json!(["broker_connected"]));

        broker.store(true, Ordering::Relaxed);
        let (status, _, body) = get(&s, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
        assert_eq!(body["missing"], json!([]));

        // Losing the broker makes the instance unready again.
        broker.store(false, Ordering::Relaxed);
        let (status, _, _) = get(&s, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_endpoint_renders_recorded_metrics() {
        let s = state(Arc::new(AtomicBool::new(true)));
        metrics::message_in("admin-metrics-test");
        metrics::step_duration(
            "admin-metrics-test",
            "validate",
            std::time::Duration::from_millis(2),
        );
        let (status, ctype, body) = get(&s, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        let text = body.as_str().unwrap();
        assert!(text.contains("# HELP knut_messages_in_total"), "{text}");
        assert!(
            text.contains("knut_messages_in_total{route=\"admin-metrics-test\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "knut_step_duration_seconds_bucket{route=\"admin-metrics-test\",step=\"validate\""
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn routes_lists_the_running_routes() {
        let s = state(Arc::new(AtomicBool::new(true)));
        let info = RouteInfo {
            id: "placement-change".into(),
            from: "http POST /api/v1/placement-changes".into(),
            steps: vec!["validate".into(), "to".into()],
            queue: "route.placement-change".into(),
            dead_letter_queue: "route.placement-change.dlq".into(),
            partition_queues: vec![],
        };
        s.routes.write().unwrap().push(info.clone());
        let (status, _, body) = get(&s, "GET", "/api/routes").await;
        assert_eq!(status, StatusCode::OK);
        let list: Vec<RouteInfo> = serde_json::from_value(body).unwrap();
        assert_eq!(list, vec![info]);
    }

    #[tokio::test]
    async fn unknown_path_is_problem_json_404() {
        let s = state(Arc::new(AtomicBool::new(true)));
        let (status, ctype, body) = get(&s, "GET", "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(body["status"], 404);
        assert_eq!(body["title"], "Not Found");
        assert_eq!(body["type"], "about:blank");
        assert!(body["detail"].as_str().unwrap().contains("/healthz"));
    }

    #[tokio::test]
    async fn wrong_method_is_problem_json_405() {
        let s = state(Arc::new(AtomicBool::new(true)));
        let (status, ctype, body) = get(&s, "POST", "/healthz").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(body["status"], 405);
    }

    #[tokio::test]
    async fn serve_answers_and_shuts_down() {
        let s = state(Arc::new(AtomicBool::new(true)));
        // Find a free port, then serve on it.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(addr, s, async {
            let _ = rx.await;
        }));
        let mut answered = false;
        for _ in 0..50 {
            if let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = String::new();
                conn.read_to_string(&mut out).await.unwrap();
                assert!(out.starts_with("HTTP/1.1 200"), "{out}");
                answered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(answered);
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn serve_reports_a_taken_port() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let s = state(Arc::new(AtomicBool::new(true)));
        let err = serve(addr, s, async {}).await.unwrap_err();
        assert!(err.to_string().contains("admin.bind"), "{err}");
    }
}
