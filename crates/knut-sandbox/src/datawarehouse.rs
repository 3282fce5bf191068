//! The data warehouse's resource allocation (ekonomisk resursfördelning): what each school
//! unit is allotted per month, by category. No public contract exists; a small REST API:
//!
//! | call | answer |
//! |---|---|
//! | `GET /resource-allocations?schoolUnitCode=38120001&period=2026-09` | `{schoolUnitCode, period, currency: "SEK", items: [{category, schoolType, students, amount}], total}`; 404 problem for an unknown unit; 400 for a period that is not `YYYY-MM` |
//!
//! The figures follow the seed: the children placed at the unit in that month (placements
//! running on the month's first day), times a monthly amount per school type
//! (grundbelopp), plus a tilläggsbelopp per child with skyddad identitet handled by the
//! unit (for the extra administration). So a placement a route writes to elevregister
//! changes next month's figures.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};

use super::control::problem;
use super::{World, read};

/// Monthly grundbelopp per child and school type, SEK.
const GRUNDBELOPP: &[(&str, u64)] = &[
    ("FS", 11_400),
    ("FTH", 3_200),
    ("GR", 9_850),
    ("GY", 10_500),
    ("VUX", 6_000),
];

/// Monthly tilläggsbelopp per child with skyddad identitet, SEK.
const TILLAGG_SKYDDAD: u64 = 1_500;

/// The routes, relative to `/sandbox/datawarehouse`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/resource-allocations", get(allocations))
        .with_state(world)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ask {
    school_unit_code: Option<String>,
    period: Option<String>,
}

async fn allocations(State(w): State<Arc<World>>, Query(ask): Query<Ask>) -> Response {
    let (Some(code), Some(period)) = (ask.school_unit_code, ask.period) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "give schoolUnitCode and period (YYYY-MM)",
        );
    };
    let Some(first) = NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| period.len() == 7)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("period `{period}` is not YYYY-MM"),
        );
    };
    let pop = read(&w.population);
    let Some(unit) = pop.units.iter().find(|u| u.school_unit_code == code) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no school unit {code}"),
        );
    };
    let running: Vec<_> = pop
        .placements
        .iter()
        .filter(|p| p.placed_at == unit.id)
        .filter(|p| p.start_date <= first && p.end_date.is_none_or(|e| e >= first))
        .collect();
    let mut items: Vec<Value> = Vec::new();
    for (school_type, amount) in GRUNDBELOPP {
        let n = running
            .iter()
            .filter(|p| p.school_type == *school_type)
            .count() as u64;
        if n > 0 {
            items.push(json!({"category": "grundbelopp", "schoolType": school_type,
                              "students": n, "amount": n * amount}));
        }
    }
    let protected = running
        .iter()
        .filter(|p| pop.person(p.child).is_some_and(|c| c.protected))
        .count() as u64;
    if protected > 0 {
        items.push(json!({"category": "tilläggsbelopp", "schoolType": null,
                          "students": protected, "amount": protected * TILLAGG_SKYDDAD}));
    }
    let total: u64 = items.iter().filter_map(|i| i["amount"].as_u64()).sum();
    Json(json!({
        "schoolUnitCode": code, "period": period, "currency": "SEK",
        "operator": unit.operator, "items": items, "total": total,
    }))
    .into_response()
}
