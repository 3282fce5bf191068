//! The HTTP client adapters call through: path templates filled from the message, the
//! correlation headers (`x-correlation-id`, W3C `traceparent`), an `Idempotency-Key` per
//! message, timeouts, and the classification of failures into transient (retried later) and
//! permanent (dead-lettered).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::{Adapter, RequestBody};
use crate::codec::{XmlToJsonOptions, xml_to_json};
use crate::envelope::{Body, Envelope, is_json_type, is_xml_type};
use crate::expr::Program;
use crate::step::{AdapterResponse, FailureKind, StepError, vars};

/// Is a response status a failure, and of which kind? `None` for success (1xx–3xx).
/// 408, 425, 429 and 5xx are transient; every other 4xx is permanent.
pub fn classify(status: u16) -> Option<FailureKind> {
    match status {
        100..=399 => None,
        408 | 425 | 429 | 500..=599 => Some(FailureKind::Transient),
        _ => Some(FailureKind::Permanent),
    }
}

enum Part {
    Lit(String),
    Jq(Program),
}

struct Operation {
    method: reqwest::Method,
    path: Vec<Part>,
    query: Vec<(String, Program)>,
    headers: BTreeMap<String, String>,
    body: OpBody,
}

/// An operation's request body, compiled.
enum OpBody {
    Message,
    None,
    Jq(Program),
}

struct Compiled {
    adapter: Adapter,
    operations: BTreeMap<String, Operation>,
}

/// Calls adapter operations over HTTP.
#[derive(Clone)]
pub struct AdapterClient {
    http: reqwest::Client,
    adapters: Arc<BTreeMap<String, Compiled>>,
}

/// Split a path template into literal text and `{jq}` placeholders (braces may nest).
fn parse_path(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '{' {
            lit.push(c);
            continue;
        }
        let mut depth = 1;
        let start = i + 1;
        let mut end = None;
        for (j, d) in chars.by_ref() {
            match d {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("path `{template}`: a `{{` is never closed"))?;
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(&mut lit)));
        }
        let src = &template[start..end];
        parts.push(Part::Jq(
            Program::compile(src).map_err(|e| format!("path placeholder `{{{src}}}`: {e}"))?,
        ));
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

fn method(m: crate::route::model::HttpMethod) -> reqwest::Method {
    use crate::route::model::HttpMethod as H;
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
        // reqwest is built without a default TLS provider; install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut compiled = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, adapter) in adapters {
            let mut operations = BTreeMap::new();
            for (op, spec) in &adapter.spec.operations {
                let at = format!("{}: operations.{op}", adapter.file.display());
                let path = match parse_path(&spec.path) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(format!("{at}.path: {e}"));
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
                };
                operations.insert(
                    op.clone(),
                    Operation {
                        method: method(spec.method),
                        path,
                        query,
                        headers: spec.headers.clone(),
                        body,
                    },
                );
            }
            compiled.insert(
                name.clone(),
                Compiled {
                    adapter: adapter.clone(),
                    operations,
                },
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("knut/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| vec![format!("HTTP client: {e}")])?;
        Ok(AdapterClient {
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

    /// Call `adapter.operation` with `message`.
    pub async fn call(
        &self,
        adapter: &str,
        operation: &str,
        message: &Envelope,
    ) -> Result<AdapterResponse, StepError> {
        let what = format!("{adapter}.{operation}");
        let a = self
            .adapters
            .get(adapter)
            .ok_or_else(|| StepError::permanent(format!("no adapter `{adapter}`")))?;
        let op = a
            .operations
            .get(operation)
            .ok_or_else(|| StepError::permanent(format!("no operation `{what}`")))?;

        let needs_json = op.path.iter().any(|p| matches!(p, Part::Jq(_)))
            || !op.query.is_empty()
            || matches!(op.body, OpBody::Jq(_));
        let body_json = if needs_json {
            Some(message.json_body()?)
        } else {
            None
        };
        let v = vars(message);
        let mut url = a.adapter.base_url.clone();
        for part in &op.path {
            match part {
                Part::Lit(s) => url.push_str(s),
                Part::Jq(p) => {
                    let input = body_json.as_deref().unwrap_or(&Value::Null);
                    let value = p
                        .first(input, &v)
                        .map_err(|e| StepError::permanent(format!("{what}: path: {e}")))?
                        .ok_or_else(|| {
                            StepError::permanent(format!(
                                "{what}: a path placeholder gave no value"
                            ))
                        })?;
                    if value.is_null() {
                        return Err(StepError::permanent(format!(
                            "{what}: the path placeholder `{{{}}}` gave null: the message lacks that value",
                            p.source()
                        )));
                    }
                    let text = crate::step::value_to_string(&value);
                    url.push_str(&urlencode(&text));
                }
            }
        }
        let mut query = Vec::with_capacity(op.query.len());
        for (k, p) in &op.query {
            let input = body_json.as_deref().unwrap_or(&Value::Null);
            if let Some(value) = p
                .first(input, &v)
                .map_err(|e| StepError::permanent(format!("{what}: query `{k}`: {e}")))?
                && !value.is_null()
            {
                query.push((k.clone(), crate::step::value_to_string(&value)));
            }
        }

        let mut req = self
            .http
            .request(op.method.clone(), &url)
            .timeout(a.adapter.spec.timeout)
            .header("x-correlation-id", message.correlation_id.to_string())
            .header("traceparent", message.traceparent())
            .header("idempotency-key", message.id.to_string());
        if !query.is_empty() {
            req = req.query(&query);
        }
        for (k, val) in a.adapter.spec.headers.iter().chain(op.headers.iter()) {
            req = req.header(k, val);
        }
        match &op.body {
            OpBody::Message => {
                req = req
                    .header("content-type", &message.content_type)
                    .body(message.body.to_bytes());
            }
            OpBody::None => {}
            OpBody::Jq(p) => {
                let input = body_json.as_deref().unwrap_or(&Value::Null);
                let value = p
                    .first(input, &v)
                    .map_err(|e| StepError::permanent(format!("{what}: body: {e}")))?
                    .ok_or_else(|| {
                        StepError::permanent(format!("{what}: the body program gave no value"))
                    })?;
                let bytes = serde_json::to_vec(&value)
                    .map_err(|e| StepError::permanent(format!("{what}: body: {e}")))?;
                req = req.header("content-type", "application/json").body(bytes);
            }
        }
        let resp = req.send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "could not connect".to_string()
            } else {
                "request failed".to_string()
            };
            StepError::transient(format!("{what}: {why}"))
        })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes: Bytes = resp
            .bytes()
            .await
            .map_err(|_| StepError::transient(format!("{what}: the response was cut off")))?;
        if let Some(kind) = classify(status) {
            return Err(StepError {
                kind,
                message: format!("{what} answered HTTP {status}"),
            });
        }
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

    #[test]
    fn path_templates_nest_braces() {
        let parts = parse_path("/2281/errands/{.id}/notes").unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parse_path("/x/{.a").is_err());
        let parts = parse_path("/x/{ {a: 1} | .a }").unwrap();
        assert_eq!(parts.len(), 2);
    }

    use std::sync::{Arc as StdArc, Mutex};
    use std::time::Duration;

    use axum::http::HeaderMap;

    use crate::adapter::{AdapterSpec, OperationSpec};
    use crate::route::model::HttpMethod;

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
        let spec = AdapterSpec {
            adapter: "sys".into(),
            description: None,
            base_url: base.into(),
            timeout: Duration::from_millis(300),
            headers: [("accept".to_string(), "application/json".to_string())].into(),
            operations,
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
        };
        let adapter = crate::adapter::Adapter {
            spec: AdapterSpec {
                adapter: "sys".into(),
                description: None,
                base_url: base.clone(),
                timeout: Duration::from_secs(1),
                headers: Default::default(),
                operations: [("broken".to_string(), broken)].into(),
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

    #[test]
    fn encoding_of_path_values() {
        assert_eq!(urlencode("a b/ö"), "a%20b%2F%C3%B6");
    }
}
