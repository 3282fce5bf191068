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
//! Keys: `jwks_file` is read once at start; `jwks_url` is fetched on first use and fetched
//! again when a token names a key id the set does not have (key rotation), at most once
//! every [`REFETCH_AFTER`], and every [`MAX_AGE`] in any case.
//!
//! Errors say what is wrong (expired, not valid yet, wrong issuer, unknown key) and never
//! repeat the token or its claims: those may hold a personnummer.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use crate::jwks::Key;

/// The least time between two fetches of a `jwks_url`.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// How long a fetched key set is used before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// The clock skew allowed on `exp` and `nbf` unless the scheme sets `leeway`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest `leeway` a scheme may set.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

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

struct Cached {
    keys: std::sync::Arc<Vec<Key>>,
    fetched: Instant,
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS document read at start.
    File(std::path::PathBuf),
    /// A JWKS URL fetched on use.
    Url(String),
}

/// Verifies bearer tokens of one auth scheme.
pub struct JwtVerifier {
    source: JwksSource,
    issuer: String,
    audience: Option<String>,
    leeway: Duration,
    cache: tokio::sync::Mutex<Option<Cached>>,
    last_fetch: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

fn parse_set(text: &[u8]) -> Result<Vec<Key>, JwtError> {
    crate::jwks::parse_set(text).map_err(JwtError::Keys)
}

impl JwtVerifier {
    /// A verifier; a `jwks_file` (relative to `root`) is read now. `leeway` is the clock
    /// skew allowed on `exp` and `nbf` (whole seconds count).
    pub fn new(
        source: JwksSource,
        issuer: String,
        audience: Option<String>,
        leeway: Duration,
        root: &Path,
    ) -> Result<JwtVerifier, JwtError> {
        let cache = match &source {
            JwksSource::File(p) => {
                let path = root.join(p);
                let text = std::fs::read(&path)
                    .map_err(|e| JwtError::Keys(format!("{}: {e}", path.display())))?;
                Some(Cached {
                    keys: std::sync::Arc::new(parse_set(&text)?),
                    fetched: Instant::now(),
                })
            }
            JwksSource::Url(_) => None,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| JwtError::Keys(e.to_string()))?;
        Ok(JwtVerifier {
            source,
            issuer,
            audience,
            leeway,
            cache: tokio::sync::Mutex::new(cache),
            last_fetch: Mutex::new(None),
            http,
        })
    }

    /// Fetch the URL's key set if allowed now (never more often than [`REFETCH_AFTER`]).
    async fn fetch(&self, url: &str) -> Result<Option<Vec<Key>>, JwtError> {
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REFETCH_AFTER) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| JwtError::Keys(format!("fetching {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(JwtError::Keys(format!(
                "fetching {url}: HTTP {}",
                resp.status()
            )));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| JwtError::Keys(format!("fetching {url}: {e}")))?;
        parse_set(&bytes).map(Some)
    }

    /// The claims of `token` when it is valid.
    pub async fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Invalid("not a JWT".into()))?;
        let mut cache = self.cache.lock().await;
        let stale = cache.as_ref().is_none_or(|c| {
            c.fetched.elapsed() > MAX_AGE
                || !c
                    .keys
                    .iter()
                    .any(|k| k.kid == header.kid || header.kid.is_none())
        });
        if stale && let JwksSource::Url(url) = &self.source {
            match self.fetch(url).await {
                Ok(Some(keys)) => {
                    *cache = Some(Cached {
                        keys: std::sync::Arc::new(keys),
                        fetched: Instant::now(),
                    });
                }
                Ok(None) => {}
                Err(e) if cache.is_none() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "keeping the previous key set"),
            }
        }
        // Verify outside the lock: only a key-set refresh is serialised, never requests.
        let keys = cache.as_ref().map(|c| c.keys.clone()).unwrap_or_default();
        drop(cache);
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
    use crate::sandbox::idp::{ISSUER, Idp};
    use jsonwebtoken::Algorithm;
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

    use base64::Engine as _;
    const URL_SAFE_NO_PAD_ENGINE: base64::engine::GeneralPurpose =
        base64::engine::general_purpose::URL_SAFE_NO_PAD;
}
