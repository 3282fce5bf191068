//! The HTTP client adapters call through: path templates filled from the message, the
//! correlation headers (`x-correlation-id`, W3C `traceparent`), an `Idempotency-Key` per
//! message, authentication ([`super::auth`]), the adapter's limits ([`super::limit`]) and
//! circuit breaker ([`super::breaker`]), timeouts, SOAP faults ([`super::soap`]), and the
//! classification of failures into transient (retried later) and permanent
//! (dead-lettered). Every call is counted in `knut_adapter_calls_total{adapter,outcome}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::auth::Auth;
use super::breaker::{Admit, Breaker};
use super::limit::Limits;
use super::{Adapter, AdapterSpec, RequestBody, soap};
use crate::codec::{XmlToJsonOptions, xml_to_json};
use crate::core::effects::AdapterResponse;
use crate::core::envelope::{Body, Envelope, is_json_type, is_xml_type};
use crate::core::error::{FailureKind, StepError};
use crate::expr::Program;
use crate::expr::Vars;
use crate::expr::interpolate::Interpolated;
use crate::telemetry::metrics::{self, Outcome};
use crate::telemetry::otel;
use tracing::Instrument as _;

pub use super::answer::{ReadError, classify, read_limited, size};

/// [`classify`] with the adapter's own `transient_statuses` and `permanent_statuses` first.
pub fn classify_for(spec: &AdapterSpec, status: u16) -> Option<FailureKind> {
    if spec.permanent_statuses.contains(&status) {
        Some(FailureKind::Permanent)
    } else if spec.transient_statuses.contains(&status) {
        Some(FailureKind::Transient)
    } else {
        classify(status)
    }
}

/// A request as it would be sent (see [`AdapterClient::prepare`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The HTTP method.
    pub method: reqwest::Method,
    /// Base URL and path.
    pub url: String,
    /// The path after the base URL (placeholders filled and encoded).
    pub path: String,
    /// Query parameters (encoded by the client when sent).
    pub query: Vec<(String, String)>,
    /// The body's content type; `None` for no body.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

const USER_AGENT: &str = concat!("knut/", env!("CARGO_PKG_VERSION"));

struct Operation {
    method: reqwest::Method,
    path: Interpolated,
    query: Vec<(String, Program)>,
    headers: BTreeMap<String, String>,
    body: OpBody,
    response: Option<Program>,
}

/// An operation's request body, compiled.
enum OpBody {
    Message,
    None,
    Jq(Program),
    Xml(Program),
    Template(String),
}

struct Compiled {
    adapter: Adapter,
    operations: BTreeMap<String, Operation>,
    /// The adapter's own client when it has a TLS identity, else the shared one.
    http: Option<reqwest::Client>,
    auth: Auth,
    limits: Limits,
    breaker: Option<Breaker>,
}

/// Calls adapter operations over HTTP.
#[derive(Clone)]
pub struct AdapterClient {
    http: reqwest::Client,
    adapters: Arc<BTreeMap<String, Compiled>>,
    /// The root's templates, for `body: { template: … }`.
    templates: Arc<crate::template::Templates>,
}

fn method(m: crate::core::vocab::HttpMethod) -> reqwest::Method {
    use crate::core::vocab::HttpMethod as H;
    match m {
        H::Get => reqwest::Method::GET,
        H::Post => reqwest::Method::POST,
        H::Put => reqwest::Method::PUT,
        H::Patch => reqwest::Method::PATCH,
        H::Delete => reqwest::Method::DELETE,
    }
}

impl AdapterClient {
    /// Compile the adapters' operations (path placeholders, query expressions).
    pub fn new(adapters: &BTreeMap<String, Adapter>) -> Result<Self, Vec<String>> {
        Self::with_templates(adapters, Arc::new(crate::template::Templates::empty()))
    }

    /// [`AdapterClient::new`] with the root's templates for `body: { template: … }`
    /// (an operation naming a template that is not there is an error here).
    pub fn with_templates(
        adapters: &BTreeMap<String, Adapter>,
        templates: Arc<crate::template::Templates>,
    ) -> Result<Self, Vec<String>> {
        // reqwest is built without a default TLS provider; install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut compiled = BTreeMap::new();
        let mut errors = Vec::new();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| vec![format!("HTTP client: {e}")])?;
        for (name, adapter) in adapters {
            let file = adapter.file.display();
            let own_http = match &adapter.spec.tls {
                None => None,
                Some(tls) => {
                    match tls
                        .apply(reqwest::Client::builder().user_agent(USER_AGENT))
                        .and_then(|b| b.build().map_err(|e| format!("tls: {e}")))
                    {
                        Ok(c) => Some(c),
                        Err(e) => {
                            errors.push(format!("{file}: {e}"));
                            continue;
                        }
                    }
                }
            };
            let auth = match Auth::new(
                &adapter.spec.auth,
                own_http.clone().unwrap_or_else(|| http.clone()),
                adapter.spec.timeout,
            ) {
                Ok(a) => a,
                Err(e) => {
                    errors.push(format!("{file}: {e}"));
                    continue;
                }
            };
            let mut operations = BTreeMap::new();
            for (op, spec) in &adapter.spec.operations {
                let at = format!("{}: operations.{op}", adapter.file.display());
                let path = match Interpolated::parse(&spec.path, &format!("path `{}`", spec.path)) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(format!("{at}.path: {e}"));
                        continue;
                    }
                };
                let response = match spec.response.as_ref().map(|r| Program::compile(&r.jq)) {
                    None => None,
                    Some(Ok(p)) => Some(p),
                    Some(Err(e)) => {
                        errors.push(format!("{at}.response.jq: {e}"));
                        continue;
                    }
                };
                let mut query = Vec::new();
                for (k, src) in &spec.query {
                    match Program::compile(src) {
                        Ok(p) => query.push((k.clone(), p)),
                        Err(e) => errors.push(format!("{at}.query.{k}: {e}")),
                    }
                }
                let body = match &spec.body {
                    RequestBody::Message => OpBody::Message,
                    RequestBody::None => OpBody::None,
                    RequestBody::Jq(src) => match Program::compile(src) {
                        Ok(p) => OpBody::Jq(p),
                        Err(e) => {
                            errors.push(format!("{at}.body.jq: {e}"));
                            continue;
                        }
                    },
                    RequestBody::Xml(src) => match Program::compile(src) {
                        Ok(p) => OpBody::Xml(p),
                        Err(e) => {
                            errors.push(format!("{at}.body.xml: {e}"));
                            continue;
                        }
                    },
                    RequestBody::Template(name) => {
                        if !templates.contains(name) {
                            let known: Vec<&str> = templates.names().collect();
                            errors.push(format!(
                                "{at}.body.template: unknown template `{name}`: there is no \
                                 transforms/{name} (known: {})",
                                known.join(", ")
                            ));
                            continue;
                        }
                        OpBody::Template(name.clone())
                    }
                };
                operations.insert(
                    op.clone(),
                    Operation {
                        method: method(spec.method),
                        path,
                        query,
                        headers: spec.headers.clone(),
                        body,
                        response,
                    },
                );
            }
            compiled.insert(
                name.clone(),
                Compiled {
                    adapter: adapter.clone(),
                    operations,
                    http: own_http,
                    auth,
                    limits: Limits::new(adapter.spec.concurrency, adapter.spec.rate_limit),
                    breaker: adapter
                        .spec
                        .circuit_breaker
                        .clone()
                        .map(|b| Breaker::new(name, b)),
                },
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AdapterClient {
            templates,
            http,
            adapters: Arc::new(compiled),
        })
    }

    /// Does the adapter have this operation? Err names what is known instead.
    pub fn lookup(&self, adapter: &str, operation: &str) -> Result<(), LookupMiss> {
        let a = self
            .adapters
            .get(adapter)
            .ok_or_else(|| LookupMiss::NoAdapter {
                known: self.adapters.keys().cloned().collect(),
            })?;
        if a.operations.contains_key(operation) {
            Ok(())
        } else {
            Err(LookupMiss::NoOperation {
                known: a.operations.keys().cloned().collect(),
            })
        }
    }

    /// Names of the adapters.
    pub fn names(&self) -> Vec<String> {
        self.adapters.keys().cloned().collect()
    }

    /// Names of an adapter's operations (`None` for an unknown adapter).
    pub fn operations(&self, adapter: &str) -> Option<Vec<String>> {
        self.adapters
            .get(adapter)
            .map(|a| a.operations.keys().cloned().collect())
    }

    /// Call `adapter.operation` with `message`. A JSON answer is parsed, an XML answer
    /// converted to JSON (default rules); anything else stays bytes.
    pub async fn call(
        &self,
        adapter: &str,
        operation: &str,
        message: &Envelope,
    ) -> Result<AdapterResponse, StepError> {
        let what = format!("{adapter}.{operation}");
        let (raw, headers) = self.call_with_headers(adapter, operation, message).await?;
        let decoded = decode(&what, raw)?;
        let Some(program) = self
            .adapters
            .get(adapter)
            .and_then(|a| a.operations.get(operation))
            .and_then(|op| op.response.as_ref())
        else {
            return Ok(decoded);
        };
        // The operation's `response` program maps the answer to what the route sees.
        let status = decoded.status;
        let body = match decoded.body {
            Body::Json(v) => v,
            Body::Bytes(b) if b.is_empty() => Value::Null,
            Body::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        };
        let input = serde_json::json!({
            "status": status,
            "headers": headers,
            "body": body,
        });
        let mapped = program
            .first_owned(input, &Vars::of(message))
            .map_err(|e| StepError::permanent(format!("{what}: response: {e}")))?
            .ok_or_else(|| {
                StepError::permanent(format!("{what}: the response program gave no value"))
            })?;
        Ok(AdapterResponse {
            status,
            content_type: crate::core::envelope::JSON.to_string(),
            body: Body::Json(mapped),
        })
    }

    /// Call `adapter.operation` with `message` and keep the answer as it came: its bytes and
    /// content type (a poll's `fetch` hands an OeP export on in its own encoding, for the
    /// route's `xml_to_json` to read). Failures are classified as for [`AdapterClient::call`].
    pub async fn call_raw(
        &self,
        adapter: &str,
        operation: &str,
        message: &Envelope,
    ) -> Result<AdapterResponse, StepError> {
        self.call_with_headers(adapter, operation, message)
            .await
            .map(|(response, _)| response)
    }

    /// [`AdapterClient::call_raw`] with the answer's headers (lower-case names; the
    /// operation's `response` program reads them, e.g. a `Location`). With traces on, the
    /// call is a span of its own, whose context the system gets as `traceparent`; off, the
    /// `traceparent` is the message's ([`Envelope::traceparent`]).
    async fn call_with_headers(
        &self,
        adapter: &str,
        operation: &str,
        message: &Envelope,
    ) -> Result<(AdapterResponse, serde_json::Map<String, Value>), StepError> {
        let span = otel::adapter_span(adapter, operation, message.attempt);
        let traceparent = otel::traceparent_of(&span).unwrap_or_else(|| message.traceparent());
        let result = self
            .send_call(adapter, operation, message, traceparent)
            .instrument(span.clone())
            .await;
        otel::step_outcome(
            &span,
            match &result {
                Ok(_) => "ok",
                Err(e) if e.kind == FailureKind::Transient => "transient",
                Err(_) => "permanent",
            },
            result.is_err(),
        );
        result
    }

    /// One call of [`AdapterClient::call_with_headers`], sending `traceparent`.
    async fn send_call(
        &self,
        adapter: &str,
        operation: &str,
        message: &Envelope,
        traceparent: String,
    ) -> Result<(AdapterResponse, serde_json::Map<String, Value>), StepError> {
        let (a, op, what) = self.operation(adapter, operation)?;

        let prepared = self.prepare_op(a, op, &what, message)?;
        let http = a.http.as_ref().unwrap_or(&self.http);
        let mut req = http
            .request(prepared.method.clone(), &prepared.url)
            .timeout(a.adapter.spec.timeout)
            .header("x-correlation-id", message.correlation_id.to_string())
            .header(otel::TRACEPARENT, traceparent)
            .header("idempotency-key", message.id.to_string());
        if !prepared.query.is_empty() {
            req = req.query(&prepared.query);
        }
        for (k, val) in a.adapter.spec.headers.iter().chain(op.headers.iter()) {
            req = req.header(k, val);
        }
        if let Some(ct) = &prepared.content_type {
            req = req.header("content-type", ct).body(prepared.body.clone());
        }
        // The adapter's own limits first: waiting for a turn here is no failure of the
        // system, so a time-out waiting never counts toward the circuit breaker.
        let turn = a.limits.turn(&what, a.adapter.spec.timeout).await;
        let _turn = match turn {
            Ok(t) => t,
            Err(e) => {
                metrics::adapter_call(adapter, Outcome::Transient, std::time::Duration::ZERO);
                return Err(e);
            }
        };
        if let Some(breaker) = &a.breaker
            && let Admit::Reject(left) = breaker.admit()
        {
            metrics::adapter_call(adapter, Outcome::Transient, std::time::Duration::ZERO);
            return Err(StepError::transient(format!(
                "{what}: the circuit is open (the system failed repeatedly); next probe in {}s",
                left.as_secs().max(1)
            )));
        }
        let started = Instant::now();
        // Only an operation with a `response` program reads the answer's headers.
        let result = self.exchange(a, req, &what, op.response.is_some()).await;
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(e) if e.kind == FailureKind::Transient => Outcome::Transient,
            Err(_) => Outcome::Permanent,
        };
        if let Some(breaker) = &a.breaker {
            match outcome {
                Outcome::Transient => breaker.failure(),
                // A refusal (4xx, a SOAP fault) means the system is up.
                Outcome::Success | Outcome::Permanent => breaker.success(),
            }
        }
        metrics::adapter_call(adapter, outcome, started.elapsed());
        result
    }

    /// The adapter and operation named, with `adapter.operation` for messages.
    fn operation(
        &self,
        adapter: &str,
        operation: &str,
    ) -> Result<(&Compiled, &Operation, String), StepError> {
        let what = format!("{adapter}.{operation}");
        let a = self
            .adapters
            .get(adapter)
            .ok_or_else(|| StepError::permanent(format!("no adapter `{adapter}`")))?;
        let op = a
            .operations
            .get(operation)
            .ok_or_else(|| StepError::permanent(format!("no operation `{what}`")))?;
        Ok((a, op, what))
    }

    /// The request `adapter.operation` would send for `message`, without sending it: the
    /// URL (path placeholders filled and encoded), the query, and the body with its content
    /// type. Route tests use it to check what a system would get.
    pub fn prepare(
        &self,
        adapter: &str,
        operation: &str,
        message: &Envelope,
    ) -> Result<Prepared, StepError> {
        let (a, op, what) = self.operation(adapter, operation)?;
        self.prepare_op(a, op, &what, message)
    }

    fn prepare_op(
        &self,
        a: &Compiled,
        op: &Operation,
        what: &str,
        message: &Envelope,
    ) -> Result<Prepared, StepError> {
        let needs_json = op.path.has_placeholders()
            || !op.query.is_empty()
            || matches!(
                op.body,
                OpBody::Jq(_) | OpBody::Xml(_) | OpBody::Template(_)
            );
        let body_json = if needs_json {
            Some(message.json_body()?)
        } else {
            None
        };
        let v = Vars::of(message);
        let mut url = a.adapter.base_url.clone();
        let path = op
            .path
            .fill(body_json.as_deref().unwrap_or(&Value::Null), &v, urlencode)
            .map_err(|e| StepError::permanent(format!("{what}: path: {e}")))?;
        url.push_str(&path);
        let mut query = Vec::with_capacity(op.query.len());
        for (k, p) in &op.query {
            let input = body_json.as_deref().unwrap_or(&Value::Null);
            if let Some(value) = p
                .first(input, &v)
                .map_err(|e| StepError::permanent(format!("{what}: query `{k}`: {e}")))?
                && !value.is_null()
            {
                query.push((k.clone(), crate::core::value_to_string(&value)));
            }
        }

        let (content_type, body) = match &op.body {
            OpBody::Message => (Some(message.content_type.clone()), message.body.to_bytes()),
            OpBody::None => (None, Bytes::new()),
            OpBody::Jq(p) | OpBody::Xml(p) => {
                let input = body_json.as_deref().unwrap_or(&Value::Null);
                let value = p
                    .first(input, &v)
                    .map_err(|e| StepError::permanent(format!("{what}: body: {e}")))?
                    .ok_or_else(|| {
                        StepError::permanent(format!("{what}: the body program gave no value"))
                    })?;
                let (bytes, content_type) = if matches!(op.body, OpBody::Xml(_)) {
                    let xml = crate::codec::json_to_xml(&value, None)
                        .map_err(|e| StepError::permanent(format!("{what}: body as XML: {e}")))?;
                    (xml, "text/xml; charset=UTF-8")
                } else {
                    let json = serde_json::to_vec(&value)
                        .map_err(|e| StepError::permanent(format!("{what}: body: {e}")))?;
                    (json, "application/json")
                };
                (Some(content_type.to_string()), Bytes::from(bytes))
            }
            OpBody::Template(name) => {
                let input = body_json.as_deref().unwrap_or(&Value::Null);
                let context = serde_json::json!({"body": input, "headers": message.headers_json()});
                let text = self
                    .templates
                    .render(name, &context)
                    .map_err(|e| StepError::permanent(format!("{what}: body: {e}")))?;
                let content_type = if name.ends_with(".json.tera") {
                    "application/json"
                } else {
                    "text/xml; charset=UTF-8"
                };
                (Some(content_type.to_string()), Bytes::from(text))
            }
        };
        Ok(Prepared {
            method: op.method.clone(),
            url,
            path,
            query,
            content_type,
            body,
        })
    }

    /// Send with the adapter's credentials (once more with a fresh OAuth2 token after a
    /// 401), read and classify the answer; its headers too when `keep_headers` (else an
    /// empty map). The caller holds the adapter's turn.
    async fn exchange(
        &self,
        a: &Compiled,
        req: reqwest::RequestBuilder,
        what: &str,
        keep_headers: bool,
    ) -> Result<(AdapterResponse, serde_json::Map<String, Value>), StepError> {
        let resp = match &a.auth {
            Auth::OAuth2(tokens) => {
                let again = req.try_clone();
                let token = tokens.token(what).await?;
                let resp = send(req.bearer_auth(&token), what).await?;
                match again {
                    Some(again) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
                        tracing::info!(call = %what, "the system refused the OAuth2 token; fetching a new one");
                        tokens.invalidate(&token).await;
                        let token = tokens.token(what).await?;
                        send(again.bearer_auth(&token), what).await?
                    }
                    _ => resp,
                }
            }
            auth => send(auth.apply(req, what).await?, what).await?,
        };
        let status = resp.status().as_u16();
        otel::adapter_status(status);
        let headers: serde_json::Map<String, Value> = if keep_headers {
            resp.headers()
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_string(), Value::String(v.to_string())))
                })
                .collect()
        } else {
            serde_json::Map::new()
        };
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let limit = a.adapter.spec.max_response.0;
        let bytes = read_limited(resp, limit).await.map_err(|e| match e {
            ReadError::TooLarge => StepError::permanent(format!(
                "{what}: the answer is larger than max_response ({}); it was not read — raise \
                 `max_response` in {} if the system's answers are this large",
                size(limit),
                a.adapter.file.display()
            )),
            ReadError::Cut => StepError::transient(format!("{what}: the response was cut off")),
        })?;
        if is_xml_type(&content_type)
            && bytes.windows(5).any(|w| w == b"Fault")
            && let Ok(answer) = xml_to_json(&bytes, &XmlToJsonOptions::default())
            && let Some(fault) = soap::fault(&answer)
        {
            return Err(StepError {
                kind: soap::kind(status),
                message: format!(
                    "{what} answered a SOAP fault (HTTP {status}, {}): {}",
                    fault.code, fault.reason
                ),
            });
        }
        if let Some(kind) = classify_for(&a.adapter.spec, status) {
            return Err(StepError {
                kind,
                message: format!("{what} answered HTTP {status}"),
            });
        }
        Ok((
            AdapterResponse {
                status,
                content_type,
                body: Body::Bytes(bytes),
            },
            headers,
        ))
    }
}

/// Send a request; a failure to get an answer is transient.
async fn send(req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response, StepError> {
    req.send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "request failed"
        };
        StepError::transient(format!("{what}: {why}"))
    })
}

/// An answer's body as the steps read it: JSON parsed, XML converted to JSON (default
/// rules), anything else (and an empty body) as bytes.
fn decode(what: &str, response: AdapterResponse) -> Result<AdapterResponse, StepError> {
    let AdapterResponse {
        status,
        content_type,
        body,
    } = response;
    let bytes = match body {
        Body::Bytes(b) => b,
        json @ Body::Json(_) => {
            return Ok(AdapterResponse {
                status,
                content_type,
                body: json,
            });
        }
    };
    let body = if bytes.is_empty() {
        Body::Bytes(bytes)
    } else if is_json_type(&content_type) {
        Body::Json(serde_json::from_slice(&bytes).map_err(|e| {
            StepError::permanent(format!(
                "{what}: the response is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?)
    } else if is_xml_type(&content_type) {
        Body::Json(
            xml_to_json(&bytes, &XmlToJsonOptions::default()).map_err(|e| {
                StepError::permanent(format!("{what}: the response is not acceptable XML: {e}"))
            })?,
        )
    } else {
        Body::Bytes(bytes)
    };
    Ok(AdapterResponse {
        status,
        content_type,
        body,
    })
}

/// Why an adapter operation reference does not resolve.
#[derive(Debug, Clone)]
pub enum LookupMiss {
    /// No such adapter; these exist.
    NoAdapter {
        /// Known adapters.
        known: Vec<String>,
    },
    /// The adapter has no such operation; it has these.
    NoOperation {
        /// Known operations.
        known: Vec<String>,
    },
}

/// Percent-encode a path segment value (RFC 3986 unreserved characters stay).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn classification() {
        assert_eq!(classify(200), None);
        assert_eq!(classify(204), None);
        assert_eq!(classify(503), Some(FailureKind::Transient));
        assert_eq!(classify(429), Some(FailureKind::Transient));
        assert_eq!(classify(408), Some(FailureKind::Transient));
        assert_eq!(classify(400), Some(FailureKind::Permanent));
        assert_eq!(classify(404), Some(FailureKind::Permanent));
        assert_eq!(classify(422), Some(FailureKind::Permanent));
    }

    use std::sync::{Arc as StdArc, Mutex};
    use std::time::Duration;

    use axum::http::HeaderMap;

    use crate::adapter::{AdapterSpec, OperationSpec};
    use crate::core::vocab::HttpMethod;

    /// What the fake system saw: (method, path and query, headers, body).
    type Seen = StdArc<Mutex<Vec<(String, String, HeaderMap, String)>>>;

    /// A local system: `/ok/...` answers JSON, `/xml` XML, `/status/{n}` that status,
    /// `/slow` after 2 s.
    async fn system() -> (String, Seen) {
        use axum::extract::{Path, State};
        use axum::routing::any;
        let seen: Seen = Default::default();
        let record =
            |st: Seen, m: axum::http::Method, uri: axum::http::Uri, h: HeaderMap, b: String| {
                st.lock()
                    .unwrap()
                    .push((m.to_string(), uri.to_string(), h, b));
            };
        let app =
            axum::Router::new()
                .route(
                    "/ok/{*rest}",
                    any(
                        move |State(st): State<Seen>, m, uri, h, b: String| async move {
                            record(st, m, uri, h, b);
                            (
                                [("content-type", "application/json")],
                                r#"{"id":"e-1","namn":"Åsa"}"#,
                            )
                        },
                    ),
                )
                .route(
                    "/xml",
                    any(|| async {
                        (
                            [("content-type", "text/xml; charset=UTF-8")],
                            "<a><b>Ö</b></a>",
                        )
                    }),
                )
                .route(
                    "/status/{n}",
                    any(|Path(n): Path<u16>| async move {
                        axum::http::StatusCode::from_u16(n).unwrap()
                    }),
                )
                .route(
                    "/created",
                    any(|| async {
                        (
                            axum::http::StatusCode::CREATED,
                            [("location", "/2281/SBK_SCHOOL/errands/17")],
                        )
                    }),
                )
                .route(
                    "/slow",
                    any(|| async {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        "late"
                    }),
                )
                .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }

    fn client(base: &str) -> AdapterClient {
        let op = |method, path: &str| OperationSpec {
            method,
            path: path.into(),
            query: Default::default(),
            headers: Default::default(),
            body: Default::default(),
            response: None,
        };
        let mut operations = BTreeMap::new();
        let mut create = op(HttpMethod::Post, "/ok/2281/errands/{.errand.id}");
        create.query.insert("unit".into(), ".unit".into());
        create.headers.insert("x-op".into(), "create".into());
        operations.insert("create".into(), create);
        operations.insert("xml".into(), op(HttpMethod::Get, "/xml"));
        let mut mapped = op(HttpMethod::Post, "/ok/placements");
        mapped.body = RequestBody::Jq("{child: {civicNo: .student}, hours: (.hours * 2)}".into());
        operations.insert("mapped".into(), mapped);
        operations.insert("unavailable".into(), op(HttpMethod::Get, "/status/503"));
        operations.insert("throttled".into(), op(HttpMethod::Get, "/status/429"));
        operations.insert("refused".into(), op(HttpMethod::Get, "/status/422"));
        operations.insert("slow".into(), op(HttpMethod::Get, "/slow"));
        let mut created = op(HttpMethod::Post, "/created");
        created.response = Some(crate::adapter::ResponseSpec {
            jq: "{errandId: (.headers.location | split(\"/\") | last | tonumber), status, body}"
                .into(),
        });
        operations.insert("created".into(), created);
        let mut unmappable = op(HttpMethod::Get, "/ok/x");
        unmappable.response = Some(crate::adapter::ResponseSpec {
            jq: ".headers.location | tonumber".into(),
        });
        operations.insert("unmappable".into(), unmappable);
        let spec = AdapterSpec {
            adapter: "sys".into(),
            description: None,
            base_url: base.into(),
            timeout: Duration::from_millis(300),
            headers: [("accept".to_string(), "application/json".to_string())].into(),
            operations,
            ..Default::default()
        };
        let adapter = crate::adapter::Adapter {
            spec,
            file: "adapters/sys.yaml".into(),
            base_url: base.into(),
        };
        AdapterClient::new(&[("sys".to_string(), adapter)].into()).unwrap()
    }

    #[tokio::test]
    async fn calls_carry_correlation_and_fill_templates() {
        let (base, seen) = system().await;
        let c = client(&base);
        let m = Envelope::json(serde_json::json!({"errand": {"id": "a b/1"}, "unit": "SU 7"}));
        let r = c.call("sys", "create", &m).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            Body::Json(serde_json::json!({"id": "e-1", "namn": "Åsa"}))
        );
        let seen = seen.lock().unwrap();
        let (method, uri, h, body) = &seen[0];
        assert_eq!(method, "POST");
        assert_eq!(uri, "/ok/2281/errands/a%20b%2F1?unit=SU+7");
        assert_eq!(h["x-correlation-id"], m.correlation_id.to_string().as_str());
        assert_eq!(h["traceparent"], m.traceparent().as_str());
        assert_eq!(h["idempotency-key"], m.id.to_string().as_str());
        assert_eq!(h["x-op"], "create");
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(serde_json::from_str::<Value>(body).unwrap()["unit"], "SU 7");
    }

    #[tokio::test]
    async fn a_response_program_maps_status_headers_and_body() {
        let (base, _) = system().await;
        let c = client(&base);
        let m = Envelope::json(serde_json::json!({"caseType": "LEAVE"}));
        let r = c.call("sys", "created", &m).await.unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(
            r.body,
            Body::Json(serde_json::json!({"errandId": 17, "status": 201, "body": null}))
        );
        // Without a Location the program fails: permanent, naming the operation.
        let e = c.call("sys", "unmappable", &m).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(
            e.message.starts_with("sys.unmappable: response:"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_jq_body_maps_the_message_to_the_systems_shape() {
        let (base, seen) = system().await;
        let c = client(&base);
        let m = Envelope::json(serde_json::json!({"student": "x", "hours": 20, "other": 1}));
        c.call("sys", "mapped", &m).await.unwrap();
        let (_, uri, h, body) = seen.lock().unwrap()[0].clone();
        assert_eq!(uri, "/ok/placements");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::json!({"child": {"civicNo": "x"}, "hours": 40})
        );
        let bad = c
            .call(
                "sys",
                "mapped",
                &Envelope::json(serde_json::json!({"hours": {"a": 1}})),
            )
            .await
            .unwrap_err();
        assert_eq!(bad.kind, FailureKind::Permanent, "{}", bad.message);
        let broken = OperationSpec {
            method: HttpMethod::Post,
            path: "/x".into(),
            query: Default::default(),
            headers: Default::default(),
            body: RequestBody::Jq("{child: ".into()),
            response: None,
        };
        let adapter = crate::adapter::Adapter {
            spec: AdapterSpec {
                adapter: "sys".into(),
                description: None,
                base_url: base.clone(),
                timeout: Duration::from_secs(1),
                headers: Default::default(),
                operations: [("broken".to_string(), broken)].into(),
                ..Default::default()
            },
            file: "adapters/sys.yaml".into(),
            base_url: base,
        };
        let errors = AdapterClient::new(&[("sys".to_string(), adapter)].into())
            .err()
            .expect("a broken body program is refused");
        assert!(
            errors[0].contains("operations.broken.body.jq"),
            "{errors:?}"
        );
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let (base, _) = system().await;
        let c = client(&base);
        let m = Envelope::json(serde_json::json!({}));
        let kind = |r: Result<AdapterResponse, StepError>| r.unwrap_err().kind;
        assert_eq!(
            kind(c.call("sys", "unavailable", &m).await),
            FailureKind::Transient
        );
        assert_eq!(
            kind(c.call("sys", "throttled", &m).await),
            FailureKind::Transient
        );
        assert_eq!(
            kind(c.call("sys", "refused", &m).await),
            FailureKind::Permanent
        );
        let slow = c.call("sys", "slow", &m).await.unwrap_err();
        assert_eq!(slow.kind, FailureKind::Transient);
        assert!(slow.message.contains("timed out"), "{}", slow.message);
        let gone = client("http://127.0.0.1:9")
            .call("sys", "xml", &m)
            .await
            .unwrap_err();
        assert_eq!(gone.kind, FailureKind::Transient);
        let missing = c
            .call("sys", "create", &Envelope::json(serde_json::json!({})))
            .await
            .unwrap_err();
        assert_eq!(missing.kind, FailureKind::Permanent, "{}", missing.message);
    }

    #[tokio::test]
    async fn xml_responses_become_json() {
        let (base, _) = system().await;
        let r = client(&base)
            .call("sys", "xml", &Envelope::json(serde_json::json!({})))
            .await
            .unwrap();
        assert_eq!(r.body, Body::Json(serde_json::json!({"a": {"b": "Ö"}})));
    }

    #[tokio::test]
    async fn raw_calls_keep_the_answer_as_it_came() {
        let (base, _) = system().await;
        let c = client(&base);
        let m = Envelope::json(serde_json::json!({}));
        let r = c.call_raw("sys", "xml", &m).await.unwrap();
        assert_eq!(r.content_type, "text/xml; charset=UTF-8");
        assert_eq!(r.body, Body::Bytes(Bytes::from("<a><b>Ö</b></a>")));
        let e = c.call_raw("sys", "unavailable", &m).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Transient);
    }

    /// A system behind OAuth2: `/token` issues `t1`, `t2`, … (counting, with the given
    /// lifetime, after a short pause so concurrent first calls overlap); `/api` answers 200
    /// to the newest token, 401 to any other.
    async fn oauth_system(lifetime_s: f64) -> (String, StdArc<Mutex<(u32, u32)>>) {
        use axum::extract::State;
        use axum::routing::{get, post};
        // (tokens issued, api calls)
        let st: StdArc<Mutex<(u32, u32)>> = Default::default();
        let app = axum::Router::new()
            .route(
                "/token",
                post(
                    move |State(st): State<StdArc<Mutex<(u32, u32)>>>,
                          h: HeaderMap,
                          form: String| async move {
                        assert!(form.contains("grant_type=client_credentials"), "{form}");
                        assert!(form.contains("scope=school"), "{form}");
                        // client_secret_basic: knut:s3cret
                        assert_eq!(h["authorization"], "Basic a251dDpzM2NyZXQ=");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let n = {
                            let mut g = st.lock().unwrap();
                            g.0 += 1;
                            g.0
                        };
                        axum::Json(serde_json::json!({
                            "access_token": format!("t{n}"), "token_type": "Bearer",
                            "expires_in": lifetime_s
                        }))
                    },
                ),
            )
            .route(
                "/api",
                get(
                    |State(st): State<StdArc<Mutex<(u32, u32)>>>, h: HeaderMap| async move {
                        let mut g = st.lock().unwrap();
                        g.1 += 1;
                        let want = format!("Bearer t{}", g.0);
                        if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&want) {
                            axum::http::StatusCode::OK
                        } else {
                            axum::http::StatusCode::UNAUTHORIZED
                        }
                    },
                ),
            )
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), st)
    }

    fn adapter_with(base: &str, extra: AdapterSpec) -> AdapterClient {
        let mut operations = BTreeMap::new();
        operations.insert(
            "get".to_string(),
            OperationSpec {
                method: HttpMethod::Get,
                path: "/api".into(),
                query: Default::default(),
                headers: Default::default(),
                body: RequestBody::None,
                response: None,
            },
        );
        let spec = AdapterSpec {
            adapter: "sys".into(),
            base_url: base.into(),
            timeout: Duration::from_secs(2),
            operations,
            ..extra
        };
        let adapter = crate::adapter::Adapter {
            spec,
            file: "adapters/sys.yaml".into(),
            base_url: base.into(),
        };
        AdapterClient::new(&[("sys".to_string(), adapter)].into()).unwrap()
    }

    #[tokio::test]
    async fn an_answer_over_max_response_is_refused_without_reading_it_all() {
        use axum::body::Body as AxumBody;
        use axum::routing::get;
        const LIMIT: usize = 64 * 1024;
        const CHUNK: usize = 16 * 1024;
        const JSON: [(&str, &str); 1] = [("content-type", "application/json")];
        let chunks = |parts: Vec<&'static [u8]>| {
            AxumBody::from_stream(futures::stream::iter(
                parts
                    .into_iter()
                    .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
            ))
        };
        let app = axum::Router::new()
            // Endless, without a Content-Length: only a reader that stops ever returns.
            .route(
                "/endless",
                get(|| async {
                    let digits = futures::stream::repeat_with(|| {
                        Ok::<_, std::io::Error>(Bytes::from(vec![b'1'; CHUNK]))
                    });
                    (JSON, AxumBody::from_stream(digits))
                }),
            )
            // A Content-Length over the limit.
            .route("/declared", get(|| async { (JSON, "1".repeat(4 * LIMIT)) }))
            // Exactly the limit.
            .route(
                "/exact",
                get(|| async { (JSON, format!("\"{}\"", "a".repeat(LIMIT - 2))) }),
            )
            // Within it, in several chunks.
            .route(
                "/chunked",
                get(move || async move { (JSON, chunks(vec![b"[1,", b"2,", b"3]"])) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let operations = ["endless", "declared", "exact", "chunked"]
            .into_iter()
            .map(|name| {
                let op = OperationSpec {
                    method: HttpMethod::Get,
                    path: format!("/{name}"),
                    query: Default::default(),
                    headers: Default::default(),
                    body: RequestBody::None,
                    response: None,
                };
                (name.to_string(), op)
            })
            .collect();
        let timeout = Duration::from_secs(10);
        let spec = AdapterSpec {
            adapter: "sys".into(),
            base_url: base.clone(),
            timeout,
            max_response: crate::core::vocab::ByteSize(LIMIT),
            operations,
            ..Default::default()
        };
        let adapter = crate::adapter::Adapter {
            spec,
            file: "adapters/sys.yaml".into(),
            base_url: base,
        };
        let c = AdapterClient::new(&[("sys".to_string(), adapter)].into()).unwrap();
        let m = Envelope::json(serde_json::json!({}));

        for op in ["endless", "declared"] {
            let started = Instant::now();
            let e = c.call("sys", op, &m).await.unwrap_err();
            let took = started.elapsed();
            assert_eq!(e.kind, FailureKind::Permanent, "{}", e.message);
            assert!(
                e.message.starts_with(&format!("sys.{op}: ")),
                "names the adapter and operation: {}",
                e.message
            );
            assert!(e.message.contains("max_response (64KiB)"), "{}", e.message);
            assert!(e.message.contains("adapters/sys.yaml"), "{}", e.message);
            assert!(!e.message.contains("111"), "never the body: {}", e.message);
            // Refused as soon as the limit was passed, not when the call timed out.
            assert!(took < timeout / 2, "{op} took {took:?}");
        }
        let exact = c.call("sys", "exact", &m).await.expect("exactly the limit");
        assert!(matches!(exact.body, Body::Json(Value::String(ref s)) if s.len() == LIMIT - 2));
        let chunked = c.call("sys", "chunked", &m).await.expect("chunked");
        assert!(matches!(chunked.body, Body::Json(ref v) if *v == serde_json::json!([1, 2, 3])));
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size(16 * 1024 * 1024), "16MiB");
        assert_eq!(size(64 * 1024), "64KiB");
        assert_eq!(size(1000), "1000 bytes");
    }

    fn oauth2(base: &str, secret_file: &std::path::Path) -> AdapterSpec {
        let auth: crate::adapter::auth::AuthSpec = serde_json::from_value(serde_json::json!({
            "oauth2": {"token_url": format!("{base}/token"), "client_id": "knut",
                       "client_secret": {"file": secret_file}, "scope": "school"}
        }))
        .unwrap();
        AdapterSpec {
            auth,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn oauth2_tokens_are_cached_shared_refreshed_and_renewed_after_401() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let m = Envelope::json(serde_json::json!({}));

        // Concurrent first calls share one fetch; later calls reuse the token.
        let (base, st) = oauth_system(3600.0).await;
        let c = adapter_with(&base, oauth2(&base, &secret));
        let calls: Vec<_> = (0..8).map(|_| c.call("sys", "get", &m)).collect();
        for r in futures::future::join_all(calls).await {
            r.unwrap();
        }
        for _ in 0..5 {
            c.call("sys", "get", &m).await.unwrap();
        }
        assert_eq!(*st.lock().unwrap(), (1, 13), "one token for 13 calls");

        // The system stops accepting the token (it was revoked): one new token, same call.
        st.lock().unwrap().0 += 1; // the system now wants t2; the cache holds t1
        c.call("sys", "get", &m).await.unwrap();
        // The token endpoint issued t3 after the 401 (t2 was "taken" above), and the API
        // wanted the newest: 401, fetch, 200.
        let (tokens, api) = *st.lock().unwrap();
        assert_eq!(
            (tokens, api),
            (3, 15),
            "a 401 drops the token and retries once"
        );

        // A token is refreshed before it expires (lifetime 1 s → refreshed after 0.9 s).
        let (base, st) = oauth_system(1.0).await;
        let c = adapter_with(&base, oauth2(&base, &secret));
        c.call("sys", "get", &m).await.unwrap();
        c.call("sys", "get", &m).await.unwrap();
        assert_eq!(st.lock().unwrap().0, 1);
        tokio::time::sleep(Duration::from_millis(950)).await;
        c.call("sys", "get", &m).await.unwrap();
        assert_eq!(
            *st.lock().unwrap(),
            (2, 3),
            "refreshed before expiry, no 401"
        );
    }

    #[tokio::test]
    async fn api_key_and_basic_credentials_reach_the_system() {
        let (base, seen) = system().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "k-123").unwrap();
        let with_auth = |auth: serde_json::Value| {
            let mut ops = BTreeMap::new();
            ops.insert(
                "get".to_string(),
                OperationSpec {
                    method: HttpMethod::Get,
                    path: "/ok/x".into(),
                    query: Default::default(),
                    headers: Default::default(),
                    body: RequestBody::None,
                    response: None,
                },
            );
            let spec = AdapterSpec {
                adapter: "sys".into(),
                base_url: base.clone(),
                auth: serde_json::from_value(auth).unwrap(),
                operations: ops,
                ..Default::default()
            };
            let adapter = crate::adapter::Adapter {
                spec,
                file: "adapters/sys.yaml".into(),
                base_url: base.clone(),
            };
            AdapterClient::new(&[("sys".to_string(), adapter)].into())
        };
        let m = Envelope::json(serde_json::json!({}));
        let key = with_auth(serde_json::json!({"api_key": {"header": "x-gateway-key",
            "value": {"file": dir.path().join("key")}}}))
        .unwrap();
        key.call("sys", "get", &m).await.unwrap();
        // PATH is always set: a stand-in for an environment secret.
        let path = std::env::var("PATH").unwrap();
        let basic = with_auth(serde_json::json!({"basic": {"username": "knut",
            "password": {"env": "PATH"}}}))
        .unwrap();
        basic.call("sys", "get", &m).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].2["x-gateway-key"], "k-123");
        use base64::Engine;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("knut:{path}"))
        );
        assert_eq!(seen[1].2["authorization"], want.as_str());
        // A missing variable is a start-up error naming it, not a failing call later.
        let err = with_auth(serde_json::json!({"basic": {"username": "knut",
            "password": {"env": "KNUT_TEST_NO_SUCH_SECRET"}}}))
        .err()
        .expect("refused");
        assert!(
            err[0].contains("adapters/sys.yaml") && err[0].contains("KNUT_TEST_NO_SUCH_SECRET"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_circuit_opens_fails_fast_probes_and_closes() {
        use axum::extract::State;
        use axum::routing::get;
        // Fails while `down` is set; counts the calls that reach it.
        let st: StdArc<Mutex<(bool, u32)>> = StdArc::new(Mutex::new((true, 0)));
        let app = axum::Router::new()
            .route(
                "/api",
                get(|State(st): State<StdArc<Mutex<(bool, u32)>>>| async move {
                    let mut g = st.lock().unwrap();
                    g.1 += 1;
                    if g.0 {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }),
            )
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = adapter_with(
            &base,
            AdapterSpec {
                circuit_breaker: Some(crate::adapter::breaker::BreakerSpec {
                    failures: 3,
                    open_for: Duration::from_millis(300),
                }),
                ..Default::default()
            },
        );
        let state = || c.adapters["sys"].breaker.as_ref().unwrap().state();
        let m = Envelope::json(serde_json::json!({}));
        for _ in 0..3 {
            let e = c.call("sys", "get", &m).await.unwrap_err();
            assert!(e.message.contains("HTTP 503"), "{}", e.message);
        }
        use crate::adapter::breaker::State as S;
        assert_eq!(state(), S::Open);
        for _ in 0..10 {
            let e = c.call("sys", "get", &m).await.unwrap_err();
            assert_eq!(e.kind, FailureKind::Transient);
            assert!(e.message.contains("circuit is open"), "{}", e.message);
        }
        assert_eq!(
            st.lock().unwrap().1,
            3,
            "an open circuit does not call the system"
        );
        // The probe fails: open again.
        tokio::time::sleep(Duration::from_millis(350)).await;
        c.call("sys", "get", &m).await.unwrap_err();
        assert_eq!(st.lock().unwrap().1, 4);
        assert_eq!(state(), S::Open);
        // The system recovers: the next probe closes the circuit.
        st.lock().unwrap().0 = false;
        tokio::time::sleep(Duration::from_millis(350)).await;
        c.call("sys", "get", &m).await.unwrap();
        assert_eq!(state(), S::Closed);
        c.call("sys", "get", &m).await.unwrap();
        assert_eq!(st.lock().unwrap().1, 6);
    }

    /// A backlog waiting for the adapter's own concurrency limit times out here, not at the
    /// system: those time-outs never open the circuit of a healthy system.
    #[tokio::test]
    async fn waiting_for_a_turn_never_opens_the_circuit() {
        let app = axum::Router::new().route(
            "/api",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                axum::http::StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let spec = AdapterSpec {
            concurrency: Some(1),
            circuit_breaker: Some(crate::adapter::breaker::BreakerSpec {
                failures: 2,
                open_for: Duration::from_secs(60),
            }),
            ..Default::default()
        };
        // 8 calls of 0.7 s, one at a time, each waiting at most the 2 s timeout for its turn.
        let c = std::sync::Arc::new(adapter_with(&base, spec));
        let mut calls = Vec::new();
        for _ in 0..8 {
            let c = c.clone();
            calls.push(tokio::spawn(async move {
                c.call("sys", "get", &Envelope::json(serde_json::json!({})))
                    .await
            }));
        }
        let mut waited_out = 0;
        for call in calls {
            if let Err(e) = call.await.unwrap() {
                assert!(e.message.contains("concurrency limit"), "{}", e.message);
                waited_out += 1;
            }
        }
        assert!(waited_out >= 2, "{waited_out} calls waited out their turn");
        use crate::adapter::breaker::State as S;
        assert_eq!(
            c.adapters["sys"].breaker.as_ref().unwrap().state(),
            S::Closed
        );
    }

    #[tokio::test]
    async fn own_status_classification_comes_first() {
        let (base, _) = system().await;
        let mut ops = BTreeMap::new();
        for (name, path) in [("conflict", "/status/409"), ("broken", "/status/500")] {
            ops.insert(
                name.to_string(),
                OperationSpec {
                    method: HttpMethod::Get,
                    path: path.into(),
                    query: Default::default(),
                    headers: Default::default(),
                    body: RequestBody::None,
                    response: None,
                },
            );
        }
        let spec = AdapterSpec {
            adapter: "sys".into(),
            base_url: base.clone(),
            transient_statuses: vec![409],
            permanent_statuses: vec![500],
            operations: ops,
            ..Default::default()
        };
        let adapter = crate::adapter::Adapter {
            spec,
            file: "adapters/sys.yaml".into(),
            base_url: base,
        };
        let c = AdapterClient::new(&[("sys".to_string(), adapter)].into()).unwrap();
        let m = Envelope::json(serde_json::json!({}));
        let kind = |r: Result<AdapterResponse, StepError>| r.unwrap_err().kind;
        assert_eq!(
            kind(c.call("sys", "conflict", &m).await),
            FailureKind::Transient
        );
        assert_eq!(
            kind(c.call("sys", "broken", &m).await),
            FailureKind::Permanent
        );
    }

    #[test]
    fn encoding_of_path_values() {
        assert_eq!(urlencode("a b/ö"), "a%20b%2F%C3%B6");
    }
}
