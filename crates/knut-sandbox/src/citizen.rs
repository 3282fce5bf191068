//! Metakatalogen, Sundsvall's "Citizen" API v3 (contract in `fixtures/citizen`), the calls
//! the flows use:
//!
//! | call | answer |
//! |---|---|
//! | `GET /api/v3/citizen/{municipalityId}/{personId}[?ShowClassified=true]` | `CitizenExtended`; 204 when unknown |
//! | `POST /api/v3/citizen/{municipalityId}/batch[?ShowClassified=true]` | `[CitizenExtended]` for a JSON array of personIds (unknown ones left out) |
//! | `GET /api/v3/citizen/{municipalityId}/{personNumber}/guid` | the personId as a JSON string; 204 when unknown |
//! | `GET /api/v3/citizen/{municipalityId}/changedaddress?changedDateFrom=<date-time>` | `[CitizenWithChangedAddress]`: everyone registered at a new address since then, with `custodianFor` (the children, their `typeOfSchool`) |
//!
//! `classified` is `"J"` for skyddad folkbokföring, else `"N"`. A classified person's
//! addresses are left out unless `ShowClassified=true` — the only place in the sandbox
//! where a protected address can be read, so that tests can prove it goes no further.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::problem;
use super::seed::{Person, Population};
use super::{World, read};

/// The routes, relative to `/sandbox/citizen`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/api/v3/citizen/{municipality}/batch", post(batch))
        .route(
            "/api/v3/citizen/{municipality}/changedaddress",
            get(changed),
        )
        .route("/api/v3/citizen/{municipality}/{person}", get(citizen))
        .route("/api/v3/citizen/{municipality}/{person}/guid", get(guid))
        .with_state(world)
}

#[derive(Deserialize, Default)]
struct Classified {
    #[serde(rename = "ShowClassified", default)]
    show: bool,
}

fn addresses(p: &Person, show_classified: bool) -> Value {
    if p.protected && !show_classified {
        return json!([]);
    }
    let a = &p.address;
    json!([{
        "status": "Current",
        "nrDate": format!("{}T00:00:00", a.since),
        "address": a.street,
        "postalCode": a.postal_code,
        "city": a.city.to_uppercase(),
        "county": "22",
        "municipality": a.municipality,
        "country": "SVERIGE",
        "emigrated": false,
        "addressType": "POPULATION_REGISTRATION_ADDRESS",
        "xCoordLocal": a.x,
        "yCoordLocal": a.y,
    }])
}

fn classified(p: &Person) -> &'static str {
    if p.protected { "J" } else { "N" }
}

fn extended(p: &Person, show_classified: bool) -> Value {
    json!({
        "personId": p.id,
        "givenname": p.given_name,
        "lastname": p.family_name,
        "gender": if p.gender == "F" { "K" } else { "M" },
        "civilStatus": null,
        "nrDate": format!("{}T00:00:00", p.address.since),
        "classified": classified(p),
        "protectedNR": classified(p),
        "addresses": addresses(p, show_classified),
    })
}

/// The SS 12000 school type of a child's current placements (`GR` before `FTH`).
fn type_of_school(pop: &Population, child: Uuid) -> Option<String> {
    pop.placements
        .iter()
        .filter(|p| p.child == child && p.end_date.is_none())
        .map(|p| p.school_type.clone())
        .min_by_key(|t| if t == "FTH" { 1 } else { 0 })
}

async fn citizen(
    State(w): State<Arc<World>>,
    Path((_, person)): Path<(String, String)>,
    Query(q): Query<Classified>,
) -> Response {
    let pop = read(&w.population);
    match Uuid::parse_str(&person).ok().and_then(|id| pop.person(id)) {
        Some(p) => Json(extended(p, q.show)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn batch(
    State(w): State<Arc<World>>,
    Query(q): Query<Classified>,
    body: axum::body::Bytes,
) -> Response {
    let ids: Vec<Uuid> = match serde_json::from_slice(&body) {
        Ok(ids) => ids,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!("expected a JSON array of personIds (UUIDs): {e}"),
            );
        }
    };
    let pop = read(&w.population);
    let found: Vec<Value> = ids
        .iter()
        .filter_map(|id| pop.person(*id))
        .map(|p| extended(p, q.show))
        .collect();
    Json(found).into_response()
}

async fn guid(State(w): State<Arc<World>>, Path((_, pnr)): Path<(String, String)>) -> Response {
    let pop = read(&w.population);
    match pop.person_by_civic_no(&pnr) {
        Some(p) => Json(json!(p.id)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Since {
    changed_date_from: Option<String>,
}

async fn changed(State(w): State<Arc<World>>, Query(q): Query<Since>) -> Response {
    // The contract's changedDateFrom is a date-time (RFC 3339); a move is a date, taken
    // from the date-time's own day.
    let Some(from) = q
        .changed_date_from
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.date_naive())
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "changedDateFrom is required, as a date-time with its offset (2026-11-02T00:00:00+01:00)",
        );
    };
    let pop = read(&w.population);
    let moved: Vec<Value> = pop
        .persons
        .iter()
        .filter(|p| p.address.since >= from)
        .map(|p| {
            let custodian_for: Vec<Value> = pop
                .children_of(p.id)
                .map(|c| {
                    json!({
                        "personnumber": c.civic_no,
                        "typeOfSchool": type_of_school(&pop, c.id),
                        "unRegCode": null,
                        "unRegDate": null,
                    })
                })
                .collect();
            json!({
                "personId": p.id,
                "personNumber": p.civic_no,
                "classified": classified(p),
                "unRegCode": null,
                "unRegDate": null,
                "gender": if p.gender == "F" { "K" } else { "M" },
                "givenname": p.given_name,
                "lastname": p.family_name,
                "typeOfSchool": type_of_school(&pop, p.id),
                "custodianFor": custodian_for,
                "addresses": addresses(p, false),
            })
        })
        .collect();
    if moved.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(moved).into_response()
}
