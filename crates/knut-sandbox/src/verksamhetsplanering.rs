//! Verksamhetsplanering (operational planning) receives attendance statistics: counts per
//! school unit, group and day — never who was absent. No public contract exists; a small
//! REST feed:
//!
//! | call | answer |
//! |---|---|
//! | `POST /attendance-statistics` | `{schoolUnitCode, group?, date, lessons, presentMinutes, absentMinutes: {valid, invalid}}` → 201; a row for the same unit, group and date replaces the earlier one (a resend is harmless); 400 problem naming a missing or non-numeric field; **422 when the row holds a personnummer** (this system must get no personal data) |
//! | `GET /attendance-statistics?schoolUnitCode=&from=&to=` | `{"data": [row], "totals": {lessons, presentMinutes, absentMinutes: {valid, invalid}}}` |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::control::{json_object, not_an_object, problem};
use super::{World, lock};

/// Rows by (unit, group, date).
#[derive(Debug, Default)]
pub struct Statistics {
    rows: BTreeMap<(String, String, String), Value>,
}

/// The routes, relative to `/sandbox/verksamhetsplanering`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/attendance-statistics", get(read_rows).post(receive))
        .with_state(world)
}

/// Does any string in `v` look like a personnummer or samordningsnummer?
fn holds_personnummer(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            (digits.len() == 10 || digits.len() == 12) && crate::personnummer::is_valid(s)
        }
        Value::Array(a) => a.iter().any(holds_personnummer),
        Value::Object(m) => m.values().any(holds_personnummer),
        _ => false,
    }
}

async fn receive(State(w): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let Some(row) = json_object(&body) else {
        return not_an_object("an attendance statistics row");
    };
    if holds_personnummer(&row) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Personal data refused",
            "attendance statistics must not identify students: remove the personnummer",
        );
    }
    let mut gone = Vec::new();
    for f in ["schoolUnitCode", "date"] {
        if row[f].as_str().is_none_or(str::is_empty) {
            gone.push(f.to_string());
        }
    }
    for f in ["lessons", "presentMinutes"] {
        if !row[f].is_u64() {
            gone.push(format!("{f} (a whole number)"));
        }
    }
    for f in ["valid", "invalid"] {
        if !row["absentMinutes"][f].is_u64() {
            gone.push(format!("absentMinutes.{f} (a whole number)"));
        }
    }
    if !gone.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("missing or invalid: {}", gone.join(", ")),
        );
    }
    let key = (
        row["schoolUnitCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        row["group"].as_str().unwrap_or_default().to_string(),
        row["date"].as_str().unwrap_or_default().to_string(),
    );
    lock(&w.statistics).rows.insert(key, row.clone());
    (StatusCode::CREATED, Json(row)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    school_unit_code: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn read_rows(State(w): State<Arc<World>>, Query(f): Query<Filter>) -> Response {
    let stats = lock(&w.statistics);
    let data: Vec<Value> = stats
        .rows
        .iter()
        .filter(|((unit, _, date), _)| {
            f.school_unit_code.as_ref().is_none_or(|u| u == unit)
                && f.from.as_ref().is_none_or(|from| date >= from)
                && f.to.as_ref().is_none_or(|to| date <= to)
        })
        .map(|(_, v)| v.clone())
        .collect();
    let sum = |path: &[&str]| -> u64 {
        data.iter()
            .map(|r| path.iter().fold(r, |v, k| &v[*k]).as_u64().unwrap_or(0))
            .sum()
    };
    let totals = json!({
        "lessons": sum(&["lessons"]), "presentMinutes": sum(&["presentMinutes"]),
        "absentMinutes": {"valid": sum(&["absentMinutes", "valid"]),
                          "invalid": sum(&["absentMinutes", "invalid"])},
    });
    Json(json!({ "data": data, "totals": totals })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personnummer_are_recognised_anywhere() {
        assert!(holds_personnummer(&json!({"a": ["20130412-2383"]})));
        assert!(!holds_personnummer(
            &json!({"schoolUnitCode": "38120001", "date": "2026-11-24"})
        ));
    }
}
