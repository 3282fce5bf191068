//! The OpenAPI 3.1 document of the HTTP routes, served at `GET /openapi.json` on the
//! ingress port, generated from the same route specs the ingress serves (so it never drifts).
//!
//! Per route path and method: `operationId` (the route id), `summary` (its description), the
//! request body (JSON: the route's schema, inlined under `components/schemas` and referenced
//! by `$ref`; XML: an `application/xml` string), the auth scheme, and the responses the
//! ingress really gives (`202 Accepted` or the `reply` answer, and RFC 9457 problems).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::http::HttpRoute;
use crate::core::problem;
use crate::route::model::{BodyFormat, HttpMethod};
use crate::schema::SchemaRegistry;

pub use super::http::auth::AuthKind;

/// The OpenAPI 3.1.0 document of `routes`: `auth` maps scheme names (as routes name them in
/// `auth:`) to their kind; message schemas come from `schemas`.
pub fn document(
    routes: &[HttpRoute],
    auth: &BTreeMap<String, AuthKind>,
    schemas: &SchemaRegistry,
    title: &str,
    version: &str,
) -> Value {
    let by_id: BTreeMap<String, String> = schemas
        .names()
        .filter_map(|n| {
            let id = schemas.raw(n)?.get("$id")?.as_str()?.to_string();
            Some((id, n.to_string()))
        })
        .collect();
    let lookup = |name: &str| schemas.raw(name).cloned();
    build(routes, auth, &lookup, &by_id, title, version)
}

/// A name usable as a component key (`^[a-zA-Z0-9._-]+$`).
fn component_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", component_name(name)) })
}

/// Inlines message schemas into `components/schemas`, rewriting their `$ref`s so that every
/// reference resolves inside the document.
struct Inliner<'a> {
    lookup: &'a dyn Fn(&str) -> Option<Value>,
    by_id: &'a BTreeMap<String, String>,
    done: BTreeMap<String, Value>,
    visiting: BTreeSet<String>,
}

impl Inliner<'_> {
    /// Inline schema `name` (and the schemas it references); false if it is unknown.
    fn add(&mut self, name: &str) -> bool {
        let key = component_name(name);
        if self.done.contains_key(&key) || self.visiting.contains(&key) {
            return true;
        }
        let Some(mut schema) = (self.lookup)(name) else {
            return false;
        };
        self.visiting.insert(key.clone());
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$id");
            obj.remove("$schema");
        }
        self.rewrite(&mut schema, &key);
        self.visiting.remove(&key);
        self.done.insert(key, schema);
        true
    }

    fn rewrite(&mut self, v: &mut Value, key: &str) {
        match v {
            Value::Object(obj) => {
                if let Some(Value::String(r)) = obj.get_mut("$ref") {
                    let new = self.target(r, key);
                    if let Some(new) = new {
                        *r = new;
                    }
                }
                for (k, child) in obj.iter_mut() {
                    // `const`, `enum`, `default` and `examples` hold data, not schemas.
                    if !matches!(k.as_str(), "const" | "enum" | "default" | "examples") {
                        self.rewrite(child, key);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| self.rewrite(c, key)),
            _ => {}
        }
    }

    /// Where a `$ref` of schema `key` points inside the document.
    fn target(&mut self, r: &str, key: &str) -> Option<String> {
        let (resource, fragment) = r.split_once('#').unwrap_or((r, ""));
        let base = if resource.is_empty() {
            key.to_string()
        } else {
            let name = self.by_id.get(resource).cloned().unwrap_or_else(|| {
                let plain = resource.trim_start_matches("./");
                plain.strip_suffix(".json").unwrap_or(plain).to_string()
            });
            if !self.add(&name) {
                return None;
            }
            component_name(&name)
        };
        Some(format!("#/components/schemas/{base}{fragment}"))
    }
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            problem::CONTENT_TYPE: { "schema": schema_ref("Problem") }
        }
    })
}

fn operation(
    route: &HttpRoute,
    method: HttpMethod,
    auth: &BTreeMap<String, AuthKind>,
    inliner: &mut Inliner<'_>,
) -> Value {
    let mut op = Map::new();
    let operation_id = if route.spec.methods.len() > 1 {
        format!("{}-{}", route.route, method.as_str().to_ascii_lowercase())
    } else {
        route.route.clone()
    };
    op.insert("operationId".into(), json!(operation_id));
    if let Some(d) = &route.description {
        op.insert("summary".into(), json!(d));
    }

    let json_schema = route.spec.schema.as_deref().map(|s| {
        if inliner.add(s) {
            schema_ref(s)
        } else {
            json!({})
        }
    });
    if !matches!(method, HttpMethod::Get | HttpMethod::Delete) {
        let content = match route.spec.format {
            Some(BodyFormat::Xml) => {
                let mut media = json!({ "schema": { "type": "string" } });
                if let Some(s) = &route.spec.schema {
                    media["schema"]["description"] =
                        json!(format!("XML whose JSON form satisfies the schema `{s}`"));
                }
                json!({ "application/xml": media })
            }
            Some(BodyFormat::Json) => {
                json!({ "application/json": { "schema": json_schema.unwrap_or_else(|| json!({})) } })
            }
            None => match json_schema {
                Some(s) => json!({ "application/json": { "schema": s } }),
                None => json!({ "*/*": { "schema": {} } }),
            },
        };
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": content }),
        );
    }

    // A GET or DELETE carries its message in the query: one parameter per property.
    if matches!(method, HttpMethod::Get | HttpMethod::Delete)
        && let Some(raw) = route
            .spec
            .schema
            .as_deref()
            .and_then(|s| (inliner.lookup)(s))
    {
        let required: BTreeSet<&str> = raw["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let parameters: Vec<Value> = raw["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, schema)| {
                let mut p = json!({
                    "name": name, "in": "query",
                    "required": required.contains(name.as_str()),
                    "schema": schema,
                });
                if let Some(d) = schema.get("description") {
                    p["description"] = d.clone();
                }
                p
            })
            .collect();
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
    }

    let scheme = route.spec.auth.scheme();
    let authenticated = scheme.is_some();
    if let Some(scheme) = scheme {
        if auth.contains_key(scheme) {
            op.insert("security".into(), json!([{ component_name(scheme): [] }]));
        }
    } else {
        op.insert("security".into(), json!([]));
    }

    let mut responses = Map::new();
    if route.replies {
        responses.insert(
            "200".into(),
            json!({ "description": "The route's answer: status, content type and body come from its `reply` step." }),
        );
    } else {
        responses.insert(
            "202".into(),
            json!({
                "description": "Accepted: the message is durably with the broker.",
                "content": { "application/json": { "schema": schema_ref("Accepted") } }
            }),
        );
    }
    responses.insert(
        "400".into(),
        problem_response("The body is not well-formed (or has a DOCTYPE, or bad encoding)."),
    );
    if authenticated {
        responses.insert(
            "401".into(),
            problem_response("Missing or wrong credentials."),
        );
    }
    if !route.spec.claims.is_empty() {
        responses.insert(
            "403".into(),
            problem_response(&format!(
                "The token lacks a claim the endpoint needs ({}), or the route refused what it asks for.",
                route
                    .spec
                    .claims
                    .pairs()
                    .iter()
                    .map(|(_, claim)| *claim)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
    responses.insert("413".into(), problem_response("The body is too large."));
    responses.insert(
        "429".into(),
        problem_response(
            "Too many requests from this client: wait the seconds `Retry-After` says.",
        ),
    );
    if route.spec.schema.is_some() {
        responses.insert(
            "422".into(),
            problem_response(
                "The body does not satisfy the schema; `errors` lists every failing place.",
            ),
        );
    }
    responses.insert(
        "503".into(),
        problem_response("The broker did not take the message; nothing was accepted. Retry later."),
    );
    if route.replies {
        responses.insert(
            "504".into(),
            problem_response("No answer within the reply timeout."),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn build(
    routes: &[HttpRoute],
    auth: &BTreeMap<String, AuthKind>,
    lookup: &dyn Fn(&str) -> Option<Value>,
    by_id: &BTreeMap<String, String>,
    title: &str,
    version: &str,
) -> Value {
    let mut inliner = Inliner {
        lookup,
        by_id,
        done: BTreeMap::new(),
        visiting: BTreeSet::new(),
    };
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in routes {
        for &method in &route.spec.methods {
            let item = paths.entry(route.spec.path.clone()).or_default();
            let key = method.as_str().to_ascii_lowercase();
            if item.contains_key(&key) {
                continue; // the ingress serves the first route with this path and method
            }
            item.insert(key, operation(route, method, auth, &mut inliner));
        }
    }

    let mut schemas = Map::new();
    schemas.insert(
        "Accepted".into(),
        json!({
            "type": "object",
            "required": ["id", "correlation_id"],
            "properties": {
                "id": { "type": "string", "format": "uuid", "description": "The message id." },
                "correlation_id": { "type": "string", "format": "uuid", "description": "Follows the message through every hop; send it as `x-correlation-id` to set it." }
            }
        }),
    );
    schemas.insert("Problem".into(), problem::schema());
    for (name, schema) in inliner.done {
        schemas.entry(name).or_insert(schema);
    }

    let security_schemes: Map<String, Value> = auth
        .iter()
        .map(|(name, kind)| {
            let scheme = match kind {
                AuthKind::ApiKey { header } => {
                    json!({ "type": "apiKey", "in": "header", "name": header })
                }
                AuthKind::Basic => json!({ "type": "http", "scheme": "basic" }),
                AuthKind::BearerJwt => {
                    json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" })
                }
            };
            (component_name(name), scheme)
        })
        .collect();

    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": security_schemes
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::model::HttpFrom;

    fn route(
        id: &str,
        path: &str,
        auth: &str,
        format: Option<BodyFormat>,
        schema: Option<&str>,
        replies: bool,
    ) -> HttpRoute {
        HttpRoute {
            route: id.into(),
            spec: HttpFrom {
                path: path.into(),
                methods: vec![HttpMethod::Post],
                auth: auth.into(),
                format,
                schema: schema.map(str::to_string),
                max_body: None,
                rate_limit: None,
                reply_timeout: None,
                claims: Default::default(),
            },
            replies,
            description: Some(format!("{id} description")),
        }
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }

    fn doc() -> Value {
        let mut schemas = BTreeMap::new();
        schemas.insert(
            "placement-change.v1".to_string(),
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": "https://knutpunkt.sundsvall.se/schemas/placement-change.v1.json",
                "type": "object",
                "required": ["student"],
                "properties": {
                    "student": { "$ref": "person.v1.json" },
                    "unit": { "$ref": "#/$defs/unit" }
                },
                "$defs": { "unit": { "type": "string" } }
            }),
        );
        schemas.insert(
            "person.v1".to_string(),
            json!({ "type": "object", "properties": { "civicNo": { "type": "string", "format": "personnummer" } } }),
        );
        schemas.insert("oep/leave".to_string(), json!({ "type": "object" }));
        let lookup = move |n: &str| schemas.get(n).cloned();
        let mut auth = BTreeMap::new();
        auth.insert(
            "portal".to_string(),
            AuthKind::ApiKey {
                header: "x-api-key".into(),
            },
        );
        auth.insert("staff".to_string(), AuthKind::BearerJwt);
        let mut multi = route(
            "grades",
            "/api/v1/grades",
            "staff",
            Some(BodyFormat::Json),
            None,
            false,
        );
        multi.spec.methods = vec![HttpMethod::Get, HttpMethod::Put];
        let routes = vec![
            route(
                "placement-change",
                "/api/v1/placement-changes",
                "portal",
                Some(BodyFormat::Json),
                Some("placement-change.v1"),
                false,
            ),
            route(
                "oep-callback",
                "/api/v1/oep",
                "none",
                Some(BodyFormat::Xml),
                Some("oep/leave"),
                false,
            ),
            route(
                "statistics",
                "/api/v1/statistics",
                "staff",
                None,
                None,
                true,
            ),
            multi,
        ];
        build(
            &routes,
            &auth,
            &lookup,
            &BTreeMap::new(),
            "Knutpunkt",
            "0.1.0",
        )
    }

    #[test]
    fn structure() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["title"], "Knutpunkt");
        let pc = &d["paths"]["/api/v1/placement-changes"]["post"];
        assert_eq!(pc["operationId"], "placement-change");
        assert_eq!(pc["summary"], "placement-change description");
        assert_eq!(
            pc["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/placement-change.v1"
        );
        assert_eq!(pc["security"], json!([{"portal": []}]));
        for code in ["202", "400", "401", "413", "422", "503"] {
            assert!(pc["responses"].get(code).is_some(), "{code}");
        }
        assert!(pc["responses"].get("504").is_none());
        assert_eq!(
            pc["responses"]["400"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );

        let oep = &d["paths"]["/api/v1/oep"]["post"];
        assert_eq!(
            oep["requestBody"]["content"]["application/xml"]["schema"]["type"],
            "string"
        );
        assert_eq!(oep["security"], json!([]));
        assert!(oep["responses"].get("401").is_none());

        let stats = &d["paths"]["/api/v1/statistics"]["post"];
        assert!(stats["responses"].get("200").is_some());
        assert!(stats["responses"].get("202").is_none());
        assert!(stats["responses"].get("504").is_some());
        assert!(stats["responses"].get("422").is_none());

        let grades = &d["paths"]["/api/v1/grades"];
        assert_eq!(grades["get"]["operationId"], "grades-get");
        assert_eq!(grades["put"]["operationId"], "grades-put");
        assert!(grades["get"].get("requestBody").is_none());

        let ss = &d["components"]["securitySchemes"];
        assert_eq!(
            ss["portal"],
            json!({"type": "apiKey", "in": "header", "name": "x-api-key"})
        );
        assert_eq!(ss["staff"]["scheme"], "bearer");
        assert_eq!(ss["staff"]["bearerFormat"], "JWT");
        let accepted = &d["components"]["schemas"]["Accepted"];
        assert_eq!(accepted["properties"]["id"]["format"], "uuid");
        assert_eq!(accepted["properties"]["correlation_id"]["format"], "uuid");
        assert!(d["components"]["schemas"]["Problem"]["properties"]["errors"]["items"].is_object());
        // `oep/leave` is not a valid component name: sanitised.
        assert!(d["components"]["schemas"].get("oep_leave").is_some());
        assert!(
            d["components"]["schemas"]["placement-change.v1"]
                .get("$id")
                .is_none()
        );
    }

    #[test]
    fn every_ref_resolves_inside_the_document() {
        let d = doc();
        // Valid JSON that survives a round trip.
        let text = serde_json::to_string(&d).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        refs(&back, &mut all);
        assert!(all.len() >= 8, "{all:?}");
        for r in all {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external ref {r}"));
            let pointer = pointer.replace("~1", "/").replace("~0", "~");
            assert!(back.pointer(&pointer).is_some(), "unresolved {r}");
        }
        // The referenced person schema was inlined too.
        assert_eq!(
            back["components"]["schemas"]["placement-change.v1"]["properties"]["student"]["$ref"],
            "#/components/schemas/person.v1"
        );
    }

    #[test]
    fn unknown_schema_does_not_leave_a_dangling_ref() {
        let lookup = |_: &str| None;
        let routes = vec![route(
            "x",
            "/x",
            "none",
            Some(BodyFormat::Json),
            Some("missing"),
            false,
        )];
        let d = build(
            &routes,
            &BTreeMap::new(),
            &lookup,
            &BTreeMap::new(),
            "t",
            "1",
        );
        assert_eq!(
            d["paths"]["/x"]["post"]["requestBody"]["content"]["application/json"]["schema"],
            json!({})
        );
    }
}
