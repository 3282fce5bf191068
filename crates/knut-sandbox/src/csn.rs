//! CSN's deliveries of granted boarding allowances (inackorderingstillägg) for the
//! municipality's upper-secondary students: a file every second month or so. No public
//! contract exists; the sandbox serves the files as a file-transfer service would:
//!
//! | call | answer |
//! |---|---|
//! | `GET /deliveries` | `{"data": [{name, size, created}]}`, oldest first |
//! | `GET /deliveries/{name}` | the file: `text/csv; charset=windows-1252`; 404 when unknown |
//! | `POST /_deliver` | a new delivery (control): `{rows: [{personnummer, efternamn, fornamn, beslutsdatum, fran, till, belopp, skolenhetskod, skolort}]}` or, without `rows`, one row for every upper-secondary student of the seed → 201 `{name, size, rows}` |
//!
//! The file: Windows-1252 (å, ä, ö are single bytes), `;` between fields, CRLF line ends, a
//! header row — `Personnummer;Efternamn;Förnamn;Beslutsdatum;Period från;Period till;
//! Belopp per månad;Skolenhetskod;Skolort` — and amounts with a decimal comma (`1 190,00`
//! is written `1190,00`). One delivery is seeded.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::control::{json_object, not_an_object, problem};
use super::seed::Population;
use super::{World, lock, read};

/// The header row.
pub const HEADER: &str = "Personnummer;Efternamn;Förnamn;Beslutsdatum;Period från;Period till;Belopp per månad;Skolenhetskod;Skolort";

/// The deliveries: (name, created, bytes).
#[derive(Debug, Default)]
pub struct Deliveries {
    files: Vec<(String, String, Vec<u8>)>,
}

impl Deliveries {
    /// The rows as a new delivery, named by today's date and its number: its name and size.
    /// Each row needs every field of [`FIELDS`] as text (checked by [`check_rows`]).
    pub fn deliver(&mut self, rows: &[Value]) -> (String, usize) {
        let now = chrono::Local::now();
        let name = format!(
            "inackorderingstillagg-{}-{:02}.csv",
            now.format("%Y-%m-%d"),
            self.files.len() + 1
        );
        let size = self.put(&name, rows);
        (name, size)
    }

    /// The rows as the delivery `name`, replacing one of that name (a scenario loaded again
    /// delivers the same file, not another): its size.
    pub fn put(&mut self, name: &str, rows: &[Value]) -> usize {
        let bytes = file(rows);
        let size = bytes.len();
        let created = chrono::Local::now().to_rfc3339();
        match self.files.iter_mut().find(|(n, _, _)| n == name) {
            Some(held) => *held = (name.to_string(), created, bytes),
            None => self.files.push((name.to_string(), created, bytes)),
        }
        size
    }
}

/// Why rows cannot be a delivery: the first row that lacks a field.
pub fn check_rows(rows: &[Value]) -> Result<(), String> {
    match rows
        .iter()
        .position(|r| FIELDS.iter().any(|f| r[f].as_str().is_none()))
    {
        Some(i) => Err(format!(
            "rows[{i}] needs every field as text: {}",
            FIELDS.join(", ")
        )),
        None => Ok(()),
    }
}

/// The routes, relative to `/sandbox/csn`.
pub fn routes(world: Arc<World>) -> Router {
    {
        let mut d = lock(&world.csn);
        if d.files.is_empty() {
            let rows = seed_rows(&read(&world.population));
            d.files.push((
                "inackorderingstillagg-2026-09-30.csv".into(),
                "2026-09-30T06:00:00+02:00".into(),
                file(&rows),
            ));
        }
    }
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{name}", get(one))
        .route("/_deliver", post(deliver))
        .with_state(world)
}

/// A row for every upper-secondary student of the seed.
fn seed_rows(pop: &Population) -> Vec<Value> {
    let gy: Vec<_> = pop
        .units
        .iter()
        .filter(|u| u.school_types.contains(&"GY"))
        .collect();
    pop.placements
        .iter()
        .filter(|p| p.school_type == "GY")
        .filter_map(|p| {
            let s = pop.person(p.child)?;
            let unit = gy.iter().find(|u| u.id == p.placed_at)?;
            Some(json!({"personnummer": s.civic_no, "efternamn": s.family_name, "fornamn": s.given_name,
                "beslutsdatum": "2026-09-15", "fran": "2026-08-17", "till": "2027-06-11",
                "belopp": "1190,00", "skolenhetskod": unit.school_unit_code, "skolort": "Härnösand"}))
        })
        .collect()
}

/// The fields of a row, in the file's order.
pub const FIELDS: [&str; 9] = [
    "personnummer",
    "efternamn",
    "fornamn",
    "beslutsdatum",
    "fran",
    "till",
    "belopp",
    "skolenhetskod",
    "skolort",
];

/// The rows as a delivery file.
fn file(rows: &[Value]) -> Vec<u8> {
    let mut text = String::from(HEADER);
    text.push_str("\r\n");
    for r in rows {
        let fields: Vec<String> = FIELDS
            .iter()
            .map(|f| {
                r[f].as_str()
                    .unwrap_or_default()
                    .replace([';', '\r', '\n'], " ")
            })
            .collect();
        text.push_str(&fields.join(";"));
        text.push_str("\r\n");
    }
    encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
}

async fn list(State(w): State<Arc<World>>) -> Response {
    let data: Vec<Value> = lock(&w.csn)
        .files
        .iter()
        .map(
            |(name, created, bytes)| json!({"name": name, "size": bytes.len(), "created": created}),
        )
        .collect();
    Json(json!({ "data": data })).into_response()
}

async fn one(State(w): State<Arc<World>>, Path(name): Path<String>) -> Response {
    match lock(&w.csn).files.iter().find(|(n, _, _)| *n == name) {
        Some((_, _, bytes)) => (
            [(header::CONTENT_TYPE, "text/csv; charset=windows-1252")],
            bytes.clone(),
        )
            .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no delivery {name}"),
        ),
    }
}

async fn deliver(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match json_object(&body) {
            Some(v) => v,
            None => return not_an_object("{rows?}"),
        }
    };
    let rows = match req.get("rows") {
        None | Some(Value::Null) => seed_rows(&read(&w.population)),
        Some(Value::Array(rows)) => {
            if let Err(detail) = check_rows(rows) {
                return problem(StatusCode::BAD_REQUEST, "Bad Request", detail);
            }
            rows.clone()
        }
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "rows must be an array",
            );
        }
    };
    let (name, size) = lock(&w.csn).deliver(&rows);
    (
        StatusCode::CREATED,
        Json(json!({"name": name, "size": size, "rows": rows.len()})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_windows_1252_with_a_header() {
        let pop = Population::seed();
        let rows = seed_rows(&pop);
        assert_eq!(rows.len(), 1, "one upper-secondary student in the seed");
        let bytes = file(&rows);
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "ö is one byte, not UTF-8"
        );
        let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(&bytes);
        assert!(!bad);
        assert!(text.starts_with("Personnummer;Efternamn;Förnamn;"));
        assert!(text.contains(";Härnösand\r\n"));
    }
}
