//! Who a request comes from: the ingress's auth schemes — an API key, HTTP basic, a bearer
//! JWT — checked in constant time or against the trusted keys, and what they prove
//! ([`Caller`]). The admin listener checks its credentials with the same pieces
//! ([`constant_time_eq`], [`bearer`], [`super::crate::endpoint::jwt::JwtVerifier`]).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use serde_json::Value;

pub use crate::endpoint::jwt::bearer;

/// An auth scheme as the OpenAPI document describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// A key in a request header.
    ApiKey {
        /// The header's name.
        header: String,
    },
    /// HTTP basic authentication.
    Basic,
    /// A bearer JWT in `Authorization`.
    BearerJwt,
}

/// How a request proves who sent it.
#[derive(Clone)]
pub enum AuthCheck {
    /// A shared key in a request header. The runtime fills `key` from the environment
    /// variable named in the configuration; an empty key refuses every request.
    ApiKey {
        /// Header carrying the key, e.g. `x-api-key`.
        header: String,
        /// The expected key (a secret: never logged, not shown by `Debug`).
        key: String,
    },
    /// HTTP basic authentication with one user (RFC 7617); the password compared in
    /// constant time.
    Basic {
        /// The expected user name.
        username: String,
        /// The expected password (a secret: never logged, not shown by `Debug`).
        password: String,
    },
    /// A bearer JWT verified against a JSON Web Key Set (see [`super::jwt`]).
    BearerJwt(Arc<crate::endpoint::jwt::JwtVerifier>),
}

/// Why credentials were not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Missing or wrong: what to tell the client (401).
    Credentials(String),
    /// They cannot be checked now (the trusted keys cannot be loaded): 503.
    Unavailable,
}

/// Who a request's credentials prove it comes from.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The verified token's claims (bearer tokens only).
    pub claims: Option<Value>,
    /// The client as rate limits count it: the token's `sub` (or `azp`, `client_id`), the
    /// basic user, or the API key's scheme; `None` for an unauthenticated route (then the
    /// peer address counts).
    pub client: Option<String>,
}

impl std::fmt::Debug for AuthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthCheck::ApiKey { header, .. } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("key", &"<redacted>")
                .finish(),
            AuthCheck::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            AuthCheck::BearerJwt(v) => f.debug_tuple("BearerJwt").field(v).finish(),
        }
    }
}

impl AuthCheck {
    /// What the OpenAPI document says about this scheme.
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthCheck::ApiKey { header, .. } => AuthKind::ApiKey {
                header: header.clone(),
            },
            AuthCheck::Basic { .. } => AuthKind::Basic,
            AuthCheck::BearerJwt(_) => AuthKind::BearerJwt,
        }
    }

    /// Who the request comes from when it carries valid credentials for scheme `name`;
    /// else what to tell the client.
    pub async fn check(&self, name: &str, headers: &HeaderMap) -> Result<Caller, Refused> {
        match self {
            AuthCheck::ApiKey { header, key } => {
                let ok = !key.is_empty()
                    && headers
                        .get(header.as_str())
                        .is_some_and(|v| constant_time_eq(v.as_bytes(), key.as_bytes()));
                if ok {
                    Ok(Caller {
                        claims: None,
                        client: Some(format!("key:{name}")),
                    })
                } else {
                    Err(Refused::Credentials(format!(
                        "send the API key in the `{header}` header"
                    )))
                }
            }
            AuthCheck::Basic { username, password } => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(basic_credentials);
                let ok = !password.is_empty()
                    && given.is_some_and(|(u, p)| {
                        // Both compared, always, so the time says nothing about which failed.
                        let user_ok = constant_time_eq(u.as_bytes(), username.as_bytes());
                        let password_ok = constant_time_eq(p.as_bytes(), password.as_bytes());
                        user_ok & password_ok
                    });
                if ok {
                    Ok(Caller {
                        claims: None,
                        client: Some(format!("basic:{username}")),
                    })
                } else {
                    Err(Refused::Credentials(
                        "send the user name and password: `Authorization: Basic <base64 of user:password>`"
                            .to_string(),
                    ))
                }
            }
            AuthCheck::BearerJwt(verifier) => {
                let value = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                let token = crate::endpoint::jwt::bearer(value)
                    .map_err(|e| Refused::Credentials(e.to_string()))?;
                let claims = verifier.verify(token).await.map_err(|e| match e {
                    // The trusted keys could not be had: not the client's fault, and the
                    // reason (a URL, a connection error) is for the operators' log only.
                    crate::endpoint::jwt::JwtError::Keys(why) => {
                        tracing::warn!(scheme = name, reason = %why, "the trusted keys cannot be loaded; refusing tokens");
                        Refused::Unavailable
                    }
                    other => Refused::Credentials(other.to_string()),
                })?;
                let client = ["sub", "azp", "client_id"]
                    .iter()
                    .find_map(|c| claims.get(*c).and_then(Value::as_str))
                    .map(|id| format!("jwt:{name}:{id}"))
                    .unwrap_or_else(|| format!("jwt:{name}"));
                Ok(Caller {
                    claims: Some(claims),
                    client: Some(client),
                })
            }
        }
    }

    pub(super) fn challenge(&self) -> String {
        match self {
            AuthCheck::ApiKey { header, .. } => {
                format!("ApiKey realm=\"knutpunkt\", header=\"{header}\"")
            }
            AuthCheck::Basic { .. } => "Basic realm=\"knutpunkt\", charset=\"UTF-8\"".to_string(),
            AuthCheck::BearerJwt(_) => "Bearer realm=\"knutpunkt\"".to_string(),
        }
    }
}

/// The user and password of an `Authorization: Basic …` value (RFC 7617), if well-formed.
pub(super) fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Compare without an early exit: the time depends only on the expected key's length.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}
