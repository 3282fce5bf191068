//! The messaging service (kommunikationsmodul), Sundsvall's Messaging API (contract v7 in
//! `fixtures/messaging`), the calls the flows use:
//!
//! | call | answer |
//! |---|---|
//! | `POST /{municipalityId}/email` | 201 `MessageResult`; 400 problem without `emailAddress` or `subject` |
//! | `POST /{municipalityId}/sms` | 201; needs `mobileNumber` (`+46…` or `07…`) and `message` |
//! | `POST /{municipalityId}/webmessage` | 201; needs `party` and `message` |
//! | `POST /{municipalityId}/letter` | 201; needs `party`, `subject`, `department`, `attachments` |
//! | `GET /{municipalityId}/status/messages/{messageId}` | the `MessageResult`; 404 problem when unknown |
//!
//! Every message is "delivered" at once (`status: SENT`); the inbox shows what was sent.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::problem;
use super::{World, lock};

/// The messages sent so far: (messageId, kind, result).
#[derive(Debug, Default)]
pub struct Messages {
    /// In order of sending.
    pub sent: Vec<(Uuid, &'static str, Value)>,
}

/// The routes, relative to `/sandbox/messaging`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/{municipality}/email", post(email))
        .route("/{municipality}/sms", post(sms))
        .route("/{municipality}/webmessage", post(webmessage))
        .route("/{municipality}/letter", post(letter))
        .route("/{municipality}/status/messages/{id}", get(status))
        .with_state(world)
}

fn send(w: &World, body: &[u8], kind: &'static str, required: &[&str]) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "the body must be a JSON object",
            );
        }
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| request.get(k).is_none_or(|v| v.is_null() || v == ""))
        .collect();
    if !missing.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Constraint Violation",
            format!("must not be blank: {}", missing.join(", ")),
        );
    }
    if kind == "SMS" {
        let number = request["mobileNumber"].as_str().unwrap_or_default();
        let digits = number.trim_start_matches('+');
        let ok = (number.starts_with("+46") || number.starts_with("07"))
            && digits.len() >= 10
            && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return problem(
                StatusCode::BAD_REQUEST,
                "Constraint Violation",
                "mobileNumber: must be a valid MSISDN (+46… or 07…)",
            );
        }
    }
    let id = Uuid::now_v7();
    let result = json!({
        "messageId": id,
        "deliveries": [{ "deliveryId": Uuid::now_v7(), "messageType": kind, "status": "SENT" }],
    });
    lock(&w.messages).sent.push((id, kind, result.clone()));
    (StatusCode::CREATED, Json(result)).into_response()
}

async fn email(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    send(&w, &body, "EMAIL", &["emailAddress", "subject"])
}

async fn sms(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    send(&w, &body, "SMS", &["mobileNumber", "message"])
}

async fn webmessage(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    send(&w, &body, "WEB_MESSAGE", &["party", "message"])
}

async fn letter(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    send(
        &w,
        &body,
        "LETTER",
        &["party", "subject", "department", "attachments"],
    )
}

async fn status(State(w): State<Arc<World>>, Path((_, id)): Path<(String, String)>) -> Response {
    let found = Uuid::parse_str(&id).ok().and_then(|id| {
        lock(&w.messages)
            .sent
            .iter()
            .find(|(m, _, _)| *m == id)
            .map(|(_, _, r)| r.clone())
    });
    match found {
        Some(r) => Json(r).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no message with id {id}"),
        ),
    }
}
