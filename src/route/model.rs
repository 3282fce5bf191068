//! The route schema: the serde types route files are read into.
//!
//! These types are the single source of truth for the route file format: the loader
//! deserialises into them, `schemas/route.schema.json` is generated from them
//! (`knut schema`), and docs/reference/ is generated from their doc comments.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::core::vocab::{ByteSize, HttpMethod, parse_byte_size};
pub use crate::step::StepSpec;

/// A route: where messages come from, the steps they pass, and what happens on failure.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique id of the route (lowercase letters, digits and `-`). Names its work queue and dead-letter queue.
    pub route: String,
    /// What the route does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The plane the route runs in: `internal` (default) or `external` (seed 003: the
    /// traffic of citizens, companies and independent operators, on its own broker vhost
    /// and user and its own listeners). A route of one plane never reads or writes the
    /// other's exchanges, except a bridge (`from.queue.plane`).
    #[serde(default, skip_serializing_if = "Plane::is_internal")]
    pub plane: Plane,
    /// The endpoint messages come from.
    pub from: From,
    /// The steps every message passes, in order.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// What happens when a step fails.
    #[serde(default)]
    pub errors: ErrorPolicy,
    /// How the route's work queue is consumed.
    #[serde(default)]
    pub consumer: ConsumerSpec,
    /// Per-key order: a jq program over the message body (XML bodies read as by
    /// `xml_to_json`) giving the ordering key, e.g. `.student.id`. Messages with the same key
    /// are processed one at a time, in the order the route received them; a transient failure
    /// is retried in place and holds back the later messages of its partition. A message
    /// without a key (null, or the program fails) is dead-lettered. See docs/routes.md, "Ordering".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_by: Option<String>,
    /// Partitions of an ordered route (default 8, at most 64): keys are spread over this many
    /// queues, each processed one message at a time, so this is how many messages of
    /// different keys the route processes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub partitions: Option<u16>,
}

/// Partitions of an ordered route when `partitions` is not given.
pub const DEFAULT_PARTITIONS: u16 = 8;
/// The most partitions an ordered route may have (each is a queue on the broker).
pub const MAX_PARTITIONS: u16 = 64;

impl Route {
    /// The plane whose broker holds this route's queue: its own, or for a bridge the plane
    /// it reads (`from.queue.plane`).
    pub fn queue_plane(&self) -> Plane {
        match &self.from {
            From::Queue(q) => q.plane.unwrap_or(self.plane),
            _ => self.plane,
        }
    }

    /// A bridge: a route reading the other plane's exchange.
    pub fn is_bridge(&self) -> bool {
        self.queue_plane() != self.plane
    }

    /// The number of partitions of an ordered route (`partitions`, default
    /// [`DEFAULT_PARTITIONS`]); `None` when the route has no `ordered_by`.
    pub fn ordered_partitions(&self) -> Option<u16> {
        self.ordered_by
            .as_ref()
            .map(|_| self.partitions.unwrap_or(DEFAULT_PARTITIONS))
    }
}

pub use crate::core::vocab::Plane;

/// The endpoint a route consumes from. Exactly one key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum From {
    /// HTTP ingress: a request is accepted (202) once the broker has the message.
    Http(HttpFrom),
    /// Messages published to an exchange with matching routing keys.
    Queue(QueueFrom),
    /// Files appearing in a folder.
    File(FileFrom),
    /// A schedule (cron, Europe/Stockholm).
    Timer(TimerFrom),
    /// A polling consumer: an adapter operation listed on a schedule; each new item once.
    Poll(PollFrom),
}

/// HTTP ingress.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpFrom {
    /// Path on the ingress port, e.g. `/api/v1/placement-changes`. A segment `{name}` is a
    /// parameter: its value (percent-decoded) is in the header `knut-param-<name>`
    /// (`/api/v1/cases/{id}` → `$headers["knut-param-id"]` in jq).
    pub path: String,
    /// Accepted methods (default `[POST]`).
    #[serde(default = "default_methods")]
    pub methods: Vec<HttpMethod>,
    /// Name of an auth scheme from `knut.toml` (`[http.auth.<name>]`); or `{ none: "why" }`
    /// for an endpoint that needs no credentials (production also needs the route in
    /// `http.unauthenticated`); a bare `none` runs in development only.
    pub auth: HttpAuth,
    /// Body format checked at the door: a body that is not well-formed is answered 400.
    /// Without it, a request with no body at all is the message JSON `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<BodyFormat>,
    /// Schema (name in `schemas/`) the body must satisfy, else 422. For XML the schema applies to its JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Largest accepted body, e.g. `2MiB` (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<ByteSize>,
    /// Claims of the verified bearer token (a `bearer_jwt` scheme) that the route reads.
    /// A list of claim names copies each into the header `knut-claim-<name>` (`claims:
    /// [orgnr]` → `$headers["knut-claim-orgnr"]` in jq); a map from header name to claim
    /// name puts a claim under a name of the route's choosing (`claims: { personalNumber:
    /// "https://claims.oidc.se/1.0/personalNumber" }` → `knut-claim-personalNumber`; the
    /// names are letters, digits, `_` and `-`). A token without one of them is answered 403.
    #[serde(default, skip_serializing_if = "Claims::is_empty")]
    pub claims: Claims,
    /// Requests per client to this route (default `http.rate_limit`), e.g. `{ per_second:
    /// 5, burst: 10 }`; over it → 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::config::RateLimitConfig>,
    /// How long a synchronous caller waits for a `reply` step (default 30s).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub reply_timeout: Option<Duration>,
}

/// The claims of a verified bearer token an HTTP route reads, and the headers they go in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Claims {
    /// Claim names, each copied into `knut-claim-<name>`, e.g. `[orgnr]`.
    Names(Vec<String>),
    /// Header name (after `knut-claim-`) → claim name, e.g. `{ personalNumber:
    /// "https://claims.oidc.se/1.0/personalNumber" }`.
    Named(std::collections::BTreeMap<String, String>),
}

impl Default for Claims {
    fn default() -> Self {
        Claims::Names(Vec::new())
    }
}

impl Claims {
    /// No claims read.
    pub fn is_empty(&self) -> bool {
        match self {
            Claims::Names(v) => v.is_empty(),
            Claims::Named(m) => m.is_empty(),
        }
    }

    /// Each claim read as `(header name after knut-claim-, claim name)`.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        match self {
            Claims::Names(v) => v.iter().map(|n| (n.as_str(), n.as_str())).collect(),
            Claims::Named(m) => m.iter().map(|(h, c)| (h.as_str(), c.as_str())).collect(),
        }
    }

    /// Whether `name` may name a claim's header (`[A-Za-z0-9_-]+`).
    pub fn is_header_name(name: &str) -> bool {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

/// How an HTTP route authenticates its callers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HttpAuth {
    /// The name of an auth scheme (`[http.auth.<name>]`), or `none` (development only).
    Scheme(String),
    /// No credentials, and why (e.g. `{ none: "public opening hours, no personal data" }`).
    Unauthenticated {
        /// The reason, for reviewers and the production check.
        none: String,
    },
}

impl HttpAuth {
    /// The scheme named, or `None` for an unauthenticated route.
    pub fn scheme(&self) -> Option<&str> {
        match self {
            HttpAuth::Scheme(s) if s != "none" => Some(s),
            _ => None,
        }
    }

    /// For an unauthenticated route: the reason it gives (`None` for a bare `none`).
    pub fn unauthenticated(&self) -> Option<Option<&str>> {
        match self {
            HttpAuth::Scheme(s) if s == "none" => Some(None),
            HttpAuth::Scheme(_) => None,
            HttpAuth::Unauthenticated { none } => Some(Some(none)),
        }
    }
}

impl std::convert::From<&str> for HttpAuth {
    fn from(s: &str) -> Self {
        HttpAuth::Scheme(s.to_string())
    }
}

fn default_methods() -> Vec<HttpMethod> {
    vec![HttpMethod::Post]
}

/// A body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// JSON (UTF-8).
    Json,
    /// XML; the prolog's encoding (UTF-8, ISO-8859-1, Windows-1252) is honoured.
    Xml,
}

/// Consume messages published to an exchange.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueFrom {
    /// A topic exchange (declared durable).
    pub exchange: String,
    /// Routing keys (topic patterns: `*` one word, `#` zero or more) bound to the route's queue.
    pub keys: Vec<String>,
    /// A bridge: read this exchange of the OTHER plane (only `external`, from an internal
    /// route). The route's queue lives on the external broker, read with the internal
    /// plane's bridge credentials; its first step must be a `validate` against a schema, so
    /// nothing crosses unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<Plane>,
}

/// Files appearing in a folder. Each file is claimed atomically (renamed into `.claimed/`),
/// published, then moved to `processed/`; a file that cannot be published goes to `failed/`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileFrom {
    /// The folder (relative to the root).
    pub dir: String,
    /// Glob pattern of file names (default `*`).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// How often the folder is scanned (default 2s).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Duration>,
    /// Content type of the files (default: from the extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// How long a file must be unchanged before it is read (default 2s): a file still being written is left for a later scan, never read half. A writer that can should still write under a hidden name (`.name`) and rename.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub settle: Option<Duration>,
    /// How long a file stays in `processed/` after it was read (e.g. `30d`); a scan deletes the older ones. Without it they stay until someone removes them — set it for files with personal data (an IST export holds personnummer), kept no longer than an investigation may need them. `failed/` is never emptied: someone must look at those.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub keep: Option<Duration>,
}

fn default_pattern() -> String {
    "*".to_string()
}

/// A schedule.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerFrom {
    /// Cron expression (5 or 6 fields), evaluated in Europe/Stockholm.
    pub cron: String,
    /// JSON body of each tick's message (default: `{"firedAt": <RFC 3339 time>}` is merged in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// A polling consumer on an adapter operation. Every `every` (or on `cron`) the `list`
/// operation is called; `items` picks the items out of its answer and `id` names each one.
/// Every item not seen before becomes one message to the route (the answer of `fetch` for
/// that item, or the item itself), with a message id derived from (route, item id); it is
/// recorded as seen in the state store only after the broker confirmed the message. With
/// `watermark`, the highest value handed on is kept in the store and given to `list` as
/// `.watermark`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollFrom {
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter that lists the items. Its message body is `params` with
    /// `watermark` (the stored watermark, or null) added, and with `page`, `page` (the
    /// next page's token, null for the first).
    pub list: String,
    /// JSON object given to `list` (e.g. `{familyId: 412, status: Inkommen}` for `{.familyId}` in its path); or a list of them: `list` is called once for each (with its pages), the items merged (an item listed twice counts once, by `id`). A list whose first call fails fails the poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    /// How often to poll, e.g. `1m` (first poll at start). Exactly one of `every` and `cron`.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub every: Option<Duration>,
    /// When to poll: a cron expression (5 or 6 fields), Europe/Stockholm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// jq program over the list's answer whose outputs are the items (an array output counts as its elements).
    pub items: String,
    /// jq expression over an item giving its id: the per-item dedupe key (kept in the state store, never logged).
    pub id: String,
    /// Operation called with each new item as its message; its answer (bytes and content type as they are) is the message body. Without it the item (JSON) is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<String>,
    /// What a failed `fetch` does besides leaving the item unseen (it is fetched again at the next poll): `retry` (default) hands nothing on; `hand_on` also hands on the listed item itself (JSON) with the header `knut-fetch-error` saying why (adapter, operation, status; never content), so that the route can report an item it could not read instead of passing over it in silence. That message has its own id per item (the same at every poll), apart from the fetched one's.
    #[serde(default, skip_serializing_if = "FetchFailed::is_retry")]
    pub fetch_failed: FetchFailed,
    /// jq expression over an item giving its watermark value (e.g. `.added`); the highest one handed on is kept and given to `list` as `.watermark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Where the first poll starts (no watermark stored yet): this long before now, given to `list` as `.watermark` in Swedish time, RFC 3339 (`2026-12-04T06:00:00+01:00`), so that a new route does not hand on a system's whole history (e.g. `7d`). Needs `watermark`. Without it the first poll lists from the beginning.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub since: Option<Duration>,
    /// The list answers in pages: each poll lists page after page (each page's token given to `list` as `.page`) until `next` gives none or `max` pages were listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PollPage>,
}

/// What a poll does with an item whose `fetch` failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FetchFailed {
    /// Nothing is handed on; the item is fetched again at the next poll.
    #[default]
    Retry,
    /// The listed item is handed on, with the header `knut-fetch-error`; it is still
    /// fetched again at the next poll.
    HandOn,
}

impl FetchFailed {
    fn is_retry(&self) -> bool {
        *self == FetchFailed::Retry
    }
}

/// How a poll's list pages (e.g. SS 12000's `pageToken`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollPage {
    /// jq expression over a list answer giving the next page's token (e.g. `.pageToken`); null, an empty string or nothing means it was the last page.
    pub next: String,
    /// Pages one poll lists at most (default 100); the rest come at the next poll, which starts from the watermark (kept below the highest value listed), so set `watermark`, with pages in watermark order, when a backlog may be longer.
    #[serde(default = "default_max_pages")]
    pub max: u32,
}

fn default_max_pages() -> u32 {
    100
}

/// The route's error policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorPolicy {
    /// Retries of transient failures (timeouts, connection errors, 5xx, 429).
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// Exponential backoff with jitter, held by the broker (the queue is never blocked); on an
/// ordered route held in place by the worker, blocking its partition (see `ordered_by`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 5). After the last, the message is dead-lettered.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Delay before the first retry (default 1s); it doubles at each attempt.
    #[serde(default = "default_initial", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub initial: Duration,
    /// Cap on the delay (default 5m).
    #[serde(default = "default_max", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max: Duration,
}

fn default_attempts() -> u32 {
    5
}
fn default_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_max() -> Duration {
    Duration::from_secs(300)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: default_attempts(),
            initial: default_initial(),
            max: default_max(),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (the attempt that failed, 1-based), before jitter:
    /// `initial · 2^(attempt-1)`, capped at `max`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The longest all retries of one message can wait together: the sum of the base
    /// delays of every retry (jitter only shortens them).
    pub fn total_delay(&self) -> Duration {
        (1..self.attempts).fold(Duration::ZERO, |sum, a| {
            sum.saturating_add(self.base_delay(a))
        })
    }

    /// Delay with jitter: uniformly between half the base delay and the base delay.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        let half = base / 2;
        let jitter = rand::random_range(0.0..=1.0f64);
        half + half.mul_f64(jitter)
    }
}

/// How the route's work queue is consumed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// Messages handed to the route before acknowledgement (default 32).
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Messages processed at the same time (default 8).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_prefetch() -> u16 {
    32
}
fn default_concurrency() -> usize {
    8
}

impl Default for ConsumerSpec {
    fn default() -> Self {
        ConsumerSpec {
            prefetch: default_prefetch(),
            concurrency: default_concurrency(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("512"), Some(512));
        assert_eq!(parse_byte_size("2MiB"), Some(2 * 1024 * 1024));
        assert_eq!(parse_byte_size("1 KiB"), Some(1024));
        assert_eq!(parse_byte_size("lots"), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 10,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(p.base_delay(1), Duration::from_secs(1));
        assert_eq!(p.base_delay(2), Duration::from_secs(2));
        assert_eq!(p.base_delay(4), Duration::from_secs(8));
        assert_eq!(p.base_delay(5), Duration::from_secs(10));
        assert_eq!(p.base_delay(64), Duration::from_secs(10));
        for a in 1..8 {
            let d = p.delay(a);
            assert!(d <= p.base_delay(a) && d >= p.base_delay(a) / 2);
        }
        // 1 + 2 + 4 + 8 + 10·5 s for ten attempts (nine retries).
        assert_eq!(p.total_delay(), Duration::from_secs(65));
        assert_eq!(
            RetryPolicy::default().total_delay(),
            Duration::from_secs(15)
        );
        let once = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(once.total_delay(), Duration::ZERO);
    }
}
