//! Diarium: the registry of public documents. A document (an application, a decision) is
//! registered and gets a diarienummer, `BUN 2026/00042` (the board, the year, a running
//! number per year). No public contract exists; this is a small REST API:
//!
//! | call | answer |
//! |---|---|
//! | `POST /registrations` | `{title, documentType, caseReference?, parties: [{civicNo \| organisationNumber, role}], confidential?}` → 201 `Registration` with `diarienummer`; the same `Idempotency-Key` again → 200 and the same registration; 400 problem naming a missing field |
//! | `GET /registrations/{year}/{number}` | the `Registration` with its documents; 404 when unknown |
//! | `POST /registrations/{year}/{number}/documents` | `{title, documentType}` → 201; the document is added to the registration |
//!
//! A registration with a party with skyddad identitet is registered as `confidential`
//! (sekretessmarkerad), whatever the request said.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::control::{idempotency_key, json_object, not_an_object, problem};
use super::{World, lock, read};

/// The board whose registry this is (barn- och utbildningsnämnden).
pub const SERIES: &str = "BUN";

/// Registrations by (year, number).
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<(i32, u32), Value>,
    by_key: BTreeMap<String, (i32, u32)>,
}

/// The routes, relative to `/sandbox/diarium`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/registrations", post(register))
        .route("/registrations/{year}/{number}", get(show))
        .route(
            "/registrations/{year}/{number}/documents",
            post(add_document),
        )
        .with_state(world)
}

fn missing(v: &Value, fields: &[&str]) -> Option<Response> {
    let gone: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| v.get(f).and_then(Value::as_str).is_none_or(str::is_empty))
        .collect();
    (!gone.is_empty()).then(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("missing: {}", gone.join(", ")),
        )
    })
}

async fn register(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(req) = json_object(&body) else {
        return not_an_object("a registration");
    };
    if let Some(r) = missing(&req, &["title", "documentType"]) {
        return r;
    }
    let parties = req.get("parties").cloned().unwrap_or(json!([]));
    if !parties.is_array() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "parties must be an array",
        );
    }
    let protected = parties.as_array().into_iter().flatten().any(|p| {
        p["civicNo"]
            .as_str()
            .and_then(|c| {
                read(&w.population)
                    .person_by_civic_no(c)
                    .map(|p| p.protected)
            })
            .unwrap_or(false)
    });
    let key = idempotency_key(&headers);
    let mut reg = lock(&w.diarium);
    if let Some(k) = &key
        && let Some(at) = reg.by_key.get(k)
        && let Some(existing) = reg.entries.get(at)
    {
        return (StatusCode::OK, Json(existing.clone())).into_response();
    }
    let now = chrono::Local::now();
    let year: i32 = now.format("%Y").to_string().parse().unwrap_or(2026);
    let number = reg
        .entries
        .keys()
        .filter(|(y, _)| *y == year)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(41)
        + 1;
    let entry = json!({
        "diarienummer": format!("{SERIES} {year}/{number:05}"),
        "year": year, "number": number,
        "title": req["title"], "documentType": req["documentType"],
        "caseReference": req.get("caseReference").cloned().unwrap_or(Value::Null),
        "parties": parties,
        "confidential": protected || req["confidential"] == true,
        "registered": now.to_rfc3339(),
        "documents": [{"title": req["title"], "documentType": req["documentType"]}],
    });
    reg.entries.insert((year, number), entry.clone());
    if let Some(k) = key {
        reg.by_key.insert(k, (year, number));
    }
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/registrations/{year}/{number}"))],
        Json(entry),
    )
        .into_response()
}

async fn show(State(w): State<Arc<World>>, Path((year, number)): Path<(i32, u32)>) -> Response {
    match lock(&w.diarium).entries.get(&(year, number)) {
        Some(e) => Json(e.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no registration {SERIES} {year}/{number:05}"),
        ),
    }
}

async fn add_document(
    State(w): State<Arc<World>>,
    Path((year, number)): Path<(i32, u32)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(req) = json_object(&body) else {
        return not_an_object("a registration");
    };
    if let Some(r) = missing(&req, &["title", "documentType"]) {
        return r;
    }
    let mut reg = lock(&w.diarium);
    let Some(entry) = reg.entries.get_mut(&(year, number)) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no registration {SERIES} {year}/{number:05}"),
        );
    };
    if let Some(docs) = entry["documents"].as_array_mut() {
        docs.push(json!({"title": req["title"], "documentType": req["documentType"]}));
    }
    (StatusCode::CREATED, Json(entry.clone())).into_response()
}
