//! The instance configuration: `<root>/knut.toml` plus `KNUT__SECTION__KEY` environment
//! overrides.
//!
//! Every setting has a default, so a root without `knut.toml` and without environment
//! variables runs as a development instance (embedded broker, SQLite store, sandbox on, text
//! logs). Sources are applied in this order, later ones winning:
//!
//! 1. the defaults below,
//! 2. `<root>/knut.toml` (optional),
//! 3. environment variables `KNUT__<SECTION>__<KEY>` (separator `__`, case-insensitive), e.g.
//!    `KNUT__BROKER__URL=amqp://…`, `KNUT__HTTP__BIND=0.0.0.0:8080`,
//!    `KNUT__SANDBOX__ENABLED=false`. Variables with a single underscore after `KNUT`
//!    (`KNUT_TEST_AMQP_URL`) are not configuration and are ignored.
//!
//! Unknown keys are errors that name the key and suggest the closest known one, so a typo
//! never silently falls back to a default. Secrets are never written in the file: an
//! `api_key` auth scheme names the environment variable that holds the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat, Map, Value, ValueKind};
use serde::{Deserialize, Serialize};

use crate::broker::amqp::QueueType;

/// Name of the optional configuration file inside the root folder.
pub const CONFIG_FILE: &str = "knut.toml";

/// Prefix of environment variables that override configuration keys (`KNUT__HTTP__BIND`).
pub const ENV_PREFIX: &str = "KNUT__";

/// The whole configuration of one Knutpunkt instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Which rules hold: `production` (the default: fail closed, checked at start) or
    /// `development` (sandbox, embedded broker, the sandbox's test issuer). `knut run --dev`
    /// sets `development`.
    pub profile: Profile,
    /// The message broker (RabbitMQ, or the embedded broker when no URL is set).
    pub broker: BrokerConfig,
    /// The HTTP ingress (routes with `from: http`).
    pub http: HttpConfig,
    /// The admin HTTP server (health, readiness, metrics, admin API).
    pub admin: AdminConfig,
    /// The state store (idempotency keys, aggregation groups, message journal).
    pub store: StoreConfig,
    /// The sandbox that simulates the municipality's systems.
    pub sandbox: SandboxConfig,
    /// Logging.
    pub log: LogConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// The external plane: its broker connection and its own listeners.
    pub external: ExternalConfig,
    /// The access audit (the `audit` step): the key its people are hashed with.
    pub audit: AuditConfig,
    /// Traces over OTLP/HTTP (off unless `otlp_endpoint` is set).
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: OpenTelemetry traces of ingress requests, messages, steps and adapter
/// calls, exported over OTLP/HTTP with protobuf (see docs/telemetry.md). Off unless
/// `otlp_endpoint` is set: then nothing is installed and nothing is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector: a base URL (`http://otel-collector:4318`, to which
    /// `/v1/traces` is added) or the full traces URL (ending in `/v1/traces`). Unset or
    /// empty (`KNUT__TELEMETRY__OTLP_ENDPOINT=`): no traces.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces recorded, from 0.0 (none) to 1.0 (all). Parent-based: a
    /// message or request whose upstream was sampled is recorded, and one whose upstream
    /// was not is not, whatever the ratio, so a trace is recorded whole or not at all.
    pub sampling: f64,
    /// `service.name` of the spans: tells the instances' traces apart in the collector
    /// (e.g. `knut-external` for the external plane's instance).
    pub service_name: String,
    /// The environment variable holding headers sent with every export (a collector's
    /// credential), as `name=value` pairs separated by commas, e.g.
    /// `authorization=Bearer …`. Unset: none (OpenTelemetry's own
    /// `OTEL_EXPORTER_OTLP_HEADERS` is read too).
    pub headers_env: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sampling: 1.0,
            service_name: "knut".to_owned(),
            headers_env: None,
        }
    }
}

/// `[audit]`: the access audit (the `audit` step's log of who accessed whose data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// The environment variable holding the key (at least 32 bytes) under which the access
    /// audit stores people as HMAC-SHA256 hashes. Required in production when a route has an
    /// `audit` step; in development, unset, a fixed public development key is used (and
    /// `knut run` warns).
    pub key_env: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            key_env: DEFAULT_AUDIT_KEY_ENV.to_owned(),
        }
    }
}

/// The variable `[audit] key_env` names when unset.
pub const DEFAULT_AUDIT_KEY_ENV: &str = "KNUT_AUDIT_KEY";

/// Which rules an instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Fail closed: no sandbox, no embedded broker, no adapter pointing at the sandbox, no
    /// auth scheme without configuration, `auth: none` only with a reason the configuration
    /// allows. Checked at start (see [`crate::posture`]).
    #[default]
    Production,
    /// A developer's or a test's instance: the sandbox runs, the embedded broker may, and an
    /// auth scheme a route names but the configuration lacks trusts the sandbox's test issuer.
    Development,
}

impl Profile {
    /// `production` or `development`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Production => "production",
            Profile::Development => "development",
        }
    }
}

/// `[broker]`: which broker to use and how much to take at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerConfig {
    /// `amqp://` or `amqps://` URL of RabbitMQ; `None` runs the embedded (non-durable)
    /// broker. Usually set from the environment (`KNUT__BROKER__URL`) because it holds a
    /// password.
    pub url: Option<String>,
    /// Further nodes of the same RabbitMQ cluster, as `host:port`, reached with `url`'s
    /// scheme, credentials, vhost and query (and likewise for `external.broker_url` and
    /// `external.bridge_url`). Knutpunkt connects to the first that answers, starting with
    /// `url`'s own host, and after losing a connection tries the next. In the environment:
    /// `KNUT__BROKER__NODES=rabbit-2:5671,rabbit-3:5671`.
    #[serde(deserialize_with = "list_or_commas")]
    pub nodes: Vec<String>,
    /// How many unacknowledged deliveries a route worker may hold (back-pressure).
    pub prefetch: u16,
    /// RabbitMQ type of work and dead-letter queues: `quorum` (default, replicated) or
    /// `classic` (for brokers that cannot run quorum queues).
    pub queue_type: QueueType,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: None,
            nodes: Vec::new(),
            prefetch: 32,
            queue_type: QueueType::default(),
        }
    }
}

/// A list, or (as an environment variable holds it) one string of comma-separated items.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Items::deserialize(d)? {
        Items::List(items) => items,
        Items::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// `[http]`: the ingress server for `from: http` routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Socket address to listen on.
    pub bind: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// Named authentication schemes that routes refer to with `from.http.auth`.
    pub auth: BTreeMap<String, AuthScheme>,
    /// Routes allowed to run without authentication in production: each must also say why
    /// in its file (`auth: { none: "reason" }`).
    pub unauthenticated: Vec<String>,
    /// How long a client may take to send its request body (humantime); slower → 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests per client and route (a route may set its own `rate_limit`); over it →
    /// 429 with `Retry-After`.
    pub rate_limit: RateLimitConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: 1024 * 1024,
            auth: BTreeMap::new(),
            unauthenticated: Vec::new(),
            request_timeout: Duration::from_secs(30),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// A rate limit: a steady rate and the burst allowed above it (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a second, on average.
    pub per_second: f64,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100,
        }
    }
}

/// One authentication scheme under `[http.auth.<name>]`, chosen by its `type` key.
///
/// This is only the configuration shape; checking credentials happens in the ingress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthScheme {
    /// A shared API key sent in a request header.
    ApiKey {
        /// Header carrying the key.
        #[serde(default = "default_api_key_header")]
        header: String,
        /// Name of the environment variable that holds the key (never the key itself).
        key_env: String,
    },
    /// HTTP basic authentication (RFC 7617) with one user, e.g. the credential OeP's
    /// integration sends with its pushed exports. Only over TLS in production (the reverse
    /// proxy terminates it).
    Basic {
        /// The user name expected.
        username: String,
        /// Name of the environment variable that holds the password (never the password).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
        /// Or a file holding it (relative to the root; e.g. a mounted secret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
    /// A JWT bearer token verified against a JWKS.
    BearerJwt {
        /// URL of the JSON Web Key Set.
        #[serde(default)]
        jwks_url: Option<String>,
        /// Path of a local JSON Web Key Set file (relative to the root).
        #[serde(default)]
        jwks_file: Option<String>,
        /// Required `iss` claim.
        issuer: String,
        /// Required `aud` claim, if any (a token without `aud` is refused then).
        #[serde(default)]
        audience: Option<String>,
        /// Clock skew allowed on `exp` and `nbf` (humantime: `30s`; default 30 s, at most
        /// 5 minutes).
        #[serde(default = "default_leeway", with = "humantime_serde")]
        leeway: Duration,
    },
}

/// The clock skew allowed on `exp` and `nbf` unless the scheme sets `leeway`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest `leeway` a scheme may set.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The issuer of the sandbox's test OpenID Connect provider (`/sandbox/idp`).
pub const SANDBOX_ISSUER: &str = "knut-sandbox-idp";

impl Config {
    /// Whether the sandbox runs: `sandbox.enabled` when set, else on in the development
    /// profile of a build that has it.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox
            .enabled
            .unwrap_or(self.profile == Profile::Development && SANDBOX_BUILT)
    }

    /// The auth schemes in force for routes naming `named`: the configured ones, and — only
    /// in the development profile with the sandbox running — a `bearer_jwt` scheme trusting
    /// the sandbox's test issuer for every named scheme that is not configured, so that a
    /// fresh checkout serves its authenticated routes with tokens from `POST
    /// /sandbox/idp/token`. The second list names those development schemes (the runtime
    /// warns about each). In production an unconfigured name stays an error.
    pub fn auth_schemes<'a>(
        &self,
        named: impl IntoIterator<Item = &'a str>,
    ) -> (BTreeMap<String, AuthScheme>, Vec<String>) {
        let mut schemes = self.http.auth.clone();
        let mut development = Vec::new();
        if self.profile != Profile::Development || !self.sandbox_enabled() {
            return (schemes, development);
        }
        for name in named {
            if name == "none" || schemes.contains_key(name) {
                continue;
            }
            schemes.insert(name.to_string(), self.sandbox_issuer());
            development.push(name.to_string());
        }
        (schemes, development)
    }

    /// A `bearer_jwt` scheme trusting the sandbox's test issuer (development only).
    pub fn sandbox_issuer(&self) -> AuthScheme {
        AuthScheme::BearerJwt {
            jwks_url: Some(format!("{}/sandbox/idp/jwks", self.sandbox_origin())),
            jwks_file: None,
            issuer: SANDBOX_ISSUER.to_string(),
            audience: None,
            leeway: default_leeway(),
        }
    }

    /// `http://host:port` of the sandbox as a client reaches it (an unspecified bind
    /// address is reached on loopback).
    pub fn sandbox_origin(&self) -> String {
        let host = match self.sandbox.bind.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}", self.sandbox.bind.port())
    }
}

fn default_leeway() -> Duration {
    DEFAULT_LEEWAY
}

fn default_api_key_header() -> String {
    "x-api-key".to_owned()
}

/// `[admin]`: the admin HTTP server and who may use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Socket address to listen on.
    pub bind: SocketAddr,
    /// Paths answered without credentials (default `/healthz`, `/readyz`, `/metrics`:
    /// probes and scrapers; none of them shows personal data). Only these three may be
    /// listed.
    pub public: Vec<String>,
    /// Whether `POST /api/routes/{id}/messages` (role `injector`) is served. Unset: on in
    /// development, off in production.
    pub allow_injection: Option<bool>,
    /// API keys by the name the journal records as the actor: `[admin.keys.<name>]`.
    pub keys: BTreeMap<String, AdminKey>,
    /// Bearer tokens of the municipality's identity provider, roles in a claim.
    pub jwt: Option<AdminJwt>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 9090)),
            public: ADMIN_PUBLIC_PATHS.iter().map(|p| p.to_string()).collect(),
            allow_injection: None,
            keys: BTreeMap::new(),
            jwt: None,
        }
    }
}

/// The admin paths that may be answered without credentials.
pub const ADMIN_PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// What an admin caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Routes, metrics, health.
    Viewer,
    /// Dead letters: list and show (personnummer masked), replay, discard.
    Operator,
    /// Hand a message to a route (`knut send`).
    Injector,
    /// See dead letters' personnummer unmasked (with `operator`).
    PersonalData,
}

impl Role {
    /// The role's name in configuration and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Injector => "injector",
            Role::PersonalData => "personal_data",
        }
    }

    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Operator,
        Role::Injector,
        Role::PersonalData,
    ];

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// `[admin.keys.<name>]`: an API key for the admin API, sent as `Authorization: Bearer
/// <key>` (or `x-api-key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminKey {
    /// Name of the environment variable holding the key (never the key).
    pub key_env: String,
    /// What its holder may do.
    pub roles: Vec<Role>,
}

/// `[admin.jwt]`: bearer tokens for the admin API, verified like a `bearer_jwt` scheme; the
/// roles are the strings of `roles_claim` (an array) that name a [`Role`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminJwt {
    /// URL of the JSON Web Key Set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Path of a local JSON Web Key Set file (relative to the root).
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// The claim holding the roles (default `roles`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
}

fn default_roles_claim() -> String {
    "roles".to_string()
}

/// `[store]`: the state store.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// `sqlite:…` or `postgres://…` URL; `None` uses the SQLite file `<root>/data/knut.db`
    /// (see [`Config::store_url`]).
    pub url: Option<String>,
}

/// `[sandbox]`: the simulated municipal systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// Whether the sandbox runs. Unset: on in the development profile (when the build has
    /// the `sandbox` feature), off in production, where `true` is refused at start.
    pub enabled: Option<bool>,
    /// Socket address the sandbox listens on (loopback only).
    pub bind: SocketAddr,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 8090)),
        }
    }
}

/// Whether this build carries the sandbox (the `sandbox` cargo feature, on by default and
/// off in the production image).
pub const SANDBOX_BUILT: bool = cfg!(feature = "sandbox");

/// `[external]`: the external plane (seed 003: external cases — citizens', companies' and
/// independent operators' traffic — handled apart from internal ones). Routes with `plane:
/// external` run here: on their own broker connection (their own RabbitMQ vhost and user)
/// and their own ingress and admin listeners. Bridge routes of the internal plane read
/// from it through `bridge_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalConfig {
    /// RabbitMQ URL of the external plane (its vhost, its user). Unset in development: the
    /// planes share `broker.url` (or the embedded broker). Required in production when any
    /// route is external (`KNUT__EXTERNAL__BROKER_URL`).
    pub broker_url: Option<String>,
    /// RabbitMQ URL with which the internal plane's bridge routes read the external vhost
    /// (the internal plane's user, permitted on the bridge queues only). Unset in
    /// development: `broker_url`.
    pub bridge_url: Option<String>,
    /// The external plane's ingress (its `from: http` routes only).
    pub http_bind: SocketAddr,
    /// The external plane's admin listener (its routes and dead letters only).
    pub admin_bind: SocketAddr,
}

impl Default for ExternalConfig {
    fn default() -> Self {
        Self {
            broker_url: None,
            bridge_url: None,
            http_bind: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_bind: SocketAddr::from(([127, 0, 0, 1], 9091)),
        }
    }
}

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable single lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info` or `info,knutpunkt=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[shutdown]`: graceful shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShutdownConfig {
    /// How long in-flight work may take after SIGTERM/SIGINT before the process exits
    /// (humantime: `30s`, `2m`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
        }
    }
}

/// A key that the configuration does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Where it came from, e.g. `knut.toml` or `environment variable KNUT__HTTTP__BIND`.
    pub origin: String,
    /// Dotted path of the key, e.g. `htttp` or `http.bnd`.
    pub path: String,
    /// The closest known key at the same level, if one is close enough.
    pub suggestion: Option<String>,
    /// The keys that are allowed at that level.
    pub known: Vec<&'static str>,
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: unknown key `{}`", self.origin, self.path)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{s}`?)")?;
        }
        write!(f, "; known keys here: {}", self.known.join(", "))
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read configuration file {}: {source}; check that it is a readable file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type.
    #[error("{origin}: {message}; see knut.toml.example for the expected shape")]
    Parse {
        /// Which source failed (file path or "the environment").
        origin: String,
        /// What the parser said (positions and key paths, no secrets).
        message: String,
    },
    /// One or more keys are not known.
    #[error("{}; remove or correct the key", keys.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnknownKeys {
        /// The unknown keys, in a stable order.
        keys: Vec<UnknownKey>,
    },
    /// A value has the right type but is not acceptable.
    #[error("`{key}` is invalid: {reason}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong and what to do (never the value itself, which may hold a password).
        reason: String,
    },
    /// An environment variable with the `KNUT__` prefix is not valid Unicode.
    #[error("environment variable {name} is not valid Unicode; set it to a UTF-8 value")]
    NonUnicodeEnv {
        /// The variable's name.
        name: String,
    },
}

impl Config {
    /// Loads `<root>/knut.toml` (if present) and the process's `KNUT__…` environment
    /// variables on top of the defaults.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if !has_env_prefix(name) {
                continue;
            }
            let value = value
                .into_string()
                .map_err(|_| ConfigError::NonUnicodeEnv {
                    name: name.to_owned(),
                })?;
            env.push((name.to_owned(), value));
        }
        Self::load_with_env(root, env)
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests and for callers
    /// that already hold a snapshot of the environment). Entries without the `KNUT__` prefix
    /// are ignored.
    pub fn load_with_env(
        root: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let path = root.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let origin = path.display().to_string();
        Self::build(text.as_deref().map(|t| (t, origin.as_str())), env)
    }

    /// Parses a TOML document on top of the defaults, without reading the environment.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Self::build(Some((s, CONFIG_FILE)), std::iter::empty())
    }

    /// The store URL: `store.url` if set, otherwise the SQLite file `<root>/data/knut.db`
    /// as `sqlite://<root>/data/knut.db?mode=rwc` (created if missing; the `data` folder must
    /// exist or be created by the store).
    pub fn store_url(&self, root: &Path) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                root.join("data").join("knut.db").display()
            ),
        }
    }

    fn build(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();

        if let Some((text, origin)) = file {
            let source = File::from_str(text, FileFormat::Toml);
            let parsed = config::Config::builder()
                .add_source(source.clone())
                .build()
                .map_err(|e| parse_error(origin, e))?;
            let mut unknown = Vec::new();
            check_keys(&parsed.cache, &|_| origin.to_owned(), &mut unknown);
            if !unknown.is_empty() {
                return Err(ConfigError::UnknownKeys { keys: unknown });
            }
            builder = builder.add_source(source);
        }

        let env: Map<String, String> = env
            .into_iter()
            .filter(|(name, _)| has_env_prefix(name))
            .collect();
        if !env.is_empty() {
            let names: Vec<(String, String)> = env
                .keys()
                .map(|name| (name.clone(), env_key_path(name)))
                .collect();
            let source = Environment::with_prefix("KNUT")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env));
            let parsed = config::Config::builder()
                .add_source(source.clone())
                .build()
                .map_err(|e| parse_error("the environment", e))?;
            let origin = |path: &str| {
                let mut vars: Vec<&str> = names
                    .iter()
                    .filter(|(_, key)| {
                        key == path
                            || key
                                .strip_prefix(path)
                                .is_some_and(|rest| rest.starts_with('.'))
                    })
                    .map(|(name, _)| name.as_str())
                    .collect();
                vars.sort_unstable();
                match vars.as_slice() {
                    [] => format!(
                        "environment variable {ENV_PREFIX}{}",
                        path.replace('.', "__").to_uppercase()
                    ),
                    [one] => format!("environment variable {one}"),
                    many => format!("environment variables {}", many.join(", ")),
                }
            };
            let mut unknown = Vec::new();
            check_keys(&parsed.cache, &origin, &mut unknown);
            if !unknown.is_empty() {
                return Err(ConfigError::UnknownKeys { keys: unknown });
            }
            builder = builder.add_source(source);
        }

        let merged = builder
            .build()
            .map_err(|e| parse_error("configuration (knut.toml and KNUT__ variables)", e))?;
        let cfg: Config = merged
            .try_deserialize()
            .map_err(|e| parse_error("configuration (knut.toml and KNUT__ variables)", e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let amqp_urls = [
            ("broker.url", &self.broker.url),
            ("external.broker_url", &self.external.broker_url),
            ("external.bridge_url", &self.external.bridge_url),
        ];
        for (key, url) in amqp_urls {
            if let Some(url) = url {
                let scheme = scheme_of(url);
                if !matches!(scheme.as_deref(), Some("amqp" | "amqps")) {
                    return Err(ConfigError::Invalid {
                        key: key.into(),
                        reason: "expected an amqp:// or amqps:// URL; leave it unset to use the \
                                 embedded broker (development only)"
                            .into(),
                    });
                }
            }
        }
        if !self.broker.nodes.is_empty() && self.broker.url.is_none() {
            return Err(ConfigError::Invalid {
                key: "broker.nodes".into(),
                reason: "further nodes of a RabbitMQ cluster need broker.url (the first node, \
                         with the user, password and vhost)"
                    .into(),
            });
        }
        for node in &self.broker.nodes {
            crate::broker::amqp::check_node(node).map_err(|reason| ConfigError::Invalid {
                key: "broker.nodes".into(),
                reason,
            })?;
        }
        if self.sandbox.enabled == Some(true) && !SANDBOX_BUILT {
            return Err(ConfigError::Invalid {
                key: "sandbox.enabled".into(),
                reason: "this build has no sandbox (built without the `sandbox` feature); \
                         remove the key, or use a development build"
                    .into(),
            });
        }
        if !(self.http.rate_limit.per_second > 0.0 && self.http.rate_limit.per_second.is_finite()) {
            return Err(ConfigError::Invalid {
                key: "http.rate_limit.per_second".into(),
                reason: "must be a positive number of requests a second".into(),
            });
        }
        if self.http.rate_limit.burst == 0 {
            return Err(ConfigError::Invalid {
                key: "http.rate_limit.burst".into(),
                reason: "must be at least 1".into(),
            });
        }
        if self.http.request_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                key: "http.request_timeout".into(),
                reason: "must be longer than zero, e.g. `30s`".into(),
            });
        }
        for path in &self.admin.public {
            if !ADMIN_PUBLIC_PATHS.contains(&path.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "admin.public".into(),
                    reason: format!(
                        "`{path}` cannot be public: only {} may be answered without credentials",
                        ADMIN_PUBLIC_PATHS.join(", ")
                    ),
                });
            }
        }
        for (name, key) in &self.admin.keys {
            if key.key_env.is_empty() {
                return Err(ConfigError::Invalid {
                    key: format!("admin.keys.{name}.key_env"),
                    reason: "name the environment variable that holds the key".into(),
                });
            }
            if key.roles.is_empty() {
                return Err(ConfigError::Invalid {
                    key: format!("admin.keys.{name}.roles"),
                    reason: "give the key at least one role: viewer, operator, injector, \
                             personal_data"
                        .into(),
                });
            }
        }
        self.telemetry.validate()?;
        if self.audit.key_env.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "audit.key_env".into(),
                reason: format!(
                    "name the environment variable that holds the access audit's key (default \
                     {DEFAULT_AUDIT_KEY_ENV})"
                ),
            });
        }
        if let Some(jwt) = &self.admin.jwt
            && jwt.jwks_url.is_none() == jwt.jwks_file.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "admin.jwt".into(),
                reason: "set exactly one of `jwks_url` and `jwks_file`".into(),
            });
        }
        if let Some(url) = &self.store.url {
            let scheme = scheme_of(url);
            if !matches!(
                scheme.as_deref(),
                Some("sqlite" | "postgres" | "postgresql")
            ) {
                return Err(ConfigError::Invalid {
                    key: "store.url".into(),
                    reason: "expected a sqlite: or postgres:// URL; leave it unset to use \
                             <root>/data/knut.db"
                        .into(),
                });
            }
        }
        if self.broker.prefetch == 0 {
            return Err(ConfigError::Invalid {
                key: "broker.prefetch".into(),
                reason: "must be at least 1".into(),
            });
        }
        if self.http.max_body == 0 {
            return Err(ConfigError::Invalid {
                key: "http.max_body".into(),
                reason: "must be at least 1 byte".into(),
            });
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Invalid {
                key: "log.level".into(),
                reason: format!(
                    "not a log filter directive ({e}); use e.g. `info` or `info,knutpunkt=debug`"
                ),
            });
        }
        for (name, scheme) in &self.http.auth {
            match scheme {
                AuthScheme::ApiKey { key_env, header } => {
                    if key_env.is_empty() {
                        return Err(ConfigError::Invalid {
                            key: format!("http.auth.{name}.key_env"),
                            reason: "name the environment variable that holds the key".into(),
                        });
                    }
                    if header.is_empty() {
                        return Err(ConfigError::Invalid {
                            key: format!("http.auth.{name}.header"),
                            reason: "name the request header that carries the key".into(),
                        });
                    }
                }
                AuthScheme::Basic {
                    username,
                    password_env,
                    password_file,
                } => {
                    if username.is_empty() || username.contains(':') {
                        return Err(ConfigError::Invalid {
                            key: format!("http.auth.{name}.username"),
                            reason: "give the user name the client sends (without `:`)".into(),
                        });
                    }
                    let named = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
                    if named(password_env) == named(password_file) {
                        return Err(ConfigError::Invalid {
                            key: format!("http.auth.{name}"),
                            reason: "set exactly one of `password_env` (the environment variable \
                                     holding the password) and `password_file`"
                                .into(),
                        });
                    }
                }
                AuthScheme::BearerJwt {
                    jwks_url,
                    jwks_file,
                    leeway,
                    ..
                } => {
                    if jwks_url.is_none() == jwks_file.is_none() {
                        return Err(ConfigError::Invalid {
                            key: format!("http.auth.{name}"),
                            reason: "set exactly one of `jwks_url` and `jwks_file`".into(),
                        });
                    }
                    let max = MAX_LEEWAY;
                    if *leeway > max {
                        return Err(ConfigError::Invalid {
                            key: format!("http.auth.{name}.leeway"),
                            reason: format!(
                                "at most {}: the leeway is how long an expired token is still \
                                 accepted; allow for clock skew only (default {})",
                                humantime::format_duration(max),
                                humantime::format_duration(default_leeway())
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

impl TelemetryConfig {
    /// The URL spans are posted to: `otlp_endpoint` as it is when it ends in `/v1/traces`,
    /// else with `/v1/traces` added (OTLP/HTTP's path for traces). `None` when unset or
    /// empty.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.endpoint()?;
        if base.trim_end_matches('/').ends_with("/v1/traces") {
            return Some(base.trim_end_matches('/').to_owned());
        }
        Some(format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    /// `otlp_endpoint`, trimmed, unless unset or empty.
    fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = self.endpoint() {
            // Never the value in the reason: a URL may hold a credential.
            let url = reqwest::Url::parse(endpoint).map_err(|e| ConfigError::Invalid {
                key: "telemetry.otlp_endpoint".into(),
                reason: format!(
                    "not a URL ({e}); give the collector's OTLP/HTTP address, e.g. \
                     `http://otel-collector:4318`, or leave it unset for no traces"
                ),
            })?;
            if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
                return Err(ConfigError::Invalid {
                    key: "telemetry.otlp_endpoint".into(),
                    reason: "expected an http:// or https:// URL of the collector's OTLP/HTTP \
                             receiver (port 4318 by default); gRPC is not supported"
                        .into(),
                });
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError::Invalid {
                    key: "telemetry.otlp_endpoint".into(),
                    reason: "give the base URL or the full `/v1/traces` URL, without a query \
                             or fragment"
                        .into(),
                });
            }
        }
        if !(self.sampling.is_finite() && (0.0..=1.0).contains(&self.sampling)) {
            return Err(ConfigError::Invalid {
                key: "telemetry.sampling".into(),
                reason: "must be a ratio from 0.0 (no new traces) to 1.0 (every trace)".into(),
            });
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "telemetry.service_name".into(),
                reason: "give the name the traces are shown under, e.g. `knut`".into(),
            });
        }
        if self
            .headers_env
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "telemetry.headers_env".into(),
                reason: "name the environment variable that holds the export's headers, or \
                         leave the key out"
                    .into(),
            });
        }
        Ok(())
    }
}

fn has_env_prefix(name: &str) -> bool {
    name.len() > ENV_PREFIX.len()
        && name.is_char_boundary(ENV_PREFIX.len())
        && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
}

/// The dotted key an environment variable sets: `KNUT__HTTP__BIND` → `http.bind`.
fn env_key_path(name: &str) -> String {
    name.get(ENV_PREFIX.len()..)
        .unwrap_or_default()
        .to_lowercase()
        .replace("__", ".")
}

fn scheme_of(url: &str) -> Option<String> {
    url.split_once(':').map(|(s, _)| s.to_ascii_lowercase())
}

fn parse_error(origin: &str, e: config::ConfigError) -> ConfigError {
    ConfigError::Parse {
        origin: origin.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    }
}

const TOP_KEYS: &[&str] = &[
    "profile",
    "broker",
    "http",
    "admin",
    "store",
    "sandbox",
    "log",
    "shutdown",
    "external",
    "audit",
    "telemetry",
];
const RATE_LIMIT_KEYS: &[&str] = &["per_second", "burst"];
const ADMIN_KEY_KEYS: &[&str] = &["key_env", "roles"];
const ADMIN_JWT_KEYS: &[&str] = &["jwks_url", "jwks_file", "issuer", "audience", "roles_claim"];
const API_KEY_KEYS: &[&str] = &["type", "header", "key_env"];
const BASIC_KEYS: &[&str] = &["type", "username", "password_env", "password_file"];
const BEARER_JWT_KEYS: &[&str] = &[
    "type",
    "jwks_url",
    "jwks_file",
    "issuer",
    "audience",
    "leeway",
];
const AUTH_TYPES: &[&str] = &["api_key", "basic", "bearer_jwt"];

fn section_keys(section: &str) -> &'static [&'static str] {
    match section {
        "broker" => &["url", "nodes", "prefetch", "queue_type"],
        "http" => &[
            "bind",
            "max_body",
            "auth",
            "unauthenticated",
            "request_timeout",
            "rate_limit",
        ],
        "admin" => &["bind", "public", "allow_injection", "keys", "jwt"],
        "external" => &["broker_url", "bridge_url", "http_bind", "admin_bind"],
        "store" => &["url"],
        "sandbox" => &["enabled", "bind"],
        "log" => &["format", "level"],
        "shutdown" => &["timeout"],
        "audit" => &["key_env"],
        "telemetry" => &["otlp_endpoint", "sampling", "service_name", "headers_env"],
        _ => &[],
    }
}

fn table(v: &Value) -> Option<&Map<String, Value>> {
    match &v.kind {
        ValueKind::Table(t) => Some(t),
        _ => None,
    }
}

fn sorted(t: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Walks the collected source and reports every key the configuration does not know.
/// Values of the wrong type (a section that is not a table) are left to serde, which reports
/// them with their key path.
fn check_keys(root: &Value, origin: &dyn Fn(&str) -> String, out: &mut Vec<UnknownKey>) {
    let Some(top) = table(root) else { return };
    for (section, value) in sorted(top) {
        if !TOP_KEYS.contains(&section.as_str()) {
            out.push(unknown(origin, section.clone(), section, TOP_KEYS));
            continue;
        }
        let Some(fields) = table(value) else { continue };
        let known = section_keys(section);
        for (key, value) in sorted(fields) {
            let path = format!("{section}.{key}");
            if !known.contains(&key.as_str()) {
                out.push(unknown(origin, path, key, known));
                continue;
            }
            match (section.as_str(), key.as_str()) {
                ("http", "auth") => check_auth(value, &path, origin, out),
                ("http", "rate_limit") => check_table(value, &path, RATE_LIMIT_KEYS, origin, out),
                ("admin", "jwt") => check_table(value, &path, ADMIN_JWT_KEYS, origin, out),
                ("admin", "keys") => {
                    if let Some(keys) = table(value) {
                        for (name, key) in sorted(keys) {
                            let p = format!("{path}.{name}");
                            check_table(key, &p, ADMIN_KEY_KEYS, origin, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Report the keys of table `value` (at `path`) that are not in `known`.
fn check_table(
    value: &Value,
    path: &str,
    known: &'static [&'static str],
    origin: &dyn Fn(&str) -> String,
    out: &mut Vec<UnknownKey>,
) {
    let Some(fields) = table(value) else { return };
    for (key, _) in sorted(fields) {
        if !known.contains(&key.as_str()) {
            out.push(unknown(origin, format!("{path}.{key}"), key, known));
        }
    }
}

fn check_auth(
    auth: &Value,
    path: &str,
    origin: &dyn Fn(&str) -> String,
    out: &mut Vec<UnknownKey>,
) {
    let Some(schemes) = table(auth) else { return };
    for (name, scheme) in sorted(schemes) {
        let Some(fields) = table(scheme) else {
            continue;
        };
        let ty = fields.get("type").and_then(|v| match &v.kind {
            ValueKind::String(s) => Some(s.as_str()),
            _ => None,
        });
        let known = match ty {
            Some("api_key") => API_KEY_KEYS,
            Some("basic") => BASIC_KEYS,
            Some("bearer_jwt") => BEARER_JWT_KEYS,
            Some(other) => {
                out.push(UnknownKey {
                    origin: origin(&format!("{path}.{name}.type")),
                    path: format!("{path}.{name}.type = \"{other}\""),
                    suggestion: closest(other, AUTH_TYPES).map(|s| format!("type = \"{s}\"")),
                    known: AUTH_TYPES.to_vec(),
                });
                continue;
            }
            // A missing `type` is reported by serde ("missing field `type`").
            None => continue,
        };
        for (key, _) in sorted(fields) {
            if !known.contains(&key.as_str()) {
                out.push(unknown(origin, format!("{path}.{name}.{key}"), key, known));
            }
        }
    }
}

fn unknown(
    origin: &dyn Fn(&str) -> String,
    path: String,
    key: &str,
    known: &'static [&'static str],
) -> UnknownKey {
    UnknownKey {
        origin: origin(&path),
        suggestion: closest(key, known).map(str::to_owned),
        path,
        known: known.to_vec(),
    }
}

/// The known key most similar to `key`, if it is similar enough to be a likely typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sandbox (crate knut-sandbox) signs its tokens with its own constant; the
    /// development configuration trusts this one and production refuses it, so they must be
    /// the same name.
    #[test]
    fn the_sandbox_issuer_is_the_one_development_trusts() {
        assert_eq!(SANDBOX_ISSUER, knut_sandbox::idp::ISSUER);
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_document_gives_defaults() {
        let cfg = Config::from_toml_str("").unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.broker.url, None);
        assert_eq!(cfg.broker.prefetch, 32);
        assert_eq!(cfg.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.http.max_body, 1024 * 1024);
        assert_eq!(cfg.admin.bind.to_string(), "127.0.0.1:9090");
        assert_eq!(cfg.profile, Profile::Production);
        assert_eq!(cfg.sandbox.enabled, None);
        assert!(
            !cfg.sandbox_enabled(),
            "production runs no sandbox by default"
        );
        let dev = Config {
            profile: Profile::Development,
            ..cfg.clone()
        };
        assert_eq!(dev.sandbox_enabled(), SANDBOX_BUILT);
        assert_eq!(cfg.sandbox.bind.to_string(), "127.0.0.1:8090");
        assert_eq!(cfg.admin.public, ["/healthz", "/readyz", "/metrics"]);
        assert_eq!(cfg.admin.allow_injection, None);
        assert_eq!(cfg.external.http_bind.to_string(), "127.0.0.1:8081");
        assert_eq!(cfg.log.format, LogFormat::Text);
        assert_eq!(cfg.log.level, "info");
        assert_eq!(cfg.shutdown.timeout, Duration::from_secs(30));
    }

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load_with_env(dir.path(), Vec::new()).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn full_document_parses() {
        let cfg = Config::from_toml_str(
            r#"
            [broker]
            url = "amqp://knut@rabbit:5672/%2f"
            prefetch = 8
            [http]
            bind = "0.0.0.0:8081"
            max_body = 2048
            [http.auth.portal]
            type = "api_key"
            key_env = "KNUT_PORTAL_KEY"
            [http.auth.citizens]
            type = "bearer_jwt"
            jwks_url = "https://idp.example/jwks"
            issuer = "https://idp.example"
            [admin]
            bind = "0.0.0.0:9091"
            [store]
            url = "postgres://knut@db/knut"
            [sandbox]
            enabled = false
            [log]
            format = "json"
            level = "info,knutpunkt=debug"
            [shutdown]
            timeout = "2m"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.broker.url.as_deref(),
            Some("amqp://knut@rabbit:5672/%2f")
        );
        assert_eq!(cfg.broker.prefetch, 8);
        assert_eq!(cfg.http.bind.to_string(), "0.0.0.0:8081");
        assert_eq!(cfg.http.max_body, 2048);
        assert_eq!(
            cfg.http.auth.get("portal"),
            Some(&AuthScheme::ApiKey {
                header: "x-api-key".into(),
                key_env: "KNUT_PORTAL_KEY".into()
            })
        );
        assert_eq!(
            cfg.http.auth.get("citizens"),
            Some(&AuthScheme::BearerJwt {
                jwks_url: Some("https://idp.example/jwks".into()),
                jwks_file: None,
                issuer: "https://idp.example".into(),
                audience: None,
                leeway: Duration::from_secs(30),
            })
        );
        assert_eq!(cfg.admin.bind.to_string(), "0.0.0.0:9091");
        assert_eq!(cfg.sandbox.enabled, Some(false));
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.shutdown.timeout, Duration::from_secs(120));
        assert_eq!(
            cfg.store_url(Path::new("/srv/knut")),
            "postgres://knut@db/knut"
        );
    }

    #[test]
    fn misspelt_section_suggests_the_right_one() {
        let err = Config::from_toml_str("[htttp]\nbind = \"0.0.0.0:1\"\n").unwrap_err();
        let ConfigError::UnknownKeys { keys } = &err else {
            panic!("wrong error: {err}")
        };
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].path, "htttp");
        assert_eq!(keys[0].suggestion.as_deref(), Some("http"));
        let text = err.to_string();
        assert!(text.contains("unknown key `htttp`"), "{text}");
        assert!(text.contains("did you mean `http`?"), "{text}");
    }

    #[test]
    fn misspelt_nested_keys_are_all_reported() {
        let err = Config::from_toml_str(
            "[broker]\nprefech = 3\n[sandbox]\nenabld = false\n[http.auth.portal]\ntype = \"api_key\"\nkey_env = \"K\"\nheadr = \"x\"\n",
        )
        .unwrap_err();
        let ConfigError::UnknownKeys { keys } = err else {
            panic!("wrong error")
        };
        let found: Vec<_> = keys
            .iter()
            .map(|k| (k.path.as_str(), k.suggestion.as_deref()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("broker.prefech", Some("prefetch")),
                ("http.auth.portal.headr", Some("header")),
                ("sandbox.enabld", Some("enabled")),
            ]
        );
    }

    #[test]
    fn unknown_key_without_close_match_has_no_suggestion() {
        let err = Config::from_toml_str("[log]\ncolour = true\n").unwrap_err();
        let ConfigError::UnknownKeys { keys } = err else {
            panic!("wrong error")
        };
        assert_eq!(keys[0].path, "log.colour");
        assert_eq!(keys[0].suggestion, None);
        assert_eq!(keys[0].known, vec!["format", "level"]);
    }

    #[test]
    fn a_development_instance_trusts_the_sandbox_issuer_for_unconfigured_schemes() {
        let mut cfg = Config::from_toml_str(
            "profile = \"development\"\n[http.auth.portal]\ntype = \"api_key\"\nkey_env = \"K\"\n[sandbox]\nbind = \"127.0.0.1:18090\"\n",
        )
        .unwrap();
        let (schemes, dev) = cfg.auth_schemes(["portal", "operators", "none"]);
        assert_eq!(dev, vec!["operators".to_string()]);
        assert!(matches!(schemes["portal"], AuthScheme::ApiKey { .. }));
        assert_eq!(
            schemes["operators"],
            AuthScheme::BearerJwt {
                jwks_url: Some("http://127.0.0.1:18090/sandbox/idp/jwks".into()),
                jwks_file: None,
                issuer: SANDBOX_ISSUER.into(),
                audience: None,
                leeway: Duration::from_secs(30),
            }
        );
        assert!(!schemes.contains_key("none"));
        // Without the sandbox, or in production, nothing is made up.
        cfg.sandbox.enabled = Some(false);
        let (schemes, dev) = cfg.auth_schemes(["portal", "operators"]);
        assert!(dev.is_empty() && !schemes.contains_key("operators"));
        cfg.sandbox.enabled = None;
        cfg.profile = Profile::Production;
        let (schemes, dev) = cfg.auth_schemes(["portal", "operators"]);
        assert!(dev.is_empty() && !schemes.contains_key("operators"));
    }

    #[test]
    fn unknown_auth_type_is_reported() {
        let err = Config::from_toml_str("[http.auth.x]\ntype = \"api-key\"\nkey_env = \"K\"\n")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("type = \"api_key\""), "{text}");
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[http]\nbind = \"127.0.0.1:1111\"\n[log]\nformat = \"text\"\n",
        )
        .unwrap();
        let cfg = Config::load_with_env(
            dir.path(),
            env(&[
                ("KNUT__BROKER__URL", "amqps://knut@rabbit/prod"),
                ("KNUT__HTTP__BIND", "0.0.0.0:2222"),
                ("KNUT__SANDBOX__ENABLED", "false"),
                ("KNUT__BROKER__PREFETCH", "64"),
                ("KNUT__BROKER__NODES", "rabbit-2:5671, rabbit-3:5671"),
                ("KNUT__LOG__FORMAT", "json"),
                ("KNUT__SHUTDOWN__TIMEOUT", "5s"),
                // Not configuration: single underscore, and unrelated variables.
                ("KNUT_TEST_AMQP_URL", "amqp://elsewhere"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.broker.url.as_deref(), Some("amqps://knut@rabbit/prod"));
        assert_eq!(cfg.http.bind.to_string(), "0.0.0.0:2222");
        assert_eq!(cfg.sandbox.enabled, Some(false));
        assert_eq!(cfg.broker.prefetch, 64);
        assert_eq!(cfg.broker.nodes, ["rabbit-2:5671", "rabbit-3:5671"]);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.shutdown.timeout, Duration::from_secs(5));
        let file = Config::from_toml_str(
            "[broker]\nurl = \"amqps://rabbit-1:5671/skola\"\nnodes = [\"rabbit-2:5671\"]\n",
        )
        .unwrap();
        assert_eq!(file.broker.nodes, ["rabbit-2:5671"]);
        let alone = Config::from_toml_str("[broker]\nnodes = [\"rabbit-2:5671\"]\n").unwrap_err();
        assert!(alone.to_string().contains("need broker.url"), "{alone}");
    }

    #[test]
    fn env_can_define_an_auth_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load_with_env(
            dir.path(),
            env(&[
                ("KNUT__HTTP__AUTH__PORTAL__TYPE", "api_key"),
                ("KNUT__HTTP__AUTH__PORTAL__KEY_ENV", "PORTAL_KEY"),
            ]),
        )
        .unwrap();
        assert_eq!(
            cfg.http.auth.get("portal"),
            Some(&AuthScheme::ApiKey {
                header: "x-api-key".into(),
                key_env: "PORTAL_KEY".into()
            })
        );
    }

    #[test]
    fn misspelt_env_variable_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load_with_env(dir.path(), env(&[("KNUT__HTTTP__BIND", "0.0.0.0:1")]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("environment variable KNUT__HTTTP__BIND"),
            "{text}"
        );
        assert!(text.contains("did you mean `http`?"), "{text}");
    }

    #[test]
    fn toml_syntax_error_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[http]\nbind = \n").unwrap();
        let err = Config::load_with_env(dir.path(), Vec::new()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{text}");
        assert!(text.contains("knut.toml"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn wrong_types_and_values_are_rejected() {
        assert!(Config::from_toml_str("[http]\nbind = \"not an address\"\n").is_err());
        assert!(Config::from_toml_str("[log]\nformat = \"xml\"\n").is_err());
        assert!(Config::from_toml_str("[shutdown]\ntimeout = \"soon\"\n").is_err());
        assert!(Config::from_toml_str("[broker]\nprefetch = 0\n").is_err());
        assert!(Config::from_toml_str("[log]\nlevel = \"info,[[\"\n").is_err());
        // bearer_jwt needs exactly one key source.
        assert!(
            Config::from_toml_str("[http.auth.a]\ntype = \"bearer_jwt\"\nissuer = \"i\"\n")
                .is_err()
        );
    }

    #[test]
    fn a_bearer_jwt_leeway_is_small_and_bounded() {
        let scheme = |extra: &str| {
            Config::from_toml_str(&format!(
                "[http.auth.a]\ntype = \"bearer_jwt\"\njwks_url = \"https://idp.example/jwks\"\n\
                 issuer = \"i\"\n{extra}"
            ))
        };
        let leeway = |cfg: Config| match &cfg.http.auth["a"] {
            AuthScheme::BearerJwt { leeway, .. } => *leeway,
            other => panic!("not bearer_jwt: {other:?}"),
        };
        assert_eq!(leeway(scheme("").unwrap()), Duration::from_secs(30));
        assert_eq!(
            leeway(scheme("leeway = \"5s\"\n").unwrap()),
            Duration::from_secs(5)
        );
        assert_eq!(leeway(scheme("leeway = \"0s\"\n").unwrap()), Duration::ZERO);
        let err = scheme("leeway = \"10m\"\n").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{text}");
        assert!(text.contains("http.auth.a.leeway"), "{text}");
        assert!(text.contains("at most 5m"), "{text}");
        assert!(scheme("leeway = \"soon\"\n").is_err());
        // A misspelt key is caught by the key list.
        let err = scheme("leway = \"5s\"\n").unwrap_err();
        assert!(err.to_string().contains("leeway"), "{err}");
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_them() {
        let err =
            Config::from_toml_str("[broker]\nurl = \"http://user:s3cret@host\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broker.url"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        let err = Config::from_toml_str("[store]\nurl = \"mysql://u:s3cret@db\"\n").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn default_store_is_sqlite_under_root() {
        let cfg = Config::default();
        assert_eq!(
            cfg.store_url(Path::new("/srv/knut")),
            "sqlite:///srv/knut/data/knut.db?mode=rwc"
        );
        assert_eq!(
            cfg.store_url(Path::new(".")),
            "sqlite://./data/knut.db?mode=rwc"
        );
    }

    #[test]
    fn shipped_example_is_valid_and_equals_the_defaults() {
        let cfg = Config::from_toml_str(include_str!("../knut.toml.example")).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn shipped_production_example_is_valid_and_production_like() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            include_str!("../deploy/knut.production.toml"),
        )
        .unwrap();
        let cfg = Config::load_with_env(
            dir.path(),
            env(&[
                (
                    "KNUT__BROKER__URL",
                    "amqps://knut@rabbitmq.internal:5671/school",
                ),
                ("KNUT__STORE__URL", "postgres://knut@db.internal:5432/knut"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.profile, Profile::Production);
        assert!(!cfg.sandbox_enabled());
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(
            cfg.broker.url.as_deref(),
            Some("amqps://knut@rabbitmq.internal:5671/school")
        );
        assert_eq!(
            cfg.store_url(dir.path()),
            "postgres://knut@db.internal:5432/knut"
        );
        // The file itself holds no connection URLs (they carry passwords).
        let bare = Config::from_toml_str(include_str!("../deploy/knut.production.toml")).unwrap();
        assert_eq!(bare.broker.url, None);
        assert_eq!(bare.store.url, None);
        // Every auth scheme the shipped routes name is configured: without the sandbox
        // nothing is made up for a missing one.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let routes = crate::route::load::load_routes(root).expect("the shipped routes load");
        let named: Vec<&str> = routes
            .iter()
            .filter_map(|r| match &r.route.from {
                crate::route::model::From::Http(h) => h.auth.scheme(),
                _ => None,
            })
            .collect();
        let (schemes, development) = cfg.auth_schemes(named.iter().copied());
        assert!(development.is_empty(), "{development:?}");
        for name in named.iter().filter(|n| **n != "none") {
            assert!(
                schemes.contains_key(*name),
                "deploy/knut.production.toml lacks [http.auth.{name}]"
            );
        }
        // With every URL set as the file's header says, production starts: nothing fails
        // open (the adapters as KNUT_ADAPTER_<NAME>_URL would set them).
        let cfg = Config::load_with_env(
            dir.path(),
            env(&[
                (
                    "KNUT__BROKER__URL",
                    "amqps://knut-internal@rabbitmq.internal:5671/knut-internal",
                ),
                (
                    "KNUT__EXTERNAL__BROKER_URL",
                    "amqps://knut-external@rabbitmq.internal:5671/knut-external",
                ),
                (
                    "KNUT__EXTERNAL__BRIDGE_URL",
                    "amqps://knut-internal@rabbitmq.internal:5671/knut-external",
                ),
            ]),
        )
        .unwrap();
        let adapters: Vec<crate::adapter::Adapter> = crate::adapter::load_adapters(root, None)
            .expect("the shipped adapters load")
            .into_values()
            .map(|mut a| {
                a.base_url = format!("https://{}.sundsvall.example", a.spec.adapter);
                a
            })
            .collect();
        // (With the access audit's key, as KNUT_AUDIT_KEY would set it.)
        let key = |n: &str| (n == DEFAULT_AUDIT_KEY_ENV).then(|| "k".repeat(48));
        let refused = crate::runtime::posture::problems_in(
            &cfg,
            &routes,
            &[
                crate::route::model::Plane::Internal,
                crate::route::model::Plane::External,
            ],
            &adapters,
            &key,
        );
        assert!(refused.is_empty(), "{refused:#?}");
        // As shipped, the adapters point at the sandbox: refused, naming the variable.
        let shipped: Vec<crate::adapter::Adapter> = crate::adapter::load_adapters(root, None)
            .expect("the shipped adapters load")
            .into_values()
            .collect();
        let refused = crate::runtime::posture::problems(&cfg, &routes, &shipped).join("\n");
        assert!(refused.contains("KNUT_ADAPTER_CASEDATA_URL"), "{refused}");
    }

    #[test]
    fn the_access_audit_key_variable_is_named_or_defaulted() {
        assert_eq!(Config::default().audit.key_env, "KNUT_AUDIT_KEY");
        let cfg = Config::from_toml_str("[audit]\nkey_env = \"GUARDIAN_AUDIT_KEY\"\n").unwrap();
        assert_eq!(cfg.audit.key_env, "GUARDIAN_AUDIT_KEY");
        let err = Config::from_toml_str("[audit]\nkey_env = \"\"\n").unwrap_err();
        assert!(err.to_string().contains("audit.key_env"), "{err}");
        let err = Config::from_toml_str("[audit]\nkey = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("key_env"), "{err}");
    }

    #[test]
    fn key_lists_match_the_structs() {
        // The unknown-key walker keeps its own key lists; they must follow the structs.
        let json = serde_json::to_value(Config::default()).unwrap();
        let top = json.as_object().unwrap();
        let mut names: Vec<_> = top.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = TOP_KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        for (section, value) in top {
            let Some(fields) = value.as_object() else {
                continue; // `profile`: a value, not a section
            };
            let mut keys: Vec<_> = fields.keys().cloned().collect();
            keys.sort_unstable();
            let mut known: Vec<_> = section_keys(section)
                .iter()
                .map(|s| s.to_string())
                .collect();
            known.sort_unstable();
            assert_eq!(keys, known, "section {section}");
        }
        let api_key = serde_json::to_value(AuthScheme::ApiKey {
            header: String::new(),
            key_env: String::new(),
        })
        .unwrap();
        let mut keys: Vec<_> = api_key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut known = API_KEY_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
        let jwt = serde_json::to_value(AuthScheme::BearerJwt {
            jwks_url: None,
            jwks_file: None,
            issuer: String::new(),
            audience: None,
            leeway: Duration::ZERO,
        })
        .unwrap();
        let mut keys: Vec<_> = jwt
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut known = BEARER_JWT_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
        let keys_of = |v: serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort_unstable();
            k
        };
        let sorted = |k: &[&str]| {
            let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            k.sort_unstable();
            k
        };
        let basic = AuthScheme::Basic {
            username: String::new(),
            password_env: Some(String::new()),
            password_file: Some(String::new()),
        };
        assert_eq!(
            keys_of(serde_json::to_value(basic).unwrap()),
            sorted(BASIC_KEYS)
        );
        let rate = RateLimitConfig::default();
        assert_eq!(
            keys_of(serde_json::to_value(rate).unwrap()),
            sorted(RATE_LIMIT_KEYS)
        );
        let key = AdminKey {
            key_env: String::new(),
            roles: vec![],
        };
        assert_eq!(
            keys_of(serde_json::to_value(key).unwrap()),
            sorted(ADMIN_KEY_KEYS)
        );
        let jwt = AdminJwt {
            jwks_url: None,
            jwks_file: None,
            issuer: String::new(),
            audience: String::new(),
            roles_claim: String::new(),
        };
        assert_eq!(
            keys_of(serde_json::to_value(jwt).unwrap()),
            sorted(ADMIN_JWT_KEYS)
        );
    }

    #[test]
    fn admin_and_rate_limit_settings_are_checked() {
        let cfg = Config::from_toml_str(
            "[admin]\npublic = [\"/healthz\"]\nallow_injection = true\n[admin.keys.ops]\nkey_env = \"K\"\nroles = [\"viewer\", \"operator\"]\n[http]\nrate_limit = { per_second = 2, burst = 3 }\nunauthenticated = [\"open\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.admin.keys["ops"].roles, [Role::Viewer, Role::Operator]);
        assert_eq!(cfg.http.rate_limit.burst, 3);
        let err = Config::from_toml_str("[admin]\npublic = [\"/api/routes\"]\n").unwrap_err();
        assert!(err.to_string().contains("cannot be public"), "{err}");
        let err = Config::from_toml_str("[admin.keys.ops]\nkey_env = \"K\"\nroles = [\"god\"]\n")
            .unwrap_err();
        assert!(err.to_string().contains("god"), "{err}");
        let err = Config::from_toml_str("[admin.keys.ops]\nkey_env = \"K\"\nrole = [\"viewer\"]\n")
            .unwrap_err();
        assert!(err.to_string().contains("did you mean `roles`"), "{err}");
        let err = Config::from_toml_str("[http]\nrate_limit = { per_second = 0, burst = 3 }\n")
            .unwrap_err();
        assert!(err.to_string().contains("per_second"), "{err}");
        let err = Config::from_toml_str("profile = \"dev\"\n").unwrap_err();
        assert!(err.to_string().contains("profile"), "{err}");
    }

    #[test]
    fn telemetry_is_off_by_default_and_validated() {
        let cfg = Config::default();
        assert_eq!(cfg.telemetry.otlp_endpoint, None);
        assert_eq!(cfg.telemetry.traces_url(), None);
        assert_eq!(cfg.telemetry.sampling, 1.0);
        assert_eq!(cfg.telemetry.service_name, "knut");

        let cfg = Config::from_toml_str(
            "[telemetry]\notlp_endpoint = \"http://collector:4318\"\nsampling = 0.25\n",
        )
        .unwrap();
        assert_eq!(
            cfg.telemetry.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(cfg.telemetry.sampling, 0.25);
        let full = Config::from_toml_str(
            "[telemetry]\notlp_endpoint = \"https://c.example/otlp/v1/traces/\"\n",
        )
        .unwrap();
        assert_eq!(
            full.telemetry.traces_url().as_deref(),
            Some("https://c.example/otlp/v1/traces")
        );
        let env = Config::load_with_env(
            Path::new("/nonexistent"),
            [(
                "KNUT__TELEMETRY__OTLP_ENDPOINT".to_string(),
                "http://127.0.0.1:4318/".to_string(),
            )],
        )
        .unwrap();
        assert_eq!(
            env.telemetry.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );

        for (toml, key) in [
            (
                "otlp_endpoint = \"collector:4318\"",
                "telemetry.otlp_endpoint",
            ),
            (
                "otlp_endpoint = \"grpc://collector:4317\"",
                "telemetry.otlp_endpoint",
            ),
            (
                "otlp_endpoint = \"http://c:4318/?k=secret\"",
                "telemetry.otlp_endpoint",
            ),
            ("sampling = 1.5", "telemetry.sampling"),
            ("sampling = -0.1", "telemetry.sampling"),
            ("service_name = \" \"", "telemetry.service_name"),
            ("headers_env = \"\"", "telemetry.headers_env"),
        ] {
            let err = Config::from_toml_str(&format!("[telemetry]\n{toml}\n")).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(key), "{toml}: {text}");
            assert!(!text.contains("secret"), "{toml}: {text}");
        }
        let off = Config::from_toml_str("[telemetry]\notlp_endpoint = \" \"\n").unwrap();
        assert_eq!(off.telemetry.traces_url(), None, "empty is off");
        let err = Config::from_toml_str("[telemetry]\nsample = 0.5\n").unwrap_err();
        assert!(err.to_string().contains("sampling"), "{err}");
    }
}
