//! Mina ombud, the digital powers of attorney (fullmakter) of Skatteverket and Bolagsverket,
//! as a connected party ("tredje man") sees it: the consumer contract v2
//! (`fixtures/minaombud/dfm_konsument_v2.yaml`), the calls the flows use:
//!
//! | call | answer |
//! |---|---|
//! | `POST /sok/fullmakter` | `HamtaFullmakterResponse`: the fullmakter matching `fullmaktshavare`, `fullmaktsgivare`, `tredjeman` (array of organisationsnummer), `status`, paged by `page: {page, size}`; 400 `ApiError` without the `X-Service-Name` header or without any of `fullmaktshavare`/`fullmaktsgivare` |
//! | `GET /tredjeman/{tredjeman}/fullmakter/{fullmakt}` | `FullmaktMetadataResponse`; 404 when unknown or held by another tredje man |
//!
//! Seeded (people from the seed, the municipality Sundsvalls kommun 2120002411 as tredje
//! man): Sara Nilsson lets Karl Ek handle her son's school matters (valid until next
//! summer); Johan Berg's fullmakt for Lina Berg Holm ended last year (HISTORISK); Tallbacken
//! Utbildning AB lets Fatima Hassan report placements (valid, ORGANISATION). The status is
//! computed against today's date, as the real service does.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use serde_json::{Value, json};

use super::control::problem;
use super::seed::{Population, id_for};
use super::{World, read};

/// The municipality as tredje man.
pub const SUNDSVALL: &str = "2120002411";

/// One fullmakt.
#[derive(Debug, Clone)]
struct Fullmakt {
    id: String,
    referensnummer: String,
    rubrik: String,
    tredjeman: String,
    givare: Value,
    givarroll: &'static str,
    havare: Value,
    from: NaiveDate,
    tom: Option<NaiveDate>,
    behorighet: &'static str,
    /// Who made it and signed it (the giver, or for an organisation its representative).
    skapare: Value,
}

fn who(pop: &Population, given: &str, family: &str) -> Value {
    match pop
        .persons
        .iter()
        .find(|p| p.given_name == given && p.family_name == family)
    {
        Some(p) => {
            json!({"id": p.civic_no, "typ": "pnr", "fornamn": p.given_name, "namn": p.family_name})
        }
        None => json!({"id": "000000000000", "typ": "pnr", "fornamn": given, "namn": family}),
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn seed(pop: &Population) -> Vec<Fullmakt> {
    let f =
        |n: u32, rubrik: &str, givare: Value, givarroll, havare: Value, from, tom, behorighet| {
            Fullmakt {
                // A person gives their own; an organisation's is made by its representative.
                skapare: if givarroll == "ORGANISATION" {
                    havare.clone()
                } else {
                    givare.clone()
                },
                id: id_for(&format!("fullmakt/{n}")).to_string(),
                referensnummer: format!("MOF{:010}", 4710 + n),
                rubrik: rubrik.to_string(),
                tredjeman: SUNDSVALL.to_string(),
                givare,
                givarroll,
                havare,
                from,
                tom,
                behorighet,
            }
        };
    vec![
        f(
            1,
            "Ombud för barnets skolärenden",
            who(pop, "Sara", "Nilsson"),
            "PRIVAT",
            who(pop, "Karl", "Ek"),
            date(2026, 8, 1),
            Some(date(2027, 7, 31)),
            "Se och följa ansökningar och beslut i skolärenden",
        ),
        f(
            2,
            "Ombud för barnets skolärenden",
            who(pop, "Johan", "Berg"),
            "PRIVAT",
            who(pop, "Lina", "Berg Holm"),
            date(2024, 1, 1),
            Some(date(2025, 12, 31)),
            "Se och följa ansökningar och beslut i skolärenden",
        ),
        f(
            3,
            "Rapportera placeringar i fritidshem",
            json!({"id": "5599999991", "typ": "orgnr", "namn": "Tallbacken Utbildning AB"}),
            "ORGANISATION",
            who(pop, "Fatima", "Hassan"),
            date(2025, 1, 1),
            None,
            "Rapportera start, ändrad omfattning och slut av placering",
        ),
    ]
}

impl Fullmakt {
    fn status(&self, today: NaiveDate) -> &'static str {
        match self.tom {
            Some(tom) if tom < today => "HISTORISK",
            _ if self.from <= today => "GILTIG",
            _ => "AKTUELL",
        }
    }

    fn list_item(&self, today: NaiveDate) -> Value {
        json!({
            "id": self.id, "referensnummer": self.referensnummer,
            "registreringstidpunkt": format!("{}T09:00:00+01:00", self.from),
            "status": self.status(today), "vidaredelad": false, "rubrik": self.rubrik,
            "giltigFrom": self.from, "giltigTom": self.tom, "tredjeman": self.tredjeman,
            "fullmaktsgivare": self.givare, "fullmaktsgivarroll": self.givarroll,
            "fullmaktshavare": [self.havare],
        })
    }
}

/// The routes, relative to `/sandbox/minaombud`.
pub fn routes(world: Arc<World>) -> Router {
    let state = Arc::new(Registry {
        all: seed(&read(&world.population)),
        idp: world.idp.clone(),
    });
    Router::new()
        .route("/sok/fullmakter", post(search))
        .route("/tredjeman/{tredjeman}/fullmakter/{fullmakt}", get(one))
        .with_state(state)
}

/// The fullmakter, and the key the answers are signed with.
struct Registry {
    all: Vec<Fullmakt>,
    idp: Option<Arc<crate::idp::Idp>>,
}

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

fn same_identity(a: &Value, b: &Value) -> bool {
    let digits = |v: &Value| -> String {
        v["id"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    };
    !digits(a).is_empty() && digits(a) == digits(b) && a["typ"] == b["typ"]
}

fn service_name_missing(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("x-service-name")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    (!ok).then(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "the X-Service-Name header is required ([a-zA-Z0-9._-])",
        )
    })
}

async fn search(
    State(state): State<Arc<Registry>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(bad) = service_name_missing(&headers) {
        return bad;
    }
    let Ok(req @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "the body must be a HamtaFullmakterRequest JSON object",
        );
    };
    let havare = req.get("fullmaktshavare").filter(|v| v.is_object());
    let givare = req.get("fullmaktsgivare").filter(|v| v.is_object());
    if havare.is_none() && givare.is_none() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Ogiltig sökning",
            "give fullmaktshavare or fullmaktsgivare ({id, typ})",
        );
    }
    let tredjeman: Option<Vec<&str>> = req
        .get("tredjeman")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    let status = req.get("status").and_then(Value::as_str);
    let today = today();
    let hits: Vec<Value> = state
        .all
        .iter()
        .filter(|f| havare.is_none_or(|h| same_identity(h, &f.havare)))
        .filter(|f| givare.is_none_or(|g| same_identity(g, &f.givare)))
        .filter(|f| {
            tredjeman
                .as_ref()
                .is_none_or(|t| t.contains(&f.tredjeman.as_str()))
        })
        .filter(|f| status.is_none_or(|s| f.status(today) == s))
        .map(|f| f.list_item(today))
        .collect();
    let page = req["page"]["page"].as_u64().unwrap_or(0) as usize;
    let size = req["page"]["size"].as_u64().unwrap_or(20).clamp(1, 100) as usize;
    let total = hits.len();
    let content: Vec<Value> = hits.into_iter().skip(page * size).take(size).collect();
    Json(json!({
        "fullmakter": content,
        "page": {"size": size, "number": page, "totalElements": total,
                 "totalPages": total.div_ceil(size)},
    }))
    .into_response()
}

async fn one(
    State(state): State<Arc<Registry>>,
    headers: HeaderMap,
    Path((tredjeman, id)): Path<(String, String)>,
) -> Response {
    if let Some(bad) = service_name_missing(&headers) {
        return bad;
    }
    let today = today();
    match state
        .all
        .iter()
        .find(|f| f.id == id && f.tredjeman == tredjeman)
    {
        Some(f) => {
            let created = format!("{}T09:00:00+01:00", f.from);
            let signatar = if f.givarroll == "ORGANISATION" {
                json!({"juridiskSignatar": {"juridiskPerson": f.givare, "foretradare": [f.skapare]}})
            } else {
                json!({"fysiskPerson": f.skapare})
            };
            let mut answer = json!({
                "fullmakt": {
                    "id": f.id, "ursprung": {"mall": id_for(&format!("mall/{}", f.rubrik)).to_string()},
                    "rubrik": f.rubrik, "beskrivning": f.behorighet,
                    "tredjeman": {"id": f.tredjeman, "namn": "Sundsvalls kommun"},
                    "fullmaktsgivare": f.givare, "fullmaktsgivarroll": f.givarroll,
                    "fullmaktshavare": [f.havare], "giltigFrom": f.from, "giltigTom": f.tom,
                    "transportfullmakt": false, "skapare": f.skapare, "skapadTidpunkt": created,
                    "signatarer": [signatar],
                    "behorigheter": [{"kod": id_for(f.behorighet).to_string(), "rubrik": f.behorighet}],
                },
                "metadata": {"referensnummer": f.referensnummer,
                             "registreringstidpunkt": created,
                             "status": f.status(today),
                             "underskrifter": [{"person": f.skapare, "tidpunkt": created}]},
                "svarstidpunkt": chrono::Local::now().to_rfc3339(),
            });
            // Mina ombud signs its answer (a detached JWS, verifiable with its JWKS); the
            // sandbox signs with its test issuer's key.
            let Some(idp) = &state.idp else {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "No signing key",
                    "the sandbox has no key to sign the answer with",
                );
            };
            match idp.sign_detached(&answer) {
                Ok((protected, signature)) => {
                    answer["_sig"] = json!({"protected": protected, "signature": signature});
                    Json(answer).into_response()
                }
                Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "Not signed", e),
            }
        }
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no fullmakt {id} for tredje man {tredjeman}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_dates() {
        let pop = Population::seed();
        let all = seed(&pop);
        let d = date(2026, 11, 24);
        assert_eq!(all[0].status(d), "GILTIG");
        assert_eq!(all[1].status(d), "HISTORISK");
        assert_eq!(all[0].status(date(2026, 7, 1)), "AKTUELL");
        assert_eq!(all[2].status(d), "GILTIG");
        // Everyone named is a seeded person.
        for f in &all {
            assert_ne!(f.havare["id"], "000000000000", "{:?}", f.havare);
        }
    }
}
