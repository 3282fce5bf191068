//! The web console on the admin listener, under `/console`: server-rendered HTML pages
//! (Tera templates compiled into the binary) and a little hand-written JavaScript, nothing
//! fetched from elsewhere, so it works without internet.
//!
//! | path | role | what |
//! |---|---|---|
//! | `GET /console/login`, `POST /console/login` | — | the sign-in form: an admin key, token, or in development the development token |
//! | `POST /console/logout` | — | sign out (the session ends in the store, the cookie is cleared) |
//! | `GET /console` | `viewer` | every route: source, steps, rate, errors, queue depth, dead letters, its adapters' circuits (updated every few seconds from `GET /console/live.json`), and the route graph as SVG |
//! | `GET /console/routes/{id}` | `viewer` | one route: its graph, steps and numbers |
//! | `GET /console/journey?id=` | `viewer` | a message's journey by correlation id or business key ([`super::trace`]) |
//! | `GET /console/dead-letters` | `operator` | every route's number of dead letters |
//! | `GET /console/routes/{id}/dead-letters` | `operator` | a page of a route's dead letters |
//! | `GET /console/routes/{id}/dead-letters/{msg}` | `operator` | one dead letter, personnummer masked (unmasked with `personal_data`) |
//! | `POST /console/routes/{id}/dead-letters/{msg}/replay`, `…/discard` | `operator` | replay, discard (journaled; audited) |
//! | `GET /console/sandbox`, `POST /console/sandbox/{system}/fault`, `…/fault/clear` | `operator` to change | development only: the sandbox's systems, their inboxes and faults |
//!
//! **Signing in.** A browser cannot send `Authorization: Bearer` when it follows a link, so
//! the login form takes the same credential the API takes and keeps it in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` unless the listener is on the
//! loopback address). The guard ([`super::auth::guard`]) takes the cookie on `/console`
//! paths only, with the same roles as the API. A request that changes something is a
//! `POST` form; besides `SameSite=Strict`, the guard refuses a `POST` whose `Origin` (or
//! `Sec-Fetch-Site`) says it comes from another site. Every `POST` and every view of a dead
//! letter is written to the audit journal like an `/api/` call.
//!
//! **Privacy.** Whatever a page shows of a message (a dead letter's reason, headers,
//! body) passes [`crate::core::redact::mask`] unless the caller holds `personal_data`;
//! the journal holds no bodies, so a journey never shows one.

mod pages;
mod sandbox;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::RouteInfo;
use super::auth::AdminAuth;
use super::dead_letters::DeadLetters;
use crate::route::graph::Graph;
use crate::store::Store;

/// The name of the cookie holding the console's session (an opaque token; the credential
/// stays with the browser's user).
pub const COOKIE: &str = "knut_console";
/// The path every console page is under.
pub const BASE: &str = "/console";

/// What the console shows and acts on: one plane's routes on its admin listener.
pub struct Console {
    /// The plane (`internal`, `external`), shown in the title.
    pub plane: String,
    /// The plane's routes, as `/api/routes` lists them.
    pub routes: Vec<RouteInfo>,
    /// The graph of the plane's routes (the model `knut graph` draws).
    pub graph: Graph,
    /// Their dead letters.
    pub dead_letters: DeadLetters,
    /// The state store (the journal of every hop).
    pub store: Store,
    /// The admin credentials and audit journal.
    pub auth: Arc<AdminAuth>,
    /// The development profile (the sandbox page).
    pub development: bool,
    /// The sandbox's address, once it runs (development only).
    pub sandbox: Arc<OnceLock<SocketAddr>>,
    /// Whether the cookie is marked `Secure` (the listener is not on loopback).
    pub secure_cookie: bool,
}

/// The console's shared state.
pub(crate) struct Shared {
    pub(crate) console: Console,
    pub(crate) tera: tera::Tera,
    /// Messages in per route at recent moments, for the rate (a minute's window).
    pub(crate) samples: Mutex<VecDeque<(Instant, BTreeMap<String, u64>)>>,
    /// The whole graph's SVG, drawn on first use.
    pub(crate) svg: OnceLock<String>,
    pub(crate) http: reqwest::Client,
}

pub(crate) type State = Arc<Shared>;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("routes.html", include_str!("templates/routes.html")),
    ("route.html", include_str!("templates/route.html")),
    ("journey.html", include_str!("templates/journey.html")),
    (
        "dead_letters.html",
        include_str!("templates/dead_letters.html"),
    ),
    (
        "dead_letter_list.html",
        include_str!("templates/dead_letter_list.html"),
    ),
    (
        "dead_letter.html",
        include_str!("templates/dead_letter.html"),
    ),
    ("sandbox.html", include_str!("templates/sandbox.html")),
];

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

/// The templates, parsed (autoescaped: every name ends in `.html`).
fn templates() -> Result<tera::Tera, tera::Error> {
    let mut tera = tera::Tera::default();
    tera.register_filter(
        "seg",
        |v: &tera::Value, _: &std::collections::HashMap<String, tera::Value>| {
            let text = match v {
                tera::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok(tera::Value::String(path_segment(&text)))
        },
    );
    tera.add_raw_templates(TEMPLATES.iter().copied())?;
    Ok(tera)
}

/// The console's pages as a router (mounted beside the admin API, behind its guard).
pub fn router(console: Console) -> Router {
    let tera = match templates() {
        Ok(t) => t,
        Err(e) => {
            // The templates are part of the binary; a unit test parses them.
            tracing::error!(error = %e, "the console's templates do not parse; /console answers 500");
            tera::Tera::default()
        }
    };
    // reqwest builds on rustls without a provider of its own: the process's is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state: State = Arc::new(Shared {
        console,
        tera,
        samples: Mutex::new(VecDeque::new()),
        svg: OnceLock::new(),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
    });
    Router::new()
        .route("/console", get(pages::routes))
        .route("/console/", get(pages::routes))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/live.json", get(pages::live))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/routes/{id}", get(pages::route))
        .route("/console/journey", get(pages::journey))
        .route("/console/dead-letters", get(pages::dead_letters))
        .route(
            "/console/routes/{id}/dead-letters",
            get(pages::dead_letter_list),
        )
        .route(
            "/console/routes/{id}/dead-letters/{message}",
            get(pages::dead_letter),
        )
        .route(
            "/console/routes/{id}/dead-letters/{message}/replay",
            post(pages::replay),
        )
        .route(
            "/console/routes/{id}/dead-letters/{message}/discard",
            post(pages::discard),
        )
        .route("/console/sandbox", get(sandbox::page))
        .route("/console/sandbox/{system}/fault", post(sandbox::fault))
        .route(
            "/console/sandbox/{system}/fault/clear",
            post(sandbox::clear),
        )
        .with_state(state)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        JS,
    )
        .into_response()
}

/// `text` as one URL path segment (`seg` in the templates).
pub(crate) fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The credential in the console's cookie, if any.
pub fn cookie_credential(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v.trim().to_string())?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// The `Set-Cookie` value keeping `credential` (or, for `None`, clearing it).
pub(crate) fn set_cookie(credential: Option<&str>, secure: bool) -> String {
    use base64::Engine as _;
    let secure = if secure { "; Secure" } else { "" };
    match credential {
        Some(c) => format!(
            "{COOKIE}={}; Path={BASE}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.as_bytes()),
            super::auth::SESSION_TTL.as_secs()
        ),
        None => format!("{COOKIE}=; Path={BASE}; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether a console `POST` comes from the console's own pages: its `Origin` (when sent)
/// is this host, and `Sec-Fetch-Site` (when sent) is `same-origin` or `none`.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_ok = match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            matches!((rest, host), (Some(r), Some(h)) if r.eq_ignore_ascii_case(h))
        }
        Some(Err(_)) => false,
    };
    let site_ok = match headers.get("sec-fetch-site").and_then(|s| s.to_str().ok()) {
        None => true,
        Some(s) => s == "same-origin" || s == "none",
    };
    origin_ok && site_ok
}

/// What the guard answers a console request it refuses: a `GET` without credentials goes
/// to the login form; anything else is a readable page with `status`.
pub fn refusal(status: StatusCode, get: bool, path: &str, detail: &str) -> Response {
    if status == StatusCode::UNAUTHORIZED && get {
        let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("{BASE}/login?next={next}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let title = match status {
        StatusCode::UNAUTHORIZED => "Sign in first",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Refused",
    };
    error_page(status, title, detail)
}

/// A readable HTML error page (the templates' own, or plain text if they failed).
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    static TERA: OnceLock<Option<tera::Tera>> = OnceLock::new();
    let mut ctx = tera::Context::new();
    ctx.insert("title", title);
    ctx.insert("detail", &crate::core::redact::mask(detail));
    ctx.insert("status", &status.as_u16());
    ctx.insert("signed_in", &false);
    let html = TERA
        .get_or_init(|| templates().ok())
        .as_ref()
        .and_then(|t| t.render("error.html", &ctx).ok());
    match html {
        Some(html) => (status, html_headers(), html).into_response(),
        None => (status, format!("{title}: {detail}")).into_response(),
    }
}

/// The headers of every console page: HTML, not cached, not framed, no script from
/// elsewhere.
pub(crate) fn html_headers() -> [(header::HeaderName, &'static str); 6] {
    [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ]
}

#[cfg(test)]
mod served {
    //! The console's pages behind the admin guard, in process: signing in, roles, masking,
    //! a replay and its audit row, the origin check.

    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{SharedBroker, Topology};
    use crate::config::Role;
    use crate::core::envelope::{Envelope, header as h};

    const OPS: &str = "ops-key-0123456789abcdef";
    const VIEW: &str = "view-key-0123456789abcdef";
    const PNR: &str = "20130412-2383";

    async fn app() -> (Router, SharedBroker, Store) {
        let broker: SharedBroker = Arc::new(EmbeddedBroker::new());
        broker
            .declare(&Topology::single("r"))
            .await
            .expect("declare");
        let store = Store::memory().await.expect("store");
        let auth = Arc::new(AdminAuth::with_keys(
            &[
                ("ops", OPS, &[Role::Viewer, Role::Operator]),
                ("watcher", VIEW, &[Role::Viewer]),
            ],
            &[],
            false,
            Some(store.clone()),
        ));
        let console = Console {
            plane: "internal".into(),
            routes: vec![RouteInfo {
                id: "r".into(),
                from: "http POST /in/r".into(),
                steps: vec!["validate".into(), "to".into()],
                queue: "knut.route.r".into(),
                dead_letter_queue: "knut.dlq.r".into(),
                partition_queues: vec![],
            }],
            graph: Graph::default(),
            dead_letters: DeadLetters::new(broker.clone(), store.clone()),
            store: store.clone(),
            auth: auth.clone(),
            development: false,
            sandbox: Arc::default(),
            secure_cookie: false,
        };
        let router = router(console).layer(axum::middleware::from_fn_with_state(
            auth,
            super::super::auth::guard,
        ));
        (router, broker, store)
    }

    struct Answer {
        status: u16,
        location: String,
        cookie: String,
        body: String,
    }

    async fn call(
        app: &Router,
        method: &str,
        path: &str,
        key: Option<&str>,
        extra: &[(&str, &str)],
        form: &str,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:9090");
        if let Some(k) = key {
            // An admin key as the API takes it (the cookie holds a session: see
            // `the_cookie_holds_a_session_that_signing_out_ends`).
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if !form.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(form.to_string())).expect("request"))
            .await
            .expect("response");
        let get = |name: header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (status, location, cookie) = (
            resp.status().as_u16(),
            get(header::LOCATION),
            get(header::SET_COOKIE),
        );
        let body = to_bytes(resp.into_body(), 1 << 22).await.expect("body");
        Answer {
            status,
            location,
            cookie,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    #[tokio::test]
    async fn sign_in_roles_masking_and_a_replay() {
        let (app, broker, store) = app().await;
        // Without a credential: to the sign-in form, which is open.
        let a = call(&app, "GET", "/console/routes/r", None, &[], "").await;
        assert_eq!(a.status, 303);
        assert_eq!(a.location, "/console/login?next=%2Fconsole%2Froutes%2Fr");
        let a = call(
            &app,
            "GET",
            "/console/login?next=/console/routes/r",
            None,
            &[],
            "",
        )
        .await;
        assert_eq!(a.status, 200);
        assert!(a.body.contains("<label for=\"credential\""), "{}", a.body);
        assert!(
            a.body
                .contains("value=\"&#x2F;console&#x2F;routes&#x2F;r\""),
            "{}",
            a.body
        );
        // A wrong credential is refused on the form; the right one sets the cookie.
        let a = call(
            &app,
            "POST",
            "/console/login",
            None,
            &[("origin", "http://127.0.0.1:9090")],
            "credential=nope&next=%2Fconsole",
        )
        .await;
        assert_eq!(a.status, 401);
        assert!(a.body.contains("not an admin key"), "{}", a.body);
        assert!(a.cookie.is_empty());
        let a = call(
            &app,
            "POST",
            "/console/login",
            None,
            &[("origin", "http://127.0.0.1:9090")],
            &format!("credential={OPS}&next=%2Fconsole%2Froutes%2Fr"),
        )
        .await;
        assert_eq!(a.status, 303, "{}", a.body);
        assert_eq!(a.location, "/console/routes/r");
        assert!(
            a.cookie.contains("HttpOnly") && a.cookie.contains("SameSite=Strict"),
            "{}",
            a.cookie
        );
        // Signed in: the pages and the live numbers.
        let a = call(&app, "GET", "/console", Some(VIEW), &[], "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            a.body.contains("data-route=\"r\"") && a.body.contains("http POST &#x2F;in&#x2F;r"),
            "{}",
            a.body
        );
        let a = call(&app, "GET", "/console/live.json", Some(VIEW), &[], "").await;
        let live: serde_json::Value = serde_json::from_str(&a.body).expect("json");
        assert_eq!(live["routes"][0]["id"], "r");
        let a = call(&app, "GET", "/console/routes/r", Some(VIEW), &[], "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = call(&app, "GET", "/console/routes/nope", Some(VIEW), &[], "").await;
        assert_eq!(a.status, 404);
        assert!(a.body.contains("No such route"), "{}", a.body);
        // A viewer may not see dead letters: a page naming the role.
        let a = call(&app, "GET", "/console/dead-letters", Some(VIEW), &[], "").await;
        assert_eq!(a.status, 403);
        assert!(a.body.contains("operator"), "{}", a.body);

        // A dead letter with a personnummer: never shown to an operator without personal_data.
        let mut e = Envelope::json(serde_json::json!({"civicNo": PNR, "qty": "many"}));
        e.headers.insert(
            h::DEAD_LETTER_REASON.into(),
            format!("schema: /civicNo {PNR}"),
        );
        e.headers
            .insert(h::DEAD_LETTER_STEP.into(), "steps[0].validate".into());
        broker.dead_letter("r", &e).await.expect("park");
        for path in [
            "/console/dead-letters".to_string(),
            "/console/routes/r/dead-letters".to_string(),
            format!("/console/routes/r/dead-letters/{}", e.id),
        ] {
            let a = call(&app, "GET", &path, Some(OPS), &[], "").await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            assert!(!a.body.contains("130412"), "{path}: {}", a.body);
        }
        let a = call(
            &app,
            "GET",
            &format!("/console/routes/r/dead-letters/{}", e.id),
            Some(OPS),
            &[],
            "",
        )
        .await;
        assert!(a.body.contains("********-****"), "{}", a.body);

        // A replay posted from another site is refused; from the console it is done.
        let replay = format!("/console/routes/r/dead-letters/{}/replay", e.id);
        let a = call(
            &app,
            "POST",
            &replay,
            Some(OPS),
            &[("origin", "http://evil.example")],
            "",
        )
        .await;
        assert_eq!(a.status, 403);
        assert_eq!(broker.queue_depth("knut.dlq.r").await.expect("depth"), 1);
        let a = call(
            &app,
            "POST",
            &replay,
            Some(OPS),
            &[
                ("origin", "http://127.0.0.1:9090"),
                ("sec-fetch-site", "same-origin"),
            ],
            "",
        )
        .await;
        assert_eq!(a.status, 303, "{}", a.body);
        assert!(
            a.location
                .starts_with("/console/routes/r/dead-letters?done=replayed"),
            "{}",
            a.location
        );
        assert_eq!(broker.queue_depth("knut.dlq.r").await.expect("depth"), 0);
        let a = call(&app, "GET", &a.location, Some(OPS), &[], "").await;
        assert!(a.body.contains("Replayed"), "{}", a.body);

        // A discard: journaled, then gone.
        let other = Envelope::json(serde_json::json!({"qty": 0}));
        broker.dead_letter("r", &other).await.expect("park");
        let discard = format!("/console/routes/r/dead-letters/{}/discard", other.id);
        let a = call(&app, "POST", &discard, Some(OPS), &[], "").await;
        assert_eq!(a.status, 303, "{}", a.body);
        assert!(
            a.location
                .starts_with("/console/routes/r/dead-letters?done=discarded"),
            "{}",
            a.location
        );
        assert_eq!(broker.queue_depth("knut.dlq.r").await.expect("depth"), 0);
        let a = call(&app, "POST", &discard, Some(OPS), &[], "").await;
        assert_eq!(a.status, 404, "{}", a.body);

        // Who did what is in the audit journal.
        let rows = store.audit_recent(100).await.expect("audit");
        let seen: Vec<(String, String, String, u16)> = rows
            .iter()
            .map(|r| (r.actor.clone(), r.method.clone(), r.path.clone(), r.status))
            .collect();
        for want in [
            ("ops", "POST", replay.as_str(), 303),
            ("anonymous", "POST", replay.as_str(), 403),
            ("ops", "POST", "/console/login", 303),
            ("anonymous", "POST", "/console/login", 401),
            ("watcher", "GET", "/console/dead-letters", 403),
            ("ops", "GET", "/console/routes/r/dead-letters", 200),
        ] {
            assert!(
                seen.iter()
                    .any(|(a, m, p, s)| (a.as_str(), m.as_str(), p.as_str(), *s) == want),
                "{want:?} in {seen:?}"
            );
        }
        // The API never takes the cookie.
        assert!(!seen.iter().any(|(_, _, p, _)| p.starts_with("/api/")));
    }

    /// The cookie holds an opaque session, never the credential: the key itself as a
    /// cookie is refused; the session works on the console only, not on the API; signing
    /// out ends it in the store (a copied cookie is dead too) and is journaled.
    #[tokio::test]
    async fn the_cookie_holds_a_session_that_signing_out_ends() {
        let (app, _, store) = app().await;
        let a = call(
            &app,
            "POST",
            "/console/login",
            None,
            &[("origin", "http://127.0.0.1:9090")],
            &format!("credential={OPS}&next=%2Fconsole"),
        )
        .await;
        assert_eq!(a.status, 303, "{}", a.body);
        assert!(
            !a.cookie.contains(OPS),
            "the key is in the cookie: {}",
            a.cookie
        );
        assert!(a.cookie.contains("Max-Age=28800"), "{}", a.cookie);
        let session = a.cookie.split(';').next().unwrap_or_default().to_string();
        let with = |cookie: &str, method: &str, path: &str| {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "127.0.0.1:9090")
                .header("origin", "http://127.0.0.1:9090")
                .header("cookie", cookie);
            if method == "POST" {
                req = req.header("content-type", "application/x-www-form-urlencoded");
            }
            let app = app.clone();
            async move {
                let resp = app
                    .oneshot(req.body(Body::empty()).expect("request"))
                    .await
                    .expect("response");
                resp.status().as_u16()
            }
        };
        assert_eq!(with(&session, "GET", "/console/dead-letters").await, 200);
        // The key itself in the cookie is no session.
        let raw = set_cookie(Some(OPS), false);
        let raw = raw.split(';').next().unwrap_or_default();
        assert_eq!(with(raw, "GET", "/console/dead-letters").await, 303);
        // The API never takes the cookie.
        assert_eq!(with(&session, "GET", "/api/dlq").await, 401);
        // A form posted with the cookie but saying nowhere it comes from is refused.
        let bare = Request::builder()
            .method("POST")
            .uri("/console/logout")
            .header("host", "127.0.0.1:9090")
            .header("cookie", &session)
            .body(Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(bare).await.expect("response");
        assert_eq!(resp.status().as_u16(), 403);
        // Signing out ends the session in the store: the same cookie is dead.
        assert_eq!(with(&session, "POST", "/console/logout").await, 303);
        assert_eq!(with(&session, "GET", "/console/dead-letters").await, 303);
        let rows = store.audit_recent(50).await.expect("audit");
        assert!(
            rows.iter()
                .any(|r| r.actor == "ops" && r.path == "/console/logout"),
            "the sign-out is journaled"
        );
    }

    #[tokio::test]
    async fn a_journey_that_the_journal_does_not_hold_says_so() {
        let (app, _, _) = app().await;
        let a = call(&app, "GET", "/console/journey", Some(VIEW), &[], "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.contains("<label for=\"id\""), "{}", a.body);
        let id = uuid::Uuid::now_v7();
        let a = call(
            &app,
            "GET",
            &format!("/console/journey?id={id}"),
            Some(VIEW),
            &[],
            "",
        )
        .await;
        assert_eq!(a.status, 404, "{}", a.body);
        assert!(a.body.contains("holds no hop"), "{}", a.body);
        // What was typed is shown back masked.
        let a = call(
            &app,
            "GET",
            &format!("/console/journey?id={PNR}"),
            Some(VIEW),
            &[],
            "",
        )
        .await;
        assert!(!a.body.contains("130412"), "{}", a.body);
    }

    #[tokio::test]
    async fn the_sandbox_page_is_for_development_only() {
        let (app, _, _) = app().await;
        let a = call(&app, "GET", "/console/sandbox", Some(VIEW), &[], "").await;
        assert_eq!(a.status, 404);
        assert!(a.body.contains("development profile"), "{}", a.body);
        let a = call(
            &app,
            "POST",
            "/console/sandbox/oep/fault",
            Some(VIEW),
            &[],
            "status=503&count=1",
        )
        .await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_parse() {
        let t = templates().expect("templates");
        for (name, _) in TEMPLATES {
            assert!(t.get_template_names().any(|n| n == *name), "{name}");
        }
    }

    #[test]
    fn the_cookie_round_trips_and_is_strict() {
        let set = set_cookie(Some("key with; odd=chars"), false);
        assert!(
            set.contains("HttpOnly")
                && set.contains("SameSite=Strict")
                && set.contains("Path=/console"),
            "{set}"
        );
        assert!(!set.contains("Secure"));
        assert!(set_cookie(Some("k"), true).ends_with("; Secure"));
        let value = set.split(';').next().expect("pair");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {value}")).expect("header"),
        );
        assert_eq!(
            cookie_credential(&h).as_deref(),
            Some("key with; odd=chars")
        );
        assert!(set_cookie(None, false).contains("Max-Age=0"));
        assert_eq!(cookie_credential(&HeaderMap::new()), None);
    }

    #[test]
    fn posts_from_another_site_are_not_same_origin() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                );
            }
            m
        };
        assert!(same_origin(&h(&[("host", "127.0.0.1:9090")])));
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://127.0.0.1:9090"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:9090"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "null")
        ])));
    }
}
