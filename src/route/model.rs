//! The route schema: the serde types route files are read into.
//!
//! These types are the single source of truth for the route file format: the loader
//! deserialises into them, `schemas/route.schema.json` is generated from them
//! (`knut schema`), and the reference in the README follows their doc comments.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::core::vocab::{ByteSize, HttpMethod, parse_byte_size};

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
    /// without a key (null, or the program fails) is dead-lettered. See the README, "Ordering".
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

/// A plane: which side of the external/internal separation a route runs on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    /// The municipality's own side (case management, registers, archive).
    #[default]
    Internal,
    /// Traffic from outside: citizens' e-services, independent operators.
    External,
}

impl Plane {
    /// `internal` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Internal => "internal",
            Plane::External => "external",
        }
    }

    fn is_internal(&self) -> bool {
        *self == Plane::Internal
    }
}

impl std::fmt::Display for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Path on the ingress port, e.g. `/api/v1/placement-changes`.
    pub path: String,
    /// Accepted methods (default `[POST]`).
    #[serde(default = "default_methods")]
    pub methods: Vec<HttpMethod>,
    /// Name of an auth scheme from `knut.toml` (`[http.auth.<name>]`); or `{ none: "why" }`
    /// for an endpoint that needs no credentials (production also needs the route in
    /// `http.unauthenticated`); a bare `none` runs in development only.
    pub auth: HttpAuth,
    /// Body format checked at the door: a body that is not well-formed is answered 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<BodyFormat>,
    /// Schema (name in `schemas/`) the body must satisfy, else 422. For XML the schema applies to its JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Largest accepted body, e.g. `2MiB` (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<ByteSize>,
    /// Claims of the verified bearer token (a `bearer_jwt` scheme) that the route reads:
    /// each is copied into the header `knut-claim-<name>` (`$headers["knut-claim-orgnr"]` in
    /// jq). A token without one of them is answered 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
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
    /// `watermark` (the stored watermark, or null) added.
    pub list: String,
    /// JSON object given to `list` (e.g. `{familyId: 412, status: Inkommen}` for `{.familyId}` in its path).
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
    /// jq expression over an item giving its watermark value (e.g. `.added`); the highest one handed on is kept and given to `list` as `.watermark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// One step. Exactly one key, naming the step kind (an Enterprise Integration Pattern).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Parse an XML body into JSON (see the README's XML ↔ JSON rules).
    XmlToJson(XmlToJsonSpec),
    /// Serialise a JSON body as XML.
    JsonToXml(JsonToXmlSpec),
    /// Read a CSV body (`;`, Windows-1252 by default) into a JSON array of rows.
    CsvToJson(crate::codec::CsvOptions),
    /// Read an Excel workbook's sheet (.xlsx, .xls) into a JSON array of rows.
    ExcelToJson(crate::codec::ExcelOptions),
    /// Read fixed-width text (Windows-1252 by default) into a JSON array of rows.
    FixedToJson(crate::codec::FixedOptions),
    /// Validate the JSON body against a schema; failure is permanent (dead letter).
    Validate(ValidateSpec),
    /// Replace the body: a jq program or a Tera template.
    Transform(TransformSpec),
    /// Set headers from jq expressions over the body.
    Set(SetSpec),
    /// Content-based router: the first `when` whose predicate holds runs its steps; else `otherwise`.
    Choice(ChoiceSpec),
    /// Message filter: messages for which the predicate is not true stop here.
    Filter(FilterSpec),
    /// Splitter: one message per output of a jq program.
    Split(SplitSpec),
    /// Aggregator: collect correlated messages into one.
    Aggregate(AggregateSpec),
    /// Content enricher: call an adapter operation and merge its result under a key.
    Enrich(EnrichSpec),
    /// Scatter-gather: call several adapter operations at once (reads) and gather their
    /// answers; a source that fails or is late is named under `missing`.
    ScatterGather(ScatterGatherSpec),
    /// Send to an adapter operation or a built-in endpoint (a side effect).
    To(ToSpec),
    /// Publish to an exchange; a list is a recipient list.
    Publish(PublishSpec),
    /// Idempotent consumer: stop messages whose key was already processed.
    Idempotent(IdempotentSpec),
    /// Write a log line (personnummer are masked).
    Log(LogSpec),
    /// Answer the synchronous HTTP request that started this message.
    Reply(ReplySpec),
    /// Verify a JWS with a detached payload (RFC 7515 appendix F) over a text of the
    /// message against trusted public keys; an unsigned message, a signature that does not
    /// verify or the wrong signer is permanent (dead letter).
    VerifySignature(VerifySignatureSpec),
}

impl StepSpec {
    /// The step kind's name as written in route files.
    pub fn kind(&self) -> &'static str {
        match self {
            StepSpec::XmlToJson(_) => "xml_to_json",
            StepSpec::JsonToXml(_) => "json_to_xml",
            StepSpec::CsvToJson(_) => "csv_to_json",
            StepSpec::ExcelToJson(_) => "excel_to_json",
            StepSpec::FixedToJson(_) => "fixed_to_json",
            StepSpec::Validate(_) => "validate",
            StepSpec::Transform(_) => "transform",
            StepSpec::Set(_) => "set",
            StepSpec::Choice(_) => "choice",
            StepSpec::Filter(_) => "filter",
            StepSpec::Split(_) => "split",
            StepSpec::Aggregate(_) => "aggregate",
            StepSpec::Enrich(_) => "enrich",
            StepSpec::ScatterGather(_) => "scatter_gather",
            StepSpec::To(_) => "to",
            StepSpec::Publish(_) => "publish",
            StepSpec::Idempotent(_) => "idempotent",
            StepSpec::Log(_) => "log",
            StepSpec::Reply(_) => "reply",
            StepSpec::VerifySignature(_) => "verify_signature",
        }
    }
}

/// Options of `xml_to_json`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XmlToJsonSpec {
    /// Element names that always become arrays, even when they occur once (e.g. `Value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<String>,
}

/// Options of `json_to_xml`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonToXmlSpec {
    /// Name of the root element (when the body is not an object with one key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// Options of `validate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    /// Schema name: a file `schemas/<name>.json` (JSON Schema 2020-12).
    pub schema: String,
}

/// Options of `transform`: exactly one of `jq` and `template`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// A jq program; the body becomes its (single) output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
    /// A Tera template file under `transforms/`; the body is `body`, headers are `headers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Content type of the template's output (default: from the template's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Options of `set`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// Header name → jq expression over the body (strings are taken as they are, other values as JSON).
    pub headers: BTreeMap<String, String>,
}

/// Options of `choice`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceSpec {
    /// Branches, tried in order.
    pub when: Vec<WhenSpec>,
    /// Steps for messages no branch took (default: none, the message continues unchanged).
    #[serde(default)]
    pub otherwise: Vec<StepSpec>,
}

/// One branch of a `choice`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// jq predicate over the body; the branch is taken when its first output is `true`.
    pub jq: String,
    /// Steps of the branch.
    pub steps: Vec<StepSpec>,
}

/// Options of `filter`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// jq predicate over the body; messages for which it is not `true` stop here (recorded in the journal).
    pub jq: String,
}

/// Options of `split`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// jq program whose outputs become one message each (e.g. `.students[]`).
    pub jq: String,
}

/// Options of `aggregate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// jq expression giving the correlation key of a message.
    pub correlation: String,
    /// When a group is complete (at least one condition).
    pub complete: CompletionSpec,
}

/// Completion conditions of an aggregate group; whichever holds first completes it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionSpec {
    /// Complete when the group holds this many messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Complete when this jq predicate over `{key, items}` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Complete this long after the group's first message.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

/// Options of `enrich`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter.
    pub operation: String,
    /// Key of the body object the result is stored under.
    pub into: String,
}

/// Options of `scatter_gather`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScatterGatherSpec {
    /// Key of the body object the answers are stored under, by source name; the sources
    /// that did not answer are listed under `missing` as `{source, reason}`.
    pub into: String,
    /// How long each source may take (default 5s), unless it sets its own.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// The sources, called at the same time with the message.
    pub sources: Vec<GatherSource>,
}

/// One source of a `scatter_gather`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatherSource {
    /// The source's name: its answer's key, and how `missing` names it.
    pub name: String,
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter (a read: it is called again when the message is retried).
    pub operation: String,
    /// How long this source may take.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// Without this source there is no answer: its failure fails the message (retried or
    /// dead-lettered as the call failed) instead of being listed as missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// Options of `to`: an adapter operation, or a built-in endpoint (`file`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Operation of the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Write the body to a file (atomically: a temporary file renamed into place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTo>,
}

/// A file written by `to`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTo {
    /// The folder (relative to the root); created when missing.
    pub dir: String,
    /// jq expression giving the file name (default: `<message id>.json` or `.xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Options of `publish`: one target or a list (recipient list).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PublishSpec {
    /// One target.
    One(PublishTarget),
    /// Several targets: a recipient list.
    Many(Vec<PublishTarget>),
}

impl PublishSpec {
    /// All targets.
    pub fn targets(&self) -> &[PublishTarget] {
        match self {
            PublishSpec::One(t) => std::slice::from_ref(t),
            PublishSpec::Many(v) => v,
        }
    }
}

/// Where `publish` sends a message.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishTarget {
    /// A topic exchange (declared durable).
    pub exchange: String,
    /// Routing key. `{jq}` placeholders are filled from the body (a dynamic router), e.g.
    /// `application.{.familyId}.submitted`; a placeholder that gives nothing is a permanent
    /// failure, and a key no route binds is refused by the broker.
    pub key: String,
}

/// Options of `idempotent`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotentSpec {
    /// jq expression giving the idempotency key (e.g. `.errandNumber`).
    pub key: String,
    /// Key space shared by routes (default: the route id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Options of `log`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// The text of the log line.
    pub message: String,
    /// Level: `trace`, `debug`, `info` (default), `warn`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// Optional jq expression over the body whose result is logged as the `data` field (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
}

/// Log level.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    Info,
    /// warn
    Warn,
    /// error
    Error,
}

/// Options of `reply`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// HTTP status of the answer (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Content type of the answer (default: the message's), e.g.
    /// `application/problem+json` for an RFC 9457 problem the route built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Options of `verify_signature`: the signature `jws` is a compact JWS with a detached
/// payload, `BASE64URL(header)..BASE64URL(signature)`, over `BASE64URL(header) + "." +
/// BASE64URL(payload)`; the header names the algorithm (EdDSA, RS256 or ES256, the one its
/// key is for) and the key (`kid`). The message goes on unchanged, with the header
/// `knut-signature-kid` naming the key that signed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySignatureSpec {
    /// jq expression giving the compact detached JWS, e.g. `.catalogue.signature`; null or
    /// nothing means the message is unsigned.
    pub jws: String,
    /// jq expression giving the signed text exactly as signed (a string), e.g.
    /// `.catalogue.document`.
    pub payload: String,
    /// The trusted public keys (a JSON Web Key Set).
    pub keys: SignatureKeys,
    /// jq expression giving the key id (`kid`) that must have signed, e.g.
    /// `.gradingTeacher.id`; without it any key of the set may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

/// Where `verify_signature` gets its JSON Web Key Set: exactly one of an adapter operation
/// (called for each message, so a new key is seen at once; unreachable is transient) and a
/// file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureKeys {
    /// Adapter name (a file `adapters/<name>.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Operation of the adapter answering the key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// A JWKS file (relative to the root), read when the route starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
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
