//! The dead-letter admin API: the dead letters of each route, to list, show, replay and
//! discard (`knut dlq` is its client; the operations are [`super::dead_letters`]).
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/dlq` | `200` [`DeadLetterOverview`]: every route of this knut with how many dead letters it holds (queue depths: nothing is read or moved) and since when (`oldest`, from the store) |
//! | `GET /api/routes/{route}/dlq?limit=&after=` | `200` [`DeadLetterList`]: a page of dead letters, oldest first, without bodies: at most `limit` (default 100, at most 1,000), after the dead letter `after` (the previous page's `next`) |
//! | `GET /api/routes/{route}/dlq/{id}` | `200` [`DeadLetterDetail`]: one dead letter with its headers and body, every personnummer masked |
//! | `POST /api/routes/{route}/dlq/{id}/replay` | `200` [`Replayed`]: published to the route's work queue again, journaled, removed from the dead-letter queue |
//! | `POST /api/routes/{route}/dlq/replay` | `200` [`ReplayedAll`]: every dead letter of the route replayed |
//! | `DELETE /api/routes/{route}/dlq/{id}` | `200` [`Discarded`]: journaled, then removed for good |
//!
//! An unknown route or id is a `404`, a broker that cannot be reached a `503` with
//! `Retry-After`, both as RFC 9457 `application/problem+json` saying what to do.
//!
//! Dead letters are personal data: every value shown — reason, headers, body — passes
//! through [`redact::mask`] first, so no part of a personnummer (not even its birth date)
//! leaves the admin port, unless the caller holds the `personal_data` role (see
//! [`super::auth`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Principal;
use super::dead_letters::{DeadLetters, DlqError};
use crate::broker::dead_letter_queue;
use crate::codec::charset;
use crate::config::Role;
use crate::core::envelope::header::{ATTEMPTS, DEAD_LETTER_ROUTE};
use crate::core::envelope::{Envelope, header as h, is_xml_type};
use crate::core::problem::Problem;
use crate::core::redact;

/// One dead letter in a list: what failed where, and when; never the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterSummary {
    /// The message id: what show, replay and discard take.
    pub id: Uuid,
    /// The correlation id (the journal's key).
    pub correlation_id: Uuid,
    /// The route it failed in.
    pub route: String,
    /// The step that failed (`steps[1].to`).
    pub step: Option<String>,
    /// Why it was dead-lettered (personnummer masked).
    pub reason: Option<String>,
    /// How many attempts it had.
    pub attempts: Option<u32>,
    /// When it first failed (RFC 3339).
    pub first_failure: Option<String>,
    /// When it last failed, i.e. was dead-lettered (RFC 3339).
    pub last_failure: Option<String>,
    /// The body's content type.
    pub content_type: String,
    /// The body's size in bytes.
    pub size: usize,
}

/// `GET /api/routes/{route}/dlq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterList {
    /// The route.
    pub route: String,
    /// Its dead-letter queue.
    pub queue: String,
    /// How many dead letters the queue holds in all.
    #[serde(default)]
    pub total: Option<u64>,
    /// This page of dead letters, oldest first.
    pub dead_letters: Vec<DeadLetterSummary>,
    /// When more follow: the `after` of the next page (this page's last id).
    #[serde(default)]
    pub next: Option<Uuid>,
}

/// The query of `GET /api/routes/{route}/dlq`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    /// How many dead letters at most (default [`PAGE_DEFAULT`], at most [`PAGE_MAX`]).
    pub limit: Option<usize>,
    /// The last id of the previous page.
    pub after: Option<String>,
}

/// Dead letters on a page unless `limit` says otherwise.
pub const PAGE_DEFAULT: usize = 100;
/// The largest page.
pub const PAGE_MAX: usize = 1_000;

/// `GET /api/routes/{route}/dlq/{id}`: the summary, the headers and the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterDetail {
    /// What the list shows.
    #[serde(flatten)]
    pub summary: DeadLetterSummary,
    /// Every header (values with personnummer masked).
    pub headers: BTreeMap<String, String>,
    /// The body as text (decoded per its XML declaration, else UTF-8 with invalid bytes
    /// replaced), personnummer masked.
    pub body: String,
}

/// `POST /api/routes/{route}/dlq/{id}/replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The message id (the same as the dead letter's).
    pub id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// The route it was handed to.
    pub route: String,
    /// When (the `knut-replayed` header).
    pub replayed_at: Option<String>,
}

/// `POST /api/routes/{route}/dlq/replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayedAll {
    /// The route.
    pub route: String,
    /// The ids replayed, in queue order.
    pub replayed: Vec<Uuid>,
}

/// `DELETE /api/routes/{route}/dlq/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discarded {
    /// The message id.
    pub id: Uuid,
    /// The route.
    pub route: String,
    /// Always true.
    pub discarded: bool,
}

/// `value` as shown: every personnummer-shaped run masked whole, unless `reveal`.
fn shown(value: &str, reveal: bool) -> String {
    if reveal {
        value.to_string()
    } else {
        redact::mask(value).into_owned()
    }
}

impl DeadLetterSummary {
    /// The summary of dead letter `e` of `route`; personnummer masked unless `reveal`.
    pub fn of(route: &str, e: &Envelope, reveal: bool) -> Self {
        let masked = |v: Option<&str>| v.map(|v| shown(v, reveal));
        DeadLetterSummary {
            id: e.id,
            correlation_id: e.correlation_id,
            route: e.header(DEAD_LETTER_ROUTE).unwrap_or(route).to_string(),
            step: masked(e.header(h::DEAD_LETTER_STEP)),
            reason: masked(e.header(h::DEAD_LETTER_REASON)),
            attempts: e.header(ATTEMPTS).and_then(|a| a.parse().ok()),
            first_failure: e.header(h::FIRST_FAILURE).map(str::to_string),
            last_failure: e.header(h::LAST_FAILURE).map(str::to_string),
            content_type: e.content_type.clone(),
            size: e.body.len(),
        }
    }
}

impl DeadLetterDetail {
    /// The detail of dead letter `e` of `route`, every personnummer masked unless `reveal`.
    pub fn of(route: &str, e: &Envelope, reveal: bool) -> Self {
        let bytes = e.body.to_bytes();
        let text = match is_xml_type(&e.content_type) {
            true => charset::decode_xml(&bytes)
                .ok()
                .map(|(t, _)| t.into_owned()),
            false => None,
        }
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        DeadLetterDetail {
            summary: DeadLetterSummary::of(route, e, reveal),
            headers: e
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), shown(v, reveal)))
                .collect(),
            body: shown(&text, reveal),
        }
    }
}

#[derive(Clone)]
struct DlqState {
    dead_letters: DeadLetters,
    routes: Arc<BTreeSet<String>>,
}

/// Every route's dead-letter count (`GET /api/dlq`, `knut dlq list` without a route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterOverview {
    /// The routes, by id, with their counts; a route whose count could not be read has none.
    pub routes: Vec<RouteDeadLetters>,
    /// Dead letters in all.
    pub total: u64,
}

/// One route's line of the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDeadLetters {
    /// The route id.
    pub route: String,
    /// How many dead letters it holds; absent when the broker could not tell.
    pub count: Option<u64>,
    /// Since when it holds them (RFC 3339; see [`DeadLetters::since`]): the age of its
    /// oldest dead letter. Absent when it holds none or the time is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
}

/// The dead-letter endpoints for `routes` (the ids of the running routes).
pub fn router(dead_letters: DeadLetters, routes: impl IntoIterator<Item = String>) -> Router {
    let state = DlqState {
        dead_letters,
        routes: Arc::new(routes.into_iter().collect()),
    };
    // `{id}` is the route id, as in `POST /api/routes/{id}/messages` (one router tree).
    Router::new()
        .route("/api/dlq", get(overview))
        .route("/api/routes/{id}/dlq", get(list))
        .route("/api/routes/{id}/dlq/replay", post(replay_all))
        .route("/api/routes/{id}/dlq/{message}", get(show).delete(discard))
        .route("/api/routes/{id}/dlq/{message}/replay", post(replay))
        .method_not_allowed_fallback(super::method_not_allowed)
        .with_state(state)
}

/// What a request names that this knut does not have.
#[derive(Debug, Clone, Copy)]
enum Unknown {
    Route,
    MessageId,
}

impl Unknown {
    /// A 404 saying what to do instead.
    fn response(self, route: &str, uri: &OriginalUri) -> Response {
        let (kind, title, detail) = match self {
            Unknown::Route => (
                "no-such-route",
                "No such route",
                format!("there is no route `{route}` in this knut: see GET /api/routes"),
            ),
            Unknown::MessageId => (
                "no-such-dead-letter",
                "No such dead letter",
                format!(
                    "a dead letter is named by its message id, a UUID as `knut dlq list {route}` \
                     (GET /api/routes/{route}/dlq) shows it"
                ),
            ),
        };
        Problem::new(StatusCode::NOT_FOUND, kind, title, detail, uri.path()).into_response()
    }
}

impl DlqState {
    /// Does `route` run here?
    fn known(&self, route: &str) -> Result<(), Unknown> {
        match self.routes.contains(route) {
            true => Ok(()),
            false => Err(Unknown::Route),
        }
    }

    /// The message id `text` of a dead letter of `route`.
    fn message(&self, route: &str, text: &str) -> Result<Uuid, Unknown> {
        self.known(route)?;
        Uuid::parse_str(text).map_err(|_| Unknown::MessageId)
    }
}

fn failure(e: &DlqError, uri: &OriginalUri) -> Response {
    let path = uri.path();
    match e {
        DlqError::CursorGone { .. } => Problem::new(
            StatusCode::CONFLICT,
            "page-start-gone",
            "The page's starting point is gone",
            e.to_string(),
            path,
        )
        .into_response(),
        DlqError::NotFound { .. } => Problem::new(
            StatusCode::NOT_FOUND,
            "no-such-dead-letter",
            "No such dead letter",
            e.to_string(),
            path,
        )
        .into_response(),
        e if e.is_transient() => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker-unavailable",
            "The dead letters cannot be reached now",
            format!("{e}; try again later"),
            path,
        )
        .with_header(header::RETRY_AFTER, "5")
        .into_response(),
        e => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "dead-letter-failed",
            "The dead-letter operation failed",
            e.to_string(),
            path,
        )
        .into_response(),
    }
}

/// Whether the caller may see personnummer unmasked.
fn reveals(principal: &Option<Extension<Principal>>) -> bool {
    principal
        .as_ref()
        .is_some_and(|p| p.has(Role::PersonalData))
}

/// Every route with its number of dead letters, most first (then by route id).
pub async fn overview_of(
    dead_letters: &DeadLetters,
    routes: impl IntoIterator<Item = String>,
) -> DeadLetterOverview {
    let mut lines = Vec::new();
    for route in routes {
        let count = match dead_letters.count(&route).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(route, error = %e, "could not count the dead letters");
                None
            }
        };
        let oldest = match count {
            Some(n) => dead_letters.since(&route, n).await,
            None => None,
        }
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        lines.push(RouteDeadLetters {
            route,
            count,
            oldest,
        });
    }
    lines.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.route.cmp(&b.route)));
    DeadLetterOverview {
        total: lines.iter().filter_map(|l| l.count).sum(),
        routes: lines,
    }
}

async fn overview(State(s): State<DlqState>) -> Response {
    axum::Json(overview_of(&s.dead_letters, s.routes.iter().cloned()).await).into_response()
}

async fn list(
    State(s): State<DlqState>,
    Path(route): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    uri: OriginalUri,
    principal: Option<Extension<Principal>>,
) -> Response {
    let reveal = reveals(&principal);
    if let Err(u) = s.known(&route) {
        return u.response(&route, &uri);
    }
    let bad = |detail: String| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-page",
            "The page asked for is not valid",
            detail,
            uri.path(),
        )
        .into_response()
    };
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return bad(format!(
                "{}; `limit` is a number from 1 to {PAGE_MAX}, `after` a dead letter's id",
                e.body_text()
            ));
        }
    };
    let limit = query.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return bad(format!(
            "`limit` must be from 1 to {PAGE_MAX}, not {limit}: page with `after` for more"
        ));
    }
    let after = match query.after.as_deref().map(Uuid::parse_str) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return bad(
                "`after` is a dead letter's message id (a UUID): the `next` of the previous page"
                    .into(),
            );
        }
    };
    let total = s.dead_letters.count(&route).await.ok();
    match s.dead_letters.page(&route, after, limit).await {
        Ok(page) => axum::Json(DeadLetterList {
            queue: dead_letter_queue(&route),
            total,
            next: page
                .more
                .then(|| page.messages.last().map(|e| e.id))
                .flatten(),
            dead_letters: page
                .messages
                .iter()
                .map(|e| DeadLetterSummary::of(&route, e, reveal))
                .collect(),
            route,
        })
        .into_response(),
        Err(e) => failure(&e, &uri),
    }
}

async fn show(
    State(s): State<DlqState>,
    Path((route, id)): Path<(String, String)>,
    uri: OriginalUri,
    principal: Option<Extension<Principal>>,
) -> Response {
    let reveal = reveals(&principal);
    let id = match s.message(&route, &id) {
        Ok(id) => id,
        Err(u) => return u.response(&route, &uri),
    };
    match s.dead_letters.show(&route, id).await {
        Ok(e) => axum::Json(DeadLetterDetail::of(&route, &e, reveal)).into_response(),
        Err(e) => failure(&e, &uri),
    }
}

async fn replay(
    State(s): State<DlqState>,
    Path((route, id)): Path<(String, String)>,
    uri: OriginalUri,
) -> Response {
    let id = match s.message(&route, &id) {
        Ok(id) => id,
        Err(u) => return u.response(&route, &uri),
    };
    match s.dead_letters.replay(&route, id).await {
        Ok(m) => axum::Json(Replayed {
            id: m.id,
            correlation_id: m.correlation_id,
            replayed_at: m.header(h::REPLAYED).map(str::to_string),
            route,
        })
        .into_response(),
        Err(e) => failure(&e, &uri),
    }
}

async fn replay_all(
    State(s): State<DlqState>,
    Path(route): Path<String>,
    uri: OriginalUri,
) -> Response {
    if let Err(u) = s.known(&route) {
        return u.response(&route, &uri);
    }
    match s.dead_letters.replay_all(&route).await {
        Ok(replayed) => axum::Json(ReplayedAll { route, replayed }).into_response(),
        Err(e) => failure(&e, &uri),
    }
}

async fn discard(
    State(s): State<DlqState>,
    Path((route, id)): Path<(String, String)>,
    uri: OriginalUri,
) -> Response {
    let id = match s.message(&route, &id) {
        Ok(id) => id,
        Err(u) => return u.response(&route, &uri),
    };
    match s.dead_letters.discard(&route, id).await {
        Ok(()) => axum::Json(Discarded {
            id,
            route,
            discarded: true,
        })
        .into_response(),
        Err(e) => failure(&e, &uri),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{SharedBroker, Topology};
    use crate::store::Store;

    const PNR: &str = "20130412-2383";

    async fn app() -> (Router, SharedBroker) {
        let broker: SharedBroker = Arc::new(EmbeddedBroker::new());
        broker
            .declare(&Topology::single("r"))
            .await
            .expect("declare");
        let store = Store::memory().await.expect("store");
        let dl = DeadLetters::new(broker.clone(), store);
        (router(dl, ["r".to_string()]), broker)
    }

    fn poison() -> Envelope {
        let mut e = Envelope::json(serde_json::json!({"civicNo": PNR, "note": "Tilda"}));
        e.headers.insert(
            h::DEAD_LETTER_REASON.into(),
            format!("schema: /civicNo {PNR} is not valid"),
        );
        e.headers
            .insert(h::DEAD_LETTER_STEP.into(), "steps[0].validate".into());
        e.headers.insert(ATTEMPTS.into(), "1".into());
        e.headers.insert("student".into(), PNR.into());
        e
    }

    async fn call(app: &Router, method: &str, path: &str) -> (StatusCode, String, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn list_and_show_mask_every_personnummer() {
        let (app, broker) = app().await;
        let e = poison();
        broker.dead_letter("r", &e).await.expect("park");
        let (status, _, text) = call(&app, "GET", "/api/routes/r/dlq").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(!text.contains(PNR), "{text}");
        let list: DeadLetterList = serde_json::from_str(&text).expect("list");
        assert_eq!(list.queue, "knut.dlq.r");
        assert_eq!(list.dead_letters.len(), 1);
        let s = &list.dead_letters[0];
        assert_eq!((s.id, s.attempts), (e.id, Some(1)));
        assert_eq!(s.step.as_deref(), Some("steps[0].validate"));
        assert_eq!(
            s.reason.as_deref(),
            Some("schema: /civicNo ********-**** is not valid")
        );
        assert!(
            !text.contains("20130412"),
            "not even the birth date: {text}"
        );

        let (status, _, text) = call(&app, "GET", &format!("/api/routes/r/dlq/{}", e.id)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(!text.contains(PNR), "{text}");
        let d: DeadLetterDetail = serde_json::from_str(&text).expect("detail");
        assert_eq!(d.summary, *s);
        assert_eq!(d.body, r#"{"civicNo":"********-****","note":"Tilda"}"#);
        assert_eq!(
            d.headers.get("student").map(String::as_str),
            Some("********-****")
        );
    }

    /// An operator with the `personal_data` role sees the dead letter as it is; without
    /// it, masked.
    #[tokio::test]
    async fn the_personal_data_role_sees_personnummer() {
        let (app, broker) = app().await;
        let e = poison();
        broker.dead_letter("r", &e).await.expect("park");
        let with = |roles: &[Role]| {
            let principal = Principal {
                actor: "ops".into(),
                roles: roles.iter().copied().collect(),
            };
            app.clone().layer(axum::Extension(principal))
        };
        let path = format!("/api/routes/r/dlq/{}", e.id);
        let (_, _, text) = call(&with(&[Role::Operator]), "GET", &path).await;
        assert!(!text.contains(PNR), "{text}");
        let (_, _, text) = call(&with(&[Role::Operator, Role::PersonalData]), "GET", &path).await;
        let d: DeadLetterDetail = serde_json::from_str(&text).expect("detail");
        assert_eq!(d.body, format!(r#"{{"civicNo":"{PNR}","note":"Tilda"}}"#));
        assert_eq!(
            d.summary.reason.as_deref(),
            Some(format!("schema: /civicNo {PNR} is not valid").as_str())
        );
    }

    /// Pages of a list: `limit` and `after` walk the queue, `next` leads on and is absent on
    /// the last page, `total` counts all; a bad limit or after, or one that is gone, is a
    /// problem saying what to do.
    #[tokio::test]
    async fn list_pages_with_limit_and_after() {
        let (app, broker) = app().await;
        let mut parked = Vec::new();
        for _ in 0..5 {
            let e = poison();
            broker.dead_letter("r", &e).await.expect("park");
            parked.push(e.id);
        }
        let mut seen = Vec::new();
        let mut path = "/api/routes/r/dlq?limit=2".to_string();
        for page in 0.. {
            let (status, _, text) = call(&app, "GET", &path).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            let list: DeadLetterList = serde_json::from_str(&text).expect("list");
            assert_eq!(list.total, Some(5));
            assert!(list.dead_letters.len() <= 2);
            seen.extend(list.dead_letters.iter().map(|s| s.id));
            match list.next {
                Some(next) => {
                    assert_eq!(Some(next), seen.last().copied());
                    path = format!("/api/routes/r/dlq?limit=2&after={next}");
                }
                None => {
                    assert_eq!(page, 2, "three pages of 2, 2 and 1");
                    break;
                }
            }
        }
        assert_eq!(seen, parked);
        let (_, _, text) = call(&app, "GET", "/api/routes/r/dlq").await;
        let list: DeadLetterList = serde_json::from_str(&text).expect("list");
        assert_eq!(list.dead_letters.len(), 5, "the default page holds 100");
        assert_eq!(list.next, None);

        let gone = Uuid::now_v7();
        for (path, status, says) in [
            (
                "/api/routes/r/dlq?limit=0".to_string(),
                400,
                "from 1 to 1000",
            ),
            (
                "/api/routes/r/dlq?limit=5000".to_string(),
                400,
                "from 1 to 1000",
            ),
            (
                "/api/routes/r/dlq?limit=many".to_string(),
                400,
                "`limit` is a number",
            ),
            ("/api/routes/r/dlq?after=x".to_string(), 400, "UUID"),
            (
                format!("/api/routes/r/dlq?after={gone}"),
                409,
                "list from the start",
            ),
        ] {
            let (got, ctype, text) = call(&app, "GET", &path).await;
            assert_eq!(got.as_u16(), status, "{path}: {text}");
            assert_eq!(ctype, "application/problem+json", "{path}");
            assert!(text.contains(says), "{path}: {text}");
        }
    }

    #[tokio::test]
    async fn replay_and_discard_answer_and_empty_the_queue() {
        let (app, broker) = app().await;
        let (a, b) = (poison(), poison());
        broker.dead_letter("r", &a).await.expect("park");
        broker.dead_letter("r", &b).await.expect("park");
        let (status, _, text) =
            call(&app, "POST", &format!("/api/routes/r/dlq/{}/replay", a.id)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let r: Replayed = serde_json::from_str(&text).expect("replayed");
        assert_eq!((r.id, r.correlation_id), (a.id, a.correlation_id));
        assert!(r.replayed_at.is_some());
        let (status, _, text) = call(&app, "DELETE", &format!("/api/routes/r/dlq/{}", b.id)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(broker.queue_depth("knut.dlq.r").await.expect("depth"), 0);
        assert_eq!(broker.queue_depth("knut.route.r").await.expect("depth"), 1);
        let (status, _, text) = call(&app, "POST", "/api/routes/r/dlq/replay").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let all: ReplayedAll = serde_json::from_str(&text).expect("all");
        assert!(all.replayed.is_empty());
    }

    #[tokio::test]
    async fn unknown_route_or_id_is_a_problem_404_saying_what_to_do() {
        let (app, _) = app().await;
        let id = Uuid::now_v7();
        for (method, path, says) in [
            ("GET", "/api/routes/nope/dlq".to_string(), "GET /api/routes"),
            ("GET", format!("/api/routes/r/dlq/{id}"), "knut dlq list r"),
            ("GET", "/api/routes/r/dlq/not-a-uuid".to_string(), "UUID"),
            (
                "DELETE",
                format!("/api/routes/r/dlq/{id}"),
                "knut dlq list r",
            ),
            (
                "POST",
                format!("/api/routes/r/dlq/{id}/replay"),
                "knut dlq list r",
            ),
            (
                "POST",
                "/api/routes/nope/dlq/replay".to_string(),
                "no route",
            ),
        ] {
            let (status, ctype, text) = call(&app, method, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {text}");
            assert_eq!(ctype, "application/problem+json");
            let p: serde_json::Value = serde_json::from_str(&text).expect("problem");
            assert_eq!(p["instance"], path.as_str());
            assert!(
                p["detail"].as_str().is_some_and(|d| d.contains(says)),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_problem_405() {
        let (app, _) = app().await;
        let (status, ctype, _) = call(&app, "PUT", "/api/routes/r/dlq").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(ctype, "application/problem+json");
    }

    #[tokio::test]
    async fn a_latin1_xml_body_is_shown_decoded() {
        let (app, broker) = app().await;
        let mut e = Envelope::new(
            "application/xml",
            crate::core::envelope::Body::Bytes(bytes::Bytes::from_static(
                b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xc5sa 201304122383</a>",
            )),
        );
        e.headers.insert(ATTEMPTS.into(), "2".into());
        broker.dead_letter("r", &e).await.expect("park");
        let (status, _, text) = call(&app, "GET", &format!("/api/routes/r/dlq/{}", e.id)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let d: DeadLetterDetail = serde_json::from_str(&text).expect("detail");
        assert!(d.body.ends_with("<a>Åsa ********-****</a>"), "{}", d.body);
    }
}
