//! Skolvalsmodul, the school-choice module. No public contract exists; a small REST API
//! in SS 12000 terms (persons by civic number, school units by skolenhetskod):
//!
//! | call | answer |
//! |---|---|
//! | `POST /applications` | `{child: {civicNo}, guardians: [{civicNo}], schoolYear, startDate, choices: [{schoolUnitCode, rank}]}` → 201 `Application` (`id`, `status: RECEIVED`); the same `Idempotency-Key` again → 200 and the same application; 400 naming what is missing; 422 for a child or school unit the module does not know |
//! | `GET /applications/{id}` | the `Application`, with its `decision` once decided |
//! | `POST /applications/{id}/decision` | the module processes the application: the best-ranked choice with a free place is granted (`placedAt`), else it is rejected (`reason`) → 200 `Decision`; deciding again answers the same decision |
//! | `GET /decisions?after=<RFC 3339>` | `{"data": [Decision]}` decided after then, oldest first |
//! | `POST /_process` | the module's placement run: every application not yet decided is decided as above, in the order received → `{"decided": [Decision]}` |
//!
//! An application may carry a `reference` (e.g. `{errandId, errandNumber}` of its case);
//! its decision carries it back.
//!
//! Free places per school unit are seeded: Tallbackens friskola (38120002) is full.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::{idempotency_key, json_object, not_an_object, problem};
use super::{World, lock, read};

/// Applications and the places left per school unit.
#[derive(Debug)]
pub struct Module {
    applications: Vec<(Option<String>, Value)>,
    places: BTreeMap<String, u32>,
}

impl Default for Module {
    fn default() -> Self {
        Module {
            applications: Vec::new(),
            places: [
                ("38120001", 3),
                ("38120002", 0),
                ("38120003", 5),
                ("38120004", 2),
            ]
            .into_iter()
            .map(|(u, n)| (u.to_string(), n))
            .collect(),
        }
    }
}

/// The routes, relative to `/sandbox/skolval`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/applications", post(apply))
        .route("/applications/{id}", get(show))
        .route("/applications/{id}/decision", post(decide))
        .route("/decisions", get(decisions))
        .route("/_process", post(process))
        .with_state(world)
}

async fn apply(State(w): State<Arc<World>>, h: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(req) = json_object(&body) else {
        return not_an_object("a school-choice application");
    };
    let child = req["child"]["civicNo"].as_str().unwrap_or_default();
    let choices = req["choices"].as_array().cloned().unwrap_or_default();
    if child.is_empty() || choices.is_empty() || req["startDate"].as_str().is_none() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "child.civicNo, startDate and at least one choice are required",
        );
    }
    {
        let pop = read(&w.population);
        if pop.person_by_civic_no(child).is_none() {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unknown child",
                "the child is not in the population register",
            );
        }
        for c in &choices {
            let code = c["schoolUnitCode"].as_str().unwrap_or_default();
            if pop.unit(code).is_none() {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Unknown school unit",
                    format!("no school unit `{code}`"),
                );
            }
        }
    }
    let key = idempotency_key(&h);
    let mut m = lock(&w.skolval);
    if key.is_some()
        && let Some((_, a)) = m.applications.iter().find(|(k, _)| *k == key)
    {
        return (StatusCode::OK, Json(a.clone())).into_response();
    }
    let mut app = req;
    app["id"] = json!(Uuid::now_v7());
    app["status"] = json!("RECEIVED");
    app["received"] = json!(chrono::Local::now().to_rfc3339());
    m.applications.push((key, app.clone()));
    (StatusCode::CREATED, Json(app)).into_response()
}

async fn show(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    match lock(&w.skolval)
        .applications
        .iter()
        .find(|(_, a)| a["id"] == id.as_str())
    {
        Some((_, a)) => Json(a.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no application {id}"),
        ),
    }
}

async fn decide(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    let mut m = lock(&w.skolval);
    let Module {
        applications,
        places,
    } = &mut *m;
    let Some((_, app)) = applications
        .iter_mut()
        .find(|(_, a)| a["id"] == id.as_str())
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no application {id}"),
        );
    };
    Json(decide_one(app, places)).into_response()
}

async fn process(State(w): State<Arc<World>>) -> Response {
    let mut m = lock(&w.skolval);
    let Module {
        applications,
        places,
    } = &mut *m;
    let decided: Vec<Value> = applications
        .iter_mut()
        .filter(|(_, a)| a["decision"].is_null())
        .map(|(_, a)| decide_one(a, places))
        .collect();
    Json(json!({ "decided": decided })).into_response()
}

/// Decide `app` (once: a decided application keeps its decision): the best-ranked choice
/// with a free place, else a rejection.
fn decide_one(app: &mut Value, places: &mut BTreeMap<String, u32>) -> Value {
    if !app["decision"].is_null() {
        return app["decision"].clone();
    }
    let id = app["id"].clone();
    let mut choices = app["choices"].as_array().cloned().unwrap_or_default();
    choices.sort_by_key(|c| c["rank"].as_u64().unwrap_or(u64::MAX));
    let granted = choices.iter().find_map(|c| {
        let code = c["schoolUnitCode"].as_str()?;
        let left = places.get_mut(code)?;
        (*left > 0).then(|| {
            *left -= 1;
            code.to_string()
        })
    });
    let decision = json!({
        "applicationId": id, "child": app["child"], "reference": app["reference"],
        "outcome": if granted.is_some() { "PLACED" } else { "REJECTED" },
        "placedAt": granted.as_ref().map(|c| json!({"schoolUnitCode": c})),
        "startDate": app["startDate"],
        "reason": if granted.is_some() { Value::Null } else { json!("Inga lediga platser på de sökta skolorna") },
        "decided": chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
    });
    app["decision"] = decision.clone();
    app["status"] = json!("DECIDED");
    decision
}

#[derive(Deserialize)]
struct After {
    after: Option<String>,
}

async fn decisions(State(w): State<Arc<World>>, Query(q): Query<After>) -> Response {
    let data: Vec<Value> = lock(&w.skolval)
        .applications
        .iter()
        .map(|(_, a)| &a["decision"])
        .filter(|d| !d.is_null())
        .filter(|d| {
            q.after
                .as_deref()
                .is_none_or(|t| d["decided"].as_str().is_some_and(|x| x > t))
        })
        .cloned()
        .collect();
    Json(json!({ "data": data })).into_response()
}
