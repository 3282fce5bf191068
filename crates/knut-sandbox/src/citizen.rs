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
//! Sandbox controls, to build any scenario by hand:
//!
//! | call | what it does |
//! |---|---|
//! | `POST /_persons` | adds or replaces people: a JSON list of `{personNumber, givenname, lastname, classified?: "J"\|"N", address: {address, postalCode, city, municipality?}, since?: "YYYY-MM-DD", custodianFor?: [personNumber]}` (a child named in `custodianFor` must exist or be anywhere in the list; custody links are only added, and a replaced person keeps its own guardians but not its seeded e-mail, phone or moves); a refused list changes nothing; answers `[{personNumber, personId}]` |
//! | `POST /_move` | `{personNumber, address: {address, postalCode, city, municipality?}, date?: "YYYY-MM-DD", emigrated?: bool, deceased?: bool}`: the new address is `Current` from `date` (default today), the old one `Previous`, and `changedaddress` lists the move; `emigrated` and `deceased` set `unRegCode` `UV` or `AV` with `unRegDate` |
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
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::control::problem;
use super::seed::{Address, Person, Population, id_for};
use super::{World, read, write};

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
        .route("/_persons", post(add_persons))
        .route("/_move", post(move_handler))
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
    let emigrated = p
        .deregistered
        .as_ref()
        .is_some_and(|(code, _)| code == "UV");
    let one = |a: &Address, status: &str, emigrated: bool| {
        json!({
            "status": status,
            "nrDate": format!("{}T00:00:00", a.since),
            "address": a.street,
            "postalCode": a.postal_code,
            "city": a.city.to_uppercase(),
            "county": a.municipality.get(..2).unwrap_or("22"),
            "municipality": a.municipality,
            "country": if emigrated { "UTLANDET" } else { "SVERIGE" },
            "emigrated": emigrated,
            "addressType": "POPULATION_REGISTRATION_ADDRESS",
            "xCoordLocal": a.x,
            "yCoordLocal": a.y,
        })
    };
    let mut all = vec![one(&p.address, "Current", emigrated)];
    all.extend(p.previous.iter().map(|a| one(a, "Previous", false)));
    Value::Array(all)
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
                        "unRegCode": c.deregistered.as_ref().map(|(code, _)| code),
                        "unRegDate": c.deregistered.as_ref().map(|(_, d)| format!("{d}T00:00:00")),
                    })
                })
                .collect();
            json!({
                "personId": p.id,
                "personNumber": p.civic_no,
                "classified": classified(p),
                "unRegCode": p.deregistered.as_ref().map(|(code, _)| code),
                "unRegDate": p.deregistered.as_ref().map(|(_, date)| format!("{date}T00:00:00")),
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

/// An address as the controls take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAddress {
    /// Street and number.
    pub address: String,
    /// Postal code.
    pub postal_code: String,
    /// Town.
    pub city: String,
    /// Municipality code (default `2281`, Sundsvall).
    pub municipality: Option<String>,
}

impl NewAddress {
    /// An address in Sundsvall's municipality.
    pub fn new(address: &str, postal_code: &str, city: &str) -> NewAddress {
        NewAddress {
            address: address.into(),
            postal_code: postal_code.into(),
            city: city.into(),
            municipality: None,
        }
    }

    fn at(self, since: NaiveDate) -> Address {
        // People at the same address share coordinates: derived from the address itself.
        let key = id_for(&format!(
            "{}|{}",
            self.address.to_lowercase(),
            self.postal_code
        ));
        let n = key.as_u128();
        Address {
            street: self.address,
            postal_code: self.postal_code,
            city: self.city,
            municipality: self.municipality.unwrap_or_else(|| "2281".into()),
            since,
            x: 6_900_000.0 + (n % 100_000) as f64,
            y: 600_000.0 + ((n >> 64) % 100_000) as f64,
        }
    }
}

/// A person for `POST /_persons`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPerson {
    /// Personnummer or samordningsnummer (12 digits, `-` allowed).
    pub person_number: String,
    /// Given name.
    pub givenname: String,
    /// Family name.
    pub lastname: String,
    /// `"J"` for skyddad folkbokföring, else `"N"` (the default).
    pub classified: Option<String>,
    /// The folkbokföring address.
    pub address: NewAddress,
    /// Since when they live there (default a year ago).
    pub since: Option<NaiveDate>,
    /// The children they have custody of, by personnummer.
    #[serde(default)]
    pub custodian_for: Vec<String>,
}

fn unprocessable(detail: impl Into<String>) -> Response {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Unprocessable Entity",
        detail,
    )
}

/// The 12 digits of a personnummer or samordningsnummer, if it is one (Luhn checked).
fn civic_no(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (digits.len() == 12 && crate::personnummer::is_valid(&digits)).then_some(digits)
}

async fn add_persons(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let people: Vec<NewPerson> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!(
                    "expected a JSON list of persons ({{personNumber, givenname, lastname, classified?, address: {{address, postalCode, city}}, since?, custodianFor?}}): {e}"
                ),
            );
        }
    };
    match add_people(&mut write(&w.population), people) {
        Ok(added) => {
            let answer: Vec<Value> = added
                .into_iter()
                .map(|(number, id)| json!({"personNumber": number, "personId": id}))
                .collect();
            (StatusCode::OK, Json(Value::Array(answer))).into_response()
        }
        Err(detail) => unprocessable(detail),
    }
}

/// Add or replace people (what `POST /_persons` does): each one's 12-digit personnummer and
/// personId, in order. A refused list changes nothing; the error is the 422 detail.
pub fn add_people(
    pop: &mut Population,
    people: Vec<NewPerson>,
) -> Result<Vec<(String, Uuid)>, String> {
    let mut numbers = Vec::with_capacity(people.len());
    for (i, p) in people.iter().enumerate() {
        match civic_no(&p.person_number) {
            Some(n) => numbers.push(n),
            None => {
                return Err(format!(
                    "[{i}].personNumber is not a valid personnummer or samordningsnummer (12 digits, Luhn)"
                ));
            }
        }
        if !matches!(p.classified.as_deref(), None | Some("J" | "N")) {
            return Err(format!("[{i}].classified is \"J\" or \"N\""));
        }
    }
    // Every child named must exist or be in the list (anywhere in it), before anything
    // changes: a refused list changes nothing.
    for (i, p) in people.iter().enumerate() {
        for child in &p.custodian_for {
            let known = civic_no(child).is_some_and(|c| {
                numbers.contains(&c) || pop.persons.iter().any(|q| q.civic_no == c)
            });
            if !known {
                return Err(format!(
                    "[{i}].custodianFor names a child who is neither in the sandbox nor in this list (a valid personnummer): add the child too"
                ));
            }
        }
    }
    let today = chrono::Local::now().date_naive();
    let mut answer = Vec::new();
    let mut links = Vec::new();
    for (p, number) in people.into_iter().zip(&numbers) {
        let id = id_for(number);
        // The 11th digit: odd for men, even for women.
        let gender = match number.as_bytes().get(10).map(|d| d % 2) {
            Some(1) => "M",
            _ => "F",
        };
        let kept = pop.persons.iter().position(|q| q.id == id);
        let guardians = kept
            .map(|k| pop.persons[k].guardians.clone())
            .unwrap_or_default();
        let person = Person {
            id,
            civic_no: number.clone(),
            given_name: p.givenname,
            family_name: p.lastname,
            gender,
            protected: p.classified.as_deref() == Some("J"),
            address: p
                .address
                .at(p.since.unwrap_or(today - chrono::Days::new(365))),
            guardians,
            previous: None,
            deregistered: None,
            email: None,
            phone: None,
        };
        match kept {
            Some(k) => pop.persons[k] = person,
            None => pop.persons.push(person),
        }
        answer.push((number.clone(), id));
        links.extend(
            p.custodian_for
                .iter()
                .filter_map(|c| civic_no(c))
                .map(|c| (id_for(&c), id)),
        );
    }
    // Custody links are added (a replaced guardian keeps the links it had).
    for (child, guardian) in links {
        if let Some(c) = pop.persons.iter_mut().find(|q| q.id == child)
            && !c.guardians.contains(&guardian)
        {
            c.guardians.push(guardian);
        }
    }
    Ok(answer)
}

/// `POST /_move`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Move {
    /// Who moves.
    pub person_number: String,
    /// Where to.
    pub address: NewAddress,
    /// From when (default today).
    pub date: Option<NaiveDate>,
    /// Emigrated (`unRegCode` UV).
    #[serde(default)]
    pub emigrated: bool,
    /// Deceased (`unRegCode` AV).
    #[serde(default)]
    pub deceased: bool,
}

/// Why a move was refused.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// Not a personnummer.
    #[error("personNumber is not a valid personnummer or samordningsnummer")]
    Invalid,
    /// Nobody with that personnummer.
    #[error("no such person in the sandbox: add them with POST /sandbox/citizen/_persons")]
    Unknown,
}

/// Move a person (what `POST /_move` does): the new address is current from `date`
/// (default today), the old one previous. Their personId and the day of the move.
pub fn move_person(pop: &mut Population, m: Move) -> Result<(Uuid, NaiveDate), MoveError> {
    let number = civic_no(&m.person_number).ok_or(MoveError::Invalid)?;
    let date = m.date.unwrap_or_else(|| chrono::Local::now().date_naive());
    let p = pop
        .persons
        .iter_mut()
        .find(|p| p.civic_no == number)
        .ok_or(MoveError::Unknown)?;
    let new = m.address.at(date);
    p.previous = Some(std::mem::replace(&mut p.address, new));
    p.deregistered = match (m.emigrated, m.deceased) {
        (true, _) => Some(("UV".into(), date)),
        (_, true) => Some(("AV".into(), date)),
        _ => None,
    };
    Ok((p.id, date))
}

async fn move_handler(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let m: Move = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!(
                    "expected {{personNumber, address: {{address, postalCode, city}}, date?, emigrated?, deceased?}}: {e}"
                ),
            );
        }
    };
    let number = civic_no(&m.person_number);
    match move_person(&mut write(&w.population), m) {
        Ok((id, date)) => {
            Json(json!({"personNumber": number, "personId": id, "moved": date.to_string()}))
                .into_response()
        }
        Err(e @ MoveError::Invalid) => unprocessable(e.to_string()),
        Err(e @ MoveError::Unknown) => problem(StatusCode::NOT_FOUND, "Not Found", e.to_string()),
    }
}
