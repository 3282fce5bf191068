//! Envelope ↔ AMQP message: which envelope field travels in which AMQP property or header.
//!
//! | envelope      | AMQP                                                              |
//! |---------------|-------------------------------------------------------------------|
//! | `id`          | `message_id` (UUID text)                                          |
//! | `correlation_id` | `correlation_id` (UUID text)                                   |
//! | `content_type`| `content_type`                                                    |
//! | `created_at`  | `timestamp` (seconds) and header `knut-created-at` (RFC 3339, ms) |
//! | `causation_id`| header `knut-causation-id`                                        |
//! | `attempt`     | header `knut-attempt` (unsigned integer)                          |
//! | `headers`     | headers table, one long string per header                         |
//! | `body`        | payload bytes (JSON serialised compactly)                         |
//!
//! Every message is persistent (`delivery_mode` 2).
//!
//! Decoding is lenient, so that a message another system put on a queue is never lost
//! because it lacks Knutpunkt's properties: a missing id gets a fresh one, a missing
//! correlation id is the id, a missing attempt is 1, a missing creation time is the AMQP
//! timestamp (or now). Headers RabbitMQ adds when dead-lettering (`x-death`,
//! `x-first-death-*`, `x-last-death-*`) and quorum queues' `x-delivery-count` are not
//! copied into the envelope; other non-string header values are kept as text when they are
//! scalars and left out when they are tables or arrays.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use uuid::Uuid;

use crate::broker::BrokerError;
use crate::core::envelope::{Body, Envelope};

/// Header holding the causation id.
pub const CAUSATION_ID: &str = "knut-causation-id";
/// Header holding the delivery attempt.
pub const ATTEMPT: &str = "knut-attempt";
/// Header holding the creation time to the millisecond (AMQP's timestamp has seconds only).
pub const CREATED_AT: &str = "knut-created-at";

/// AMQP delivery mode of a persistent message.
const PERSISTENT: u8 = 2;

/// An AMQP short string (at most 255 bytes). `what` names the field for the error text; the
/// value itself is never put in the error.
pub(crate) fn short(value: &str, what: &str) -> Result<ShortString, BrokerError> {
    ShortString::try_new(value).map_err(|_| {
        BrokerError::NotConfirmed(format!(
            "{what} is {} bytes long; AMQP allows at most 255: shorten it",
            value.len()
        ))
    })
}

/// The AMQP properties and payload of an envelope.
pub(crate) fn encode(envelope: &Envelope) -> Result<(BasicProperties, Bytes), BrokerError> {
    let mut headers = FieldTable::default();
    for (name, value) in &envelope.headers {
        headers.insert(
            short(name, "a header name")?,
            AMQPValue::LongString(LongString::from(value.as_bytes())),
        );
    }
    if let Some(causation) = envelope.causation_id {
        headers.insert(
            CAUSATION_ID.into(),
            AMQPValue::LongString(LongString::from(causation.to_string())),
        );
    }
    headers.insert(ATTEMPT.into(), AMQPValue::LongUInt(envelope.attempt));
    headers.insert(
        CREATED_AT.into(),
        AMQPValue::LongString(LongString::from(
            envelope
                .created_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )),
    );
    let properties = BasicProperties::default()
        .with_message_id(envelope.id.to_string().into())
        .with_correlation_id(envelope.correlation_id.to_string().into())
        .with_content_type(short(&envelope.content_type, "the content type")?)
        .with_timestamp(u64::try_from(envelope.created_at.timestamp()).unwrap_or(0))
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    Ok((properties, envelope.body.to_bytes()))
}

/// Headers RabbitMQ sets itself, not part of the envelope.
fn is_broker_header(name: &str) -> bool {
    name == "x-death"
        || name == "x-delivery-count"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        AMQPValue::ShortShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortShortUInt(n) => Some(n.to_string()),
        AMQPValue::ShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortUInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::LongUInt(n) => Some(n.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::Float(n) => Some(n.to_string()),
        AMQPValue::Double(n) => Some(n.to_string()),
        AMQPValue::Timestamp(n) => Some(n.to_string()),
        _ => None,
    }
}

fn uuid_of(value: Option<&ShortString>) -> Option<Uuid> {
    value.and_then(|s| Uuid::parse_str(s.as_str()).ok())
}

/// The envelope of a received message (see the module docs for the lenient rules).
pub(crate) fn decode(properties: &BasicProperties, payload: Vec<u8>) -> Envelope {
    let id = uuid_of(properties.message_id().as_ref()).unwrap_or_else(Uuid::now_v7);
    let correlation_id = uuid_of(properties.correlation_id().as_ref()).unwrap_or(id);
    let mut headers = BTreeMap::new();
    let mut causation_id = None;
    let mut attempt = None;
    let mut created_at = None;
    let mut broker_dead_lettered = None;
    if let Some(table) = properties.headers() {
        for (name, value) in table.inner() {
            let name = name.as_str();
            match name {
                "x-first-death-reason" => broker_dead_lettered = text(value),
                CAUSATION_ID => causation_id = text(value).and_then(|s| s.parse::<Uuid>().ok()),
                ATTEMPT => attempt = text(value).and_then(|s| s.parse::<u32>().ok()),
                CREATED_AT => {
                    created_at = text(value)
                        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                        .map(|t| t.with_timezone(&Utc));
                }
                _ if is_broker_header(name) => {}
                _ => {
                    if let Some(v) = text(value) {
                        headers.insert(name.to_string(), v);
                    }
                }
            }
        }
    }
    let created_at = created_at
        .or_else(|| {
            properties
                .timestamp()
                .and_then(|s| i64::try_from(s).ok())
                .and_then(|s| Utc.timestamp_opt(s, 0).single())
        })
        .unwrap_or_else(Utc::now);
    // Dead-lettered by RabbitMQ itself (a quorum work queue's delivery limit), not by knut:
    // say so where knut writes its own reason.
    if let Some(why) = broker_dead_lettered
        && !headers.contains_key(crate::core::envelope::header::DEAD_LETTER_REASON)
    {
        let reason = if why == "delivery_limit" {
            format!(
                "RabbitMQ dead-lettered it after {} deliveries that were never settled (the \
                 process died or gave it back each time)",
                super::definitions::DELIVERY_LIMIT
            )
        } else {
            format!("RabbitMQ dead-lettered it ({why})")
        };
        headers.insert(
            crate::core::envelope::header::DEAD_LETTER_REASON.to_string(),
            reason,
        );
        headers.insert(
            crate::core::envelope::header::DEAD_LETTER_STEP.to_string(),
            "broker".to_string(),
        );
    }
    Envelope {
        id,
        correlation_id,
        causation_id,
        headers,
        content_type: properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_else(|| "application/octet-stream".to_string()),
        body: Body::Bytes(Bytes::from(payload)),
        attempt: attempt.unwrap_or(1).max(1),
        created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut e = Envelope::json(serde_json::json!({"namn": "Åsa Öberg"}));
        e.causation_id = Some(Uuid::now_v7());
        e.correlation_id = Uuid::now_v7();
        e.headers.insert("unit".into(), "Skolenhet 7".into());
        e.headers.insert("empty".into(), String::new());
        e.attempt = 4;
        e
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let e = sample();
        let (props, body) = encode(&e).unwrap();
        assert_eq!(props.delivery_mode(), &Some(2), "persistent");
        let got = decode(&props, body.to_vec());
        assert_eq!(got.id, e.id);
        assert_eq!(got.correlation_id, e.correlation_id);
        assert_eq!(got.causation_id, e.causation_id);
        assert_eq!(got.headers, e.headers);
        assert_eq!(got.content_type, e.content_type);
        assert_eq!(got.attempt, 4);
        assert_eq!(got.body.to_bytes(), e.body.to_bytes());
        let skew = (got.created_at - e.created_at).num_milliseconds().abs();
        assert!(skew <= 1, "skew {skew} ms");
    }

    #[test]
    fn broker_headers_are_not_copied_and_scalars_become_text() {
        let e = sample();
        let (props, body) = encode(&e).unwrap();
        let mut table = props.headers().clone().unwrap();
        table.insert("x-death".into(), AMQPValue::FieldArray(Default::default()));
        table.insert(
            "x-first-death-queue".into(),
            AMQPValue::LongString("knut.retry.r.1s".into()),
        );
        table.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        table.insert("priority-hint".into(), AMQPValue::LongInt(7));
        table.insert(
            "nested".into(),
            AMQPValue::FieldTable(FieldTable::default()),
        );
        let got = decode(&props.with_headers(table), body.to_vec());
        let mut want = e.headers.clone();
        want.insert("priority-hint".into(), "7".into());
        assert_eq!(got.headers, want);
    }

    #[test]
    fn foreign_message_gets_defaults() {
        let got = decode(&BasicProperties::default(), b"hej".to_vec());
        assert_eq!(got.correlation_id, got.id);
        assert_eq!(got.id.get_version_num(), 7);
        assert_eq!(got.attempt, 1);
        assert_eq!(got.causation_id, None);
        assert_eq!(got.content_type, "application/octet-stream");
        assert_eq!(got.body.to_bytes(), Bytes::from_static(b"hej"));
    }

    #[test]
    fn amqp_timestamp_is_the_fallback_creation_time() {
        let props = BasicProperties::default().with_timestamp(1_700_000_000);
        let got = decode(&props, Vec::new());
        assert_eq!(got.created_at.timestamp(), 1_700_000_000);
    }

    #[test]
    fn overlong_header_name_is_an_error_without_the_value() {
        let mut e = sample();
        let name = "h".repeat(300);
        e.headers.insert(name.clone(), "19991231-0000".into());
        let err = encode(&e).unwrap_err().to_string();
        assert!(err.contains("300 bytes"), "{err}");
        assert!(!err.contains(&name) && !err.contains("19991231"), "{err}");
    }
}
