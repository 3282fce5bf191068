//! Bearer JWT verification for the HTTP ingress (`[http.auth.<name>] type = "bearer_jwt"`).
//!
//! A token is accepted only when its signature verifies against a key of the configured
//! JSON Web Key Set, its `iss` is the configured issuer, it has an `aud` containing the
//! configured audience (when one is set: a token without `aud` is refused then), it has not
//! expired (`exp` required) and it is valid already (`nbf`, when it has one). `exp` and
//! `nbf` are checked with the scheme's `leeway` for clock skew (default
//! [`DEFAULT_LEEWAY`], at most [`MAX_LEEWAY`]).
//! Only asymmetric algorithms are accepted, and only the one the key is for: EdDSA (OKP
//! Ed25519), RS256 (RSA), ES256 (EC P-256). `none` and HMAC are refused whatever the token
//! says, so a public key can never be used as a shared secret.
//!
//! Keys: `jwks_file` is read once at start. A `jwks_url` is fetched on first use, again
//! when a token names a key id the set does not have (key rotation), and again in the
//! background once the set is older than [`MAX_AGE`]. A request never waits for a fetch to
//! verify a token whose key is in the set: fetches run in a task of their own, outside any
//! lock a request takes, one at a time (a request that needs a fetch while one is in flight
//! joins it instead of starting another), and a new one starts at most once every
//! [`REFETCH_AFTER`]. Only a token that has no key in the set waits, and only for the fetch
//! in flight and a bounded time: [`FIRST_FETCH_WAIT`] while the set was never loaded,
//! [`UNKNOWN_KEY_WAIT`] for a key id the set does not have; after that it is refused. So a
//! slow or stalled JWKS endpoint — or a stream of tokens with made-up key ids — delays no
//! token whose key is known, and at most one fetch is ever in flight. A JWKS document is
//! read up to [`JWKS_MAX_BYTES`].
//!
//! Errors say what is wrong (expired, not valid yet, wrong issuer, unknown key) and never
//! repeat the token or its claims: those may hold a personnummer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use crate::adapter::answer::{ReadError, read_limited};
pub use crate::config::{DEFAULT_LEEWAY, MAX_LEEWAY};
use crate::jwks::Key;

/// The least time between the starts of two fetches of a `jwks_url`.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// How long a fetched key set is used before it is fetched again (in the background).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// How long a token waits for the first fetch of a `jwks_url` (its set was never loaded).
pub const FIRST_FETCH_WAIT: Duration = Duration::from_secs(5);
/// How long a token whose key id the set does not have waits for the fetch in flight.
pub const UNKNOWN_KEY_WAIT: Duration = Duration::from_secs(2);
/// Time allowed for one fetch of a `jwks_url`.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS document read from a `jwks_url`.
pub const JWKS_MAX_BYTES: usize = 1024 * 1024;

/// Why a token was refused (shown to the client; holds no token content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// No `Authorization: Bearer …` header.
    #[error("send a bearer token: `Authorization: Bearer <JWT>`")]
    Missing,
    /// Not a JWT, or a bad signature, or a refused algorithm.
    #[error("the token is not a valid JWT signed by the trusted issuer: {0}")]
    Invalid(String),
    /// No key in the key set for the token's `kid`.
    #[error("no trusted key matches the token's key id")]
    UnknownKey,
    /// Past `exp`.
    #[error("the token has expired; get a new one")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
    /// Wrong `iss` or `aud`.
    #[error("the token was not issued for this service (issuer or audience)")]
    WrongIssuer,
    /// The key set could not be read or fetched.
    #[error("the trusted keys could not be loaded: {0}")]
    Keys(String),
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS document read at start.
    File(std::path::PathBuf),
    /// A JWKS URL fetched on use.
    Url(String),
}

/// How long a `jwks_url`'s fetches wait and are waited for (the constants above; tests
/// shorten them).
#[derive(Debug, Clone, Copy)]
struct Timing {
    refetch_after: Duration,
    max_age: Duration,
    first_wait: Duration,
    unknown_key_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            refetch_after: REFETCH_AFTER,
            max_age: MAX_AGE,
            first_wait: FIRST_FETCH_WAIT,
            unknown_key_wait: UNKNOWN_KEY_WAIT,
        }
    }
}

/// A fetch in flight; it resolves when the fetch has landed (its keys or its error are in
/// the cache then).
type Flight = Shared<BoxFuture<'static, ()>>;

/// What is known of a `jwks_url`. Its lock is held only to read or swap these fields, never
/// across a fetch.
#[derive(Default)]
struct Cache {
    /// The last set fetched.
    keys: Option<Arc<Vec<Key>>>,
    /// When `keys` were fetched.
    fetched: Option<Instant>,
    /// When the last fetch started (the floor between fetches counts from it).
    started: Option<Instant>,
    /// The fetch in flight.
    flight: Option<Flight>,
    /// Why the last fetch failed, if it did.
    error: Option<String>,
}

/// The key set of a `jwks_url`.
struct Remote {
    url: String,
    http: reqwest::Client,
    timing: Timing,
    cache: Mutex<Cache>,
}

/// Clears the flight when its task ends, however it ends.
struct Landed<'a>(&'a Remote);

impl Drop for Landed<'_> {
    fn drop(&mut self) {
        self.0.lock().flight = None;
    }
}

impl Remote {
    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys to verify a token naming `kid` with. Known keys are handed out at once (an
    /// old set is refreshed in the background); otherwise the token waits for the fetch in
    /// flight — or one started now, when the floor allows — at most a bounded time.
    async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<Vec<Key>>, JwtError> {
        let (flight, wait) = {
            let mut cache = self.lock();
            if let Some(keys) = cache.keys.clone()
                && crate::jwks::find(&keys, kid).is_some()
            {
                if cache
                    .fetched
                    .is_none_or(|t| t.elapsed() > self.timing.max_age)
                {
                    let _ = self.flight(&mut cache);
                }
                return Ok(keys);
            }
            let wait = if cache.keys.is_none() {
                self.timing.first_wait
            } else {
                self.timing.unknown_key_wait
            };
            (self.flight(&mut cache), wait)
        };
        if let Some(flight) = flight {
            // The fetch goes on in its own task if the wait runs out.
            let _ = tokio::time::timeout(wait, flight).await;
        }
        let cache = self.lock();
        match (&cache.keys, &cache.error) {
            (Some(keys), _) => Ok(keys.clone()),
            (None, Some(e)) => Err(JwtError::Keys(e.clone())),
            (None, None) => Err(JwtError::Keys(format!(
                "fetching {} takes too long; try again shortly",
                self.url
            ))),
        }
    }

    /// The fetch in flight, or a new one when the floor between fetches allows; `None`
    /// when neither.
    fn flight(self: &Arc<Self>, cache: &mut Cache) -> Option<Flight> {
        if let Some(flight) = &cache.flight {
            return Some(flight.clone());
        }
        if cache
            .started
            .is_some_and(|t| t.elapsed() < self.timing.refetch_after)
        {
            return None;
        }
        cache.started = Some(Instant::now());
        let me = Arc::clone(self);
        // The task cannot clear the flight before it is stored: that needs this lock.
        let task = tokio::spawn(async move {
            let _landed = Landed(&me);
            let fetched = me.fetch().await;
            let mut cache = me.lock();
            match fetched {
                Ok(keys) => {
                    cache.keys = Some(Arc::new(keys));
                    cache.fetched = Some(Instant::now());
                    cache.error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, kept = cache.keys.is_some(),
                        "the JSON Web Key Set could not be fetched; the keys it had stay in use");
                    cache.error = Some(e);
                }
            }
        });
        let flight = task.map(|_| ()).boxed().shared();
        cache.flight = Some(flight.clone());
        Some(flight)
    }

    /// Fetch the key set (no lock held).
    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let url = &self.url;
        let resp = self.http.get(url).send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "the request failed"
            };
            format!("fetching {url}: {why}")
        })?;
        if !resp.status().is_success() {
            return Err(format!("fetching {url}: HTTP {}", resp.status().as_u16()));
        }
        let bytes = read_limited(resp, JWKS_MAX_BYTES)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => format!(
                    "fetching {url}: the key set is larger than {}",
                    crate::adapter::answer::size(JWKS_MAX_BYTES)
                ),
                ReadError::Cut => format!("fetching {url}: the answer was cut off"),
            })?;
        crate::jwks::parse_set(&bytes).map_err(|e| format!("fetching {url}: {e}"))
    }
}

/// Where a verifier's keys are.
enum Keys {
    /// Read at start.
    File(PathBuf, Arc<Vec<Key>>),
    /// Fetched.
    Url(Arc<Remote>),
}

/// Verifies bearer tokens of one auth scheme.
pub struct JwtVerifier {
    keys: Keys,
    issuer: String,
    audience: Option<String>,
    leeway: Duration,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.keys {
            Keys::File(p, _) => JwksSource::File(p.clone()),
            Keys::Url(r) => JwksSource::Url(r.url.clone()),
        };
        f.debug_struct("JwtVerifier")
            .field("source", &source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier; a `jwks_file` (relative to `root`) is read now, a `jwks_url` on first
    /// use. `leeway` is the clock skew allowed on `exp` and `nbf` (whole seconds count).
    pub fn new(
        source: JwksSource,
        issuer: String,
        audience: Option<String>,
        leeway: Duration,
        root: &Path,
    ) -> Result<JwtVerifier, JwtError> {
        let keys = match source {
            JwksSource::File(p) => {
                let path = root.join(&p);
                let text = std::fs::read(&path)
                    .map_err(|e| JwtError::Keys(format!("{}: {e}", path.display())))?;
                let keys = crate::jwks::parse_set(&text)
                    .map_err(|e| JwtError::Keys(format!("{}: {e}", path.display())))?;
                Keys::File(p, Arc::new(keys))
            }
            JwksSource::Url(url) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let http = reqwest::Client::builder()
                    .user_agent(concat!("knut/", env!("CARGO_PKG_VERSION")))
                    .timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| JwtError::Keys(format!("HTTP client: {e}")))?;
                Keys::Url(Arc::new(Remote {
                    url,
                    http,
                    timing: Timing::default(),
                    cache: Mutex::new(Cache::default()),
                }))
            }
        };
        Ok(JwtVerifier {
            keys,
            issuer,
            audience,
            leeway,
        })
    }

    /// The same verifier with other waits (tests only; before first use).
    #[cfg(test)]
    fn with_timing(mut self, timing: Timing) -> Self {
        if let Keys::Url(remote) = &mut self.keys
            && let Some(remote) = Arc::get_mut(remote)
        {
            remote.timing = timing;
        }
        self
    }

    /// The claims of `token` when it is valid.
    pub async fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Invalid("not a JWT".into()))?;
        let keys = match &self.keys {
            Keys::File(_, keys) => keys.clone(),
            Keys::Url(remote) => remote.keys_for(header.kid.as_deref()).await?,
        };
        let key = crate::jwks::find(&keys, header.kid.as_deref()).ok_or(JwtError::UnknownKey)?;
        if header.alg != key.algorithm {
            return Err(JwtError::Invalid(format!(
                "algorithm {:?} is not the one the key is for",
                header.alg
            )));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud.as_str()]);
                // jsonwebtoken checks `aud` only when the token has one.
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
        }
        decode::<Value>(token, &key.key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => JwtError::Expired,
                    K::ImmatureSignature => JwtError::NotYetValid,
                    K::InvalidIssuer | K::InvalidAudience => JwtError::WrongIssuer,
                    K::InvalidSignature => {
                        JwtError::Invalid("the signature does not verify".into())
                    }
                    K::MissingRequiredClaim(c) => {
                        JwtError::Invalid(format!("the `{c}` claim is missing"))
                    }
                    K::InvalidClaimFormat(c) => {
                        JwtError::Invalid(format!("the `{c}` claim is not a time in seconds"))
                    }
                    _ => JwtError::Invalid("the token cannot be read".into()),
                }
            })
    }
}

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer(value: Option<&str>) -> Result<&str, JwtError> {
    let v = value.ok_or(JwtError::Missing)?;
    let (scheme, token) = v.split_once(' ').ok_or(JwtError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(JwtError::Missing);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Algorithm;
    use knut_sandbox::idp::{ISSUER, Idp};
    use serde_json::json;

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    fn verifier(
        idp: &Idp,
        issuer: &str,
        audience: Option<&str>,
    ) -> (JwtVerifier, tempfile::TempDir) {
        verifier_with(idp, issuer, audience, DEFAULT_LEEWAY)
    }

    fn verifier_with(
        idp: &Idp,
        issuer: &str,
        audience: Option<&str>,
        leeway: Duration,
    ) -> (JwtVerifier, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("jwks.json"), idp.jwks().to_string()).expect("write");
        let v = JwtVerifier::new(
            JwksSource::File("jwks.json".into()),
            issuer.into(),
            audience.map(str::to_string),
            leeway,
            dir.path(),
        )
        .expect("verifier");
        (v, dir)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    const PERSONNUMMER: &str = "201203042383";

    #[tokio::test]
    async fn a_token_that_is_not_valid_yet_is_refused() {
        let idp = Idp::generate().expect("key");
        let (v, _dir) = verifier(&idp, ISSUER, None);
        let token = |nbf: u64| {
            idp.issue(claims(json!({"sub": PERSONNUMMER, "nbf": nbf})))
                .expect("token")
        };
        // An hour ahead: refused, saying why, without repeating the token's content.
        let early = v.verify(&token(now() + 3_600)).await.unwrap_err();
        assert_eq!(early, JwtError::NotYetValid);
        let text = early.to_string();
        assert!(text.contains("not valid yet"), "{text}");
        assert!(!text.contains(PERSONNUMMER), "{text}");
        // Within the leeway (clock skew), and in the past: accepted.
        assert!(v.verify(&token(now() + 10)).await.is_ok());
        assert!(v.verify(&token(now() - 10)).await.is_ok());
        // No leeway: ten seconds ahead is too early.
        let (strict, _d) = verifier_with(&idp, ISSUER, None, Duration::ZERO);
        assert_eq!(
            strict.verify(&token(now() + 10)).await,
            Err(JwtError::NotYetValid)
        );
        // A `nbf` that is not a time is refused.
        let odd = idp
            .issue(claims(json!({"sub": "g1", "nbf": "tomorrow"})))
            .expect("token");
        assert!(matches!(v.verify(&odd).await, Err(JwtError::Invalid(_))));
    }

    #[tokio::test]
    async fn the_leeway_applies_to_exp_too() {
        let idp = Idp::generate().expect("key");
        let lately = idp
            .issue(claims(json!({"sub": "g1", "exp": now() - 10})))
            .expect("token");
        let (v, _dir) = verifier(&idp, ISSUER, None);
        assert!(v.verify(&lately).await.is_ok(), "10 s late is within 30 s");
        let (strict, _d) = verifier_with(&idp, ISSUER, None, Duration::from_secs(5));
        assert_eq!(strict.verify(&lately).await, Err(JwtError::Expired));
    }

    #[tokio::test]
    async fn a_scheme_with_an_audience_requires_aud() {
        let idp = Idp::generate().expect("key");
        let without = idp
            .issue(claims(json!({"sub": PERSONNUMMER})))
            .expect("token");
        let (v, _dir) = verifier(&idp, ISSUER, Some("knut"));
        let refused = v.verify(&without).await.unwrap_err();
        assert_eq!(
            refused,
            JwtError::Invalid("the `aud` claim is missing".into())
        );
        assert!(!refused.to_string().contains(PERSONNUMMER));
        // As a list it must hold the audience.
        let listed = idp
            .issue(claims(json!({"sub": "g1", "aud": ["other", "knut"]})))
            .expect("token");
        assert!(v.verify(&listed).await.is_ok());
        let empty = idp
            .issue(claims(json!({"sub": "g1", "aud": []})))
            .expect("token");
        assert!(v.verify(&empty).await.is_err());
        // A scheme without an audience does not ask for one.
        let (open, _d) = verifier(&idp, ISSUER, None);
        assert!(open.verify(&without).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_of_the_trusted_issuer_verifies() {
        let idp = Idp::generate().expect("key");
        let (v, _dir) = verifier(&idp, ISSUER, Some("knut"));
        let t = idp
            .issue(claims(
                json!({"sub": "g1", "aud": "knut", "roles": ["guardian"]}),
            ))
            .expect("token");
        let c = v.verify(&t).await.expect("valid");
        assert_eq!(c["sub"], "g1");
    }

    #[tokio::test]
    async fn bad_tokens_are_refused_with_the_reason() {
        let idp = Idp::generate().expect("key");
        let (v, _dir) = verifier(&idp, ISSUER, Some("knut"));
        let past = jsonwebtoken::get_current_timestamp() - 3_600;
        let expired = idp
            .issue(claims(json!({"sub": "g1", "aud": "knut", "exp": past})))
            .expect("token");
        assert_eq!(v.verify(&expired).await, Err(JwtError::Expired));
        let other_aud = idp
            .issue(claims(json!({"sub": "g1", "aud": "someone-else"})))
            .expect("token");
        assert_eq!(v.verify(&other_aud).await, Err(JwtError::WrongIssuer));
        let (strict, _d) = verifier(&idp, "https://idp.example", None);
        let ok = idp.issue(claims(json!({"sub": "g1"}))).expect("token");
        assert_eq!(strict.verify(&ok).await, Err(JwtError::WrongIssuer));

        // Another issuer's key: the kid is unknown.
        let stranger = Idp::generate().expect("key");
        let foreign = stranger
            .issue(claims(json!({"sub": "g1", "aud": "knut"})))
            .expect("token");
        assert_eq!(v.verify(&foreign).await, Err(JwtError::UnknownKey));

        // A tampered payload does not verify.
        let good = idp
            .issue(claims(json!({"sub": "g1", "aud": "knut"})))
            .expect("token");
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD_ENGINE.encode(
            json!({"sub": "admin", "aud": "knut", "iss": ISSUER, "exp": past + 7_200}).to_string(),
        );
        assert!(matches!(
            v.verify(&parts.join(".")).await,
            Err(JwtError::Invalid(_))
        ));

        // alg=none and HMAC with the public key as secret are refused.
        let header = json!({"alg": "none", "typ": "JWT"}).to_string();
        let none = format!("{}.{}.", URL_SAFE_NO_PAD_ENGINE.encode(header), parts[1]);
        assert!(v.verify(&none).await.is_err());
        let jwks = idp.jwks();
        let x = jwks["keys"][0]["x"].as_str().expect("x");
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.kid = jwks["keys"][0]["kid"].as_str().map(str::to_string);
        let hs = jsonwebtoken::encode(
            &h,
            &json!({"sub": "g1", "aud": "knut", "iss": ISSUER, "exp": past + 7_200}),
            &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
        )
        .expect("hs token");
        assert!(matches!(v.verify(&hs).await, Err(JwtError::Invalid(_))));
        assert!(matches!(
            v.verify("not a jwt").await,
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer abc ")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(JwtError::Missing));
        assert_eq!(bearer(Some("Bearer ")), Err(JwtError::Missing));
        assert_eq!(bearer(None), Err(JwtError::Missing));
    }

    /// A JWKS endpoint on 127.0.0.1: the `n`th request (from 0) gets `answer(n)` — a body,
    /// after a delay. The receiver counts the requests begun.
    async fn jwks_server<F>(answer: F) -> (String, tokio::sync::watch::Receiver<usize>)
    where
        F: Fn(usize) -> (Duration, String) + Send + Sync + 'static,
    {
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        let tx = Arc::new(tx);
        let answer = Arc::new(answer);
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (tx, answer) = (tx.clone(), answer.clone());
                async move {
                    let mut n = 0;
                    tx.send_modify(|hits| {
                        n = *hits;
                        *hits += 1;
                    });
                    let (delay, body) = answer(n);
                    tokio::time::sleep(delay).await;
                    ([("content-type", "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/jwks"), rx)
    }

    fn remote(url: &str, timing: Timing) -> Arc<JwtVerifier> {
        let v = JwtVerifier::new(
            JwksSource::Url(url.into()),
            ISSUER.into(),
            None,
            DEFAULT_LEEWAY,
            Path::new("."),
        )
        .expect("verifier");
        Arc::new(v.with_timing(timing))
    }

    const STALL: Duration = Duration::from_secs(10);
    const PROMPT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_stalled_jwks_refetch_delays_no_token_with_a_known_key() {
        let idp = Idp::generate().expect("key");
        let set = idp.jwks().to_string();
        // The first fetch is answered at once, every later one stalls.
        let (url, mut hits) = jwks_server(move |n| {
            let delay = if n == 0 { Duration::ZERO } else { STALL };
            (delay, set.clone())
        })
        .await;
        // No floor between fetches, so that an unknown key id always asks for one.
        let v = remote(
            &url,
            Timing {
                refetch_after: Duration::ZERO,
                ..Timing::default()
            },
        );
        let known = idp.issue(claims(json!({"sub": "g1"}))).expect("token");
        v.verify(&known)
            .await
            .expect("verified after the first fetch");
        assert_eq!(*hits.borrow(), 1);

        // A token with a key id the set does not have starts a refetch, which stalls.
        let unknown = Idp::generate()
            .expect("key")
            .issue(claims(json!({"sub": "g1"})))
            .expect("token");
        let waiting = tokio::spawn({
            let (v, t) = (v.clone(), unknown.clone());
            async move {
                let started = Instant::now();
                (v.verify(&t).await, started.elapsed())
            }
        });
        tokio::time::timeout(Duration::from_secs(5), hits.wait_for(|n| *n >= 2))
            .await
            .expect("the refetch began")
            .expect("the server runs");

        // While it stalls, and while the unknown key waits for it, known keys verify at once.
        for _ in 0..10 {
            let started = Instant::now();
            v.verify(&known).await.expect("verified");
            let took = started.elapsed();
            assert!(
                took < PROMPT,
                "a known key waited {took:?} for a stalled fetch"
            );
        }
        // Another unknown key id joins the fetch in flight (no second one), and both are
        // refused after a bounded wait, well before the fetch would end.
        let started = Instant::now();
        assert_eq!(v.verify(&unknown).await, Err(JwtError::UnknownKey));
        assert!(started.elapsed() < STALL / 2, "{:?}", started.elapsed());
        let (refused, took) = waiting.await.expect("the task");
        assert_eq!(refused, Err(JwtError::UnknownKey));
        assert!(took < STALL / 2, "an unknown key waited {took:?}");
        assert_eq!(*hits.borrow(), 2, "one fetch at a time");
        let started = Instant::now();
        v.verify(&known).await.expect("still verified");
        assert!(started.elapsed() < PROMPT);
    }

    #[tokio::test]
    async fn an_old_key_set_is_refreshed_in_the_background() {
        let idp = Idp::generate().expect("key");
        let set = idp.jwks().to_string();
        let (url, mut hits) = jwks_server(move |n| {
            let delay = if n == 0 { Duration::ZERO } else { STALL };
            (delay, set.clone())
        })
        .await;
        // Every set is old at once: each use asks for a refresh.
        let v = remote(
            &url,
            Timing {
                refetch_after: Duration::ZERO,
                max_age: Duration::ZERO,
                ..Timing::default()
            },
        );
        let known = idp.issue(claims(json!({"sub": "g1"}))).expect("token");
        v.verify(&known)
            .await
            .expect("verified after the first fetch");
        for _ in 0..5 {
            let started = Instant::now();
            v.verify(&known).await.expect("verified with the old set");
            assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
        }
        tokio::time::timeout(Duration::from_secs(5), hits.wait_for(|n| *n >= 2))
            .await
            .expect("a refresh began")
            .expect("the server runs");
        assert_eq!(*hits.borrow(), 2, "one refresh at a time");
    }

    #[tokio::test]
    async fn the_first_fetch_is_waited_for_a_bounded_time() {
        let idp = Idp::generate().expect("key");
        let set = idp.jwks().to_string();
        let (url, hits) = jwks_server(move |_| (STALL, set.clone())).await;
        let v = remote(
            &url,
            Timing {
                first_wait: Duration::from_millis(300),
                ..Timing::default()
            },
        );
        let token = idp.issue(claims(json!({"sub": "g1"}))).expect("token");
        for _ in 0..2 {
            let started = Instant::now();
            let e = v.verify(&token).await.unwrap_err();
            assert!(matches!(e, JwtError::Keys(_)), "{e}");
            assert!(e.to_string().contains("takes too long"), "{e}");
            assert!(started.elapsed() < STALL / 2, "{:?}", started.elapsed());
        }
        assert_eq!(
            *hits.borrow(),
            1,
            "the second token joined the fetch in flight"
        );
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_once_and_the_floor_holds_back_made_up_key_ids() {
        let old = Idp::generate().expect("key");
        let new = Idp::generate().expect("key");
        let both = json!({"keys": [old.jwks()["keys"][0], new.jwks()["keys"][0]]}).to_string();
        let first = old.jwks().to_string();
        let answer = move |n: usize| {
            let body = if n == 0 { first.clone() } else { both.clone() };
            (Duration::ZERO, body)
        };
        let (url, hits) = jwks_server(answer).await;
        let rotating = remote(
            &url,
            Timing {
                refetch_after: Duration::ZERO,
                ..Timing::default()
            },
        );
        let by_old = old.issue(claims(json!({"sub": "g1"}))).expect("token");
        let by_new = new.issue(claims(json!({"sub": "g1"}))).expect("token");
        rotating.verify(&by_old).await.expect("old key");
        // The new key id waits for the refetch it starts, and is verified.
        rotating
            .verify(&by_new)
            .await
            .expect("new key, after a refetch");
        assert_eq!(*hits.borrow(), 2);
        rotating.verify(&by_new).await.expect("new key, cached");
        assert_eq!(*hits.borrow(), 2);

        // With the floor, a key id the set does not have is refused at once: no fetch
        // within REFETCH_AFTER of the last.
        let (url, hits) = jwks_server({
            let set = old.jwks().to_string();
            move |_| (Duration::ZERO, set.clone())
        })
        .await;
        let v = remote(&url, Timing::default());
        v.verify(&by_old).await.expect("old key");
        for _ in 0..5 {
            let started = Instant::now();
            assert_eq!(v.verify(&by_new).await, Err(JwtError::UnknownKey));
            assert!(started.elapsed() < PROMPT);
        }
        assert_eq!(*hits.borrow(), 1);
    }

    #[tokio::test]
    async fn an_oversized_or_broken_key_set_is_refused() {
        let idp = Idp::generate().expect("key");
        let token = idp.issue(claims(json!({"sub": "g1"}))).expect("token");
        let huge = format!("{{\"keys\":[],\"x\":\"{}\"}}", "a".repeat(JWKS_MAX_BYTES));
        let (url, _hits) = jwks_server(move |_| (Duration::ZERO, huge.clone())).await;
        let e = remote(&url, Timing::default())
            .verify(&token)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("larger than 1MiB"), "{e}");
        let (url, _hits) = jwks_server(|_| (Duration::ZERO, PERSONNUMMER.to_string())).await;
        let e = remote(&url, Timing::default())
            .verify(&token)
            .await
            .unwrap_err();
        assert!(matches!(e, JwtError::Keys(_)), "{e}");
        assert!(!e.to_string().contains(PERSONNUMMER), "{e}");
    }

    use base64::Engine as _;
    const URL_SAFE_NO_PAD_ENGINE: base64::engine::GeneralPurpose =
        base64::engine::general_purpose::URL_SAFE_NO_PAD;
}
