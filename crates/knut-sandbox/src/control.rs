//! What makes a simulated system inspectable and breakable, the same for every system:
//!
//! - `GET /sandbox/<system>/_inbox` lists the calls it received (method, path with query,
//!   headers, body, time) as JSON, oldest first; `DELETE` clears it. The inbox keeps the
//!   last [`INBOX_CAPACITY`] calls.
//! - `POST /sandbox/<system>/_fault` with `{"status":503,"count":5,"delay_ms":0}` makes its
//!   next `count` calls wait `delay_ms` and then fail with `status` (a problem+json body);
//!   `status` 0 only delays. `DELETE /sandbox/<system>/_fault` ends the fault at once.
//!   `GET` shows what is left of it.
//!
//! Calls that a fault answers are recorded in the inbox too (with `"fault": true`), so a
//! test can count the attempts a route made. Each call carries the answer the system gave
//! (status, content type, body), so a test can hold the simulation's answers to the
//! system's contract.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How many calls an inbox keeps (the oldest are dropped first).
pub const INBOX_CAPACITY: usize = 1_000;
/// The largest request body a simulation reads.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// One call a simulated system received.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path below the system (`/placements`), with the query string.
    pub path: String,
    /// Request headers (lower-case names; the last value of repeated headers).
    pub headers: serde_json::Map<String, Value>,
    /// The body: JSON when it parses as JSON, else text when it is UTF-8, else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The body's size in bytes.
    pub size: usize,
    /// When it arrived (RFC 3339).
    pub time: String,
    /// True when an injected fault answered it.
    pub fault: bool,
    /// What the system answered (absent while the call is being answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// The call's number in this system (1, 2, …), to attach its answer.
    #[serde(skip)]
    seq: u64,
}

/// The answer a simulated system gave to a call.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The body: JSON when it parses as JSON, else text when it is UTF-8 (or ISO-8859-1 XML,
    /// decoded), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// An injected fault: the next `count` calls wait `delay_ms`, then answer `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The status to answer (400–599), or 0 to only delay.
    pub status: u16,
    /// How many calls it affects.
    pub count: u32,
    /// How long each affected call waits first.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The inbox and the fault of one simulated system.
#[derive(Debug, Default)]
pub struct Controls {
    inbox: Mutex<VecDeque<Call>>,
    fault: Mutex<Option<Fault>>,
    seq: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controls {
    /// The calls received, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inbox).iter().cloned().collect()
    }

    /// Record a call as it arrives; its number attaches the answer later.
    fn record(&self, mut call: Call) -> u64 {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        call.seq = seq;
        let mut inbox = lock(&self.inbox);
        if inbox.len() == INBOX_CAPACITY {
            inbox.pop_front();
        }
        inbox.push_back(call);
        seq
    }

    /// Attach the answer to call `seq` (if the inbox still holds it).
    fn answered(&self, seq: u64, answer: Answer) {
        let mut inbox = lock(&self.inbox);
        if let Some(call) = inbox.iter_mut().rev().find(|c| c.seq == seq) {
            call.answer = Some(answer);
        }
    }

    /// Take one call's share of the fault, if one is set.
    fn take_fault(&self) -> Option<Fault> {
        let mut slot = lock(&self.fault);
        let fault = (*slot)?;
        if fault.count <= 1 {
            *slot = None;
        } else {
            *slot = Some(Fault {
                count: fault.count - 1,
                ..fault
            });
        }
        (fault.count > 0).then_some(fault)
    }
}

/// The request body as a JSON object, if it is one (else answer [`not_an_object`]).
pub fn json_object(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok().filter(Value::is_object)
}

/// The 400 problem for a body that is not a JSON object; `what` says what it should be.
pub fn not_an_object(what: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Bad Request",
        format!("the body must be a JSON object: {what}"),
    )
}

/// The request's `Idempotency-Key` (knut sends the message id): a system that sees the same
/// key again answers what it answered the first time instead of doing it twice.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A sandbox problem+json answer.
pub fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// `api` (the system's own routes) with the inbox and fault controls of `controls`.
pub fn with_controls(api: Router, controls: Arc<Controls>) -> Router {
    let api = api.layer(middleware::from_fn_with_state(controls.clone(), record));
    Router::new()
        .route("/_inbox", get(inbox).delete(clear_inbox))
        .route(
            "/_fault",
            get(show_fault).post(set_fault).delete(clear_fault),
        )
        .with_state(controls)
        .merge(api)
}

async fn inbox(State(c): State<Arc<Controls>>) -> Json<Vec<Call>> {
    Json(c.calls())
}

async fn clear_inbox(State(c): State<Arc<Controls>>) -> StatusCode {
    lock(&c.inbox).clear();
    StatusCode::NO_CONTENT
}

async fn show_fault(State(c): State<Arc<Controls>>) -> Json<Value> {
    Json(json!({ "fault": *lock(&c.fault) }))
}

async fn clear_fault(State(c): State<Arc<Controls>>) -> StatusCode {
    *lock(&c.fault) = None;
    StatusCode::NO_CONTENT
}

async fn set_fault(State(c): State<Arc<Controls>>, body: axum::body::Bytes) -> Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Not a fault",
                format!("expected {{\"status\": 503, \"count\": 5, \"delay_ms\": 0}}: {e}"),
            );
        }
    };
    if fault.status != 0 && !(400..=599).contains(&fault.status) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not a fault",
            "status must be 400–599 (or 0 to only delay)",
        );
    }
    *lock(&c.fault) = Some(fault);
    (StatusCode::OK, Json(json!({ "fault": fault }))).into_response()
}

/// Record the call, then answer it with the fault or hand it to the system.
async fn record(State(c): State<Arc<Controls>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Body too large",
                format!("the sandbox reads bodies up to {MAX_BODY} bytes"),
            );
        }
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let received = body_value(&bytes);
    let fault = c.take_fault();
    let seq = c.record(Call {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        headers,
        body: received,
        size: bytes.len(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        fault: fault.is_some_and(|f| f.status != 0),
        answer: None,
        seq: 0,
    });
    if let Some(f) = fault {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        if let Ok(status) = StatusCode::from_u16(f.status)
            && f.status != 0
        {
            return problem(
                status,
                "Injected fault",
                "the sandbox was told to fail this call (POST …/_fault)",
            );
        }
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Answer too large",
            format!("the sandbox answers up to {MAX_BODY} bytes"),
        );
    };
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = if content_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_lowercase().contains("iso-8859-1"))
    {
        // ISO-8859-1: every byte is the code point of the same number.
        Some(Value::from(
            bytes.iter().map(|&b| char::from(b)).collect::<String>(),
        ))
    } else {
        body_value(&bytes)
    };
    c.answered(
        seq,
        Answer {
            status: parts.status.as_u16(),
            content_type,
            body: text,
        },
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// A body as the inbox shows it: JSON when it parses as JSON, else UTF-8 text, else absent.
fn body_value(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .or_else(|| std::str::from_utf8(bytes).ok().map(Value::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_lasts_count_calls() {
        let c = Controls::default();
        *lock(&c.fault) = Some(Fault {
            status: 503,
            count: 2,
            delay_ms: 0,
        });
        assert!(c.take_fault().is_some());
        assert!(c.take_fault().is_some());
        assert!(c.take_fault().is_none());
    }

    #[test]
    fn the_inbox_is_bounded() {
        let c = Controls::default();
        for i in 0..INBOX_CAPACITY + 5 {
            c.record(Call {
                method: "GET".into(),
                path: format!("/{i}"),
                headers: serde_json::Map::new(),
                body: None,
                size: 0,
                time: String::new(),
                fault: false,
                answer: None,
                seq: 0,
            });
        }
        let calls = c.calls();
        assert_eq!(calls.len(), INBOX_CAPACITY);
        assert_eq!(calls[0].path, "/5");
    }
}
