//! An HTTP API contract (OpenAPI 3.0/3.1, JSON Schema for bodies) and the checks made
//! against it: which operation a request is, whether the request follows the operation
//! (path parameters, query parameters, body), and whether an answer does (status, media
//! type, body).
//!
//! The simulations of systems without a published contract keep to Knutpunkt's own
//! (`contracts/<system>.openapi.yaml` in the repository): [`enforce`] refuses a request
//! that does not follow it with a 400 problem naming each violation, as the real system
//! would, before the simulation sees it. `tests/contracts.rs` checks the adapters' requests
//! and the simulations' answers against the same files, and against the published
//! contracts of the other systems.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::control::MAX_BODY;

/// A contract, read once; compiled schemas are kept.
pub struct Contract {
    name: String,
    spec: Value,
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.name)
            .finish()
    }
}

/// One operation of a contract, as a request matched it.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// The path template (`/ike-notices/{id}`).
    pub template: &'a str,
    /// The method, lower case (`post`).
    pub method: &'a str,
    /// The operation object.
    pub op: &'a Value,
}

impl Operation<'_> {
    /// `operationId`, else `METHOD template`.
    pub fn id(&self) -> String {
        self.op["operationId"].as_str().map_or_else(
            || format!("{} {}", self.method.to_ascii_uppercase(), self.template),
            str::to_string,
        )
    }
}

impl Contract {
    /// Read a contract from its YAML (or JSON) text; `name` names it in messages.
    pub fn from_yaml(name: &str, text: &str) -> Result<Contract, String> {
        let mut spec: Value =
            serde_saphyr::from_str(text).map_err(|e| format!("{name}: not a contract: {e}"))?;
        if !spec["paths"].is_object() {
            return Err(format!("{name}: not a contract: it has no `paths`"));
        }
        if spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0"))
        {
            nullable_as_type(&mut spec);
        }
        Ok(Contract {
            name: name.to_string(),
            spec,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// The contract's name (its file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole document.
    pub fn spec(&self) -> &Value {
        &self.spec
    }

    /// Every operation of the contract.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let mut all = Vec::new();
        for (template, item) in self.spec["paths"].as_object().into_iter().flatten() {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if let Some(op) = item.get(method) {
                    all.push(Operation {
                        template,
                        method,
                        op,
                    });
                }
            }
        }
        all
    }

    /// The operation at `method` and `path` (no query), preferring the template with most
    /// literal segments (`/{m}/batch` over `/{m}/{personId}`).
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation<'_>> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = method.to_ascii_lowercase();
        let mut best: Option<(usize, Operation<'_>)> = None;
        for candidate in self.operations() {
            if candidate.method != method {
                continue;
            }
            let t: Vec<&str> = candidate.template.trim_matches('/').split('/').collect();
            let fits = t.len() == segs.len()
                && t.iter()
                    .zip(&segs)
                    .all(|(t, s)| (is_param(t) && !s.is_empty()) || t == s);
            if fits {
                let literal = t.iter().filter(|t| !is_param(t)).count();
                if best.as_ref().is_none_or(|(n, _)| literal > *n) {
                    best = Some((literal, candidate));
                }
            }
        }
        best.map(|(_, op)| op)
    }

    /// Resolve a local `$ref` (`#/components/…`), once.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .strip_prefix('#')
                .and_then(|p| self.spec.pointer(p))
                .unwrap_or(v),
            None => v,
        }
    }

    /// The parameters of an operation (its own and its path item's), resolved.
    fn parameters<'a>(&'a self, op: &Operation<'a>) -> Vec<&'a Value> {
        let own = op.op["parameters"].as_array().into_iter().flatten();
        let item = self.spec["paths"][op.template]["parameters"]
            .as_array()
            .into_iter()
            .flatten();
        own.chain(item).map(|p| self.resolve(p)).collect()
    }

    /// The query parameter names the operation declares.
    pub fn declared_query(&self, op: &Operation<'_>) -> BTreeSet<String> {
        self.parameters(op)
            .into_iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    }

    /// A schema of the contract compiled (JSON Schema 2020-12 with formats; `$ref`s into
    /// the contract's `components` resolve), kept under `key`.
    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = compiled.get(key) {
            return Ok(v.clone());
        }
        let doc = json!({ "allOf": [schema], "components": self.spec["components"].clone() });
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&doc)
            .map_err(|e| format!("{}: {key}: the schema does not compile: {e}", self.name))?;
        let v = Arc::new(v);
        compiled.insert(key.to_string(), v.clone());
        Ok(v)
    }

    fn schema_violations(&self, key: &str, schema: &Value, value: &Value) -> Vec<String> {
        match self.validator(key, schema) {
            // Never the value: a request may carry a personnummer where it should not, and
            // a violation is shown in a problem, the inbox and test output.
            Ok(v) => v
                .iter_errors(value)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    let text = if at.is_empty() {
                        e.masked().to_string()
                    } else {
                        format!("{at}: {}", e.masked())
                    };
                    mask_digits(&text)
                })
                .collect(),
            Err(e) => vec![e],
        }
    }

    /// Every way a request breaks the operation: path parameters, query parameters
    /// (undeclared, missing, invalid) and the body (missing, media type, schema).
    pub fn request_violations(
        &self,
        op: &Operation<'_>,
        path: &str,
        query: &[(String, String)],
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let params = self.parameters(op);
        // Path parameters, by position in the template.
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (t, s) in op.template.trim_matches('/').split('/').zip(&segs) {
            if !is_param(t) {
                continue;
            }
            let name = &t[1..t.len() - 1];
            if let Some(p) = params
                .iter()
                .find(|p| p["in"] == "path" && p["name"] == name)
            {
                let key = format!("{} {} path {name}", op.method, op.template);
                let value = coerce(&p["schema"], s);
                for v in self.schema_violations(&key, &p["schema"], &value) {
                    out.push(format!("path parameter `{name}`: {v}"));
                }
            }
        }
        // Query parameters.
        let declared = self.declared_query(op);
        for (name, _) in query {
            if !declared.contains(name) {
                out.push(format!("query parameter `{name}` is not declared"));
            }
        }
        for p in params.iter().filter(|p| p["in"] == "query") {
            let Some(name) = p["name"].as_str() else {
                continue;
            };
            let given: Vec<&str> = query
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            if given.is_empty() {
                if p["required"] == true {
                    out.push(format!("query parameter `{name}` is required"));
                }
                continue;
            }
            let schema = &p["schema"];
            let value = if schema["type"] == "array" {
                Value::Array(given.iter().map(|g| coerce(&schema["items"], g)).collect())
            } else {
                coerce(schema, given[given.len() - 1])
            };
            let key = format!("{} {} query {name}", op.method, op.template);
            for v in self.schema_violations(&key, schema, &value) {
                out.push(format!("query parameter `{name}`: {v}"));
            }
        }
        // The body.
        let request = self.resolve(&op.op["requestBody"]);
        match body {
            None if request["required"] == true => out.push("a body is required".into()),
            None => {}
            Some(body) => match media(&request["content"], content_type) {
                None if request.is_null() => out.push("the operation takes no body".into()),
                None => out.push(format!(
                    "the body's media type {} is not one the operation takes",
                    content_type.unwrap_or("(none)")
                )),
                Some((media_type, schema)) => {
                    if let Some(schema) = schema {
                        let key = format!("{} {} request {media_type}", op.method, op.template);
                        for v in self.schema_violations(&key, schema, body) {
                            out.push(format!("body {v}"));
                        }
                    }
                }
            },
        }
        out
    }

    /// Every way an answer breaks the operation: a status it does not declare, a media
    /// type it does not give for that status, a body outside the schema.
    pub fn answer_violations(
        &self,
        op: &Operation<'_>,
        status: u16,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Vec<String> {
        let responses = &op.op["responses"];
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        let Some(response) = responses
            .get(&code)
            .or_else(|| responses.get(&class))
            .or_else(|| responses.get(class.to_ascii_lowercase()))
            .or_else(|| responses.get("default"))
            .map(|r| self.resolve(r))
        else {
            return vec![format!("status {status} is not declared")];
        };
        let Some(body) = body else {
            return Vec::new();
        };
        if response["content"].is_null() {
            return Vec::new();
        }
        match media(&response["content"], content_type) {
            None => vec![format!(
                "the answer's media type {} is not declared for {status}",
                content_type.unwrap_or("(none)")
            )],
            Some((_, None)) => Vec::new(),
            Some((media_type, Some(schema))) => {
                // A text answer is checked as text; a JSON one as JSON.
                let key = format!("{} {} {status} {media_type}", op.method, op.template);
                self.schema_violations(&key, schema, body)
                    .into_iter()
                    .map(|v| format!("answer {v}"))
                    .collect()
            }
        }
    }
}

/// OpenAPI 3.0's `nullable: true` in JSON Schema terms (3.1 and 2020-12 say it with the
/// type): `type: string, nullable: true` becomes `type: [string, "null"]`.
fn nullable_as_type(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = map.get_mut("enum")
                    && !values.contains(&Value::Null)
                {
                    values.push(Value::Null);
                }
            }
            for child in map.values_mut() {
                nullable_as_type(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_as_type),
        _ => {}
    }
}

/// `text` with every run of six or more digits (a `-` or `+` between them allowed) made
/// `…`: a personnummer, samordningsnummer or other number that came from the request, in
/// an object key or a path, never reaches a message.
pub fn mask_digits(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let mut j = i;
        let mut digits = 0;
        while j < chars.len()
            && (chars[j].is_ascii_digit()
                || (matches!(chars[j], '-' | '+')
                    && digits > 0
                    && chars.get(j + 1).is_some_and(char::is_ascii_digit)))
        {
            if chars[j].is_ascii_digit() {
                digits += 1;
            }
            j += 1;
        }
        if digits >= 6 {
            out.push('…');
            i = j;
        } else if j > i {
            out.extend(&chars[i..j]);
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// The declared media type a content type matches (exactly, then `application/*+json` as
/// JSON, then a wildcard), with its schema.
fn media<'a>(
    content: &'a Value,
    content_type: Option<&str>,
) -> Option<(&'a str, Option<&'a Value>)> {
    let content = content.as_object()?;
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json_like = essence.ends_with("+json");
    let found = content
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase() == essence)
        .or_else(|| {
            json_like
                .then(|| content.iter().find(|(k, _)| *k == "application/json"))
                .flatten()
        })
        .or_else(|| {
            let top = essence.split('/').next().unwrap_or("");
            content.iter().find(|(k, _)| **k == format!("{top}/*"))
        })
        .or_else(|| content.iter().find(|(k, _)| *k == "*/*"))?;
    Some((found.0.as_str(), found.1.get("schema")))
}

/// A path or query value as its schema's type would read it (`"5"` as 5 for an integer).
fn coerce(schema: &Value, raw: &str) -> Value {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"integer")
        && let Ok(n) = raw.parse::<i64>()
    {
        return Value::from(n);
    }
    if types.contains(&"number")
        && let Ok(n) = raw.parse::<f64>()
    {
        return json!(n);
    }
    if types.contains(&"boolean")
        && let Ok(b) = raw.parse::<bool>()
    {
        return Value::from(b);
    }
    Value::from(raw)
}

/// The query of a URI as (name, value) pairs, percent-decoded.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `api` refusing, with a 400 problem that names each violation, every request that does
/// not follow `contract` (a path the contract does not have: 404; a method it does not
/// have there: 405). Paths beginning with `/_` are the sandbox's own controls and pass.
pub fn enforce(api: Router, contract: Arc<Contract>) -> Router {
    api.layer(middleware::from_fn_with_state(contract, check))
}

async fn check(State(contract): State<Arc<Contract>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_") {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_string();
    let Some(op) = contract.operation(&method, &path) else {
        let elsewhere = contract.operations().iter().any(|o| {
            contract
                .operation(&o.method.to_ascii_uppercase(), &path)
                .is_some()
        });
        return if elsewhere {
            crate::control::problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                format!(
                    "{method} is not an operation of this path in {}",
                    contract.name()
                ),
            )
        } else {
            // The path is not repeated: it may hold what should not be shown.
            crate::control::problem(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("the path is not in {}", contract.name()),
            )
        };
    };
    let query = query_pairs(req.uri().query());
    let content_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return crate::control::problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Body too large",
            format!("the sandbox reads bodies up to {MAX_BODY} bytes"),
        );
    };
    let body = if bytes.is_empty() {
        None
    } else if content_type.as_deref().is_some_and(|t| t.contains("json")) {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                return crate::control::problem(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    format!("the body is not JSON: {e}"),
                );
            }
        }
    } else {
        Some(Value::from(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let violations =
        contract.request_violations(&op, &path, &query, content_type.as_deref(), body.as_ref());
    if !violations.is_empty() {
        let answer = json!({
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": format!("the request does not follow {} ({}): {}", contract.name(), op.id(), violations.join("; ")),
            "violations": violations,
        });
        return (
            StatusCode::BAD_REQUEST,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            answer.to_string(),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /notices:
    post:
      operationId: notify
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Notice"}
      responses:
        "201": {description: made, content: {application/json: {schema: {type: object, required: [id]}}}}
    get:
      parameters:
        - {name: after, in: query, schema: {type: string, format: date}}
        - {$ref: "#/components/parameters/Limit"}
      responses: {"200": {description: ok}}
  /notices/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses: {"200": {description: ok}}
  /notices/latest:
    get:
      responses: {"200": {description: ok}}
components:
  parameters:
    Limit: {name: limit, in: query, required: true, schema: {type: integer, minimum: 1}}
  schemas:
    Notice:
      type: object
      additionalProperties: false
      required: [student]
      properties: {student: {type: string}}
"##;

    fn contract() -> Contract {
        Contract::from_yaml("t.yaml", SPEC).expect("a contract")
    }

    #[test]
    fn an_operation_is_found_by_method_and_path_preferring_literals() {
        let c = contract();
        assert_eq!(
            c.operation("GET", "/notices/latest").map(|o| o.template),
            Some("/notices/latest")
        );
        assert_eq!(
            c.operation("GET", "/notices/x").map(|o| o.template),
            Some("/notices/{id}")
        );
        assert_eq!(
            c.operation("POST", "/notices").map(|o| o.id()),
            Some("notify".into())
        );
        assert!(c.operation("DELETE", "/notices").is_none());
        assert!(c.operation("GET", "/other").is_none());
    }

    #[test]
    fn a_request_outside_the_operation_is_named_violation_by_violation() {
        let c = contract();
        let post = c.operation("POST", "/notices").expect("post");
        let ok = json!({"student": "a"});
        assert!(
            c.request_violations(&post, "/notices", &[], Some("application/json"), Some(&ok))
                .is_empty()
        );
        let bad = json!({"studnet": "a"});
        let v = c.request_violations(&post, "/notices", &[], Some("application/json"), Some(&bad));
        assert!(v.iter().any(|v| v.contains("student")), "{v:?}");
        assert!(v.iter().any(|v| v.contains("studnet")), "{v:?}");
        assert_eq!(
            c.request_violations(&post, "/notices", &[], None, None),
            ["a body is required"]
        );

        let list = c.operation("GET", "/notices").expect("get");
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(
            c.request_violations(&list, "/notices", &q(&[("limit", "5")]), None, None)
                .is_empty()
        );
        let v = c.request_violations(
            &list,
            "/notices",
            &q(&[("after", "igår"), ("limt", "5")]),
            None,
            None,
        );
        assert!(v.iter().any(|v| v.contains("`after`")), "{v:?}");
        assert!(
            v.iter().any(|v| v.contains("`limt` is not declared")),
            "{v:?}"
        );
        assert!(v.iter().any(|v| v.contains("`limit` is required")), "{v:?}");
        let v = c.request_violations(&list, "/notices", &q(&[("limit", "0")]), None, None);
        assert_eq!(v.len(), 1, "{v:?}");

        let one = c.operation("GET", "/notices/nope").expect("get one");
        let v = c.request_violations(&one, "/notices/nope", &[], None, None);
        assert!(v.iter().any(|v| v.contains("path parameter `id`")), "{v:?}");
    }

    /// A violation never quotes the value, and a personnummer in a key or elsewhere in the
    /// text is masked.
    #[test]
    fn violations_never_show_a_personnummer() {
        let c = contract();
        let post = c.operation("POST", "/notices").expect("post");
        for body in [
            json!({"student": 201304122383_u64}),
            json!({"student": "a", "20130412-2383": "x"}),
            json!({"201304122383": 1}),
        ] {
            let v = c.request_violations(
                &post,
                "/notices",
                &[],
                Some("application/json"),
                Some(&body),
            );
            assert!(!v.is_empty(), "{body}");
            let text = v.join(" ");
            assert!(!text.contains("2383"), "{text}");
        }
        assert_eq!(
            mask_digits("id 20130412-2383, år 2026, kod 38120001"),
            "id …, år 2026, kod …"
        );
    }

    #[test]
    fn openapi_3_0_nullable_takes_null() {
        let c = Contract::from_yaml(
            "n.yaml",
            "openapi: 3.0.1\npaths:\n  /p:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {type: object, properties: {a: {type: string, nullable: true}, b: {type: string}}}\n",
        )
        .expect("a contract");
        let op = c.operation("GET", "/p").expect("op");
        assert!(
            c.answer_violations(
                &op,
                200,
                Some("application/json"),
                Some(&json!({"a": null}))
            )
            .is_empty()
        );
        assert!(
            !c.answer_violations(
                &op,
                200,
                Some("application/json"),
                Some(&json!({"b": null}))
            )
            .is_empty()
        );
    }

    #[test]
    fn an_answer_outside_the_operation_is_named() {
        let c = contract();
        let post = c.operation("POST", "/notices").expect("post");
        let ok = json!({"id": 1});
        assert!(
            c.answer_violations(&post, 201, Some("application/json"), Some(&ok))
                .is_empty()
        );
        assert!(
            !c.answer_violations(&post, 201, Some("application/json"), Some(&json!({})))
                .is_empty()
        );
        assert_eq!(
            c.answer_violations(&post, 500, None, None),
            ["status 500 is not declared"]
        );
        assert!(
            !c.answer_violations(&post, 201, Some("text/csv"), Some(&json!("a")))
                .is_empty()
        );
    }
}
