//! Adapters: each of the municipality's systems described once, in `adapters/<name>.yaml`,
//! and called by operation name from routes (`to`, `enrich`).
//!
//! ```yaml
//! adapter: casedata
//! description: Ärendehantering (case data)
//! base_url: http://127.0.0.1:8090/sandbox/casedata   # env KNUT_ADAPTER_CASEDATA_URL overrides
//! timeout: 10s
//! max_response: 16MiB     # larger answers are refused (permanent), never read whole
//! headers: { accept: application/json }
//! operations:
//!   create-errand:
//!     method: POST
//!     path: /2281/SBK_PARKING_PERMIT/errands
//!   get-errand:
//!     method: GET
//!     path: /2281/errands/{.errandId}      # `{jq}` placeholders, URL-encoded
//!     query: { includeNotes: '"true"' }
//!     body: none           # message (default) | none | { jq: <program> } | { xml: <program> }
//! ```

pub mod answer;
pub mod auth;
pub mod breaker;
pub mod client;
pub mod limit;
pub mod secret;
pub mod soap;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::vocab::{ByteSize, HttpMethod};

/// An adapter file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    /// The adapter's name; must match the file name.
    pub adapter: String,
    /// What the system is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base URL of the system's API; the environment variable `KNUT_ADAPTER_<NAME>_URL`
    /// (name upper-cased, `-` as `_`) overrides it.
    pub base_url: String,
    /// Time allowed for one call (default 10s). A timeout is a transient failure.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// The largest answer read from the system, e.g. `8MiB` (default 16 MiB). A larger one
    /// is a permanent failure; it is read no further than the limit.
    #[serde(default = "default_max_response")]
    pub max_response: ByteSize,
    /// Headers sent with every call (never credentials: those go in `auth`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How knut authenticates: `none` (default), `api_key`, `basic` or `oauth2`.
    #[serde(default)]
    pub auth: auth::AuthSpec,
    /// Mutual TLS: the client certificate and key (and an extra CA), from files or env.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<auth::TlsSpec>,
    /// At most this many calls in flight at once (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// At most this many calls a second, spaced evenly (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// Fail fast while the system is down: open after `failures` transient failures in a
    /// row, probe after `open_for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<breaker::BreakerSpec>,
    /// Statuses that are transient for this system besides 408, 425, 429 and 5xx (e.g. a
    /// 409 the system gives while it is busy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transient_statuses: Vec<u16>,
    /// Statuses that are permanent for this system although the default calls them
    /// transient (e.g. a 500 that always means "invalid request").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permanent_statuses: Vec<u16>,
    /// Operations by name.
    pub operations: BTreeMap<String, OperationSpec>,
}

impl Default for AdapterSpec {
    /// An adapter with no operations, calling nothing yet (for building one in code).
    fn default() -> Self {
        AdapterSpec {
            adapter: String::new(),
            description: None,
            base_url: String::new(),
            timeout: default_timeout(),
            max_response: default_max_response(),
            headers: BTreeMap::new(),
            auth: auth::AuthSpec::None,
            tls: None,
            concurrency: None,
            rate_limit: None,
            circuit_breaker: None,
            transient_statuses: Vec::new(),
            permanent_statuses: Vec::new(),
            operations: BTreeMap::new(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The default `max_response`: 16 MiB.
pub const DEFAULT_MAX_RESPONSE: usize = 16 * 1024 * 1024;

fn default_max_response() -> ByteSize {
    ByteSize(DEFAULT_MAX_RESPONSE)
}

/// One operation of an adapter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationSpec {
    /// HTTP method.
    pub method: HttpMethod,
    /// Path after the base URL; `{jq}` placeholders are filled from the message body and URL-encoded.
    pub path: String,
    /// Query parameters: name → jq expression over the body.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra headers of this operation.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What is sent as the request body (default: the message body).
    #[serde(default)]
    pub body: RequestBody,
    /// What the route sees of the answer (default: its body): `{ jq: <program> }` over
    /// `{status, headers, body}` (header names lower-case; the body parsed as for a plain
    /// answer), e.g. the id of a created errand from its `Location` header:
    /// `{errandId: (.headers.location | split("/") | last | tonumber)}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseSpec>,
}

/// How an operation's answer is mapped for the route (a message translator on the way back).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// jq program over `{status, headers, body}`; its output is the answer the route sees.
    pub jq: String,
}

/// The request body of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestBody {
    /// The message body, with its content type.
    #[default]
    Message,
    /// No body.
    None,
    /// `{ jq: <program> }`: the JSON the program makes of the message body (a message
    /// translator at the adapter: the route keeps its own message, the system gets its own
    /// shape).
    Jq(String),
    /// `{ xml: <program> }`: the JSON the program makes of the message body, written as XML
    /// (`json_to_xml`: one key naming the root, `@x` attributes, `#text` text) and sent as
    /// `text/xml; charset=UTF-8`.
    Xml(String),
    /// `{ template: <file under transforms/> }`: a Tera template rendered with `body` (the
    /// message body) and `headers` — e.g. a SOAP envelope written as the XML it is
    /// (`oep/add-message.xml.tera`; every value XML-escaped). Sent as `text/xml;
    /// charset=UTF-8` for `*.xml.tera`, `application/json` for `*.json.tera`.
    Template(String),
}

/// A loaded adapter.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// The definition.
    pub spec: AdapterSpec,
    /// The file it came from.
    pub file: PathBuf,
    /// The base URL in force (after the environment override).
    pub base_url: String,
}

/// Why adapters could not be loaded.
#[derive(Debug, thiserror::Error)]
pub struct AdapterError {
    /// The file.
    pub file: String,
    /// What is wrong, starting with `line:column: ` where known.
    pub message: String,
}

impl std::fmt::Display for AdapterError {
    /// `file:line:column: what` when the position is known, else `file: what`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let positioned = self.message.split_once(": ").is_some_and(|(at, _)| {
            !at.is_empty()
                && at
                    .split(':')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if positioned {
            write!(f, "{}:{}", self.file, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Secrets written into the file instead of referenced, each as `line:column: what to do`
/// (the value itself is never repeated).
fn literal_secrets(spec: &AdapterSpec, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut secrets: Vec<(String, &secret::Secret)> = spec
        .auth
        .secrets()
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
    if let Some(tls) = &spec.tls {
        secrets.push(("tls.client_cert".into(), &tls.client_cert));
        secrets.push(("tls.client_key".into(), &tls.client_key));
        if let Some(ca) = &tls.ca {
            secrets.push(("tls.ca".into(), ca));
        }
    }
    for (path, s) in secrets {
        if s.is_literal() {
            let key = path.rsplit('.').next().unwrap_or(&path);
            found.push(format!(
                "{}{path} is a literal secret: a secret must not be committed in an adapter \
                 file; write `{key}: {{ env: NAME }}` or `{key}: {{ file: PATH }}`",
                position_of_key(text, key)
            ));
        }
    }
    let headers = spec
        .headers
        .keys()
        .map(|h| (format!("headers.{h}"), h))
        .chain(spec.operations.iter().flat_map(|(op, o)| {
            o.headers
                .keys()
                .map(move |h| (format!("operations.{op}.headers.{h}"), h))
        }));
    for (path, h) in headers {
        if secret::is_credential_header(h) {
            found.push(format!(
                "{}{path} holds a credential as a literal header: remove it and use `auth:` \
                 (e.g. `auth: {{ api_key: {{ header: {h}, value: {{ env: NAME }} }} }}`)",
                position_of_key(text, h)
            ));
        }
    }
    found
}

/// `line:column: ` of the first `key:` in `text`, or nothing.
fn position_of_key(text: &str, key: &str) -> String {
    let needle = format!("{key}:");
    for (n, line) in text.lines().enumerate() {
        if let Some(col) = line.find(&needle)
            && (col == 0 || !line.as_bytes()[col - 1].is_ascii_alphanumeric())
        {
            return format!("{}:{}: ", n + 1, col + 1);
        }
    }
    String::new()
}

/// The environment variable overriding an adapter's base URL.
pub fn url_env_var(name: &str) -> String {
    format!(
        "KNUT_ADAPTER_{}_URL",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether `url` points at the sandbox: a loopback host and a path under `/sandbox/`, as
/// the shipped adapter files' development defaults do.
pub fn points_at_sandbox(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    u.host_str().is_some_and(is_loopback_host)
        && (u.path() == "/sandbox" || u.path().starts_with("/sandbox/"))
}

/// Whether `host` (a URL's host, IPv6 possibly in brackets) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `url` with its scheme, host and port replaced by `origin` (`http://host:port`).
fn with_origin(url: &str, origin: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let o = reqwest::Url::parse(origin).ok()?;
    let mut out = format!("{}://{}", o.scheme(), o.host_str()?);
    if let Some(port) = o.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(u.path());
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// Load every `adapters/*.yaml` under `root`. With `sandbox` (the running sandbox's origin,
/// `http://127.0.0.1:8090`), a base URL of an adapter FILE that points at the sandbox (see
/// [`points_at_sandbox`]) follows it to that origin; an environment override is taken as it
/// is.
pub fn load_adapters(
    root: &Path,
    sandbox: Option<&str>,
) -> Result<BTreeMap<String, Adapter>, Vec<AdapterError>> {
    let dir = root.join("adapters");
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for path in crate::core::files::yaml_files(&dir) {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let fail = |message: String| AdapterError {
            file: rel.clone(),
            message,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(fail(format!("cannot read: {e}")));
                continue;
            }
        };
        let spec: AdapterSpec = match serde_saphyr::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                errors.push(fail(crate::core::files::yaml_error(&e)));
                continue;
            }
        };
        let literal = literal_secrets(&spec, &text);
        if !literal.is_empty() {
            errors.extend(literal.into_iter().map(fail));
            continue;
        }
        if spec.max_response.0 == 0 {
            errors.push(fail(format!(
                "{}max_response must be at least 1 byte (e.g. `8MiB`)",
                position_of_key(&text, "max_response")
            )));
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if spec.adapter != stem {
            errors.push(fail(format!(
                "the adapter is named `{}` but the file `{stem}.yaml`: name the file after the adapter",
                spec.adapter
            )));
            continue;
        }
        let from_file = || match sandbox {
            Some(origin) if points_at_sandbox(&spec.base_url) => {
                with_origin(&spec.base_url, origin).unwrap_or_else(|| spec.base_url.clone())
            }
            _ => spec.base_url.clone(),
        };
        let base_url = std::env::var(url_env_var(&spec.adapter))
            .unwrap_or_else(|_| from_file())
            .trim_end_matches('/')
            .to_string();
        if reqwest::Url::parse(&base_url).is_err() {
            errors.push(fail(format!("base_url `{base_url}` is not a URL")));
            continue;
        }
        out.insert(
            spec.adapter.clone(),
            Adapter {
                spec,
                file: PathBuf::from(rel),
                base_url,
            },
        );
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_urls_are_told_apart_from_real_ones() {
        assert!(points_at_sandbox("http://127.0.0.1:8090/sandbox/oep"));
        assert!(points_at_sandbox(
            "http://localhost:18090/sandbox/casedata/x"
        ));
        assert!(points_at_sandbox("http://[::1]:8090/sandbox/idp/jwks"));
        assert!(!points_at_sandbox(
            "https://oep.sundsvall.example/sandbox/oep"
        ));
        assert!(!points_at_sandbox("http://127.0.0.1:8090/api/oep"));
        assert!(!points_at_sandbox("not a url"));
        assert!(is_loopback_host("127.0.0.5") && !is_loopback_host("10.0.0.1"));
    }

    /// A development instance whose sandbox moved: the shipped adapter files follow it.
    #[test]
    fn adapter_files_pointing_at_the_sandbox_follow_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let moved = load_adapters(root, Some("http://127.0.0.1:18090")).expect("adapters");
        let oep = &moved["oep"];
        if std::env::var(url_env_var("oep")).is_err() {
            assert_eq!(oep.base_url, "http://127.0.0.1:18090/sandbox/oep");
        }
        let as_is = load_adapters(root, None).expect("adapters");
        if std::env::var(url_env_var("oep")).is_err() {
            assert_eq!(as_is["oep"].base_url, "http://127.0.0.1:8090/sandbox/oep");
        }
        assert_eq!(
            with_origin("http://127.0.0.1:8090/sandbox/a?x=1", "http://[::1]:9"),
            Some("http://[::1]:9/sandbox/a?x=1".to_string())
        );
    }
}
