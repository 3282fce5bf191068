//! Who may use the admin API, and the audit journal of what they did.
//!
//! Every admin path needs credentials except those in `admin.public` (by default the
//! probes and the scrape: `/healthz`, `/readyz`, `/metrics`). A caller proves who it is
//! with `Authorization: Bearer <credential>` (or `x-api-key: <key>`), where the credential
//! is
//! - an API key of `[admin.keys.<name>]` (the key in the environment variable `key_env`;
//!   the journal records `<name>` as the actor), or
//! - a bearer JWT of `[admin.jwt]` (the actor is `jwt:<sub>`, the roles the strings of its
//!   `roles_claim` that name a role), or
//! - in the development profile only, the instance's development token, written at start
//!   to `<root>/data/admin-token` (`viewer`, `operator`, `injector`; `knut` reads it from
//!   there).
//!
//! | path | role |
//! |---|---|
//! | `GET /healthz`, `/readyz`, `/metrics` (unless public) | `viewer` |
//! | `GET /api/routes` | `viewer` |
//! | `GET /api/trace/{id}` (a message's journey, [`super::trace`]) | `viewer` |
//! | `/api/routes/{id}/dlq…` | `operator` (bodies and reasons masked; `personal_data` too to see personnummer) |
//! | `POST /api/routes/{id}/messages` | `injector`, and only where `admin.allow_injection` |
//! | `GET /api/audit` | `operator` |
//! | `/console…` (the web console, [`super::console`]) | `viewer`; its dead letters and sandbox faults `operator`; its sign-in form and static files none |
//!
//! On `/console` paths only, the credential may also come from the console's cookie (set by
//! its sign-in form); there a refusal is a page (a `GET` without credentials goes to the
//! form), a `POST` from another site is refused, and every `POST` and every look at dead
//! letters is journaled like an `/api/` call.
//!
//! No credentials, or wrong ones: 401 problem+json with `WWW-Authenticate: Bearer`; a
//! caller without the role: 403 problem+json naming it. Every call under `/api/` — allowed
//! or refused — is written to the audit journal (`knut_audit`: time, actor, roles, method,
//! path, status); `GET /api/audit` shows the newest.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::config::{AdminConfig, Profile, Role};
use crate::core::problem::Problem;
use crate::endpoint::jwt::{JwksSource, JwtVerifier};
use crate::store::{AuditEntry, Store};

/// Where the development token is written, relative to the root.
pub const DEV_TOKEN_FILE: &str = "data/admin-token";

/// The environment variable `knut` reads an admin credential from.
pub const TOKEN_ENV: &str = "KNUT_ADMIN_TOKEN";

/// A verified admin caller, put in the request's extensions for the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who, as the audit journal records it.
    pub actor: String,
    /// What they may do.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    fn roles_text(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

struct Key {
    name: String,
    key: String,
    roles: BTreeSet<Role>,
}

/// The admin API's credentials and rules.
pub struct AdminAuth {
    keys: Vec<Key>,
    jwt: Option<(JwtVerifier, String)>,
    public: Vec<String>,
    allow_injection: bool,
    store: Option<Store>,
    anonymous: governor::DefaultDirectRateLimiter,
}

/// The store's cache of console sessions (keyed by the SHA-256 of the cookie's token).
const SESSIONS: &str = "knut-console-sessions";
/// How long a console session lasts at most.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// Anonymous refusals journaled at most this often a second (and as many at once).
const ANONYMOUS_AUDIT_PER_SECOND: u32 = 10;

fn anonymous_limiter() -> governor::DefaultDirectRateLimiter {
    let n =
        std::num::NonZeroU32::new(ANONYMOUS_AUDIT_PER_SECOND).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(n))
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.name).collect::<Vec<_>>(),
            )
            .field("jwt", &self.jwt.is_some())
            .field("public", &self.public)
            .field("allow_injection", &self.allow_injection)
            .finish()
    }
}

/// Why the admin API's credentials could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdminAuthError(String);

impl AdminAuth {
    /// The rules of `config` for an instance of `profile` at `root`; `store` keeps the
    /// audit journal. In development without any configured credential a development token
    /// is made and written to [`DEV_TOKEN_FILE`].
    pub fn from_config(
        config: &AdminConfig,
        profile: Profile,
        root: &Path,
        store: Option<Store>,
    ) -> Result<AdminAuth, AdminAuthError> {
        let mut keys = Vec::new();
        for (name, k) in &config.keys {
            let key = std::env::var(&k.key_env).map_err(|_| {
                AdminAuthError(format!(
                    "admin.keys.{name}: the environment variable {} holding the key is not set",
                    k.key_env
                ))
            })?;
            if key.len() < 16 {
                return Err(AdminAuthError(format!(
                    "admin.keys.{name}: the key in {} is shorter than 16 characters; use a long random key",
                    k.key_env
                )));
            }
            keys.push(Key {
                name: name.clone(),
                key,
                roles: k.roles.iter().copied().collect(),
            });
        }
        let jwt = match &config.jwt {
            None => None,
            Some(j) => {
                let source = match (&j.jwks_url, &j.jwks_file) {
                    (Some(url), _) => JwksSource::Url(url.clone()),
                    (None, Some(file)) => JwksSource::File(file.into()),
                    (None, None) => {
                        return Err(AdminAuthError(
                            "admin.jwt: give jwks_url or jwks_file".into(),
                        ));
                    }
                };
                let verifier = JwtVerifier::new(
                    source,
                    j.issuer.clone(),
                    Some(j.audience.clone()),
                    crate::endpoint::jwt::DEFAULT_LEEWAY,
                    root,
                )
                .map_err(|e| AdminAuthError(format!("admin.jwt: {e}")))?;
                Some((verifier, j.roles_claim.clone()))
            }
        };
        if profile == Profile::Development && keys.is_empty() && jwt.is_none() {
            // Every role but `personal_data`: even in development, dead letters are shown
            // masked unless a configured key says otherwise.
            keys.push(Key {
                name: "development".into(),
                key: development_token(root)?,
                roles: [Role::Viewer, Role::Operator, Role::Injector]
                    .into_iter()
                    .collect(),
            });
        }
        Ok(AdminAuth {
            keys,
            jwt,
            public: config.public.clone(),
            allow_injection: config
                .allow_injection
                .unwrap_or(profile == Profile::Development),
            store,
            anonymous: anonymous_limiter(),
        })
    }

    /// Rules with these API keys (`(name, key, roles)`) and no token issuer.
    pub fn with_keys(
        keys: &[(&str, &str, &[Role])],
        public: &[&str],
        allow_injection: bool,
        store: Option<Store>,
    ) -> AdminAuth {
        AdminAuth {
            keys: keys
                .iter()
                .map(|(name, key, roles)| Key {
                    name: name.to_string(),
                    key: key.to_string(),
                    roles: roles.iter().copied().collect(),
                })
                .collect(),
            jwt: None,
            public: public.iter().map(|p| p.to_string()).collect(),
            allow_injection,
            store,
            anonymous: anonymous_limiter(),
        }
    }

    /// Whether any credential can get in (else only the public paths answer).
    pub fn has_credentials(&self) -> bool {
        !self.keys.is_empty() || self.jwt.is_some()
    }

    /// Who the request's credentials prove it comes from; `Err` says what is wrong. On the
    /// web console's paths (`console`) the console's cookie counts too.
    async fn principal(
        &self,
        headers: &HeaderMap,
        console: bool,
    ) -> Result<Principal, &'static str> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if let Some(given) = given {
            return self.verify(&given).await;
        }
        // The console's cookie holds a session, never the credential itself.
        match console
            .then(|| super::console::cookie_credential(headers))
            .flatten()
        {
            Some(token) => self.session(&token).await,
            None => Err("send a credential: `Authorization: Bearer <admin key or token>`"),
        }
    }

    /// Open a console session for `p`: a random token (256 bits) for the cookie; the store
    /// keeps only its SHA-256 with who it is, for [`SESSION_TTL`] at most, so every replica
    /// sharing the store knows it and signing out ends it everywhere. `None` without a store.
    pub async fn open_session(&self, p: &Principal) -> Option<String> {
        use rand::RngCore as _;
        let store = self.store.as_ref()?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let held = serde_json::json!({
            "actor": p.actor,
            "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        });
        let key = crate::step::cache::sha256_hex(&token);
        match store
            .cache_set(SESSIONS, &key, &held.to_string(), Some(SESSION_TTL))
            .await
        {
            Ok(()) => Some(token),
            Err(e) => {
                tracing::warn!(error = %e, "could not keep a console session");
                None
            }
        }
    }

    /// End the console session of `token` (signing out); whose it was, if it still lasted.
    pub async fn close_session(&self, token: &str) -> Option<Principal> {
        let who = self.session(token).await.ok();
        if let Some(store) = &self.store {
            let key = crate::step::cache::sha256_hex(token);
            if let Err(e) = store.cache_delete(SESSIONS, &key, None).await {
                tracing::warn!(error = %e, "could not end a console session");
            }
        }
        who
    }

    /// Who the console session `token` was opened for, while it lasts.
    async fn session(&self, token: &str) -> Result<Principal, &'static str> {
        const GONE: &str = "the console session has ended or is unknown: sign in again";
        let store = self.store.as_ref().ok_or(GONE)?;
        let key = crate::step::cache::sha256_hex(token);
        let held = store.cache_get(SESSIONS, &key).await.map_err(|_| GONE)?;
        let (_, value) = held.into_iter().next().ok_or(GONE)?;
        let v: serde_json::Value = serde_json::from_str(&value).map_err(|_| GONE)?;
        let actor = v["actor"].as_str().ok_or(GONE)?.to_string();
        let roles = v["roles"]
            .as_array()
            .ok_or(GONE)?
            .iter()
            .filter_map(|r| r.as_str().and_then(Role::parse))
            .collect();
        Ok(Principal { actor, roles })
    }

    /// Who the credential `given` (an API key or a token) proves the caller is.
    pub async fn verify(&self, given: &str) -> Result<Principal, &'static str> {
        // Every key is compared, so the time says nothing about which one (nearly) matched.
        let mut found = None;
        for k in &self.keys {
            if crate::endpoint::http::auth::constant_time_eq(given.as_bytes(), k.key.as_bytes()) {
                found = Some(k);
            }
        }
        if let Some(k) = found {
            return Ok(Principal {
                actor: k.name.clone(),
                roles: k.roles.clone(),
            });
        }
        let Some((verifier, claim)) = &self.jwt else {
            return Err("the credential is not an admin key of this instance");
        };
        let claims = verifier
            .verify(given)
            .await
            .map_err(|_| "the credential is neither an admin key nor a valid admin token")?;
        let sub = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown");
        let roles = match claims.get(claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().and_then(Role::parse))
                .collect(),
            Some(serde_json::Value::String(s)) => {
                s.split([' ', ',']).filter_map(Role::parse).collect()
            }
            _ => BTreeSet::new(),
        };
        Ok(Principal {
            // A subject that is a personnummer is masked: the journal is not a register.
            actor: format!("jwt:{}", crate::core::redact::mask(sub)),
            roles,
        })
    }

    /// Write one row of the audit journal (see the module docs).
    pub(crate) async fn audit(
        &self,
        principal: Option<&Principal>,
        method: &Method,
        path: &str,
        status: u16,
    ) {
        let Some(store) = &self.store else { return };
        // Refusals of anonymous callers are journaled up to a rate, so a flood of them
        // cannot fill the store; beyond it they are counted.
        if principal.is_none() && self.anonymous.check().is_err() {
            metrics::counter!("knut_admin_refusals_not_journaled_total").increment(1);
            return;
        }
        // Decoded, then masked: `130412%2B2383` is a personnummer too.
        let path = crate::core::redact::mask_path(path);
        let entry = AuditEntry {
            at: Utc::now(),
            actor: principal.map_or_else(|| "anonymous".to_string(), |p| p.actor.clone()),
            roles: principal.map(Principal::roles_text).unwrap_or_default(),
            method: method.as_str().to_string(),
            path: path.clone(),
            status,
        };
        if let Err(e) = store.audit(&entry).await {
            tracing::error!(error = %e, path = %path, "could not write the admin audit journal");
        }
    }
}

/// Make the development token (random, 256 bits) and write it to [`DEV_TOKEN_FILE`] under
/// `root`, readable by its owner only.
fn development_token(root: &Path) -> Result<String, AdminAuthError> {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = root.join(DEV_TOKEN_FILE);
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        // A file left from an earlier start keeps its mode: make it private again.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::io::Write::write_all(&mut file, token.as_bytes())
    };
    write().map_err(|e| {
        AdminAuthError(format!(
            "cannot write the development admin token to {}: {e}",
            path.display()
        ))
    })?;
    Ok(token)
}

/// The role `method path` needs, or `None` when it is public. Paths are matched segment by
/// segment, so a route id can never stand in for a keyword (a route named `dlq`).
fn required(auth: &AdminAuth, method: &Method, path: &str) -> Option<Role> {
    if auth.public.iter().any(|p| p == path) {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        // The web console: its sign-in form and its style and script are open to all.
        ["console", "login"] | ["console", "logout"] | ["console", "static", ..] => None,
        ["console", "dead-letters"] | ["console", "routes", _, "dead-letters", ..] => {
            Some(Role::Operator)
        }
        ["console", "sandbox", ..] if method == Method::POST => Some(Role::Operator),
        ["api", "audit"] => Some(Role::Operator),
        ["api", "routes", _, "dlq", ..] => Some(Role::Operator),
        ["api", "routes", _, "messages"] if method == Method::POST => Some(Role::Injector),
        _ => Some(Role::Viewer),
    }
}

/// The middleware in front of every admin path.
pub async fn guard(State(auth): State<Arc<AdminAuth>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let console = path == super::console::BASE || path.starts_with("/console/");
    let audited = path.starts_with("/api/") || (console && console_audited(&method, &path));
    // A console form posted from another site is refused before anything else (the cookie
    // is SameSite=Strict too).
    // A form posted with the cookie must say where it comes from (browsers send `Origin` on
    // every POST); only a caller with its own credential header may leave both out.
    let own_credential = req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key("x-api-key");
    let says_where =
        req.headers().contains_key(header::ORIGIN) || req.headers().contains_key("sec-fetch-site");
    if console
        && method == Method::POST
        && (!super::console::same_origin(req.headers()) || !(says_where || own_credential))
    {
        auth.audit(None, &method, &path, 403).await;
        return super::console::refusal(
            StatusCode::FORBIDDEN,
            false,
            &path,
            "This form was sent from another site; use the console's own pages.",
        );
    }
    let Some(role) = required(&auth, &method, &path) else {
        return next.run(req).await;
    };
    let principal = match auth.principal(req.headers(), console).await {
        Ok(p) => p,
        Err(why) => {
            if audited {
                auth.audit(None, &method, &path, 401).await;
            }
            if console {
                let target = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                return super::console::refusal(
                    StatusCode::UNAUTHORIZED,
                    method == Method::GET,
                    &target,
                    "Sign in with an admin key or token first.",
                );
            }
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or wrong credentials",
                format!(
                    "{why}. The admin API needs an admin key or token (`{TOKEN_ENV}` for `knut`; in development the token is in {DEV_TOKEN_FILE})."
                ),
                path,
            )
            .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"knutpunkt-admin\"")
            .into_response();
        }
    };
    let refused = if !principal.has(role) {
        Some(format!(
            "this needs the `{}` role; `{}` holds {}",
            role.as_str(),
            principal.actor,
            match principal.roles_text() {
                r if r.is_empty() => "none".to_string(),
                r => r,
            }
        ))
    } else if role == Role::Injector && !auth.allow_injection {
        Some(
            "handing messages to routes is off here (production): set `admin.allow_injection = true` to allow it"
                .to_string(),
        )
    } else {
        None
    };
    if let Some(detail) = refused {
        if audited {
            auth.audit(Some(&principal), &method, &path, 403).await;
        }
        if console {
            return super::console::refusal(StatusCode::FORBIDDEN, false, &path, &detail);
        }
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            detail,
            path,
        )
        .into_response();
    }
    req.extensions_mut().insert(principal.clone());
    // The action and its journal row run to the end even when the caller hangs up: a
    // replay or discard is never done without being journaled.
    let done = tokio::spawn(async move {
        let response = next.run(req).await;
        if audited {
            auth.audit(Some(&principal), &method, &path, response.status().as_u16())
                .await;
        }
        response
    });
    match done.await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            "The admin request could not be completed; see the instance's log.",
            "",
        )
        .into_response(),
    }
}

/// Which console requests are written to the audit journal: every `POST` (a sign-in, a
/// replay, a discard, a sandbox fault) and every look at dead letters (personal data).
fn console_audited(method: &Method, path: &str) -> bool {
    method == Method::POST
        || path == "/console/journey"
        || path == "/console/dead-letters"
        || (path.starts_with("/console/routes/") && path.contains("/dead-letters"))
}

/// `GET /api/audit?limit=N`: the newest admin calls (default 100, at most 1000).
pub async fn recent(
    State(auth): State<Arc<AdminAuth>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(100)
        .min(1000);
    let Some(store) = &auth.store else {
        return axum::Json(Vec::<AuditEntry>::new()).into_response();
    };
    match store.audit_recent(limit).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The audit journal cannot be read now",
            format!("{e}; try again later"),
            "/api/audit",
        )
        .with_header(header::RETRY_AFTER, "5")
        .into_response(),
    }
}

/// The admin credential `knut` sends: `KNUT_ADMIN_TOKEN`, else the development token under
/// `root`, else none.
pub fn client_token(root: &Path) -> Option<String> {
    env_token().or_else(|| dev_token(root))
}

/// `KNUT_ADMIN_TOKEN`, when set.
pub fn env_token() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// The development token written under `root`, when there is one.
pub fn dev_token(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join(DEV_TOKEN_FILE))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    const OPS: &str = "ops-key-0123456789abcdef";
    const MON: &str = "monitoring-key-0123456789";
    const INJ: &str = "injector-key-0123456789ab";

    async fn app(allow_injection: bool) -> (Router, Store) {
        let store = Store::memory().await.expect("store");
        let auth = Arc::new(AdminAuth::with_keys(
            &[
                ("integration", OPS, &[Role::Viewer, Role::Operator]),
                ("monitoring", MON, &[Role::Viewer]),
                ("injector", INJ, &[Role::Injector]),
            ],
            &["/healthz"],
            allow_injection,
            Some(store.clone()),
        ));
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/metrics", get(|| async { "metrics" }))
            .route("/api/routes", get(|| async { "[]" }))
            .route("/api/routes/{id}/dlq", get(|| async { "{}" }))
            .route("/api/trace/{id}", get(|| async { "{}" }))
            .route("/api/routes/{id}/messages", post(|| async { "accepted" }))
            .route("/api/audit", get(recent).with_state(auth.clone()))
            .layer(axum::middleware::from_fn_with_state(auth, guard));
        (router, store)
    }

    async fn call(app: &Router, method: &str, path: &str, key: Option<&str>) -> (u16, String) {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let text = String::from_utf8_lossy(&body).into_owned();
        if status >= 400 {
            assert_eq!(ctype, "application/problem+json", "{text}");
        }
        (status, text)
    }

    #[tokio::test]
    async fn anonymous_and_wrong_credentials_are_401_and_wrong_roles_403() {
        let (app, store) = app(false).await;
        assert_eq!(call(&app, "GET", "/healthz", None).await.0, 200);
        // /metrics is not public here.
        assert_eq!(call(&app, "GET", "/metrics", None).await.0, 401);
        let (status, text) = call(&app, "GET", "/api/routes", None).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("KNUT_ADMIN_TOKEN"), "{text}");
        assert_eq!(
            call(&app, "GET", "/api/routes", Some("wrong-key")).await.0,
            401
        );
        assert_eq!(call(&app, "GET", "/api/routes", Some(MON)).await.0, 200);
        let (status, text) = call(&app, "GET", "/api/routes/r/dlq", Some(MON)).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("`operator` role"), "{text}");
        assert_eq!(
            call(&app, "GET", "/api/routes/r/dlq", Some(OPS)).await.0,
            200
        );
        assert_eq!(
            call(&app, "POST", "/api/routes/r/messages", Some(OPS))
                .await
                .0,
            403
        );
        // The injector role alone is not enough in production: injection is off.
        let (status, text) = call(&app, "POST", "/api/routes/r/messages", Some(INJ)).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("admin.allow_injection"), "{text}");

        // Every /api/ call is in the audit journal with who made it, refused ones too.
        let rows = store.audit_recent(100).await.expect("audit");
        let seen: Vec<(String, String, u16)> = rows
            .iter()
            .rev()
            .map(|r| (r.actor.clone(), r.path.clone(), r.status))
            .collect();
        assert_eq!(
            seen,
            [
                ("anonymous".to_string(), "/api/routes".to_string(), 401),
                ("anonymous".into(), "/api/routes".into(), 401),
                ("monitoring".into(), "/api/routes".into(), 200),
                ("monitoring".into(), "/api/routes/r/dlq".into(), 403),
                ("integration".into(), "/api/routes/r/dlq".into(), 200),
                ("integration".into(), "/api/routes/r/messages".into(), 403),
                ("injector".into(), "/api/routes/r/messages".into(), 403),
            ]
        );
        assert_eq!(rows[2].roles, "viewer,operator");
        let (status, text) = call(&app, "GET", "/api/audit?limit=2", Some(OPS)).await;
        assert_eq!(status, 200);
        let listed: Vec<AuditEntry> = serde_json::from_str(&text).expect("audit list");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].actor, "injector", "newest first");
    }

    /// A personnummer typed into a path, percent-encoded in part or whole, reaches the audit
    /// journal with none of its digits.
    #[tokio::test]
    async fn the_audit_holds_no_personnummer_of_an_encoded_path() {
        let (app, store) = app(false).await;
        let all: String = "130412+2383".bytes().map(|b| format!("%{b:02X}")).collect();
        for path in [
            "/api/trace/130412%2B2383".to_string(),
            format!("/api/trace/{all}"),
            "/api/trace/130412%202383".to_string(),
        ] {
            assert_eq!(call(&app, "GET", &path, Some(MON)).await.0, 200);
            assert_eq!(call(&app, "GET", &path, None).await.0, 401);
        }
        let rows = store.audit_recent(100).await.expect("audit");
        assert_eq!(rows.len(), 6);
        for r in rows {
            assert_eq!(r.path, "/api/trace/********-****");
            for digits in ["130412", "2383", "%3", "%2"] {
                assert!(!r.path.contains(digits), "{}", r.path);
            }
        }
    }

    #[test]
    fn roles_follow_path_segments_not_substrings() {
        let auth = AdminAuth::with_keys(&[], &["/healthz"], false, None);
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(required(&auth, &get, "/healthz"), None);
        assert_eq!(required(&auth, &get, "/metrics"), Some(Role::Viewer));
        assert_eq!(
            required(&auth, &get, "/api/routes/r/dlq"),
            Some(Role::Operator)
        );
        assert_eq!(
            required(&auth, &post, "/api/routes/r/dlq/replay"),
            Some(Role::Operator)
        );
        assert_eq!(
            required(&auth, &post, "/api/routes/r/messages"),
            Some(Role::Injector)
        );
        // A route named `dlq` or `messages` is still just a route.
        assert_eq!(
            required(&auth, &post, "/api/routes/dlq/messages"),
            Some(Role::Injector)
        );
        assert_eq!(
            required(&auth, &get, "/api/routes/messages/dlq"),
            Some(Role::Operator)
        );
        assert_eq!(required(&auth, &get, "/api/audit"), Some(Role::Operator));
        assert_eq!(required(&auth, &get, "/api/auditx"), Some(Role::Viewer));
    }

    #[tokio::test]
    async fn injection_is_served_where_allowed() {
        let (app, _) = app(true).await;
        assert_eq!(
            call(&app, "POST", "/api/routes/r/messages", Some(INJ))
                .await
                .0,
            200
        );
        assert_eq!(
            call(&app, "POST", "/api/routes/r/messages", Some(MON))
                .await
                .0,
            403
        );
    }

    #[tokio::test]
    async fn development_writes_a_private_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = AdminConfig::default();
        AdminAuth::from_config(&config, Profile::Development, dir.path(), None).expect("auth");
        // A token file left from before with a loose mode is made private again.
        let path = dir.path().join(DEV_TOKEN_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            AdminAuth::from_config(&config, Profile::Development, dir.path(), None).expect("auth");
        }
        let token = dev_token(dir.path()).expect("token written");
        assert_eq!(token.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(DEV_TOKEN_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
        let auth =
            AdminAuth::from_config(&config, Profile::Development, dir.path(), None).expect("auth");
        assert!(auth.has_credentials());
        let token = dev_token(dir.path()).expect("token written");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        let p = auth
            .principal(&headers, false)
            .await
            .expect("the token is taken");
        assert!(p.has(Role::Operator) && p.has(Role::Injector) && p.has(Role::Viewer));
        assert!(
            !p.has(Role::PersonalData),
            "dead letters stay masked in development"
        );
        // Production makes no token up: without configured credentials only the public
        // paths answer.
        let prod =
            AdminAuth::from_config(&config, Profile::Production, dir.path(), None).expect("auth");
        assert!(!prod.has_credentials());
        assert!(prod.principal(&headers, false).await.is_err());
    }

    #[tokio::test]
    async fn a_token_of_the_configured_issuer_carries_its_roles() {
        use knut_sandbox::idp::{ISSUER, Idp};
        let idp = Idp::generate().expect("key");
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("jwks.json"), idp.jwks().to_string()).expect("jwks");
        let config = AdminConfig {
            jwt: Some(crate::config::AdminJwt {
                jwks_url: None,
                jwks_file: Some("jwks.json".into()),
                issuer: ISSUER.into(),
                audience: "knut-admin".into(),
                roles_claim: "knut_roles".into(),
            }),
            ..AdminConfig::default()
        };
        let auth =
            AdminAuth::from_config(&config, Profile::Production, dir.path(), None).expect("auth");
        let token = |claims: serde_json::Value| {
            let serde_json::Value::Object(c) = claims else {
                unreachable!()
            };
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                format!("Bearer {}", idp.issue(c).expect("token"))
                    .parse()
                    .expect("header"),
            );
            h
        };
        let p = auth
            .principal(
                &token(serde_json::json!({
                    "sub": "200101011234", "aud": "knut-admin", "knut_roles": ["operator", "root"]
                })),
                false,
            )
            .await
            .expect("valid");
        assert_eq!(p.roles, [Role::Operator].into_iter().collect());
        assert_eq!(
            p.actor, "jwt:********-****",
            "a personnummer subject is masked"
        );
        assert!(
            auth.principal(
                &token(serde_json::json!({"sub": "x", "aud": "other"})),
                false
            )
            .await
            .is_err()
        );
    }
}
