//! Adapters: each of the municipality's systems described once, in `adapters/<name>.yaml`,
//! and called by operation name from routes (`to`, `enrich`).
//!
//! ```yaml
//! adapter: casedata
//! description: Ärendehantering (case data)
//! base_url: http://127.0.0.1:8090/sandbox/casedata   # env KNUT_ADAPTER_CASEDATA_URL overrides
//! timeout: 10s
//! headers: { accept: application/json }
//! operations:
//!   create-errand:
//!     method: POST
//!     path: /2281/SBK_PARKING_PERMIT/errands
//!   get-errand:
//!     method: GET
//!     path: /2281/errands/{.errandId}      # `{jq}` placeholders, URL-encoded
//!     query: { includeNotes: '"true"' }
//!     body: none                            # message (default) | none | { jq: <program> }
//! ```

pub mod client;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::route::model::HttpMethod;

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
    /// Headers sent with every call.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Operations by name.
    pub operations: BTreeMap<String, OperationSpec>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
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
#[error("{file}: {message}")]
pub struct AdapterError {
    /// The file.
    pub file: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

/// The environment variable overriding an adapter's base URL.
pub fn url_env_var(name: &str) -> String {
    format!(
        "KNUT_ADAPTER_{}_URL",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Load every `adapters/*.yaml` under `root`.
pub fn load_adapters(root: &Path) -> Result<BTreeMap<String, Adapter>, Vec<AdapterError>> {
    let dir = root.join("adapters");
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    for path in files {
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
                let at = e
                    .location()
                    .map(|l| format!("{}:{}: ", l.line(), l.column()))
                    .unwrap_or_default();
                errors.push(fail(format!("{at}{}", e.without_snippet())));
                continue;
            }
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if spec.adapter != stem {
            errors.push(fail(format!(
                "the adapter is named `{}` but the file `{stem}.yaml`: name the file after the adapter",
                spec.adapter
            )));
            continue;
        }
        let base_url = std::env::var(url_env_var(&spec.adapter))
            .unwrap_or_else(|_| spec.base_url.clone())
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
