//! A message's journey: every hop the journal holds for a correlation id, or for a
//! business key and every correlation id that carried it, in time order — each step's
//! outcome and duration, each adapter call, retries, dead letters, replays and the end of
//! each route. `knut trace ID` and `GET /api/trace/{id}` show it.
//!
//! A search by a business key value (`90017` matches that value of any key;
//! `flowInstanceId=90017` that key only) finds the correlation ids that carried it; the
//! keys those carried find more, until no new one comes (an application and its decision,
//! whose correlation ids differ, share the FlowInstanceID and the errand number). The walk
//! is bounded: at most [`Limits::correlation_ids`] correlation ids and [`Limits::hops`]
//! hops (the earliest), and a key found on the way that more than [`Limits::shared_key`]
//! correlation ids carried (set after a split of unrelated cases, say) is not followed;
//! [`Journey::truncated`] and [`Journey::notes`] say so.
//!
//! A hop's `detail` is masked when the row is written and again here; the API gives it to
//! the `operator` role only (a `viewer` sees the outcome and an error kind or HTTP status).

use std::collections::BTreeSet;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Principal;
use crate::config::Role;
use crate::core::keys;
use crate::core::problem::Problem;
use crate::store::{JournalKey, Store, StoreError};

/// How far a journey reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Hops at most (the earliest are kept).
    pub hops: u32,
    /// Correlation ids at most.
    pub correlation_ids: usize,
    /// A key found on the way is followed only when this many correlation ids at most
    /// carried it.
    pub shared_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hops: 1000,
            correlation_ids: 50,
            shared_key: 20,
        }
    }
}

/// A message's journey, as `GET /api/trace/{id}` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journey {
    /// What was searched for, as given (trimmed).
    pub query: String,
    /// Every correlation id of the journey, in the order they were found.
    pub correlation_ids: Vec<Uuid>,
    /// The business keys those correlation ids carried.
    pub keys: Vec<Key>,
    /// The hops, in time order.
    pub hops: Vec<Hop>,
    /// Whether the journey was cut at a limit (more correlation ids or hops exist, or a
    /// key shared too widely was not followed).
    pub truncated: bool,
    /// What was left out and why (a key not followed), in words; never a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A business key of a journey.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Its name (`flowInstanceId`).
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One hop: a step, an adapter call, a retry, a dead letter, a route's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The route.
    pub route: String,
    /// The step's path (`steps[2].call`), an adapter call (`steps[2].call casedata.get-errand`),
    /// or `end`, `dead-letter`, `replay`, `discard`.
    pub step: String,
    /// `ok`, `stopped`, `failed`, `retry`, `dead-letter`, … (see docs/operations.md).
    pub outcome: String,
    /// How long it took, in microseconds.
    pub duration_us: i64,
    /// A short note: an HTTP status, an error kind or an error's text (masked; the error's
    /// text to the `operator` role only).
    pub detail: Option<String>,
    /// The correlation id of its message.
    pub correlation_id: Uuid,
    /// Its message's id.
    pub message_id: Uuid,
}

/// Why a journey cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The id is neither a correlation id nor a possible business key value.
    #[error("{0}")]
    BadId(String),
    /// The journal holds nothing for it.
    #[error(
        "the journal holds no hop for this id: give a correlation id (a UUID) or a business key's value (e.g. an OeP FlowInstanceID or an errand number, `name=value` for one key)"
    )]
    NotFound,
    /// The store failed.
    #[error("the journal cannot be read: {0}")]
    Store(#[from] StoreError),
}

/// What a query asks for.
enum Query<'a> {
    Correlation(Uuid),
    Key {
        name: Option<&'a str>,
        value: &'a str,
    },
}

fn parse(id: &str) -> Result<Query<'_>, TraceError> {
    if let Ok(uuid) = Uuid::parse_str(id) {
        return Ok(Query::Correlation(uuid));
    }
    let (name, value) = match id.split_once('=') {
        Some((name, value)) if keys::name_problem(name).is_none() => (Some(name), value),
        _ => (None, id),
    };
    match keys::value_problem(value) {
        None => Ok(Query::Key { name, value }),
        Some(why) => Err(TraceError::BadId(format!(
            "the id {why}: give a correlation id (a UUID) or a business key's value (e.g. an OeP FlowInstanceID or an errand number)"
        ))),
    }
}

/// The journey of `id`: a correlation id (a UUID) or a business key's value (`90017`, or
/// `flowInstanceId=90017`). [`TraceError::NotFound`] when the journal holds nothing for
/// it; [`TraceError::BadId`] for an id that can be neither (empty, too long, control
/// characters, personnummer-shaped: a key never is one).
pub async fn journey(store: &Store, id: &str, limits: Limits) -> Result<Journey, TraceError> {
    let query = id.trim();
    let parsed = parse(query)?;
    let max_ids = limits.correlation_ids.max(1);
    let fetch = u32::try_from(max_ids + 1).unwrap_or(u32::MAX);
    let mut truncated = false;
    let mut ids: Vec<Uuid> = Vec::new();
    let mut known: BTreeSet<Uuid> = BTreeSet::new();
    let mut keys: BTreeSet<Key> = BTreeSet::new();
    let mut frontier: Vec<Uuid> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut add = |found: Vec<JournalKey>,
                   ids: &mut Vec<Uuid>,
                   frontier: &mut Vec<Uuid>,
                   truncated: &mut bool| {
        for k in found {
            if known.contains(&k.correlation_id) {
                continue;
            }
            if ids.len() >= max_ids {
                *truncated = true;
                break;
            }
            known.insert(k.correlation_id);
            ids.push(k.correlation_id);
            frontier.push(k.correlation_id);
        }
    };
    match parsed {
        Query::Correlation(uuid) => {
            let start = JournalKey {
                name: String::new(),
                value: String::new(),
                correlation_id: uuid,
            };
            add(vec![start], &mut ids, &mut frontier, &mut truncated);
        }
        Query::Key { name, value } => {
            let found = store.journal_key_correlations(name, value, fetch).await?;
            add(found, &mut ids, &mut frontier, &mut truncated);
        }
    }
    // Follow the keys: each correlation id's keys find more correlation ids.
    while !frontier.is_empty() && ids.len() < max_ids {
        let carried = store
            .journal_keys_of(&std::mem::take(&mut frontier))
            .await?;
        for k in carried {
            let key = Key {
                name: k.name,
                value: k.value,
            };
            if keys.contains(&key) {
                continue;
            }
            let shared = limits.shared_key.max(1);
            let found = store
                .journal_key_correlations(
                    Some(&key.name),
                    &key.value,
                    u32::try_from(shared + 1).unwrap_or(u32::MAX),
                )
                .await?;
            if found.len() > shared {
                // Not a case's key: following it would pull in unrelated messages.
                notes.push(format!(
                    "the key `{}` is carried by more than {shared} correlation ids and was not followed; search by `name=value` for it",
                    key.name
                ));
                truncated = true;
                keys.insert(key);
                continue;
            }
            keys.insert(key);
            add(found, &mut ids, &mut frontier, &mut truncated);
            if ids.len() >= max_ids {
                break;
            }
        }
    }
    let mut entries = store
        .journal_of(&ids, limits.hops.saturating_add(1))
        .await?;
    if entries.len() > usize::try_from(limits.hops).unwrap_or(usize::MAX) {
        entries.truncate(usize::try_from(limits.hops).unwrap_or(usize::MAX));
        truncated = true;
    }
    if entries.is_empty() && keys.is_empty() {
        return Err(TraceError::NotFound);
    }
    Ok(Journey {
        query: query.to_string(),
        correlation_ids: ids,
        keys: keys.into_iter().collect(),
        hops: entries
            .into_iter()
            .map(|e| Hop {
                at: e.at,
                route: e.route,
                step: e.step,
                outcome: e.outcome,
                duration_us: e.duration_us,
                // Masked when written; again here, for rows written before that.
                detail: e.detail.map(|d| crate::core::redact::mask(&d).into_owned()),
                correlation_id: e.correlation_id,
                message_id: e.message_id,
            })
            .collect(),
        truncated,
        notes,
    })
}

impl Hop {
    /// The hop as the `viewer` role sees it: its outcome, and of its detail only an HTTP
    /// status, an error kind (`transient`, `permanent`) or a split's count — never an
    /// error's text, which can quote what a message held.
    pub fn for_viewer(mut self) -> Hop {
        self.detail = self.detail.filter(|d| is_kind(d));
        self
    }
}

/// Whether a hop's detail is only a kind: `transient`, `permanent`, `HTTP 200`, `3 messages`.
fn is_kind(detail: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    matches!(detail, "transient" | "permanent")
        || detail.strip_prefix("HTTP ").is_some_and(digits)
        || detail.strip_suffix(" messages").is_some_and(digits)
}

/// `GET /api/trace/{id}` (role `viewer`): the [`Journey`] of `id` as JSON, each hop's
/// `detail` whole to the `operator` role only ([`Hop::for_viewer`] else); `404`
/// problem+json when the journal holds nothing for it, `400` for an id that can be no
/// correlation id or business key (a personnummer among them), `503` when the store cannot
/// be read. No problem repeats the id but in its `instance`, decoded and masked.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/trace/{id}", get(trace))
        .method_not_allowed_fallback(super::method_not_allowed)
        .with_state(store)
}

async fn trace(
    State(store): State<Store>,
    Path(id): Path<String>,
    uri: OriginalUri,
    principal: Option<Extension<Principal>>,
) -> Response {
    // The path is the instance, decoded and masked (a personnummer typed in by mistake,
    // `130412%2B2383` too, stays out).
    let instance = crate::core::redact::mask_path(uri.path());
    let operator = principal.is_some_and(|p| p.has(Role::Operator));
    match journey(&store, &id, Limits::default()).await {
        Ok(mut j) => {
            if !operator {
                j.hops = j.hops.into_iter().map(Hop::for_viewer).collect();
            }
            axum::Json(j).into_response()
        }
        Err(e @ TraceError::BadId(_)) => Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-trace-id",
            "Not a correlation id or business key",
            e.to_string(),
            instance,
        )
        .into_response(),
        Err(e @ TraceError::NotFound) => Problem::new(
            StatusCode::NOT_FOUND,
            "no-such-journey",
            "Nothing in the journal",
            e.to_string(),
            instance,
        )
        .into_response(),
        Err(e @ TraceError::Store(_)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal-unavailable",
            "The journal cannot be read now",
            format!("{e}; try again later"),
            instance,
        )
        .with_header(header::RETRY_AFTER, "5")
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JournalEntry;

    fn hop(at_us: i64, correlation: Uuid, route: &str, step: &str) -> JournalEntry {
        JournalEntry {
            at: DateTime::from_timestamp_micros(at_us).expect("time"),
            message_id: Uuid::now_v7(),
            correlation_id: correlation,
            route: route.into(),
            step: step.into(),
            outcome: "ok".into(),
            duration_us: 5,
            detail: None,
        }
    }

    fn key(name: &str, value: &str, correlation: Uuid) -> (JournalKey, DateTime<Utc>) {
        (
            JournalKey {
                name: name.into(),
                value: value.into(),
                correlation_id: correlation,
            },
            Utc::now(),
        )
    }

    /// An application (one correlation id) and its decision (another) share the
    /// FlowInstanceID and the errand number: one search by either finds both, in time order.
    #[tokio::test]
    async fn a_key_finds_every_correlation_id_of_the_case_in_time_order() {
        let store = Store::memory().await.unwrap();
        let (application, decision, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        store
            .journal_many(&[
                hop(
                    1_000,
                    application,
                    "leave-application-in",
                    "steps[0].transform",
                ),
                hop(2_000, application, "case-open", "end"),
                hop(3_000, decision, "case-decision-in", "end"),
                hop(4_000, decision, "oep-decision-status", "end"),
                hop(2_500, other, "case-open", "end"),
            ])
            .await
            .unwrap();
        store
            .journal_keys_many(&[
                key("flowInstanceId", "90017", application),
                key("errandNumber", "PRH-1", application),
                key("errandNumber", "PRH-1", decision),
                key("flowInstanceId", "90018", other),
            ])
            .await
            .unwrap();
        for q in [
            "90017",
            "flowInstanceId=90017",
            "PRH-1",
            &decision.to_string(),
        ] {
            let j = journey(&store, q, Limits::default()).await.unwrap();
            let routes: Vec<&str> = j.hops.iter().map(|h| h.route.as_str()).collect();
            assert_eq!(
                routes,
                [
                    "leave-application-in",
                    "case-open",
                    "case-decision-in",
                    "oep-decision-status"
                ],
                "{q}"
            );
            assert_eq!(
                j.correlation_ids.iter().collect::<BTreeSet<_>>(),
                [application, decision].iter().collect(),
                "{q}"
            );
            assert!(!j.truncated);
            assert_eq!(j.keys.len(), 2, "{q}");
        }
        // The key's name narrows: no errand number is 90017.
        assert!(matches!(
            journey(&store, "errandNumber=90017", Limits::default()).await,
            Err(TraceError::NotFound)
        ));
        assert!(matches!(
            journey(&store, &Uuid::now_v7().to_string(), Limits::default()).await,
            Err(TraceError::NotFound)
        ));
        for bad in ["", "  ", "201304122383", "a\u{7}b"] {
            match journey(&store, bad, Limits::default()).await {
                Err(TraceError::BadId(why)) => assert!(!why.contains("201304122383")),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Bounded: one correlation id, two hops.
        let cut = journey(
            &store,
            "PRH-1",
            Limits {
                hops: 1,
                correlation_ids: 1,
                shared_key: 20,
            },
        )
        .await
        .unwrap();
        assert!(cut.truncated);
        assert_eq!(cut.correlation_ids.len(), 1);
        assert_eq!(cut.hops.len(), 1);
    }

    /// A key that more than `shared_key` correlation ids carried (set after a split of
    /// unrelated cases) is not followed: the journey says so and stays the case's own.
    #[tokio::test]
    async fn a_key_shared_by_many_correlation_ids_is_not_followed() {
        let store = Store::memory().await.unwrap();
        let case = Uuid::now_v7();
        let others: Vec<Uuid> = (0..25).map(|_| Uuid::now_v7()).collect();
        let mut hops = vec![hop(1_000, case, "case-open", "end")];
        let mut keys = vec![
            key("errandNumber", "PRH-1", case),
            key("batch", "B-7", case),
        ];
        for (i, o) in others.iter().enumerate() {
            hops.push(hop(
                2_000 + i64::try_from(i).unwrap(),
                *o,
                "unrelated",
                "end",
            ));
            keys.push(key("batch", "B-7", *o));
        }
        store.journal_many(&hops).await.unwrap();
        store.journal_keys_many(&keys).await.unwrap();
        let j = journey(&store, "PRH-1", Limits::default()).await.unwrap();
        assert_eq!(j.correlation_ids, [case]);
        assert!(j.hops.iter().all(|h| h.route == "case-open"));
        assert!(j.truncated);
        assert_eq!(j.notes.len(), 1);
        assert!(j.notes[0].contains("`batch`") && !j.notes[0].contains("B-7"));
        // Within the limit it is followed.
        let wide = Limits {
            shared_key: 30,
            ..Limits::default()
        };
        let j = journey(&store, "PRH-1", wide).await.unwrap();
        assert_eq!(j.correlation_ids.len(), 26);
        assert!(!j.truncated && j.notes.is_empty());
        // `name=value` narrows: the value of another key's name finds nothing.
        assert!(matches!(
            journey(&store, "batch=PRH-1", Limits::default()).await,
            Err(TraceError::NotFound)
        ));
    }

    /// An error's text in a hop's detail (a row written before details were masked) is
    /// masked when read, and reaches only the `operator` role; a `viewer` sees the outcome
    /// and an HTTP status or error kind.
    #[tokio::test]
    async fn a_hops_detail_is_masked_and_for_operators_only() {
        let store = Store::memory().await.unwrap();
        let c = Uuid::now_v7();
        let mut failed = hop(1_000, c, "case-open", "end");
        failed.outcome = "dead-letter".into();
        failed.detail = Some("no pupil 201304122383 in class 7B".into());
        let mut call = hop(900, c, "case-open", "steps[1].call sis.get");
        call.detail = Some("HTTP 404".into());
        let mut step = hop(950, c, "case-open", "steps[1].call");
        step.detail = Some("permanent".into());
        store.journal_many(&[call, step, failed]).await.unwrap();
        store
            .journal_keys_many(&[key("errandNumber", "PRH-9", c)])
            .await
            .unwrap();
        let j = journey(&store, "PRH-9", Limits::default()).await.unwrap();
        assert_eq!(
            j.hops[2].detail.as_deref(),
            Some("no pupil ********-**** in class 7B")
        );
        let details = |text: &str| -> Vec<Option<String>> {
            let j: Journey = serde_json::from_str(text).expect("journey");
            j.hops.into_iter().map(|h| h.detail).collect()
        };
        let as_role = |roles: &[Role]| {
            router(store.clone()).layer(Extension(Principal {
                actor: "someone".into(),
                roles: roles.iter().copied().collect(),
            }))
        };
        let (status, _, text) = get(&as_role(&[Role::Viewer]), "/api/trace/PRH-9").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            details(&text),
            [Some("HTTP 404".to_string()), Some("permanent".into()), None]
        );
        assert!(!text.contains("pupil"), "{text}");
        let (_, _, text) = get(&router(store.clone()), "/api/trace/PRH-9").await;
        assert!(
            !text.contains("pupil"),
            "no principal is no operator: {text}"
        );
        let (_, _, text) = get(
            &as_role(&[Role::Viewer, Role::Operator]),
            "/api/trace/PRH-9",
        )
        .await;
        assert_eq!(
            details(&text)[2].as_deref(),
            Some("no pupil ********-**** in class 7B")
        );
        // In the details only: the ids are random hex, which may hold "2383".
        assert!(
            details(&text).iter().flatten().all(|d| !d.contains("2383")),
            "{text}"
        );
    }

    /// No problem repeats the id: not its detail, and its instance only decoded and masked.
    #[tokio::test]
    async fn a_problem_never_echoes_the_id() {
        let app = router(Store::memory().await.unwrap());
        let all: String = "130412+2383".bytes().map(|b| format!("%{b:02X}")).collect();
        for path in [
            "/api/trace/130412%2B2383".to_string(),
            format!("/api/trace/{all}"),
            "/api/trace/130412%202383".to_string(),
            "/api/trace/20130412%202383".to_string(),
            "/api/trace/2013-04-12-2383".to_string(),
            "/api/trace/9001720130412238".to_string(),
            "/api/trace/%EF%BC%91%EF%BC%930412-2383".to_string(),
        ] {
            let (status, _, text) = get(&app, &path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
            let p: serde_json::Value = serde_json::from_str(&text).expect("problem");
            assert_eq!(p["instance"], "/api/trace/********-****", "{path}");
            assert!(!text.contains("2383") && !text.contains("0412"), "{text}");
        }
        let (status, _, text) = get(&app, "/api/trace/SKOL-2026-000999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let p: serde_json::Value = serde_json::from_str(&text).expect("problem");
        assert!(!p["detail"].as_str().unwrap().contains("000999"), "{text}");
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, String, String) {
        use tower::ServiceExt as _;
        let req = axum::http::Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    /// The API answers the journey as JSON, 404 problem+json for nothing, 400 for a bad id
    /// (a personnummer repeated nowhere).
    #[tokio::test]
    async fn the_api_answers_a_journey_or_a_problem() {
        let store = Store::memory().await.unwrap();
        let c = Uuid::now_v7();
        store
            .journal_many(&[hop(1_000, c, "case-open", "end")])
            .await
            .unwrap();
        store
            .journal_keys_many(&[key("errandNumber", "PRH-7", c)])
            .await
            .unwrap();
        let app = router(store);
        let (status, ctype, text) = get(&app, "/api/trace/PRH-7").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(ctype, "application/json");
        let j: Journey = serde_json::from_str(&text).expect("journey");
        assert_eq!(j.correlation_ids, [c]);
        assert_eq!(j.hops[0].route, "case-open");
        assert_eq!(j.keys[0].name, "errandNumber");
        let (status, ctype, _) = get(&app, "/api/trace/PRH-8").await;
        assert_eq!(
            (status, ctype.as_str()),
            (StatusCode::NOT_FOUND, "application/problem+json")
        );
        let (status, ctype, text) = get(&app, "/api/trace/20130412-2383").await;
        assert_eq!(
            (status, ctype.as_str()),
            (StatusCode::BAD_REQUEST, "application/problem+json")
        );
        assert!(
            !text.contains("20130412-2383") && !text.contains("2383"),
            "{text}"
        );
    }
}
