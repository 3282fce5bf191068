//! How knut authenticates to a system: an API key header, HTTP basic, OAuth2 client
//! credentials (token cached and refreshed before it expires), and mutual TLS.
//!
//! ```yaml
//! auth:
//!   oauth2:
//!     token_url: https://api-gateway.example/token
//!     client_id: knutpunkt
//!     client_secret: { env: KNUT_ELEVREGISTER_SECRET }
//!     scope: elevregister            # optional
//! tls:                               # mutual TLS (optional, with any auth)
//!   client_cert: { file: /run/secrets/knut.crt }
//!   client_key: { file: /run/secrets/knut.key }
//!   ca: { file: /run/secrets/ca.crt }   # optional extra trust anchor
//! ```
//!
//! The OAuth2 token is fetched once and shared by every call of the adapter (one fetch
//! even when many calls start together), refreshed when less than a tenth of its lifetime
//! (at most a minute) remains, and dropped when the system answers 401 (the call is then
//! made once more with a new token). Tokens and secrets never reach a log or an error.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::{Secret, SecretValue};
use crate::core::error::StepError;

/// The authentication of an adapter (default `none`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthSpec {
    /// No authentication.
    #[default]
    None,
    /// An API key in a header.
    ApiKey(ApiKeySpec),
    /// HTTP basic authentication.
    Basic(BasicSpec),
    /// OAuth2 client credentials grant (RFC 6749 §4.4).
    Oauth2(OAuth2Spec),
}

/// `auth: { api_key: { header, value } }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The header carrying the key (default `x-api-key`).
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// The key.
    pub value: Secret,
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

/// `auth: { basic: { username, password } }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicSpec {
    /// The user name (not a secret).
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// `auth: { oauth2: { token_url, client_id, client_secret, scope } }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    /// The token endpoint.
    pub token_url: String,
    /// The client id (not a secret).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Scope(s) to ask for, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// How the client authenticates to the token endpoint: `basic` (default,
    /// `client_secret_basic`) or `post` (`client_secret_post`: in the form).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// How OAuth2 client credentials are presented.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// HTTP basic with client id and secret.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// `tls:` mutual TLS: the client certificate and key (PEM), and an optional CA.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The client certificate chain (PEM).
    pub client_cert: Secret,
    /// The client's private key (PEM, PKCS#8 or RSA/EC).
    pub client_key: Secret,
    /// An extra CA certificate (PEM) to trust for this system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<Secret>,
}

impl TlsSpec {
    /// Apply to a client builder: the identity and the extra trust anchor.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let cert = self.client_cert.resolve()?;
        let key = self.client_key.resolve()?;
        let pem = format!("{}\n{}\n", cert.expose(), key.expose());
        let identity = reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(|_| "tls: the client certificate or key is not valid PEM".to_string())?;
        let mut builder = builder.identity(identity);
        if let Some(ca) = &self.ca {
            let ca = ca.resolve()?;
            let cert = reqwest::Certificate::from_pem(ca.expose().as_bytes())
                .map_err(|_| "tls.ca: not a valid PEM certificate".to_string())?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(builder)
    }
}

impl AuthSpec {
    /// Every secret of the spec with its place in the file (for the literal-secret check).
    pub fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        match self {
            AuthSpec::None => vec![],
            AuthSpec::ApiKey(k) => vec![("auth.api_key.value", &k.value)],
            AuthSpec::Basic(b) => vec![("auth.basic.password", &b.password)],
            AuthSpec::Oauth2(o) => vec![("auth.oauth2.client_secret", &o.client_secret)],
        }
    }
}

/// An adapter's authentication, its secrets read.
pub enum Auth {
    /// Nothing added.
    None,
    /// A header with a key.
    ApiKey {
        /// Header name.
        header: String,
        /// The key.
        value: SecretValue,
    },
    /// HTTP basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretValue,
    },
    /// OAuth2 client credentials with a cached token.
    OAuth2(TokenCache),
}

impl Auth {
    /// Read the secrets of `spec`; `http` is the client the token endpoint is called with.
    pub fn new(spec: &AuthSpec, http: reqwest::Client, timeout: Duration) -> Result<Auth, String> {
        Ok(match spec {
            AuthSpec::None => Auth::None,
            AuthSpec::ApiKey(k) => Auth::ApiKey {
                header: k.header.clone(),
                value: k
                    .value
                    .resolve()
                    .map_err(|e| format!("auth.api_key.value: {e}"))?,
            },
            AuthSpec::Basic(b) => Auth::Basic {
                username: b.username.clone(),
                password: b
                    .password
                    .resolve()
                    .map_err(|e| format!("auth.basic.password: {e}"))?,
            },
            AuthSpec::Oauth2(o) => {
                if reqwest::Url::parse(&o.token_url).is_err() {
                    return Err(format!(
                        "auth.oauth2.token_url `{}` is not a URL",
                        o.token_url
                    ));
                }
                Auth::OAuth2(TokenCache {
                    token_url: o.token_url.clone(),
                    client_id: o.client_id.clone(),
                    client_secret: o
                        .client_secret
                        .resolve()
                        .map_err(|e| format!("auth.oauth2.client_secret: {e}"))?,
                    scope: o.scope.clone(),
                    client_auth: o.client_auth,
                    http,
                    timeout,
                    token: tokio::sync::Mutex::new(None),
                })
            }
        })
    }

    /// Add the credentials to a request. `what` names the call in errors.
    pub async fn apply(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::RequestBuilder, StepError> {
        Ok(match self {
            Auth::None => req,
            Auth::ApiKey { header, value } => req.header(header.as_str(), value.expose()),
            Auth::Basic { username, password } => req.basic_auth(username, Some(password.expose())),
            Auth::OAuth2(cache) => req.bearer_auth(cache.token(what).await?),
        })
    }
}

/// An OAuth2 access token shared by an adapter's calls.
pub struct TokenCache {
    token_url: String,
    client_id: String,
    client_secret: SecretValue,
    scope: Option<String>,
    client_auth: ClientAuth,
    http: reqwest::Client,
    timeout: Duration,
    /// Held while a token is fetched, so concurrent callers share one fetch.
    token: tokio::sync::Mutex<Option<Token>>,
}

struct Token {
    value: String,
    refresh_at: Instant,
}

/// The largest answer read from an OAuth2 token endpoint.
const TOKEN_RESPONSE_MAX_BYTES: usize = 1024 * 1024;
/// Lifetime assumed when the token endpoint does not say (`expires_in` absent).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

/// When to refresh a token of `lifetime`: a tenth of it early, at most a minute early.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 10).min(Duration::from_secs(60))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

impl TokenCache {
    /// A valid access token: the cached one, or a new one.
    pub async fn token(&self, what: &str) -> Result<String, StepError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let fetched = Instant::now();
        let (value, lifetime) = self.fetch(what).await?;
        *slot = Some(Token {
            value: value.clone(),
            refresh_at: fetched + refresh_after(lifetime),
        });
        Ok(value)
    }

    /// Forget `stale` (the system refused it); a newer token is kept.
    pub async fn invalidate(&self, stale: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale) {
            *slot = None;
        }
    }

    async fn fetch(&self, what: &str) -> Result<(String, Duration), StepError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let mut req = self
            .http
            .post(&self.token_url)
            .timeout(self.timeout)
            .header("accept", "application/json");
        match self.client_auth {
            ClientAuth::Basic => {
                req = req.basic_auth(&self.client_id, Some(self.client_secret.expose()));
            }
            ClientAuth::Post => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
            }
        }
        let resp = req.form(&form).send().await.map_err(|e| {
            StepError::transient(format!(
                "{what}: the OAuth2 token endpoint {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "could not be reached"
                }
            ))
        })?;
        let status = resp.status().as_u16();
        if let Some(kind) = super::answer::classify(status) {
            return Err(StepError {
                kind,
                message: format!(
                    "{what}: the OAuth2 token endpoint answered HTTP {status}{}",
                    if status == 400 || status == 401 {
                        " (check auth.oauth2.client_id and the client secret)"
                    } else {
                        ""
                    }
                ),
            });
        }
        let bytes = super::answer::read_limited(resp, TOKEN_RESPONSE_MAX_BYTES)
            .await
            .map_err(|e| match e {
                super::answer::ReadError::TooLarge => StepError::permanent(format!(
                    "{what}: the OAuth2 token endpoint's answer is larger than {}",
                    super::answer::size(TOKEN_RESPONSE_MAX_BYTES)
                )),
                super::answer::ReadError::Cut => StepError::transient(format!(
                    "{what}: the OAuth2 token endpoint's answer was cut off"
                )),
            })?;
        let body: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            StepError::permanent(format!(
                "{what}: the OAuth2 token endpoint's answer has no `access_token`"
            ))
        })?;
        let lifetime = body
            .expires_in
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(ASSUMED_LIFETIME);
        Ok((body.access_token, lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_early_by_a_tenth_at_most_a_minute() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(10)),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn a_client_certificate_is_loaded_and_a_broken_one_named() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fixture = |f: &str| {
            Secret::Ref(super::super::secret::SecretRef::File(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/tls")
                    .join(f),
            ))
        };
        let tls = TlsSpec {
            client_cert: fixture("client.crt"),
            client_key: fixture("client.key"),
            ca: Some(fixture("client.crt")),
        };
        let client = tls
            .apply(reqwest::Client::builder())
            .and_then(|b| b.build().map_err(|e| e.to_string()));
        assert!(client.is_ok(), "{:?}", client.err());
        let broken = TlsSpec {
            client_cert: fixture("README.md"),
            client_key: fixture("README.md"),
            ca: None,
        };
        let Err(e) = broken.apply(reqwest::Client::builder()) else {
            panic!("a broken certificate is refused")
        };
        assert!(e.contains("not valid PEM"), "{e}");
        let missing = TlsSpec {
            client_cert: fixture("nope.crt"),
            client_key: fixture("client.key"),
            ca: None,
        };
        let Err(e) = missing.apply(reqwest::Client::builder()) else {
            panic!("a missing certificate is refused")
        };
        assert!(e.contains("nope.crt"), "{e}");
    }

    #[test]
    fn specs_read_from_yaml() {
        let a: AuthSpec = serde_saphyr::from_str(
            "oauth2:\n  token_url: http://127.0.0.1:1/token\n  client_id: knut\n  client_secret: { env: X }\n",
        )
        .unwrap();
        assert!(matches!(a, AuthSpec::Oauth2(_)));
        let n: AuthSpec = serde_saphyr::from_str("none").unwrap();
        assert!(matches!(n, AuthSpec::None));
        let b: AuthSpec =
            serde_saphyr::from_str("basic: { username: knut, password: hunter2 }").unwrap();
        assert!(b.secrets()[0].1.is_literal());
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
