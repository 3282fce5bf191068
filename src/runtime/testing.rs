//! Route tests (`knut test`): YAML files next to the routes (`routes/<name>.test.yaml`)
//! that feed input messages to a route with mocked adapter responses and state what must
//! come out: published messages, adapter calls, files, and the outcome.
//!
//! ```yaml
//! route: placement-change
//! tests:
//!   - name: a start in fritidshem updates elevregister and is announced
//!     input:
//!       body: { "student": "...", "kind": "start" }   # or `xml: "<...>"`, or `file: x.xml`
//!       headers: { unit: "..." }
//!     mocks:
//!       - { adapter: elevregister, operation: update-placement, status: 200, body: {} }
//!     expect:
//!       outcome: ok                     # ok | stopped | retry | dead-letter
//!       calls: [ { adapter: elevregister, operation: update-placement } ]
//!       published: [ { exchange: school.events, key: placement.changed, body: {...} } ]
//!       replies: [ { status: 202, body: {...} } ]   # what a waiting HTTP caller was answered
//!       audit: [ { action: view-case, resource: c-1, right: guardian-view, allowed: true,
//!                  actor_is: "19790314-1237" } ]  # the access audit's rows, oldest first
//! ```
//! Lists under `expect` are compared exactly, in order; a `body` given is compared as JSON
//! (or as text for non-JSON bodies); `error` is a substring of the failure's reason.
//!
//! On an ordered route (`ordered_by`) each input first passes the intake, as in `knut run`:
//! a message without a key ends as `dead-letter`, and the others carry their partition in
//! the `knut-partition` header.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::adapter::client::Prepared;
use crate::adapter::client::classify;
use crate::broker::INGRESS_EXCHANGE;
use crate::core::effects::{AdapterResponse, Effects};
use crate::core::envelope::{Body, Envelope, JSON, XML};
use crate::core::error::{FailureKind, StepError};
use crate::resources::Resources;
use crate::route::load::LoadedRoute;
use crate::runtime::ordered::Partitioner;
use crate::step::aggregate::RESUME_AFTER;
use crate::step::{Context, Pipeline};
use crate::store::Store;

/// A route test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The route under test.
    pub route: String,
    /// The cases.
    pub tests: Vec<TestCase>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the case shows.
    pub name: String,
    /// The message fed to the route.
    #[serde(default)]
    pub input: Option<Input>,
    /// Several messages fed one after the other through the same route and state store
    /// (for aggregators and idempotent consumers); `outcome` and `error` are those of the
    /// last, the lists under `expect` gather what all of them caused.
    #[serde(default)]
    pub inputs: Option<Vec<Input>>,
    /// Adapter responses.
    #[serde(default)]
    pub mocks: Vec<Mock>,
    /// What the route's state store holds before the first input (e.g. a cache another
    /// route fills).
    #[serde(default)]
    pub given: Given,
    /// What must come out.
    #[serde(default)]
    pub expect: Expect,
}

/// The state a case starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// Keys of named caches (the `cache` step's), filled in this order.
    #[serde(default)]
    pub cache: Vec<GivenCache>,
    /// Rows of the access audit written before the case (older than its own; `expect.audit`
    /// compares only the case's own), for routes that read the audit (`audit_lookup`).
    #[serde(default)]
    pub audit: Vec<GivenAudit>,
}

/// One row of the access audit a case starts with; the people as they are (hashed as the
/// `audit` step hashes them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenAudit {
    /// What was done, e.g. `view-case`.
    pub action: String,
    /// Who did it (a personnummer in any form, or another identity).
    pub actor: String,
    /// On whose behalf.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// What it concerned, e.g. a case id.
    #[serde(default)]
    pub resource: Option<String>,
    /// The right it was done under.
    #[serde(default)]
    pub right: Option<String>,
    /// Whether it was allowed (default true).
    #[serde(default = "yes")]
    pub allowed: bool,
    /// When (RFC 3339, in the past); default: an hour ago, a second apart in the given order.
    #[serde(default)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

fn yes() -> bool {
    true
}

/// One key of a cache, holding a value (`set`) or a set of named members (`add`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenCache {
    /// The cache's name.
    pub name: String,
    /// The key.
    pub key: String,
    /// The value the key holds, as `cache: {set: …}` keeps it.
    #[serde(default)]
    pub set: Option<Value>,
    /// The set's members, by name, as `cache: {add: …, member: …}` keeps them.
    #[serde(default)]
    pub add: Option<BTreeMap<String, Value>>,
}

/// Fills `store` with what a case is given.
async fn fill(store: &Store, given: &Given) -> Result<(), String> {
    for (i, c) in given.cache.iter().enumerate() {
        let at = format!("given.cache[{i}]");
        match (&c.set, &c.add) {
            (Some(value), None) => store
                .cache_set(&c.name, &c.key, &value.to_string(), None)
                .await
                .map_err(|e| format!("{at}: {e}"))?,
            (None, Some(members)) => {
                for (member, value) in members {
                    store
                        .cache_add(&c.name, &c.key, member, &value.to_string(), None)
                        .await
                        .map_err(|e| format!("{at}: {e}"))?;
                }
            }
            _ => {
                return Err(format!(
                    "{at}: give exactly one of `set` (the value the key holds) and `add` \
                     (its set's members by name)"
                ));
            }
        }
    }
    // An hour ago, a second apart in the given order: older than anything the case writes.
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    for (i, a) in given.audit.iter().enumerate() {
        let record = crate::store::AccessRecord {
            at: a.at.unwrap_or(start + chrono::Duration::seconds(i as i64)),
            actor: a.actor.clone(),
            on_behalf_of: a.on_behalf_of.clone(),
            action: a.action.clone(),
            resource: a.resource.clone(),
            right: a.right.clone(),
            allowed: a.allowed,
            route: "given".into(),
            correlation_id: uuid::Uuid::now_v7(),
        };
        store
            .access_audit_append(&record)
            .await
            .map_err(|e| format!("given.audit[{i}]: {e}"))?;
    }
    Ok(())
}

/// An input message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// A JSON body.
    #[serde(default)]
    pub body: Option<Value>,
    /// An XML body (UTF-8 text).
    #[serde(default)]
    pub xml: Option<String>,
    /// A body from a file, relative to the test file (bytes as they are: any encoding).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A mocked adapter response; several for the same operation answer successive calls (the
/// last one repeats).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mock {
    /// Adapter.
    pub adapter: String,
    /// Operation.
    pub operation: String,
    /// HTTP status (default 200); 5xx/429/408 act as transient failures, other 4xx permanent.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// JSON body of the response.
    #[serde(default)]
    pub body: Option<Value>,
}

fn ok_status() -> u16 {
    200
}

/// Expectations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `ok` (default), `stopped`, `retry` or `dead-letter`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Substring of the failure reason (retry, dead-letter).
    #[serde(default)]
    pub error: Option<String>,
    /// Messages published, in order.
    #[serde(default)]
    pub published: Option<Vec<ExpectPublished>>,
    /// Adapter calls, in order.
    #[serde(default)]
    pub calls: Option<Vec<ExpectCall>>,
    /// Files written, in order.
    #[serde(default)]
    pub files: Option<Vec<ExpectFile>>,
    /// Bodies of the messages at the end of the route, in order.
    #[serde(default)]
    pub output: Option<Vec<Value>>,
    /// Answers `reply` steps gave the waiting HTTP caller, in order (give the input the
    /// header `knut-reply-to`, as the ingress does for a waiting caller).
    #[serde(default)]
    pub replies: Option<Vec<ExpectReply>>,
    /// Outcomes of the parts a `split` (scope `item`) handed back to the route, in order:
    /// each runs the steps after the split on its own, as in `knut run`.
    #[serde(default)]
    pub parts: Option<Vec<String>>,
    /// What keys of named caches hold after the last input (as `cache: {get: …}` would put
    /// it: a value, the list of a set's members, or null for nothing).
    #[serde(default)]
    pub cache: Vec<ExpectCache>,
    /// The rows the `audit` steps appended to the access audit, oldest first (exactly
    /// these: `[]` for none).
    #[serde(default)]
    pub audit: Option<Vec<ExpectAudit>>,
}

/// An expected row of the access audit: the fields given are compared (a field given as
/// null must be null); the people, stored hashed, are given as they are and hashed as
/// `knut test` hashes them (with the development key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectAudit {
    /// What was done.
    #[serde(default)]
    pub action: Option<String>,
    /// What it concerned.
    #[serde(default, deserialize_with = "present")]
    pub resource: Option<Value>,
    /// The right it was done under.
    #[serde(default, deserialize_with = "present")]
    pub right: Option<Value>,
    /// Whether it was allowed.
    #[serde(default)]
    pub allowed: Option<bool>,
    /// Who acted (a personnummer in any form, or another identity).
    #[serde(default)]
    pub actor_is: Option<String>,
    /// On whose behalf (null: nobody's).
    #[serde(default, deserialize_with = "present")]
    pub on_behalf_of_is: Option<Value>,
}

/// A field that is given, null included (`Some(Value::Null)`); absent is `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The access audit's rows against what a case expects of them.
async fn compare_audit(
    store: &Store,
    given: usize,
    want: &[ExpectAudit],
    failures: &mut Vec<String>,
) {
    let query = crate::store::AccessAuditQuery {
        limit: Some(crate::store::MAX_QUERY_LIMIT),
        ..Default::default()
    };
    let mut rows = match store.access_audit_query(&query).await {
        Ok(rows) => rows,
        Err(e) => {
            failures.push(format!("audit: state store: {e}"));
            return;
        }
    };
    rows.reverse();
    // The rows the case was given are not its own.
    let rows: Vec<_> = rows.into_iter().skip(given).collect();
    if rows.len() != want.len() {
        failures.push(format!(
            "audit: expected {} row(s), got {}: {:?}",
            want.len(),
            rows.len(),
            rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>()
        ));
    }
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let hashed = |who: &str| store.audit_hash(who).map_err(|e| e.to_string());
    for (i, (w, r)) in want.iter().zip(&rows).enumerate() {
        if let Some(a) = &w.action {
            compare(
                &format!("audit[{i}].action"),
                &Value::String(a.clone()),
                &Value::String(r.action.clone()),
                failures,
            );
        }
        if let Some(v) = &w.resource {
            compare(
                &format!("audit[{i}].resource"),
                v,
                &text(&r.resource),
                failures,
            );
        }
        if let Some(v) = &w.right {
            compare(&format!("audit[{i}].right"), v, &text(&r.right), failures);
        }
        if let Some(a) = w.allowed {
            compare(
                &format!("audit[{i}].allowed"),
                &Value::Bool(a),
                &Value::Bool(r.allowed),
                failures,
            );
        }
        // Hashes are compared, never shown: they mean nothing to a reader.
        if let Some(who) = &w.actor_is
            && hashed(who).as_ref() != Ok(&r.actor)
        {
            failures.push(format!(
                "audit[{i}].actor_is: the row's actor is someone else"
            ));
        }
        match &w.on_behalf_of_is {
            None => {}
            Some(Value::Null) if r.on_behalf_of.is_some() => failures.push(format!(
                "audit[{i}].on_behalf_of_is: expected nobody, the row names someone"
            )),
            Some(Value::Null) => {}
            Some(v) => {
                let who = crate::core::value_to_string(v);
                if r.on_behalf_of.as_ref() != hashed(&who).ok().as_ref() {
                    failures.push(format!(
                        "audit[{i}].on_behalf_of_is: the row is on someone else's behalf"
                    ));
                }
            }
        }
    }
}

/// An expected cache key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectCache {
    /// The cache's name.
    pub name: String,
    /// The key.
    pub key: String,
    /// What it holds (null: nothing).
    pub holds: Value,
}

/// An expected answer to the waiting HTTP caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReply {
    /// HTTP status (default 200).
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Content type, if it matters.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Body (JSON, or text), if it matters.
    #[serde(default)]
    pub body: Option<Value>,
}

/// An expected publish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPublished {
    /// Exchange.
    pub exchange: String,
    /// Routing key.
    pub key: String,
    /// Body (JSON), if it matters.
    #[serde(default)]
    pub body: Option<Value>,
    /// Headers that must be present with these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// An expected adapter call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectCall {
    /// Adapter.
    pub adapter: String,
    /// Operation.
    pub operation: String,
    /// The operation's input (the message, or what `with:` made of it), if it matters.
    #[serde(default)]
    pub body: Option<Value>,
    /// The request's path and query as the system gets them (`/persons/p-17?x=1`, query
    /// values decoded), if it matters.
    #[serde(default)]
    pub request: Option<String>,
    /// The request's body as the system gets it (JSON compared as JSON, else as text), if
    /// it matters: a `jq`, `xml` or `template` body of the operation.
    #[serde(default)]
    pub sent: Option<Value>,
}

/// An expected file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFile {
    /// Folder.
    pub dir: String,
    /// File name, if it matters.
    #[serde(default)]
    pub name: Option<String>,
    /// Content (JSON), if it matters.
    #[serde(default)]
    pub body: Option<Value>,
}

#[derive(Default)]
struct Recorded {
    published: Vec<(String, String, Envelope)>,
    calls: Vec<(String, String, Envelope, Prepared)>,
    files: Vec<(String, String, Bytes)>,
    replies: Vec<Envelope>,
}

struct RecordingEffects {
    mocks: Mutex<BTreeMap<(String, String), VecDeque<Mock>>>,
    recorded: Mutex<Recorded>,
    /// The root's adapters: each call's request is built as it would be sent.
    client: crate::adapter::client::AdapterClient,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Effects for RecordingEffects {
    async fn publish(&self, exchange: &str, key: &str, e: &Envelope) -> Result<(), StepError> {
        lock(&self.recorded)
            .published
            .push((exchange.into(), key.into(), e.clone()));
        Ok(())
    }

    async fn call(
        &self,
        adapter: &str,
        operation: &str,
        e: &Envelope,
    ) -> Result<AdapterResponse, StepError> {
        // The request is built as `knut run` would build it (path, query, body), so a
        // route test fails where the real call would.
        let prepared = self.client.prepare(adapter, operation, e)?;
        lock(&self.recorded)
            .calls
            .push((adapter.into(), operation.into(), e.clone(), prepared));
        let mock = {
            let mut mocks = lock(&self.mocks);
            let Some(queue) = mocks.get_mut(&(adapter.to_string(), operation.to_string())) else {
                return Err(StepError::permanent(format!(
                    "no mock for {adapter}.{operation}: add one under `mocks`"
                )));
            };
            if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().cloned()
            }
        };
        let Some(mock) = mock else {
            return Err(StepError::permanent(format!(
                "no mock for {adapter}.{operation}"
            )));
        };
        if let Some(kind) = classify(mock.status) {
            return Err(StepError {
                kind,
                message: format!("{adapter}.{operation} answered HTTP {}", mock.status),
            });
        }
        Ok(AdapterResponse {
            status: mock.status,
            content_type: JSON.into(),
            body: mock.body.map(Body::Json).unwrap_or_default(),
        })
    }

    async fn write_file(&self, dir: &str, name: &str, contents: Bytes) -> Result<(), StepError> {
        lock(&self.recorded)
            .files
            .push((dir.into(), name.into(), contents));
        Ok(())
    }

    async fn reply(&self, _reply_to: &str, e: &Envelope) -> Result<(), StepError> {
        lock(&self.recorded).replies.push(e.clone());
        Ok(())
    }
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// Test file.
    pub file: PathBuf,
    /// Case name.
    pub name: String,
    /// Mismatches; empty when the case passed.
    pub failures: Vec<String>,
    /// The requests the case's adapter calls would send (adapter, operation, request), in
    /// order: what `tests/contracts.rs` holds to the systems' contracts.
    pub requests: Vec<(String, String, crate::adapter::client::Prepared)>,
}

fn body_json(e: &Envelope) -> Value {
    match e.json_body() {
        Ok(v) => v.into_owned(),
        Err(_) => Value::String(String::from_utf8_lossy(&e.body.to_bytes()).into_owned()),
    }
}

fn compare(what: &str, expected: &Value, got: &Value, failures: &mut Vec<String>) {
    if expected != got {
        failures.push(format!(
            "{what}: expected {}\n      got {}",
            serde_json::to_string(expected).unwrap_or_default(),
            serde_json::to_string(got).unwrap_or_default()
        ));
    }
}

/// The envelope of one test input.
fn input_message(file: &Path, input: Input) -> Result<Envelope, String> {
    let mut m = match (input.body, input.xml, input.file) {
        (Some(v), None, None) => Envelope::json(v),
        (None, Some(x), None) => Envelope::new(XML, Body::Bytes(Bytes::from(x))),
        (None, None, Some(f)) => {
            let p = file.parent().unwrap_or(Path::new(".")).join(f);
            let b = std::fs::read(&p).map_err(|e| format!("input file {}: {e}", p.display()))?;
            let ct = match p.extension().and_then(|e| e.to_str()) {
                Some("json") => JSON,
                Some("xml") => XML,
                _ => "application/octet-stream",
            };
            Envelope::new(ct, Body::Bytes(Bytes::from(b)))
        }
        _ => return Err("input: give exactly one of `body`, `xml` and `file`".into()),
    };
    m.headers = input.headers;
    Ok(m)
}

/// Find test files: `path` itself, or every `*.test.yaml`/`*.test.yml` under it.
pub fn find_tests(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Run every case of one test file.
pub async fn run_file(
    file: &Path,
    routes: &[LoadedRoute],
    resources: &Resources,
) -> Result<Vec<CaseResult>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let tf: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("{}:{}: ", l.line(), l.column()))
            .unwrap_or_default();
        format!("{at}{}", e.without_snippet())
    })?;
    let lr = routes
        .iter()
        .find(|r| r.route.route == tf.route)
        .ok_or_else(|| format!("no route `{}`", tf.route))?;
    let pipeline =
        Pipeline::build(&lr.route.steps, "steps", resources).map_err(|e| e.to_string())?;
    let intake = match (&lr.route.ordered_by, lr.route.ordered_partitions()) {
        (Some(program), Some(partitions)) => Some(Partitioner::new(program, partitions)?),
        _ => None,
    };
    let mut results = Vec::new();
    for mut case in tf.tests {
        let inputs = match (case.input.take(), case.inputs.take()) {
            (Some(i), None) => vec![i],
            (None, Some(v)) if !v.is_empty() => v,
            _ => {
                results.push(CaseResult {
                    file: file.to_path_buf(),
                    name: case.name,
                    failures: vec!["give either `input` or a non-empty `inputs` list".into()],
                    requests: Vec::new(),
                });
                continue;
            }
        };
        let (failures, requests) = run_case(
            file,
            &tf.route,
            (intake.as_ref(), &pipeline),
            resources,
            inputs,
            (case.mocks, &case.given, case.expect),
        )
        .await;
        results.push(CaseResult {
            file: file.to_path_buf(),
            name: case.name,
            failures,
            requests,
        });
    }
    Ok(results)
}

/// Run `m` through `pipeline` from step `start`: its outcome, and the failure's reason.
async fn run_one(
    pipeline: &Pipeline,
    start: usize,
    m: Envelope,
    cx: &Context,
    output: &mut Vec<Envelope>,
) -> (&'static str, Option<String>) {
    match pipeline.run_from(start, m, cx).await {
        Ok(out) if out.is_empty() && !pipeline.is_empty() => ("stopped", None),
        Ok(mut out) => {
            output.append(&mut out);
            ("ok", None)
        }
        Err(f) => (
            if f.error.kind == FailureKind::Transient {
                "retry"
            } else {
                "dead-letter"
            },
            Some(format!("{}: {}", f.step, f.error.message)),
        ),
    }
}

async fn run_case(
    file: &Path,
    route: &str,
    (intake, pipeline): (Option<&Partitioner>, &Pipeline),
    resources: &Resources,
    inputs: Vec<Input>,
    (mocks, given, expect): (Vec<Mock>, &Given, Expect),
) -> (
    Vec<String>,
    Vec<(String, String, crate::adapter::client::Prepared)>,
) {
    let mut failures = Vec::new();
    let mut messages = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input_message(file, input) {
            Ok(m) => messages.push(m),
            Err(e) => return (vec![e], Vec::new()),
        }
    }
    let mut table: BTreeMap<(String, String), VecDeque<Mock>> = BTreeMap::new();
    for mock in mocks {
        if let Err(miss) = resources.client.lookup(&mock.adapter, &mock.operation) {
            failures.push(format!(
                "mock {}.{}: no such adapter operation ({miss:?})",
                mock.adapter, mock.operation
            ));
        }
        table
            .entry((mock.adapter.clone(), mock.operation.clone()))
            .or_default()
            .push_back(mock);
    }
    let effects = Arc::new(RecordingEffects {
        mocks: Mutex::new(table),
        recorded: Mutex::new(Recorded::default()),
        client: resources.client.clone(),
    });
    let store = match Store::memory().await {
        Ok(s) => s,
        Err(e) => return (vec![format!("state store: {e}")], Vec::new()),
    };
    if let Err(e) = fill(&store, given).await {
        return (vec![e], Vec::new());
    }
    let cx = Context {
        route: Arc::from(route),
        effects: effects.clone(),
        store,
    };
    let (mut outcome, mut error, mut output) = ("ok", None, Vec::new());
    let mut parts: Vec<&'static str> = Vec::new();
    for mut m in messages {
        if let Some(Err(e)) = intake.map(|p| p.assign(&mut m)) {
            (outcome, error) = ("dead-letter", Some(e.message));
            continue;
        }
        (outcome, error) = run_one(pipeline, 0, m, &cx, &mut output).await;
        // The parts a split handed back to this route run on, each on its own; the message
        // that was split is done (`ok`) once it handed them on.
        let handed_on = lock(&effects.recorded).published.iter().any(|(x, k, e)| {
            x == INGRESS_EXCHANGE && k == route && e.header(RESUME_AFTER).is_some()
        });
        if handed_on && outcome == "stopped" {
            outcome = "ok";
        }
        loop {
            let next = {
                let mut rec = lock(&effects.recorded);
                let at = rec.published.iter().position(|(x, k, e)| {
                    x == INGRESS_EXCHANGE && k == route && e.header(RESUME_AFTER).is_some()
                });
                at.map(|i| rec.published.remove(i).2)
            };
            let Some(mut part) = next else { break };
            let start = part
                .header(RESUME_AFTER)
                .and_then(|p| pipeline.index_of(p))
                .map_or(0, |i| i + 1);
            part.headers.remove(RESUME_AFTER);
            let (o, e) = run_one(pipeline, start, part, &cx, &mut output).await;
            parts.push(o);
            if e.is_some() && error.is_none() {
                error = e;
            }
        }
    }
    for (i, want) in expect.cache.iter().enumerate() {
        let got = match cx.store.cache_get(&want.name, &want.key).await {
            Ok(rows) => {
                crate::step::cache::held(&rows).unwrap_or_else(|e| Value::String(e.message))
            }
            Err(e) => Value::String(format!("state store: {e}")),
        };
        compare(
            &format!("cache[{i}] ({}, {})", want.name, want.key),
            &want.holds,
            &got,
            &mut failures,
        );
    }
    if let Some(want) = &expect.audit {
        compare_audit(&cx.store, given.audit.len(), want, &mut failures).await;
    }
    if let Some(want) = &expect.parts
        && want.iter().map(String::as_str).ne(parts.iter().copied())
    {
        failures.push(format!("parts: expected {want:?}, got {parts:?}"));
    }
    let want = expect.outcome.as_deref().unwrap_or("ok");
    if want != outcome {
        failures.push(format!(
            "outcome: expected {want}, got {outcome}{}",
            error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    if let Some(sub) = &expect.error {
        match &error {
            Some(e) if e.contains(sub.as_str()) => {}
            Some(e) => failures.push(format!("error: expected it to contain `{sub}`, got `{e}`")),
            None => failures.push(format!(
                "error: expected a failure containing `{sub}`, got none"
            )),
        }
    }
    let rec = lock(&effects.recorded);
    if let Some(published) = &expect.published {
        if published.len() != rec.published.len() {
            failures.push(format!(
                "published: expected {} message(s), got {}: {:?}",
                published.len(),
                rec.published.len(),
                rec.published
                    .iter()
                    .map(|(x, k, _)| format!("{x}/{k}"))
                    .collect::<Vec<_>>()
            ));
        }
        for (i, (want, (ex, key, e))) in published.iter().zip(rec.published.iter()).enumerate() {
            if (&want.exchange, &want.key) != (ex, key) {
                failures.push(format!(
                    "published[{i}]: expected {}/{}, got {ex}/{key}",
                    want.exchange, want.key
                ));
            }
            if let Some(b) = &want.body {
                compare(
                    &format!("published[{i}].body"),
                    b,
                    &body_json(e),
                    &mut failures,
                );
            }
            for (h, v) in &want.headers {
                if e.header(h) != Some(v.as_str()) {
                    failures.push(format!(
                        "published[{i}].headers.{h}: expected `{v}`, got {:?}",
                        e.header(h)
                    ));
                }
            }
        }
    }
    if let Some(calls) = &expect.calls {
        if calls.len() != rec.calls.len() {
            failures.push(format!(
                "calls: expected {} call(s), got {}: {:?}",
                calls.len(),
                rec.calls.len(),
                rec.calls
                    .iter()
                    .map(|(a, o, _, _)| format!("{a}.{o}"))
                    .collect::<Vec<_>>()
            ));
        }
        for (i, (want, (a, o, e, sent))) in calls.iter().zip(rec.calls.iter()).enumerate() {
            if (&want.adapter, &want.operation) != (a, o) {
                failures.push(format!(
                    "calls[{i}]: expected {}.{}, got {a}.{o}",
                    want.adapter, want.operation
                ));
            }
            if let Some(b) = &want.body {
                compare(&format!("calls[{i}].body"), b, &body_json(e), &mut failures);
            }
            if let Some(r) = &want.request {
                let mut got = sent.path.clone();
                for (j, (k, v)) in sent.query.iter().enumerate() {
                    got.push(if j == 0 { '?' } else { '&' });
                    got.push_str(&format!("{k}={v}"));
                }
                if *r != got {
                    failures.push(format!("calls[{i}].request: expected `{r}`, got `{got}`"));
                }
            }
            if let Some(b) = &want.sent {
                let text = String::from_utf8_lossy(&sent.body).into_owned();
                let got = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
                compare(&format!("calls[{i}].sent"), b, &got, &mut failures);
            }
        }
    }
    if let Some(files) = &expect.files {
        if files.len() != rec.files.len() {
            failures.push(format!(
                "files: expected {} file(s), got {}",
                files.len(),
                rec.files.len()
            ));
        }
        for (i, (want, (dir, name, bytes))) in files.iter().zip(rec.files.iter()).enumerate() {
            if &want.dir != dir {
                failures.push(format!("files[{i}].dir: expected {}, got {dir}", want.dir));
            }
            if let Some(n) = &want.name
                && n != name
            {
                failures.push(format!("files[{i}].name: expected {n}, got {name}"));
            }
            if let Some(b) = &want.body {
                let got = serde_json::from_slice(bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
                compare(&format!("files[{i}].body"), b, &got, &mut failures);
            }
        }
    }
    if let Some(replies) = &expect.replies {
        if replies.len() != rec.replies.len() {
            failures.push(format!(
                "replies: expected {} answer(s), got {}",
                replies.len(),
                rec.replies.len()
            ));
        }
        for (i, (want, e)) in replies.iter().zip(rec.replies.iter()).enumerate() {
            let status = e.header(crate::core::envelope::header::REPLY_STATUS);
            if status != Some(want.status.to_string().as_str()) {
                failures.push(format!(
                    "replies[{i}].status: expected {}, got {}",
                    want.status,
                    status.unwrap_or("none")
                ));
            }
            if let Some(ct) = &want.content_type
                && ct != &e.content_type
            {
                failures.push(format!(
                    "replies[{i}].content_type: expected {ct}, got {}",
                    e.content_type
                ));
            }
            if let Some(b) = &want.body {
                compare(
                    &format!("replies[{i}].body"),
                    b,
                    &body_json(e),
                    &mut failures,
                );
            }
        }
    }
    if let Some(out) = &expect.output {
        let got: Vec<Value> = output.iter().map(body_json).collect();
        compare(
            "output",
            &Value::Array(out.clone()),
            &Value::Array(got),
            &mut failures,
        );
    }
    let requests = rec
        .calls
        .iter()
        .map(|(adapter, operation, _, prepared)| {
            (adapter.clone(), operation.clone(), prepared.clone())
        })
        .collect();
    (failures, requests)
}
