//! A test OpenID Connect issuer, for development and tests only: it signs whatever claims
//! it is given. The development configuration (`knut.toml.example`) trusts it; the
//! production example never does.
//!
//! | call | answer |
//! |---|---|
//! | `POST /token` with a JSON object of claims, e.g. `{"sub":"…","https://claims.oidc.se/1.0/personalNumber":"…","roles":["guardian"]}` | `{"access_token": <JWT>, "token_type": "Bearer", "expires_in": 3600}`; `iss` is [`ISSUER`], `iat` now, `exp` in an hour unless the claims say otherwise |
//! | `GET /jwks` | the JSON Web Key Set to verify with (one Ed25519 key) |
//! | `GET /.well-known/openid-configuration` | `issuer` and `jwks_uri` |
//!
//! The key pair is made when the sandbox starts, so tokens do not outlive it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SecureRandom;
use ring::signature::KeyPair;
use serde_json::{Value, json};

use super::control::problem;

/// The `iss` of every token the sandbox issues (and what development config trusts).
pub const ISSUER: &str = "knut-sandbox-idp";
/// How long a token lives unless its claims set `exp`.
pub const LIFETIME_SECS: u64 = 3600;

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The issuer's signing key and its public half.
pub struct Idp {
    kid: String,
    key: EncodingKey,
    public_x: String,
}

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp").field("kid", &self.kid).finish()
    }
}

/// A fresh Ed25519 signing key (ring's randomness) and its public key, base64url (the JWK's
/// `x`). The elevregister simulation signs grade catalogues with keys made this way.
pub fn ed25519_key() -> Result<(EncodingKey, String), String> {
    let rng = ring::rand::SystemRandom::new();
    let mut seed = [0u8; 32];
    rng.fill(&mut seed)
        .map_err(|_| "no randomness for an Ed25519 key".to_string())?;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| "cannot make an Ed25519 key".to_string())?;
    let public_x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let der = [PKCS8_ED25519_PREFIX.as_slice(), &seed].concat();
    Ok((EncodingKey::from_ed_der(&der), public_x))
}

impl Idp {
    /// A fresh Ed25519 key pair.
    pub fn generate() -> Result<Idp, String> {
        let (key, public_x) = ed25519_key().map_err(|e| format!("the sandbox idp key: {e}"))?;
        Ok(Idp {
            kid: format!("sandbox-{}", &public_x[..8]),
            key,
            public_x,
        })
    }

    /// The JSON Web Key Set of the public key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": self.public_x,
            "kid": self.kid, "alg": "EdDSA", "use": "sig",
        }]})
    }

    /// Sign `claims` (an object) with `iss`, `iat` and a default `exp` added.
    pub fn issue(&self, mut claims: serde_json::Map<String, Value>) -> Result<String, String> {
        let now = jsonwebtoken::get_current_timestamp();
        claims.insert("iss".into(), json!(ISSUER));
        claims.entry("iat").or_insert(json!(now));
        claims.entry("exp").or_insert(json!(now + LIFETIME_SECS));
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &Value::Object(claims), &self.key)
            .map_err(|e| format!("cannot sign: {e}"))
    }
}

impl Idp {
    /// A detached JWS over `payload` as it is (no claims added): its protected header and
    /// signature, base64url — how Mina ombud signs its answers (`_sig`); verifiable with
    /// the issuer's JWKS.
    pub fn sign_detached(&self, payload: &Value) -> Result<(String, String), String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let jws = jsonwebtoken::encode(&header, payload, &self.key)
            .map_err(|e| format!("cannot sign: {e}"))?;
        let mut parts = jws.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(_), Some(s)) => Ok((h.to_string(), s.to_string())),
            _ => Err("a JWS without three parts".into()),
        }
    }
}

/// The routes, relative to `/sandbox/idp`.
pub fn routes(idp: Arc<Idp>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(idp)
}

async fn token(State(idp): State<Arc<Idp>>, body: axum::body::Bytes) -> Response {
    let claims = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(c)) => c,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Not a claims object",
                "POST a JSON object of claims, e.g. {\"sub\": \"…\", \"roles\": [\"guardian\"]}",
            );
        }
    };
    match idp.issue(claims) {
        Ok(t) => Json(json!({
            "access_token": t, "token_type": "Bearer", "expires_in": LIFETIME_SECS,
        }))
        .into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "Signing failed", e),
    }
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    ([(header::CACHE_CONTROL, "max-age=60")], Json(idp.jwks())).into_response()
}

async fn discovery(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8090");
    Json(json!({
        "issuer": ISSUER,
        "jwks_uri": format!("http://{host}/sandbox/idp/jwks"),
        "id_token_signing_alg_values_supported": ["EdDSA"],
    }))
}
