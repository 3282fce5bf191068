//! Ärendehantering: Sundsvall's case-data API (contract v13 in `fixtures/casedata`), the
//! part the flows use:
//!
//! | call | answer |
//! |---|---|
//! | `POST /{municipalityId}/{namespace}/errands` | 201, empty body, `Location: /{m}/{ns}/errands/{id}`; 400 problem without `caseType` |
//! | `GET /{municipalityId}/{namespace}/errands` | a page `{"content": [Errand], "totalElements", …}` |
//! | `GET /{municipalityId}/{namespace}/errands/{errandId}` | the `Errand` with `id`, `errandNumber`, `created`; 404 problem when unknown |
//! | `PATCH /{municipalityId}/{namespace}/errands/{errandId}` | 204; the given top-level fields replace the errand's |
//!
//! Errands are kept per municipality and namespace; ids count from 1.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::control::problem;
use super::{World, lock};

/// The errands received so far.
#[derive(Debug, Default)]
pub struct Errands {
    /// (municipality, namespace, errand) in order of creation.
    pub list: Vec<(String, String, Value)>,
}

/// The routes, relative to `/sandbox/casedata`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route(
            "/{municipality}/{namespace}/errands",
            get(list).post(create),
        )
        .route(
            "/{municipality}/{namespace}/errands/{id}",
            get(show).patch(update),
        )
        .with_state(world)
}

fn bad_request(detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_REQUEST, "Constraint Violation", detail)
}

fn not_found(id: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not Found",
        format!("Errand with id:'{id}' not found in namespace"),
    )
}

/// The body as a JSON object, or what is wrong with it.
fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the body must be a JSON object (an Errand)".into()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

async fn create(
    State(w): State<Arc<World>>,
    Path((municipality, namespace)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let mut errand = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    if !errand.get("caseType").is_some_and(Value::is_string) {
        return bad_request("caseType: must not be null");
    }
    let mut errands = lock(&w.errands);
    let id = errands.list.len() as u64 + 1;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    errand.insert("id".into(), json!(id));
    errand.insert(
        "errandNumber".into(),
        json!(format!("SKOL-{}-{id:06}", chrono::Utc::now().format("%Y"))),
    );
    errand.insert("municipalityId".into(), json!(municipality));
    errand.insert("namespace".into(), json!(namespace));
    errand.insert("created".into(), json!(now));
    errand.insert("updated".into(), json!(now));
    errands.list.push((
        municipality.clone(),
        namespace.clone(),
        Value::Object(errand),
    ));
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/{municipality}/{namespace}/errands/{id}"),
        )],
    )
        .into_response()
}

async fn list(
    State(w): State<Arc<World>>,
    Path((municipality, namespace)): Path<(String, String)>,
) -> Json<Value> {
    let errands = lock(&w.errands);
    let content: Vec<Value> = errands
        .list
        .iter()
        .filter(|(m, ns, _)| *m == municipality && *ns == namespace)
        .map(|(_, _, e)| e.clone())
        .collect();
    let n = content.len();
    Json(json!({
        "content": content,
        "totalElements": n,
        "totalPages": 1,
        "number": 0,
        "size": n,
    }))
}

fn find<'a>(
    errands: &'a mut Errands,
    municipality: &str,
    namespace: &str,
    id: &str,
) -> Option<&'a mut Value> {
    let wanted: u64 = id.parse().ok()?;
    errands
        .list
        .iter_mut()
        .find(|(m, ns, e)| m == municipality && ns == namespace && e["id"].as_u64() == Some(wanted))
        .map(|(_, _, e)| e)
}

async fn show(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
) -> Response {
    let mut errands = lock(&w.errands);
    match find(&mut errands, &municipality, &namespace, &id) {
        Some(e) => Json(e.clone()).into_response(),
        None => not_found(&id),
    }
}

async fn update(
    State(w): State<Arc<World>>,
    Path((municipality, namespace, id)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let patch = match object(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(why),
    };
    let mut errands = lock(&w.errands);
    let Some(Value::Object(errand)) = find(&mut errands, &municipality, &namespace, &id) else {
        return not_found(&id);
    };
    for (k, v) in patch {
        if !matches!(k.as_str(), "id" | "errandNumber" | "created") {
            errand.insert(k, v);
        }
    }
    errand.insert(
        "updated".into(),
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    StatusCode::NO_CONTENT.into_response()
}
