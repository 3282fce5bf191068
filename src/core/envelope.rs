//! The envelope: one message and its metadata, as it travels through brokers, steps and adapters.
//!
//! The correlation id follows a message through every hop: a message produced while
//! processing another (a split part, a published event, an adapter call) keeps the
//! correlation id and names its parent as causation id.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Content type of JSON bodies.
pub const JSON: &str = "application/json";
/// Content type of XML bodies.
pub const XML: &str = "application/xml";

/// The UUID namespace of [`Envelope::keyed`] ids (fixed: changing it would change every id).
const KEYED_NAMESPACE: Uuid = Uuid::from_u128(0x6b6e_7574_2d6b_6579_6564_2d6d_7367_6964);

/// Header names Knutpunkt itself sets. All start with `knut-`.
pub mod header {
    /// Header counting the attempts a dead letter had.
    pub const ATTEMPTS: &str = "knut-attempts";
    /// Header naming the route a dead letter failed in.
    pub const DEAD_LETTER_ROUTE: &str = "knut-dead-letter-route";
    /// Header with the reason of the latest transient failure.
    pub const LAST_ERROR: &str = "knut-last-error";
    /// Header naming the correlation id a `reply` answers (set by the `reply` step).
    pub const REPLY_FOR: &str = "knut-reply-for";
    /// The path of the HTTP request a message came in by (a problem answer's `instance`).
    pub const HTTP_PATH: &str = "knut-http-path";
    /// Index of a split part (0-based).
    pub const SPLIT_INDEX: &str = "knut-split-index";
    /// Number of parts in a split.
    pub const SPLIT_SIZE: &str = "knut-split-size";
    /// The route the message is addressed to (ingress, retry, replay).
    pub const ROUTE: &str = "knut-route";
    /// Queue name a synchronous caller waits on for the `reply` step.
    pub const REPLY_TO: &str = "knut-reply-to";
    /// Time of the first failure of this message, RFC 3339.
    pub const FIRST_FAILURE: &str = "knut-first-failure";
    /// Time of the latest failure of this message, RFC 3339.
    pub const LAST_FAILURE: &str = "knut-last-failure";
    /// The reason a message was dead-lettered.
    pub const DEAD_LETTER_REASON: &str = "knut-dead-letter-reason";
    /// The step that failed (`steps[2].to`).
    pub const DEAD_LETTER_STEP: &str = "knut-dead-letter-step";
    /// Set when a dead letter was replayed.
    pub const REPLAYED: &str = "knut-replayed";
    /// HTTP status the `reply` step answers with.
    pub const REPLY_STATUS: &str = "knut-reply-status";
    /// Why a poll's `fetch` of the item this message carries failed (`fetch_failed: hand_on`).
    pub const FETCH_ERROR: &str = "knut-fetch-error";
}

/// A message body. JSON bodies stay parsed between steps so that a chain of jq
/// steps does not serialise and parse at every hop.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Raw bytes with the envelope's content type.
    Bytes(Bytes),
    /// A parsed JSON document (content type `application/json`).
    Json(Value),
}

impl Body {
    /// The body as bytes on the wire (JSON is serialised compactly).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Body::Bytes(b) => b.clone(),
            Body::Json(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        }
    }

    /// Length in bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Json(v) => serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0),
        }
    }

    /// True for an empty byte body.
    pub fn is_empty(&self) -> bool {
        matches!(self, Body::Bytes(b) if b.is_empty())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::Bytes(Bytes::new())
    }
}

/// One message and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Unique message id (UUIDv7: time-ordered).
    pub id: Uuid,
    /// The id shared by every message caused by the same original request.
    pub correlation_id: Uuid,
    /// The id of the message whose processing produced this one.
    pub causation_id: Option<Uuid>,
    /// Free-form headers (string values).
    pub headers: BTreeMap<String, String>,
    /// MIME type of the body.
    pub content_type: String,
    /// The payload.
    pub body: Body,
    /// Delivery attempt, 1 for the first.
    pub attempt: u32,
    /// When the original message was accepted.
    pub created_at: DateTime<Utc>,
}

impl Envelope {
    /// A new message that starts a correlation of its own.
    pub fn new(content_type: impl Into<String>, body: Body) -> Self {
        let id = Uuid::now_v7();
        Envelope {
            id,
            correlation_id: id,
            causation_id: None,
            headers: BTreeMap::new(),
            content_type: content_type.into(),
            body,
            attempt: 1,
            created_at: Utc::now(),
        }
    }

    /// A new message whose id is determined by where it comes from: a UUIDv5 of
    /// (`origin`, `key`) in Knutpunkt's namespace, also its correlation id. An endpoint that
    /// may hand the same thing on twice (a poll that crashed between publishing an item and
    /// recording it) thus repeats the same message id, which an adapter call carries as
    /// `Idempotency-Key`. `key` is hashed, never shown; a key from a small space (a
    /// personnummer) could be guessed back from the id, so keys should be system ids.
    pub fn keyed(origin: &str, key: &str, content_type: impl Into<String>, body: Body) -> Self {
        let mut name = Vec::with_capacity(origin.len() + key.len() + 1);
        name.extend_from_slice(origin.as_bytes());
        name.push(0);
        name.extend_from_slice(key.as_bytes());
        let id = Uuid::new_v5(&KEYED_NAMESPACE, &name);
        let mut message = Envelope::new(content_type, body);
        message.id = id;
        message.correlation_id = id;
        message
    }

    /// A new JSON message.
    pub fn json(value: Value) -> Self {
        Envelope::new(JSON, Body::Json(value))
    }

    /// A message caused by this one: new id, same correlation id, this id as causation, same headers.
    pub fn child(&self, body: Body, content_type: impl Into<String>) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            correlation_id: self.correlation_id,
            causation_id: Some(self.id),
            headers: self.headers.clone(),
            content_type: content_type.into(),
            body,
            attempt: 1,
            created_at: Utc::now(),
        }
    }

    /// The same message (ids, headers, attempt, time) with another body: what an adapter
    /// operation or an outlet gets in place of the message, without copying its body.
    pub fn with_body(&self, body: Body, content_type: impl Into<String>) -> Self {
        Envelope {
            id: self.id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            headers: self.headers.clone(),
            content_type: content_type.into(),
            body,
            attempt: self.attempt,
            created_at: self.created_at,
        }
    }

    /// A message derived from this one by a step (`tag` names the step and the part, e.g.
    /// `steps[3].split/7`): same correlation id, this id as causation, and an id that is a
    /// UUIDv7 with this message's timestamp and bits derived from (this id, tag). A
    /// redelivered message therefore derives the same ids again, so whoever receives them
    /// twice can tell. A message whose id carries no time (a [`Envelope::keyed`] UUIDv5, or
    /// a foreign id) derives the UUIDv5 of (this id, tag): as deterministic as its parent, so
    /// a keyed message made again derives the same ids again too.
    pub fn derive(&self, tag: &str, body: Body, content_type: impl Into<String>) -> Self {
        let hashed = Uuid::new_v5(&self.id, tag.as_bytes());
        let id = match self.id.get_timestamp().map(|t| t.to_unix()) {
            Some((secs, nanos)) => {
                let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
                let mut random = [0u8; 10];
                random.copy_from_slice(&hashed.as_bytes()[6..16]);
                uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
            }
            None => hashed,
        };
        Envelope {
            id,
            correlation_id: self.correlation_id,
            causation_id: Some(self.id),
            headers: self.headers.clone(),
            content_type: content_type.into(),
            body,
            attempt: 1,
            created_at: Utc::now(),
        }
    }

    /// The body as JSON: parsed JSON is borrowed, a JSON byte body is parsed.
    pub fn json_body(&self) -> Result<std::borrow::Cow<'_, Value>, BodyError> {
        match &self.body {
            Body::Json(v) => Ok(std::borrow::Cow::Borrowed(v)),
            Body::Bytes(b) if is_json_type(&self.content_type) => serde_json::from_slice(b)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| BodyError::NotJson {
                    line: e.line(),
                    column: e.column(),
                }),
            Body::Bytes(_) => Err(BodyError::WrongType(self.content_type.clone())),
        }
    }

    /// The body as JSON, moved out of the envelope (which is left with an empty body):
    /// parsed JSON moves without a copy, a JSON byte body is parsed. On error the body stays.
    pub fn take_json_body(&mut self) -> Result<Value, BodyError> {
        let value = match std::mem::take(&mut self.body) {
            Body::Json(v) => v,
            bytes => {
                self.body = bytes;
                let v = self.json_body()?.into_owned();
                self.body = Body::default();
                v
            }
        };
        Ok(value)
    }

    /// Headers as a JSON object (for `$headers` in jq programs and templates).
    pub fn headers_json(&self) -> Value {
        Value::Object(
            self.headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// Is the body JSON (by content type or already parsed)?
    pub fn is_json(&self) -> bool {
        matches!(self.body, Body::Json(_)) || is_json_type(&self.content_type)
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// W3C `traceparent` for outgoing calls, derived from the correlation id and message id.
    pub fn traceparent(&self) -> String {
        let trace = self.correlation_id.simple().to_string();
        let span = &self.id.simple().to_string()[16..];
        format!("00-{trace}-{span}-01")
    }
}

/// Why a body could not be read as JSON. Never holds the body itself.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A JSON content type, but the bytes are not JSON.
    #[error("the body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// Line of the syntax error.
        line: usize,
        /// Column of the syntax error.
        column: usize,
    },
    /// The body is of another type.
    #[error("the body is `{0}`, not JSON: convert it first (e.g. with `xml_to_json`)")]
    WrongType(String),
}

/// Is this MIME type JSON (`application/json`, `application/*+json`)?
pub fn is_json_type(content_type: &str) -> bool {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    base == JSON || (base.starts_with("application/") && base.ends_with("+json"))
}

/// Is this MIME type XML (`application/xml`, `text/xml`, `*+xml`)?
pub fn is_xml_type(content_type: &str) -> bool {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    base == XML || base == "text/xml" || base.ends_with("+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_keeps_correlation_and_names_parent() {
        let parent = Envelope::json(serde_json::json!({"a": 1}));
        let child = parent.child(Body::Bytes(Bytes::from_static(b"x")), "text/plain");
        assert_eq!(child.correlation_id, parent.correlation_id);
        assert_eq!(child.causation_id, Some(parent.id));
        assert_ne!(child.id, parent.id);
        assert_eq!(child.id.get_version_num(), 7);
    }

    #[test]
    fn derived_ids_are_stable_v7() {
        let parent = Envelope::json(serde_json::json!(1));
        let a = parent.derive("steps[1].split/0", Body::Json(Value::Null), JSON);
        let b = parent.derive("steps[1].split/0", Body::Json(Value::Null), JSON);
        let c = parent.derive("steps[1].split/1", Body::Json(Value::Null), JSON);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.id.get_version_num(), 7);
        assert_eq!(a.causation_id, Some(parent.id));
        assert_eq!(a.correlation_id, parent.correlation_id);
    }

    #[test]
    fn keyed_ids_depend_on_origin_and_key_only() {
        let a = Envelope::keyed("poll/oep", "5003", JSON, Body::Json(Value::Null));
        let again = Envelope::keyed("poll/oep", "5003", XML, Body::default());
        assert_eq!(a.id, again.id);
        assert_eq!(a.correlation_id, a.id);
        assert_eq!(a.id.get_version_num(), 5);
        assert_eq!(a.id.to_string(), "741627b8-0303-5c2b-bbc4-d3a6fb024513");
        for (origin, key) in [
            ("poll/oep", "5004"),
            ("poll/other", "5003"),
            ("poll/oe", "p5003"),
        ] {
            assert_ne!(Envelope::keyed(origin, key, JSON, Body::default()).id, a.id);
        }
        // What a keyed message derives is as deterministic as the message itself, also when
        // it is made again later (a poll handing the same item on twice).
        let later = Envelope {
            created_at: a.created_at + chrono::Duration::seconds(90),
            ..again
        };
        let tag = "steps[5].publish/0";
        let derived = a.derive(tag, Body::default(), JSON);
        assert_eq!(derived.id, later.derive(tag, Body::default(), JSON).id);
        assert_ne!(
            derived.id,
            a.derive("steps[5].publish/1", Body::default(), JSON).id
        );
        assert_eq!(derived.correlation_id, a.id);
    }

    #[test]
    fn take_json_body_moves_parsed_and_parses_bytes() {
        let mut parsed = Envelope::json(serde_json::json!({"a": 1}));
        assert_eq!(
            parsed.take_json_body().unwrap(),
            serde_json::json!({"a": 1})
        );
        assert!(parsed.body.is_empty());
        let mut text = Envelope::new(JSON, Body::Bytes(Bytes::from_static(b"[1,2]")));
        assert_eq!(text.take_json_body().unwrap(), serde_json::json!([1, 2]));
        assert!(text.body.is_empty());
        let mut broken = Envelope::new(JSON, Body::Bytes(Bytes::from_static(b"{")));
        assert!(broken.take_json_body().is_err());
        assert_eq!(
            broken.body.to_bytes(),
            Bytes::from_static(b"{"),
            "kept on error"
        );
        let mut xml = Envelope::new(XML, Body::Bytes(Bytes::from_static(b"<a/>")));
        assert!(matches!(xml.take_json_body(), Err(BodyError::WrongType(_))));
    }

    #[test]
    fn traceparent_has_w3c_shape() {
        let e = Envelope::json(Value::Null);
        let tp = e.traceparent();
        let parts: Vec<_> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
    }

    #[test]
    fn content_types() {
        assert!(is_json_type("application/problem+json"));
        assert!(is_json_type("application/json; charset=utf-8"));
        assert!(is_xml_type("text/xml; charset=ISO-8859-1"));
        assert!(!is_xml_type("application/json"));
    }
}
