//! Elevregister (IST Admin) in SS 12000 terms. No public contract of IST's own API exists,
//! so this is a small REST API in SS 12000:2020 shapes (`Person`, `Organisation`,
//! `Placement`, lists as `{"data": [...]}`):
//!
//! | call | answer |
//! |---|---|
//! | `GET /persons?civicNo=YYYYMMDDNNNN[&expand=responsibleFor]` | `{"data":[Person]}` (empty when unknown); with `expand=responsibleFor` each person lists the children they are responsible for under `_embedded.responsibleFor`, as SS 12000's PersonExpanded does (`{person: {id, displayName, securityMarking}, relationType}`); another `expand` is a 400 problem |
//! | `GET /persons/{id}` | `Person` with `responsibles`; 404 problem when unknown |
//! | `GET /organisations[?schoolUnitCode=]` | `{"data":[Organisation]}` (school units with `schoolUnitCode`, `organisationNumber` of the operator; one unit by its code) |
//! | `GET /placements?child={personId}&placedAt={unitId}` | `{"data":[Placement]}` |
//! | `POST /placements` | the child's open placement of that `schoolType` at `placedAt` is created (201) or, when one exists, changed (200: `maxWeeklyScheduleHours`, `endDate`, `owners`); `child` by `id` or `civicNo`, `placedAt` by `id` or `schoolUnitCode`, optional `owners` (the guardians the place is registered on, SS 12000) each by `id` or `civicNo`; `startDate` is needed to create one; 422 problem naming the field otherwise (`owners[1]` for an unknown owner) |
//! | `PATCH /placements/{id}` | 200 `Placement`; changes `endDate` and/or `maxWeeklyScheduleHours` |
//! | `POST /absences` | SS 12000 `Absence` (`type` `Beviljad ledighet` or `Anmäld frånvaro`, `student` by `id` or `civicNo`, `startTime`, `endTime`, `organisation?`, `reason?`) → 201; the same `Idempotency-Key` again → 200 and the same absence; 422 naming what is wrong |
//! | `GET /absences?student={personId}` | `{"data":[Absence]}` |
//! | `GET /groups[?schoolUnitCode=]`, `GET /groups/{id}` | `{"data":[Group]}` / `Group` (SS 12000, `groupMemberships` with each student's `person` reference); 404 problem when unknown |
//! | `POST /grades` | a registered grade (SS 12000 `Grade`: `student` and `gradingTeacher` by `id` or `civicNo`, `organisation` by `id` or `schoolUnitCode`, `group` by `id`, `syllabus.displayName`, `semester` HT/VT, `year`, `gradeValue` A–F or `-`, `finalGrade`): created (201) or, when the student already has a grade for that syllabus, semester and year, changed (200); the same `Idempotency-Key` again answers the first answer and changes nothing; 422 problem naming the field otherwise |
//! | `GET /grades?student={personId}&group={groupId}` | `{"data":[Grade]}` |
//! | `POST /gradeCatalogues` | `{schoolUnitCode, group, syllabus, semester, year, gradingTeacher, grades: [{student, gradeValue}]}` (group, teacher and students by id) → 201 `{id, document, signature, signedBy, signedAt, confidential}`: the grade catalogue (betygskatalog) as a JSON text, signed at once by the grading teacher as a JWS with a detached payload (below); the same `Idempotency-Key` again → 200 with the same catalogue; 422 problem when the teacher is unknown or not the group's grading teacher, a student is not in the group, or a grade is not final (definitivmarkerad) in the register with that value |
//! | `GET /gradeCatalogues`, `GET /gradeCatalogues/{id}` | the catalogues made |
//! | `GET /signing-keys` | the teachers' public keys as a JSON Web Key Set (Ed25519, `kid` = the teacher's person id) |
//!
//! `GET /_export/placeringar.xlsx` is IST Admin's placement export (an Excel file, the
//! open fritidshem placements with their owners' personnummer; see [`crate::ist_export`]),
//! which Skolresekollen reads from a folder.
//!
//! Sandbox controls for the unhappy paths: `POST /_tamper` changes the **next** catalogue's
//! document after it was signed (a grade value differs from what was signed); `POST
//! /_unsigned` makes the next catalogue come without a signature. Each applies once.
//!
//! **The signature.** `signature` is `BASE64URL(header) + ".." + BASE64URL(sig)` (RFC 7515
//! appendix F, detached content), `header` = `{"alg":"EdDSA","kid":"<teacher id>"}`, and
//! `sig` the Ed25519 signature over `BASE64URL(header) + "." + BASE64URL(document)`, where
//! `document` is the UTF-8 text of the `document` field exactly as answered. Each teacher's
//! key pair is made when first needed (ring), so signatures do not outlive the sandbox.
//!
//! A person with skyddad folkbokföring is answered with `securityMarking: "Skyddad
//! folkbokföring"` and **no address**, as a register must. A catalogue lists students by
//! id, name and civic number, never an address, and says `confidential: true` when one of
//! them has a protected identity.

// The helpers fail with the finished problem response the handler returns as it is.
#![allow(
    clippy::result_large_err,
    reason = "an Err is the problem response itself, returned once per request"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::{idempotency_key, json_object, problem};
use super::seed::{Group, Person, Placement, Population, SchoolUnit};
use super::{World, lock, read, write};

/// What the register holds besides the population: absences, grades, grade catalogues, the
/// teachers' signing keys and the switches of the unhappy paths.
#[derive(Default)]
pub struct Register {
    /// Reported absences (granted leave): (Idempotency-Key, Absence), in order.
    absences: Vec<(Option<String>, Value)>,
    grades: Vec<Value>,
    /// Answers of `POST /grades` by Idempotency-Key: (key, status, answer).
    grade_answers: Vec<(String, u16, Value)>,
    /// Catalogues made, with the Idempotency-Key that asked for each.
    catalogues: Vec<(Option<String>, Value)>,
    keys: BTreeMap<Uuid, TeacherKey>,
    tamper_next: bool,
    unsigned_next: bool,
}

impl std::fmt::Debug for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Register")
            .field("absences", &self.absences.len())
            .field("grades", &self.grades.len())
            .field("catalogues", &self.catalogues.len())
            .field("keys", &self.keys.len())
            .field("tamper_next", &self.tamper_next)
            .field("unsigned_next", &self.unsigned_next)
            .finish()
    }
}

/// A teacher's signing key and its public half.
struct TeacherKey {
    key: EncodingKey,
    public_x: String,
}

impl Register {
    /// The teacher's key, made when first needed.
    fn key_of(&mut self, teacher: Uuid) -> Result<&TeacherKey, String> {
        match self.keys.entry(teacher) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                let (key, public_x) = super::idp::ed25519_key()?;
                Ok(e.insert(TeacherKey { key, public_x }))
            }
        }
    }
}

/// The routes, relative to `/sandbox/elevregister`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/persons", get(persons))
        .route("/persons/{id}", get(person))
        .route("/organisations", get(organisations))
        .route("/placements", get(placements).post(create_placement))
        .route("/placements/{id}", patch(update_placement))
        .route("/absences", get(absences).post(create_absence))
        .route("/groups", get(groups))
        .route("/groups/{id}", get(group))
        .route("/grades", get(grades).post(register_grade))
        .route("/gradeCatalogues", get(catalogues).post(create_catalogue))
        .route("/gradeCatalogues/{id}", get(catalogue))
        .route("/signing-keys", get(signing_keys))
        .route("/_tamper", post(tamper))
        .route("/_unsigned", post(unsigned))
        .route("/_export/placeringar.xlsx", get(ist_placement_export))
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
        "owners": p.owners.iter().filter_map(|o| pop.person(*o)).map(|o| json!({
            "id": o.id,
            "displayName": o.display_name(),
            "securityMarking": if o.protected { "Skyddad folkbokföring" } else { "Ingen" },
        })).collect::<Vec<_>>(),
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
    /// SS 12000's `expand`; only `responsibleFor` (the children the person is responsible
    /// for) is served.
    expand: Option<String>,
}

/// The children `p` is responsible for, as SS 12000 `_embedded.responsibleFor` (a protected child is
/// listed too, with its marking: the register holds the relation; who may see what is the
/// reader's rule).
fn responsible_for(pop: &Population, p: &Person) -> Value {
    pop.children_of(p.id)
        .map(|c| {
            json!({
                "person": {
                    "id": c.id,
                    "displayName": c.display_name(),
                    "securityMarking": if c.protected { "Skyddad folkbokföring" } else { "Ingen" },
                },
                "relationType": "Vårdnadshavare",
            })
        })
        .collect()
}

async fn persons(State(w): State<Arc<World>>, Query(q): Query<PersonQuery>) -> Response {
    let expand = match q.expand.as_deref() {
        None => false,
        Some("responsibleFor") => true,
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Unknown expand",
                "expand: only `responsibleFor` is served",
            );
        }
    };
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
        .map(|p| {
            let mut v = person_json(&pop, p);
            if expand {
                v["_embedded"] = json!({ "responsibleFor": responsible_for(&pop, p) });
            }
            v
        })
        .collect();
    Json(json!({ "data": data })).into_response()
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
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// The object's id.
    pub id: Option<Uuid>,
    /// A person's personnummer.
    pub civic_no: Option<String>,
    /// A school unit's code.
    pub school_unit_code: Option<String>,
}

impl Reference {
    /// A person by personnummer.
    pub fn civic_no(civic_no: &str) -> Reference {
        Reference {
            civic_no: Some(civic_no.to_string()),
            ..Reference::default()
        }
    }

    /// A school unit by its code.
    pub fn school_unit_code(code: &str) -> Reference {
        Reference {
            school_unit_code: Some(code.to_string()),
            ..Reference::default()
        }
    }

    /// The person it names, if the register has them.
    fn person<'a>(&self, pop: &'a Population) -> Option<&'a Person> {
        self.id.and_then(|id| pop.person(id)).or_else(|| {
            self.civic_no
                .as_deref()
                .and_then(|c| pop.person_by_civic_no(c))
        })
    }
}

/// `POST /placements`: a placement to create, or the change of the child's open placement
/// of `school_type` at `placed_at`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPlacement {
    /// The child, by `id` or `civicNo`.
    pub child: Reference,
    /// The school unit, by `id` or `schoolUnitCode`.
    pub placed_at: Reference,
    /// SS 12000 school type.
    pub school_type: String,
    /// First day (needed to create one).
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    /// Last day (ends it).
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    /// Weekly hours.
    #[serde(default)]
    pub max_weekly_schedule_hours: Option<f64>,
    /// Why it was made or changed.
    #[serde(default)]
    pub reason: Option<String>,
    /// The guardians the place is registered on, by `id` or `civicNo` (SS 12000 `owners`);
    /// when given, they replace the placement's owners.
    #[serde(default)]
    pub owners: Option<Vec<Reference>>,
}

const SCHOOL_TYPES: &[&str] = &[
    "FS", "FKLASS", "FTH", "OPPFTH", "GR", "GRS", "GY", "GYS", "VUX",
];

/// Create the placement, or change the child's open one of that type at that unit (what
/// `POST /placements` does): the placement and whether it was created. The error names the
/// field that is wrong (a 422 detail); nothing changes then.
pub fn place(pop: &mut Population, new: NewPlacement) -> Result<(Placement, bool), String> {
    if !SCHOOL_TYPES.contains(&new.school_type.as_str()) {
        return Err(format!(
            "schoolType must be one of {}",
            SCHOOL_TYPES.join(", ")
        ));
    }
    let Some(child) = new.child.person(pop).map(|p| p.id) else {
        return Err("child: no such person (give child.id or child.civicNo)".into());
    };
    let unit = new
        .placed_at
        .id
        .map(|id| id.to_string())
        .or(new.placed_at.school_unit_code.clone())
        .and_then(|k| pop.unit(&k).map(|u| u.id));
    let Some(placed_at) = unit else {
        return Err(
            "placedAt: no such school unit (give placedAt.id or placedAt.schoolUnitCode)".into(),
        );
    };
    let owners = match &new.owners {
        None => None,
        Some(refs) => {
            let mut ids = Vec::with_capacity(refs.len());
            for (i, r) in refs.iter().enumerate() {
                let Some(owner) = r.person(pop) else {
                    return Err(format!(
                        "owners[{i}]: no such person (give owners[{i}].id or owners[{i}].civicNo)"
                    ));
                };
                if !ids.contains(&owner.id) {
                    ids.push(owner.id);
                }
            }
            Some(ids)
        }
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
                return Err("endDate is before the placement's startDate".into());
            }
            p.end_date = Some(end);
        }
        if let Some(h) = new.max_weekly_schedule_hours {
            p.max_weekly_schedule_hours = Some(h);
        }
        if new.reason.is_some() {
            p.reason = new.reason;
        }
        if let Some(owners) = owners {
            p.owners = owners;
        }
        return Ok((p.clone(), false));
    }
    let Some(start_date) = new.start_date else {
        return Err(
            "the child has no open placement of this schoolType at placedAt to change or end; \
             give startDate to create one"
                .into(),
        );
    };
    if new.end_date.is_some_and(|end| end < start_date) {
        return Err("endDate is before startDate".into());
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
        owners: owners.unwrap_or_default(),
    };
    pop.placements.push(placement.clone());
    Ok((placement, true))
}

async fn create_placement(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let new: NewPlacement = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return unprocessable(format!(
                "expected {{\"child\": {{\"id\"|\"civicNo\"}}, \"placedAt\": {{\"id\"|\"schoolUnitCode\"}}, \
                 \"schoolType\", \"startDate\", \"owners\"?: [{{\"id\"|\"civicNo\"}}]}}: {e}"
            ));
        }
    };
    let mut pop = write(&w.population);
    match place(&mut pop, new) {
        Ok((p, true)) => (StatusCode::CREATED, Json(placement_json(&pop, &p))).into_response(),
        Ok((p, false)) => Json(placement_json(&pop, &p)).into_response(),
        Err(detail) => unprocessable(detail),
    }
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

/// `GET /_export/placeringar.xlsx`: IST's placement export of the register's open
/// fritidshem placements ([`crate::ist_export`]).
async fn ist_placement_export(State(w): State<Arc<World>>) -> Response {
    let rows = crate::ist_export::rows(&read(&w.population), chrono::Local::now().date_naive());
    match crate::ist_export::xlsx(&rows) {
        Ok(bytes) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    crate::ist_export::CONTENT_TYPE,
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"placeringar.xlsx\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Export failed",
            format!("the workbook could not be written: {e}"),
        ),
    }
}

fn group_json(pop: &Population, g: &Group) -> Value {
    let unit = pop.units.iter().find(|u| u.id == g.organisation);
    let members: Vec<Value> = g
        .members
        .iter()
        .filter_map(|m| pop.person(*m))
        .map(|p| {
            json!({
                "person": { "id": p.id, "displayName": p.display_name() },
                "startDate": g.start_date,
            })
        })
        .collect();
    json!({
        "id": g.id,
        "displayName": g.display_name,
        "groupType": g.group_type,
        "schoolType": g.school_type,
        "startDate": g.start_date,
        "organisation": {
            "id": g.organisation,
            "displayName": unit.map(|u| u.display_name.clone()),
            "schoolUnitCode": unit.map(|u| u.school_unit_code.clone()),
        },
        "groupMemberships": members,
    })
}

async fn groups(State(w): State<Arc<World>>, Query(q): Query<OrganisationQuery>) -> Json<Value> {
    let pop = read(&w.population);
    let unit = q
        .school_unit_code
        .as_deref()
        .map(|c| pop.unit(c).map(|u| u.id));
    let data: Vec<Value> = pop
        .groups
        .iter()
        .filter(|g| unit.is_none_or(|u| u == Some(g.organisation)))
        .map(|g| group_json(&pop, g))
        .collect();
    Json(json!({ "data": data }))
}

async fn group(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    let pop = read(&w.population);
    match Uuid::parse_str(&id).ok().and_then(|id| pop.group(id)) {
        Some(g) => Json(group_json(&pop, g)).into_response(),
        None => not_found("group"),
    }
}

fn invalid_grade(detail: impl Into<String>) -> Response {
    problem(StatusCode::UNPROCESSABLE_ENTITY, "Invalid grade", detail)
}

const GRADE_VALUES: &[&str] = &["A", "B", "C", "D", "E", "F", "-"];

fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// A person referenced by `{id}` or `{civicNo}`.
fn person_of<'a>(pop: &'a Population, r: &Value) -> Option<&'a Person> {
    r["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .and_then(|id| pop.person(id))
        .or_else(|| {
            r["civicNo"]
                .as_str()
                .and_then(|c| pop.person_by_civic_no(c))
        })
}

fn person_ref(p: &Person) -> Value {
    json!({ "id": p.id, "displayName": p.display_name() })
}

/// The grade `req` asks to register, checked against the register; `Err` is the 422.
fn build_grade(pop: &Population, req: &Value) -> Result<Value, Response> {
    let Some(student) = person_of(pop, &req["student"]) else {
        return Err(invalid_grade(
            "student: no such person (give student.id or student.civicNo)",
        ));
    };
    let organisation = req["organisation"]["id"]
        .as_str()
        .or(req["organisation"]["schoolUnitCode"].as_str())
        .and_then(|k| pop.unit(k));
    let Some(unit) = organisation else {
        return Err(invalid_grade(
            "organisation: no such school unit (give organisation.id or organisation.schoolUnitCode)",
        ));
    };
    let Some(syllabus) = req["syllabus"]["displayName"]
        .as_str()
        .filter(|s| !s.trim().is_empty())
    else {
        return Err(invalid_grade("syllabus.displayName is required"));
    };
    let Some(semester) = req["semester"]
        .as_str()
        .filter(|s| ["HT", "VT"].contains(s))
    else {
        return Err(invalid_grade("semester: HT or VT"));
    };
    let Some(year) = req["year"].as_u64().filter(|y| (2000..=2100).contains(y)) else {
        return Err(invalid_grade("year: a year such as 2026"));
    };
    let Some(value) = req["gradeValue"]
        .as_str()
        .filter(|v| GRADE_VALUES.contains(v))
    else {
        return Err(invalid_grade("gradeValue: A–F or -"));
    };
    let teacher = match req.get("gradingTeacher").filter(|t| !t.is_null()) {
        Some(t) => match person_of(pop, t) {
            Some(p) => Some(person_ref(p)),
            None => return Err(invalid_grade("gradingTeacher: no such person")),
        },
        None => None,
    };
    let group = match req["group"]["id"].as_str() {
        Some(id) => match Uuid::parse_str(id).ok().and_then(|id| pop.group(id)) {
            Some(g) => Some(json!({"id": g.id, "displayName": g.display_name})),
            None => return Err(invalid_grade("group: no such group")),
        },
        None => None,
    };
    let final_grade = match &req["finalGrade"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => return Err(invalid_grade("finalGrade: true or false")),
    };
    let stamp = now();
    Ok(json!({
        "meta": { "created": stamp, "modified": stamp },
        "student": person_ref(student),
        "organisation": { "id": unit.id, "displayName": unit.display_name, "schoolUnitCode": unit.school_unit_code },
        "group": group,
        "gradingTeacher": teacher,
        "registeredBy": teacher,
        "registeredDate": req["registeredDate"].as_str().map_or_else(|| stamp[..10].to_string(), str::to_string),
        "gradeValue": value,
        "finalGrade": final_grade,
        "syllabus": { "displayName": syllabus },
        "semester": semester,
        "year": year,
    }))
}

/// Do two grades record the same student, syllabus, semester and year?
fn same_grade(a: &Value, b: &Value) -> bool {
    a["student"]["id"] == b["student"]["id"]
        && a["syllabus"]["displayName"] == b["syllabus"]["displayName"]
        && a["semester"] == b["semester"]
        && a["year"] == b["year"]
}

async fn register_grade(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(req) = json_object(&body) else {
        return invalid_grade("the body must be a JSON object: an SS 12000 Grade");
    };
    let key = idempotency_key(&headers);
    let pop = read(&w.population);
    let mut reg = lock(&w.elevregister);
    if let Some((_, status, answer)) = key
        .as_ref()
        .and_then(|k| reg.grade_answers.iter().find(|(seen, _, _)| seen == k))
    {
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
        return (status, Json(answer.clone())).into_response();
    }
    let mut grade = match build_grade(&pop, &req) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let (status, answer) = match reg.grades.iter().position(|g| same_grade(g, &grade)) {
        Some(i) => {
            let old = &reg.grades[i];
            grade["id"] = old["id"].clone();
            grade["meta"]["created"] = old["meta"]["created"].clone();
            reg.grades[i] = grade.clone();
            (StatusCode::OK, grade)
        }
        None => {
            grade["id"] = json!(Uuid::now_v7());
            reg.grades.push(grade.clone());
            (StatusCode::CREATED, grade)
        }
    };
    if let Some(k) = key {
        reg.grade_answers.push((k, status.as_u16(), answer.clone()));
    }
    (status, Json(answer)).into_response()
}

#[derive(Deserialize)]
struct GradeQuery {
    student: Option<String>,
    group: Option<String>,
}

async fn grades(State(w): State<Arc<World>>, Query(q): Query<GradeQuery>) -> Json<Value> {
    let reg = lock(&w.elevregister);
    let data: Vec<Value> = reg
        .grades
        .iter()
        .filter(|g| q.student.as_deref().is_none_or(|s| g["student"]["id"] == s))
        .filter(|g| q.group.as_deref().is_none_or(|s| g["group"]["id"] == s))
        .cloned()
        .collect();
    Json(json!({ "data": data }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewCatalogue {
    school_unit_code: String,
    group: Uuid,
    syllabus: String,
    semester: String,
    year: u64,
    grading_teacher: Uuid,
    grades: Vec<CatalogueGrade>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CatalogueGrade {
    student: Uuid,
    grade_value: String,
}

fn invalid_catalogue(detail: impl Into<String>) -> Response {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid grade catalogue",
        detail,
    )
}

/// The catalogue document (JSON text, as signed) of a checked request; `Err` is the 422.
fn catalogue_document(
    pop: &Population,
    reg: &Register,
    id: Uuid,
    c: &NewCatalogue,
    signed_at: &str,
) -> Result<(String, bool), Response> {
    let Some(unit) = pop.unit(&c.school_unit_code) else {
        return Err(invalid_catalogue(format!(
            "schoolUnitCode: no school unit {}",
            c.school_unit_code
        )));
    };
    let Some(teacher) = pop.teacher(c.grading_teacher) else {
        return Err(invalid_catalogue(
            "gradingTeacher: not a teacher of the register",
        ));
    };
    let Some(group) = pop.group(c.group).filter(|g| g.organisation == unit.id) else {
        return Err(invalid_catalogue("group: no such group at the school unit"));
    };
    if group.grading_teacher != teacher.person {
        return Err(invalid_catalogue(
            "gradingTeacher: not the grading teacher of the group",
        ));
    }
    if c.grades.is_empty() {
        return Err(invalid_catalogue("grades: at least one"));
    }
    let mut lines = Vec::with_capacity(c.grades.len());
    let mut confidential = false;
    for (i, g) in c.grades.iter().enumerate() {
        let n = i + 1;
        if c.grades[..i].iter().any(|o| o.student == g.student) {
            return Err(invalid_catalogue(format!(
                "grades[{n}]: the student is in the catalogue twice"
            )));
        }
        let Some(student) = pop
            .person(g.student)
            .filter(|_| group.members.contains(&g.student))
        else {
            return Err(invalid_catalogue(format!(
                "grades[{n}]: the student is not a member of the group"
            )));
        };
        let registered = reg.grades.iter().find(|r| {
            r["student"]["id"] == student.id.to_string()
                && r["syllabus"]["displayName"] == c.syllabus.as_str()
                && r["semester"] == c.semester.as_str()
                && r["year"] == c.year
        });
        match registered {
            None => {
                return Err(invalid_catalogue(format!(
                    "grades[{n}]: the register has no grade of the student for this syllabus, semester and year"
                )));
            }
            Some(r) if r["finalGrade"] != true => {
                return Err(invalid_catalogue(format!(
                    "grades[{n}]: the grade is not final (definitivmarkerad) in the register"
                )));
            }
            Some(r) if r["gradeValue"] != g.grade_value.as_str() => {
                return Err(invalid_catalogue(format!(
                    "grades[{n}]: the grade value differs from the register's"
                )));
            }
            Some(_) => {}
        }
        confidential |= student.protected;
        let civic = &student.civic_no;
        lines.push(json!({
            "student": {
                "id": student.id,
                "displayName": student.display_name(),
                "civicNo": format!("{}-{}", &civic[..8], &civic[8..]),
            },
            "gradeValue": g.grade_value,
        }));
    }
    let person = pop.person(teacher.person);
    let document = json!({
        "type": "Betygskatalog",
        "id": id,
        "schoolUnit": { "schoolUnitCode": unit.school_unit_code, "displayName": unit.display_name },
        "group": { "id": group.id, "displayName": group.display_name },
        "syllabus": c.syllabus,
        "semester": c.semester,
        "year": c.year,
        "gradingTeacher": {
            "id": teacher.person,
            "displayName": person.map(Person::display_name),
            "signature": teacher.signature,
        },
        "grades": lines,
        "signedAt": signed_at,
    });
    Ok((document.to_string(), confidential))
}

/// The detached JWS (`header..signature`) of `document` signed with `key` as `kid`.
fn sign_detached(document: &str, kid: &str, key: &EncodingKey) -> Result<String, String> {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(document);
    let signature = jsonwebtoken::crypto::sign(
        format!("{header}.{payload}").as_bytes(),
        key,
        Algorithm::EdDSA,
    )
    .map_err(|e| format!("cannot sign: {e}"))?;
    Ok(format!("{header}..{signature}"))
}

/// The document with its first grade value changed: what a tampering hand would do.
fn tampered(document: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(document) else {
        return format!("{document} ");
    };
    if let Some(g) = doc["grades"].get_mut(0) {
        let new = if g["gradeValue"] == "A" { "B" } else { "A" };
        g["gradeValue"] = json!(new);
    }
    doc.to_string()
}

async fn create_catalogue(
    State(w): State<Arc<World>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: NewCatalogue = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return invalid_catalogue(
                "expected {schoolUnitCode, group (id), syllabus, semester, year, \
                 gradingTeacher (person id), grades: [{student (person id), gradeValue}]}",
            );
        }
    };
    let key = idempotency_key(&headers);
    let pop = read(&w.population);
    let mut reg = lock(&w.elevregister);
    if let Some((_, answer)) = key.as_ref().and_then(|k| {
        reg.catalogues
            .iter()
            .find(|(seen, _)| seen.as_ref() == Some(k))
    }) {
        return (StatusCode::OK, Json(answer.clone())).into_response();
    }
    let id = Uuid::now_v7();
    let signed_at = now();
    let (document, confidential) = match catalogue_document(&pop, &reg, id, &req, &signed_at) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let kid = req.grading_teacher.to_string();
    let signature = match reg
        .key_of(req.grading_teacher)
        .and_then(|k| sign_detached(&document, &kid, &k.key))
    {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "Signing failed", e),
    };
    let document = if std::mem::take(&mut reg.tamper_next) {
        tampered(&document)
    } else {
        document
    };
    let signature = if std::mem::take(&mut reg.unsigned_next) {
        Value::Null
    } else {
        json!(signature)
    };
    let teacher = pop.teacher(req.grading_teacher);
    let answer = json!({
        "id": id,
        "document": document,
        "signature": signature,
        "signedBy": {
            "id": req.grading_teacher,
            "displayName": pop.person(req.grading_teacher).map(Person::display_name),
            "signature": teacher.map(|t| t.signature.clone()),
            "kid": kid,
        },
        "signedAt": signed_at,
        "confidential": confidential,
    });
    reg.catalogues.push((key, answer.clone()));
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn catalogues(State(w): State<Arc<World>>) -> Json<Value> {
    let data: Vec<Value> = lock(&w.elevregister)
        .catalogues
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    Json(json!({ "data": data }))
}

async fn catalogue(State(w): State<Arc<World>>, Path(id): Path<String>) -> Response {
    match lock(&w.elevregister)
        .catalogues
        .iter()
        .find(|(_, c)| c["id"] == id.as_str())
    {
        Some((_, c)) => Json(c.clone()).into_response(),
        None => not_found("grade catalogue"),
    }
}

async fn signing_keys(State(w): State<Arc<World>>) -> Response {
    let teachers: Vec<Uuid> = read(&w.population)
        .teachers
        .iter()
        .map(|t| t.person)
        .collect();
    let mut reg = lock(&w.elevregister);
    let mut keys = Vec::with_capacity(teachers.len());
    for t in teachers {
        match reg.key_of(t) {
            Ok(k) => keys.push(json!({
                "kty": "OKP", "crv": "Ed25519", "x": k.public_x,
                "kid": t.to_string(), "alg": "EdDSA", "use": "sig",
            })),
            Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "No signing key", e),
        }
    }
    Json(json!({ "keys": keys })).into_response()
}

async fn tamper(State(w): State<Arc<World>>) -> Json<Value> {
    lock(&w.elevregister).tamper_next = true;
    Json(json!({ "tamperNext": true }))
}

async fn unsigned(State(w): State<Arc<World>>) -> Json<Value> {
    lock(&w.elevregister).unsigned_next = true;
    Json(json!({ "unsignedNext": true }))
}

#[derive(Deserialize)]
struct AbsenceQuery {
    student: Option<Uuid>,
}

async fn absences(State(w): State<Arc<World>>, Query(q): Query<AbsenceQuery>) -> Json<Value> {
    let data: Vec<Value> = lock(&w.elevregister)
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
        && let Some((_, a)) = lock(&w.elevregister)
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
    lock(&w.elevregister).absences.push((key, absence.clone()));
    (StatusCode::CREATED, Json(absence)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_signature_verifies_over_the_document_and_not_over_a_changed_one() {
        let (key, x) = crate::idp::ed25519_key().expect("key");
        let doc = r#"{"type":"Betygskatalog","grades":[{"gradeValue":"C"}]}"#;
        let jws = sign_detached(doc, "t-1", &key).expect("signed");
        let (header, sig) = jws.split_once("..").expect("detached form");
        let decoded: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        assert_eq!(decoded, json!({"alg": "EdDSA", "kid": "t-1"}));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "t-1", "alg": "EdDSA"
        }))
        .expect("jwk");
        let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let input = |d: &str| format!("{header}.{}", URL_SAFE_NO_PAD.encode(d));
        assert!(
            jsonwebtoken::crypto::verify(sig, input(doc).as_bytes(), &dk, Algorithm::EdDSA)
                .expect("verify")
        );
        let changed = tampered(doc);
        assert_ne!(changed, doc);
        assert!(
            !jsonwebtoken::crypto::verify(sig, input(&changed).as_bytes(), &dk, Algorithm::EdDSA)
                .expect("verify")
        );
    }
}
