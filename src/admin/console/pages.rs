//! The console's pages: sign-in, routes (live), one route, a message's journey, dead
//! letters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Form, Path, Query, State as AxumState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BASE, State, error_page, html_headers, path_segment, set_cookie};
use crate::admin::RouteInfo;
use crate::admin::auth::Principal;
use crate::admin::dead_letters::DlqError;
use crate::admin::dlq::{DeadLetterDetail, DeadLetterSummary};
use crate::broker::{dead_letter_queue, work_queue};
use crate::config::Role;
use crate::core::redact;
use crate::route::graph::{Node, Shape};
use crate::telemetry::live;

/// The window the rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Dead letters on a console page.
const PAGE: usize = 50;

/// A page rendered from `template` with `ctx` and what every page shows of the caller.
pub(super) fn render(
    s: &State,
    template: &str,
    mut ctx: tera::Context,
    who: Option<&Principal>,
    status: StatusCode,
) -> Response {
    ctx.insert("plane", &s.console.plane);
    if !ctx.contains_key("page") {
        ctx.insert("page", "");
    }
    ctx.insert("operator", &false);
    ctx.insert("personal_data", &false);
    ctx.insert("development", &s.console.development);
    ctx.insert("signed_in", &who.is_some());
    if let Some(p) = who {
        ctx.insert("actor", &p.actor);
        ctx.insert(
            "roles",
            &p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        );
        ctx.insert("operator", &p.has(Role::Operator));
        ctx.insert("personal_data", &p.has(Role::PersonalData));
    }
    match s.tera.render(template, &ctx) {
        Ok(html) => (status, html_headers(), html).into_response(),
        Err(e) => {
            tracing::error!(error = ?e, template, "a console page could not be rendered");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be drawn",
                "See the instance's log.",
            )
        }
    }
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

// ---------------------------------------------------------------------------------------
// Signing in and out

#[derive(Debug, Default, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    credential: String,
    next: Option<String>,
}

/// Where to go after signing in: a console path of this listener, else the console.
fn next_of(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == BASE || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with("/console/login") =>
        {
            n.to_string()
        }
        _ => BASE.to_string(),
    }
}

pub(super) async fn login_form(
    AxumState(s): AxumState<State>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("next", &next_of(q.next.as_deref()));
    ctx.insert("dev_token", &s.console.development);
    render(&s, "login.html", ctx, None, StatusCode::OK)
}

pub(super) async fn login(AxumState(s): AxumState<State>, Form(f): Form<LoginForm>) -> Response {
    let next = next_of(f.next.as_deref());
    let auth = &s.console.auth;
    let refused = |detail: &str| {
        let mut ctx = tera::Context::new();
        ctx.insert("next", &next);
        ctx.insert("dev_token", &s.console.development);
        ctx.insert("error", detail);
        render(&s, "login.html", ctx, None, StatusCode::UNAUTHORIZED)
    };
    match auth.verify(f.credential.trim()).await {
        Ok(p) if p.has(Role::Viewer) => {
            // The cookie holds a session, never the credential.
            let Some(session) = auth.open_session(&p).await else {
                return refused(
                    "The console could not open a session (its state store did not answer); try again.",
                );
            };
            auth.audit(Some(&p), &Method::POST, "/console/login", 303)
                .await;
            tracing::info!(actor = %p.actor, "signed in to the console");
            let mut r = see_other(&next);
            if let Ok(v) =
                HeaderValue::from_str(&set_cookie(Some(&session), s.console.secure_cookie))
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(p) => {
            auth.audit(Some(&p), &Method::POST, "/console/login", 403)
                .await;
            refused("This credential does not hold the `viewer` role the console needs.")
        }
        Err(_) => {
            auth.audit(None, &Method::POST, "/console/login", 401).await;
            refused("That is not an admin key or token of this instance.")
        }
    }
}

pub(super) async fn logout(
    AxumState(s): AxumState<State>,
    headers: axum::http::HeaderMap,
) -> Response {
    // Signing out ends the session in the store, not only the browser's copy.
    if let Some(token) = super::cookie_credential(&headers) {
        let who = s.console.auth.close_session(&token).await;
        s.console
            .auth
            .audit(who.as_ref(), &Method::POST, "/console/logout", 303)
            .await;
    }
    let mut r = see_other("/console/login");
    if let Ok(v) = HeaderValue::from_str(&set_cookie(None, s.console.secure_cookie)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---------------------------------------------------------------------------------------
// Routes

/// One adapter's circuit as a route's row shows it.
#[derive(Debug, Clone, Serialize)]
struct Circuit {
    adapter: String,
    /// `closed`, `open`, `half-open`, or `unused` before the first call.
    state: &'static str,
}

/// One route's row: what it is and its numbers now.
#[derive(Debug, Clone, Serialize)]
struct Row {
    id: String,
    from: String,
    steps: Vec<String>,
    /// Messages in per minute over the last minute (while the page is watched).
    rate: Option<String>,
    messages_in: u64,
    messages_out: u64,
    failed: u64,
    retried: u64,
    dead_lettered: u64,
    /// Messages waiting in its work queue (and partitions), as last measured.
    queue_depth: Option<u64>,
    /// Dead letters waiting, as last measured.
    dead_letters: Option<u64>,
    circuits: Vec<Circuit>,
}

fn rows(s: &State) -> Vec<Row> {
    let now = Instant::now();
    let counts: Vec<(&RouteInfo, live::RouteSnapshot)> = s
        .console
        .routes
        .iter()
        .map(|r| (r, live::route_snapshot(&r.id)))
        .collect();
    // The rate: messages in since the oldest sample of the last minute.
    let oldest = {
        let mut samples = s.samples.lock().unwrap_or_else(|e| e.into_inner());
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            samples.pop_front();
        }
        let due = samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_secs(1));
        if due {
            samples.push_back((
                now,
                counts
                    .iter()
                    .map(|(r, c)| (r.id.clone(), c.messages_in))
                    .collect::<BTreeMap<_, _>>(),
            ));
        }
        samples.front().cloned()
    };
    counts
        .into_iter()
        .map(|(r, c)| {
            let rate = oldest.as_ref().and_then(|(at, then)| {
                let secs = now.duration_since(*at).as_secs_f64();
                (secs >= 1.0).then(|| {
                    let n = c
                        .messages_in
                        .saturating_sub(then.get(&r.id).copied().unwrap_or(0));
                    format!("{:.1}/min", n as f64 * 60.0 / secs)
                })
            });
            let queue_depth = std::iter::once(work_queue(&r.id))
                .chain(r.partition_queues.iter().cloned())
                .map(|q| live::queue_depth(&q))
                .fold(None, |acc: Option<u64>, d| match (acc, d) {
                    (None, d) => d,
                    (a, None) => a,
                    (Some(a), Some(d)) => Some(a + d),
                });
            Row {
                id: r.id.clone(),
                from: redact::mask(&r.from).into_owned(),
                steps: r.steps.clone(),
                rate,
                messages_in: c.messages_in,
                messages_out: c.messages_out,
                failed: c.failed,
                retried: c.retried,
                dead_lettered: c.dead_lettered,
                queue_depth,
                dead_letters: live::queue_depth(&dead_letter_queue(&r.id)),
                circuits: s
                    .console
                    .graph
                    .adapters_of(&r.id)
                    .into_iter()
                    .map(|a| Circuit {
                        state: live::circuit(&a).unwrap_or("unused"),
                        adapter: a,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A node's link in a drawing: a route's page.
fn node_link(n: &Node) -> Option<String> {
    (n.shape == Shape::Route).then(|| format!("{BASE}/routes/{}", path_segment(&n.name)))
}

pub(super) async fn routes(
    AxumState(s): AxumState<State>,
    who: Option<Extension<Principal>>,
) -> Response {
    let svg = s
        .svg
        .get_or_init(|| {
            crate::route::graph::svg(
                &s.console.graph,
                &format!("Routes of the {} plane", s.console.plane),
                &node_link,
            )
        })
        .clone();
    let mut ctx = tera::Context::new();
    ctx.insert("rows", &rows(&s));
    ctx.insert("svg", &svg);
    ctx.insert("page", "routes");
    render(&s, "routes.html", ctx, who.as_deref(), StatusCode::OK)
}

/// `GET /console/live.json`: every route's row now (the routes page polls it).
pub(super) async fn live(AxumState(s): AxumState<State>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "routes": rows(&s),
        })),
    )
        .into_response()
}

pub(super) async fn route(
    AxumState(s): AxumState<State>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
) -> Response {
    let Some(row) = rows(&s).into_iter().find(|r| r.id == id) else {
        return no_route(&id);
    };
    let svg = crate::route::graph::svg(
        &s.console.graph.around(&id),
        &format!("Route {id}: where its messages come from and go"),
        &node_link,
    );
    let mut ctx = tera::Context::new();
    ctx.insert("row", &row);
    ctx.insert("svg", &svg);
    ctx.insert("page", "routes");
    render(&s, "route.html", ctx, who.as_deref(), StatusCode::OK)
}

fn no_route(id: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "No such route",
        &format!("There is no route `{id}` on this listener: the console's first page lists them."),
    )
}

// ---------------------------------------------------------------------------------------
// A message's journey

#[derive(Debug, Default, Deserialize)]
pub(super) struct JourneyQuery {
    id: Option<String>,
}

/// One hop as the journey page shows it.
#[derive(Debug, Serialize)]
struct HopRow {
    at: String,
    route: String,
    step: String,
    outcome: String,
    duration: String,
    detail: Option<String>,
    correlation_id: String,
    correlation_short: String,
    message_id: String,
}

pub(super) async fn journey(
    AxumState(s): AxumState<State>,
    Query(q): Query<JourneyQuery>,
    who: Option<Extension<Principal>>,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("page", "journey");
    let id = q.id.as_deref().map(str::trim).unwrap_or_default();
    // Whatever was typed is shown back masked (in any form a key refuses, `130412 2383`
    // too): a personnummer is never a key.
    ctx.insert("query", &redact::mask_path(id));
    let mut status = StatusCode::OK;
    if !id.is_empty() {
        match crate::admin::trace::journey(
            &s.console.store,
            id,
            crate::admin::trace::Limits::default(),
        )
        .await
        {
            Ok(j) => {
                // An error's text goes to the `operator` role only, as in the API.
                let operator = who.as_ref().is_some_and(|p| p.has(Role::Operator));
                let hops: Vec<HopRow> = j
                    .hops
                    .into_iter()
                    .map(|h| if operator { h } else { h.for_viewer() })
                    .map(|h| HopRow {
                        at: h.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        route: h.route.clone(),
                        step: redact::mask(&h.step).into_owned(),
                        outcome: h.outcome.clone(),
                        duration: format!("{:.1} ms", h.duration_us as f64 / 1000.0),
                        detail: h.detail.as_deref().map(|d| redact::mask(d).into_owned()),
                        correlation_id: h.correlation_id.to_string(),
                        correlation_short: h.correlation_id.to_string().chars().take(8).collect(),
                        message_id: h.message_id.to_string(),
                    })
                    .collect();
                ctx.insert("hops", &hops);
                ctx.insert(
                    "correlation_ids",
                    &j.correlation_ids
                        .iter()
                        .map(Uuid::to_string)
                        .collect::<Vec<_>>(),
                );
                ctx.insert(
                    "keys",
                    &j.keys
                        .iter()
                        .map(|k| (k.name.clone(), redact::mask(&k.value).into_owned()))
                        .collect::<Vec<_>>(),
                );
                ctx.insert("truncated", &j.truncated);
            }
            Err(e) => {
                status = match e {
                    crate::admin::trace::TraceError::BadId(_) => StatusCode::BAD_REQUEST,
                    crate::admin::trace::TraceError::NotFound => StatusCode::NOT_FOUND,
                    crate::admin::trace::TraceError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                ctx.insert("error", &redact::mask(&e.to_string()));
            }
        }
    }
    render(&s, "journey.html", ctx, who.as_deref(), status)
}

// ---------------------------------------------------------------------------------------
// Dead letters

fn reveal(who: &Option<Extension<Principal>>) -> bool {
    who.as_ref().is_some_and(|p| p.has(Role::PersonalData))
}

fn known(s: &State, route: &str) -> bool {
    s.console.routes.iter().any(|r| r.id == route)
}

fn dlq_failure(e: &DlqError) -> Response {
    match e {
        DlqError::NotFound { .. } => error_page(
            StatusCode::NOT_FOUND,
            "No such dead letter",
            "It may have been replayed or discarded meanwhile: go back to the route's dead letters.",
        ),
        DlqError::CursorGone { .. } => error_page(
            StatusCode::CONFLICT,
            "The page's starting point is gone",
            "A dead letter the page started after was replayed or discarded: list from the start.",
        ),
        e if e.is_transient() => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The dead letters cannot be reached now",
            &format!("{e}; try again in a moment."),
        ),
        e => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The dead-letter operation failed",
            &e.to_string(),
        ),
    }
}

pub(super) async fn dead_letters(
    AxumState(s): AxumState<State>,
    who: Option<Extension<Principal>>,
) -> Response {
    let ids: Vec<String> = s.console.routes.iter().map(|r| r.id.clone()).collect();
    let overview = crate::admin::dlq::overview_of(&s.console.dead_letters, ids).await;
    let mut ctx = tera::Context::new();
    ctx.insert("page", "dead-letters");
    ctx.insert("overview", &overview);
    render(&s, "dead_letters.html", ctx, who.as_deref(), StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
    done: Option<String>,
    message: Option<String>,
    correlation: Option<String>,
}

pub(super) async fn dead_letter_list(
    AxumState(s): AxumState<State>,
    Path(route): Path<String>,
    Query(q): Query<ListQuery>,
    who: Option<Extension<Principal>>,
) -> Response {
    if !known(&s, &route) {
        return no_route(&route);
    }
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => match Uuid::parse_str(a) {
            Ok(id) => Some(id),
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Not a page",
                    "`after` is a dead letter's id: follow the page's Next link.",
                );
            }
        },
    };
    let reveal = reveal(&who);
    let total = s.console.dead_letters.count(&route).await.ok();
    let page = match s.console.dead_letters.page(&route, after, PAGE).await {
        Ok(p) => p,
        Err(e) => return dlq_failure(&e),
    };
    let list: Vec<DeadLetterSummary> = page
        .messages
        .iter()
        .map(|e| DeadLetterSummary::of(&route, e, reveal))
        .collect();
    let next = page
        .more
        .then(|| page.messages.last().map(|e| e.id.to_string()))
        .flatten();
    let mut ctx = tera::Context::new();
    ctx.insert("page", "dead-letters");
    ctx.insert("route", &route);
    ctx.insert("total", &total);
    ctx.insert("dead_letters", &list);
    ctx.insert("next", &next);
    ctx.insert("first_page", &after.is_none());
    let valid = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| Uuid::parse_str(v).ok())
            .map(|u| u.to_string())
    };
    let done = match q.done.as_deref() {
        Some("replayed") => Some("replayed"),
        Some("discarded") => Some("discarded"),
        _ => None,
    };
    ctx.insert("done", &done);
    ctx.insert("done_message", &valid(&q.message));
    ctx.insert("done_correlation", &valid(&q.correlation));
    render(
        &s,
        "dead_letter_list.html",
        ctx,
        who.as_deref(),
        StatusCode::OK,
    )
}

pub(super) async fn dead_letter(
    AxumState(s): AxumState<State>,
    Path((route, message)): Path<(String, String)>,
    who: Option<Extension<Principal>>,
) -> Response {
    if !known(&s, &route) {
        return no_route(&route);
    }
    let Ok(id) = Uuid::parse_str(&message) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such dead letter",
            "A dead letter is named by its message id, as the route's dead letters list it.",
        );
    };
    let detail = match s.console.dead_letters.show(&route, id).await {
        Ok(e) => DeadLetterDetail::of(&route, &e, reveal(&who)),
        Err(e) => return dlq_failure(&e),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("page", "dead-letters");
    ctx.insert("route", &route);
    ctx.insert("dl", &detail);
    ctx.insert("masked", &!reveal(&who));
    render(&s, "dead_letter.html", ctx, who.as_deref(), StatusCode::OK)
}

async fn act(s: &State, route: &str, message: &str, replay: bool) -> Response {
    if !known(s, route) {
        return no_route(route);
    }
    let Ok(id) = Uuid::parse_str(message) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such dead letter",
            "A dead letter is named by its message id.",
        );
    };
    let list = format!("{BASE}/routes/{}/dead-letters", path_segment(route));
    if replay {
        match s.console.dead_letters.replay(route, id).await {
            Ok(m) => see_other(&format!(
                "{list}?done=replayed&message={}&correlation={}",
                m.id, m.correlation_id
            )),
            Err(e) => dlq_failure(&e),
        }
    } else {
        match s.console.dead_letters.discard(route, id).await {
            Ok(()) => see_other(&format!("{list}?done=discarded&message={id}")),
            Err(e) => dlq_failure(&e),
        }
    }
}

pub(super) async fn replay(
    AxumState(s): AxumState<State>,
    Path((route, message)): Path<(String, String)>,
) -> Response {
    act(&s, &route, &message, true).await
}

pub(super) async fn discard(
    AxumState(s): AxumState<State>,
    Path((route, message)): Path<(String, String)>,
) -> Response {
    act(&s, &route, &message, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(next_of(Some("/console/routes/a")), "/console/routes/a");
        assert_eq!(next_of(Some("/console?x=1")), "/console?x=1");
        assert_eq!(next_of(Some("//evil.example/console")), "/console");
        assert_eq!(next_of(Some("/console//evil")), "/console");
        assert_eq!(next_of(Some("https://evil.example")), "/console");
        assert_eq!(next_of(Some("/consolex")), "/console");
        assert_eq!(next_of(Some("/console/login")), "/console");
        assert_eq!(next_of(None), "/console");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("a-b_c.d"), "a-b_c.d");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
