//! The other municipality of an IKE case (interkommunal ersättning): a Sundsvall resident
//! studies adult education there, and it is told when Sundsvall, the home municipality,
//! approves paying for it (`homeMunicipality` is the one that pays). No public contract
//! exists; a small REST API:
//!
//! | call | answer |
//! |---|---|
//! | `POST /ike-notices` | `{student: {civicNo}, homeMunicipality, course, period: {start, end}, decisionReference}` → 202 `{id, received}`; the same `Idempotency-Key` again → 200 and the same notice; 400 problem naming what is missing |
//! | `GET /ike-notices/{id}` | the notice; 404 when unknown |
//! | `GET /ike-notices` | `{"data": [notice]}` |

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::{idempotency_key, json_object, not_an_object, problem};
use super::{World, lock};

/// The notices received, in order, with the idempotency key each came with.
#[derive(Debug, Default)]
pub struct Notices {
    list: Vec<(Option<String>, Value)>,
}

/// The routes, relative to `/sandbox/hemkommun`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/ike-notices", get(list).post(receive))
        .route("/ike-notices/{id}", get(show))
        .with_state(world)
}

async fn receive(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(req) = json_object(&body) else {
        return not_an_object("an IKE notice");
    };
    let mut gone = Vec::new();
    if req["student"]["civicNo"].as_str().is_none_or(str::is_empty) {
        gone.push("student.civicNo");
    }
    for f in ["homeMunicipality", "course", "decisionReference"] {
        if req[f].as_str().is_none_or(str::is_empty) {
            gone.push(f);
        }
    }
    if req["period"]["start"].as_str().is_none() {
        gone.push("period.start");
    }
    if !gone.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("missing: {}", gone.join(", ")),
        );
    }
    let key = idempotency_key(&headers);
    let mut n = lock(&w.ike_notices);
    if key.is_some()
        && let Some((_, existing)) = n.list.iter().find(|(k, _)| *k == key)
    {
        return (StatusCode::OK, Json(existing.clone())).into_response();
    }
    let mut notice = req;
    notice["id"] = json!(Uuid::now_v7());
    notice["received"] = json!(chrono::Local::now().to_rfc3339());
    n.list.push((key, notice.clone()));
    (StatusCode::ACCEPTED, Json(notice)).into_response()
}

async fn show(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    match lock(&w.ike_notices)
        .list
        .iter()
        .find(|(_, v)| v["id"] == id.as_str())
    {
        Some((_, v)) => Json(v.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no notice {id}"),
        ),
    }
}

async fn list(State(w): State<Arc<World>>) -> Response {
    let data: Vec<Value> = lock(&w.ike_notices)
        .list
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    Json(json!({ "data": data })).into_response()
}
