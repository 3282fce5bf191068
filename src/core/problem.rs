//! RFC 9457 problem details (`application/problem+json`): every error the HTTP ingress
//! answers with.
//!
//! A problem names what was wrong and what to do about it; it never echoes the request body
//! (it may hold personnummer). The `type` is a stable URI under [`TYPE_BASE`], one per kind
//! of problem, so that clients can branch on it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The media type of problem documents.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://knutpunkt.sundsvall.se/problems/";

/// One failing location of a body that did not satisfy its schema (`errors` item of a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON Pointer to the failing value (`""` for the whole body).
    pub pointer: String,
    /// What is wrong there, without the value itself.
    pub detail: String,
}

/// An RFC 9457 problem.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Last segment of the `type` URI, e.g. `invalid-xml`.
    pub kind: &'static str,
    /// Short, fixed summary of the kind of problem.
    pub title: &'static str,
    /// What was wrong with this request and what to do; never request content.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// Schema violations (only for 422).
    pub errors: Vec<FieldError>,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl Problem {
    /// A problem without extra headers or field errors.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
        instance: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            instance: instance.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Add a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Attach schema violations (`errors`).
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// The full `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.kind)
    }

    /// The problem document.
    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "instance": self.instance,
        });
        if !self.errors.is_empty()
            && let Some(obj) = doc.as_object_mut()
        {
            obj.insert(
                "errors".into(),
                Value::Array(
                    self.errors
                        .iter()
                        .map(|e| json!({"pointer": e.pointer, "detail": e.detail}))
                        .collect(),
                ),
            );
        }
        doc
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// The JSON Schema of a problem document, for the OpenAPI document.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "Every place where the body does not satisfy the schema (422 only).",
                "items": {
                    "type": "object",
                    "required": ["pointer", "detail"],
                    "properties": {
                        "pointer": {"type": "string", "description": "JSON Pointer into the body"},
                        "detail": {"type": "string"}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_rfc9457_with_errors_and_headers() {
        let p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "schema-violation",
            "The body does not satisfy the schema",
            "fix the listed fields",
            "/api/x",
        )
        .with_errors(vec![FieldError {
            pointer: "/student/civicNo".into(),
            detail: "is not a valid personnummer".into(),
        }])
        .with_header(header::RETRY_AFTER, "5");
        let r = p.into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], format!("{TYPE_BASE}schema-violation"));
        assert_eq!(v["status"], 422);
        assert_eq!(v["instance"], "/api/x");
        assert_eq!(v["errors"][0]["pointer"], "/student/civicNo");
    }

    #[test]
    fn no_errors_member_without_errors() {
        let p = Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "d", "/x");
        assert!(p.to_json().get("errors").is_none());
    }
}
