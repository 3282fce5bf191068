//! Elevregister (IST Admin) in SS 12000 terms. No public contract of IST's own API exists,
//! so this is a small REST API in SS 12000:2020 shapes (`Person`, `Organisation`,
//! `Placement`, lists as `{"data": [...]}`):
//!
//! | call | answer |
//! |---|---|
//! | `GET /persons?civicNo=YYYYMMDDNNNN` | `{"data":[Person]}` (empty when unknown) |
//! | `GET /persons/{id}` | `Person` with `responsibles`; 404 problem when unknown |
//! | `GET /organisations[?schoolUnitCode=]` | `{"data":[Organisation]}` (school units with `schoolUnitCode`, `organisationNumber` of the operator; one unit by its code) |
//! | `GET /placements?child={personId}&placedAt={unitId}` | `{"data":[Placement]}` |
//! | `POST /placements` | the child's open placement of that `schoolType` at `placedAt` is created (201) or, when one exists, changed (200: `maxWeeklyScheduleHours`, `endDate`); `child` by `id` or `civicNo`, `placedAt` by `id` or `schoolUnitCode`; `startDate` is needed to create one; 422 problem naming the field otherwise |
//! | `PATCH /placements/{id}` | 200 `Placement`; changes `endDate` and/or `maxWeeklyScheduleHours` |
//! | `POST /absences` | SS 12000 `Absence` (`type` `Beviljad ledighet` or `Anmäld frånvaro`, `student` by `id` or `civicNo`, `startTime`, `endTime`, `organisation?`, `reason?`) → 201; the same `Idempotency-Key` again → 200 and the same absence; 422 naming what is wrong |
//! | `GET /absences?student={personId}` | `{"data":[Absence]}` |
//!
//! A person with skyddad folkbokföring is answered with `securityMarking: "Skyddad
//! folkbokföring"` and **no address**, as a register must.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::{idempotency_key, json_object, problem};
use super::seed::{Person, Placement, Population, SchoolUnit};
use super::{World, lock, read, write};

/// The routes, relative to `/sandbox/elevregister`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/persons", get(persons))
        .route("/persons/{id}", get(person))
        .route("/organisations", get(organisations))
        .route("/placements", get(placements).post(create_placement))
        .route("/placements/{id}", patch(update_placement))
        .route("/absences", get(absences).post(create_absence))
        .with_state(world)
}

/// A person as SS 12000 `Person` (expanded with responsibles).
pub fn person_json(pop: &Population, p: &Person) -> Value {
    let responsibles: Vec<Value> = p
        .guardians
        .iter()
        .filter_map(|g| pop.person(*g))
        .map(|g| {
            json!({
                "person": { "id": g.id, "displayName": g.display_name() },
                "relationType": "Vårdnadshavare",
            })
        })
        .collect();
    let mut v = json!({
        "id": p.id,
        "givenName": p.given_name,
        "familyName": p.family_name,
        "civicNo": { "value": p.civic_no, "nationality": "SE" },
        "sex": if p.gender == "F" { "Kvinna" } else { "Man" },
        "securityMarking": if p.protected { "Skyddad folkbokföring" } else { "Ingen" },
        "responsibles": responsibles,
    });
    if !p.protected {
        v["addresses"] = json!([{
            "type": "Folkbokföring",
            "streetAddress": p.address.street,
            "postalCode": p.address.postal_code,
            "locality": p.address.city,
            "municipalityCode": p.address.municipality,
        }]);
    }
    if let Some(email) = &p.email {
        v["emails"] = json!([{ "value": email, "type": "Privat" }]);
    }
    v
}

fn unit_json(u: &SchoolUnit) -> Value {
    json!({
        "id": u.id,
        "displayName": u.display_name,
        "organisationType": "Skolenhet",
        "schoolUnitCode": u.school_unit_code,
        "schoolTypes": u.school_types,
        "parentOrganisation": {
            "displayName": u.operator,
            "organisationNumber": u.operator_org_no,
            "independent": u.independent,
        },
    })
}

fn placement_json(pop: &Population, p: &Placement) -> Value {
    json!({
        "id": p.id,
        "child": { "id": p.child, "displayName": pop.person(p.child).map(Person::display_name) },
        "placedAt": { "id": p.placed_at, "displayName": pop.units.iter().find(|u| u.id == p.placed_at).map(|u| u.display_name.clone()) },
        "schoolType": p.school_type,
        "startDate": p.start_date,
        "endDate": p.end_date,
        "maxWeeklyScheduleHours": p.max_weekly_schedule_hours,
        "reason": p.reason,
    })
}

fn not_found(what: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        format!("no {what} with that id"),
    )
}

fn unprocessable(detail: impl Into<String>) -> Response {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid placement",
        detail,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersonQuery {
    civic_no: Option<String>,
}

async fn persons(State(w): State<Arc<World>>, Query(q): Query<PersonQuery>) -> Json<Value> {
    let pop = read(&w.population);
    let data: Vec<Value> = pop
        .persons
        .iter()
        .filter(|p| {
            q.civic_no.as_deref().is_none_or(|c| {
                pop.person_by_civic_no(c)
                    .is_some_and(|found| found.id == p.id)
            })
        })
        .map(|p| person_json(&pop, p))
        .collect();
    Json(json!({ "data": data }))
}

async fn person(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    let pop = read(&w.population);
    let found = Uuid::parse_str(&id)
        .ok()
        .and_then(|id| pop.person(id))
        .or_else(|| pop.person_by_civic_no(&id));
    match found {
        Some(p) => Json(person_json(&pop, p)).into_response(),
        None => not_found("person"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrganisationQuery {
    school_unit_code: Option<String>,
}

async fn organisations(
    State(w): State<Arc<World>>,
    Query(q): Query<OrganisationQuery>,
) -> Json<Value> {
    let pop = read(&w.population);
    let data: Vec<Value> = pop
        .units
        .iter()
        .filter(|u| {
            q.school_unit_code
                .as_deref()
                .is_none_or(|c| c == u.school_unit_code)
        })
        .map(unit_json)
        .collect();
    Json(json!({ "data": data }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlacementQuery {
    child: Option<Uuid>,
    placed_at: Option<Uuid>,
}

async fn placements(State(w): State<Arc<World>>, Query(q): Query<PlacementQuery>) -> Json<Value> {
    let pop = read(&w.population);
    let data: Vec<Value> = pop
        .placements
        .iter()
        .filter(|p| q.child.is_none_or(|c| c == p.child))
        .filter(|p| q.placed_at.is_none_or(|u| u == p.placed_at))
        .map(|p| placement_json(&pop, p))
        .collect();
    Json(json!({ "data": data }))
}

/// A reference by `id` or by a natural key (`civicNo`, `schoolUnitCode`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Reference {
    id: Option<Uuid>,
    civic_no: Option<String>,
    school_unit_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewPlacement {
    child: Reference,
    placed_at: Reference,
    school_type: String,
    #[serde(default)]
    start_date: Option<NaiveDate>,
    #[serde(default)]
    end_date: Option<NaiveDate>,
    #[serde(default)]
    max_weekly_schedule_hours: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

const SCHOOL_TYPES: &[&str] = &[
    "FS", "FKLASS", "FTH", "OPPFTH", "GR", "GRS", "GY", "GYS", "VUX",
];

async fn create_placement(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let new: NewPlacement = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return unprocessable(format!(
                "expected {{\"child\": {{\"id\"|\"civicNo\"}}, \"placedAt\": {{\"id\"|\"schoolUnitCode\"}}, \
                 \"schoolType\", \"startDate\"}}: {e}"
            ));
        }
    };
    if !SCHOOL_TYPES.contains(&new.school_type.as_str()) {
        return unprocessable(format!(
            "schoolType must be one of {}",
            SCHOOL_TYPES.join(", ")
        ));
    }
    let mut pop = write(&w.population);
    let child = new
        .child
        .id
        .and_then(|id| pop.person(id))
        .or_else(|| {
            new.child
                .civic_no
                .as_deref()
                .and_then(|c| pop.person_by_civic_no(c))
        })
        .map(|p| p.id);
    let Some(child) = child else {
        return unprocessable("child: no such person (give child.id or child.civicNo)");
    };
    let unit = new
        .placed_at
        .id
        .map(|id| id.to_string())
        .or(new.placed_at.school_unit_code.clone())
        .and_then(|k| pop.unit(&k).map(|u| u.id));
    let Some(placed_at) = unit else {
        return unprocessable(
            "placedAt: no such school unit (give placedAt.id or placedAt.schoolUnitCode)",
        );
    };
    let open = pop.placements.iter().position(|p| {
        p.child == child
            && p.placed_at == placed_at
            && p.school_type == new.school_type
            && p.end_date.is_none()
    });
    if let Some(idx) = open {
        let p = &mut pop.placements[idx];
        if let Some(end) = new.end_date {
            if end < p.start_date {
                return unprocessable("endDate is before the placement's startDate");
            }
            p.end_date = Some(end);
        }
        if let Some(h) = new.max_weekly_schedule_hours {
            p.max_weekly_schedule_hours = Some(h);
        }
        if new.reason.is_some() {
            p.reason = new.reason;
        }
        let p = pop.placements[idx].clone();
        return Json(placement_json(&pop, &p)).into_response();
    }
    let Some(start_date) = new.start_date else {
        return unprocessable(
            "the child has no open placement of this schoolType at placedAt to change or end; \
             give startDate to create one",
        );
    };
    if new.end_date.is_some_and(|end| end < start_date) {
        return unprocessable("endDate is before startDate");
    }
    let placement = Placement {
        id: Uuid::now_v7(),
        child,
        placed_at,
        school_type: new.school_type,
        start_date,
        end_date: new.end_date,
        max_weekly_schedule_hours: new.max_weekly_schedule_hours,
        reason: new.reason,
    };
    let out = placement_json(&pop, &placement);
    pop.placements.push(placement);
    (StatusCode::CREATED, Json(out)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlacementChange {
    #[serde(default)]
    end_date: Option<NaiveDate>,
    #[serde(default)]
    max_weekly_schedule_hours: Option<f64>,
}

async fn update_placement(
    State(w): State<Arc<World>>,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Response {
    let change: PlacementChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return unprocessable(format!(
                "expected {{\"endDate\"?, \"maxWeeklyScheduleHours\"?}}: {e}"
            ));
        }
    };
    let mut pop = write(&w.population);
    let Some(idx) = pop.placements.iter().position(|p| p.id == id) else {
        return not_found("placement");
    };
    let p = &mut pop.placements[idx];
    if let Some(end) = change.end_date {
        if end < p.start_date {
            return unprocessable("endDate is before startDate");
        }
        p.end_date = Some(end);
    }
    if let Some(h) = change.max_weekly_schedule_hours {
        p.max_weekly_schedule_hours = Some(h);
    }
    let p = pop.placements[idx].clone();
    Json(placement_json(&pop, &p)).into_response()
}

/// What the register keeps besides the seeded population: reported absences (granted leave).
#[derive(Debug, Default)]
pub struct Records {
    /// (Idempotency-Key, Absence), in order of registration.
    pub absences: Vec<(Option<String>, Value)>,
}

#[derive(Deserialize)]
struct AbsenceQuery {
    student: Option<Uuid>,
}

async fn absences(State(w): State<Arc<World>>, Query(q): Query<AbsenceQuery>) -> Json<Value> {
    let data: Vec<Value> = lock(&w.register)
        .absences
        .iter()
        .map(|(_, a)| a.clone())
        .filter(|a| {
            q.student
                .is_none_or(|s| a["student"]["id"].as_str() == Some(s.to_string().as_str()))
        })
        .collect();
    Json(json!({ "data": data }))
}

async fn create_absence(
    State(w): State<Arc<World>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let invalid = |detail: &str| {
        problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid absence",
            detail.to_string(),
        )
    };
    let Some(req) = json_object(&body) else {
        return invalid("the body must be an SS 12000 Absence object");
    };
    let key = idempotency_key(&headers);
    if let Some(k) = &key
        && let Some((_, a)) = lock(&w.register)
            .absences
            .iter()
            .find(|(seen, _)| seen.as_deref() == Some(k.as_str()))
    {
        return Json(a.clone()).into_response();
    }
    let kind = req["type"].as_str().unwrap_or_default();
    if !["Beviljad ledighet", "Anmäld frånvaro"].contains(&kind) {
        return invalid("type: `Beviljad ledighet` or `Anmäld frånvaro`");
    }
    let time = |k: &str| {
        req[k]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let (Some(start), Some(end)) = (time("startTime"), time("endTime")) else {
        return invalid("startTime and endTime: RFC 3339 times");
    };
    if end < start {
        return invalid("endTime is before startTime");
    }
    let pop = read(&w.population);
    let student = req["student"]["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .and_then(|id| pop.person(id))
        .or_else(|| {
            req["student"]["civicNo"]
                .as_str()
                .and_then(|c| pop.person_by_civic_no(c))
        });
    let Some(student) = student else {
        return invalid("student: no such person (give student.id or student.civicNo)");
    };
    let organisation = req["organisation"]["schoolUnitCode"]
        .as_str()
        .and_then(|c| pop.unit(c))
        .map(|u| json!({"id": u.id, "displayName": u.display_name}));
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let absence = json!({
        "id": Uuid::now_v7(),
        "meta": {"created": stamp, "modified": stamp},
        "startTime": req["startTime"],
        "endTime": req["endTime"],
        "type": kind,
        "student": {"id": student.id, "displayName": student.display_name()},
        "organisation": organisation,
        "reason": req["reason"],
    });
    drop(pop);
    lock(&w.register).absences.push((key, absence.clone()));
    (StatusCode::CREATED, Json(absence)).into_response()
}
