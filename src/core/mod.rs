//! The core: what every other part of Knutpunkt speaks — the envelope (a message and its
//! headers), failures and their kinds, the effects steps have on the outside world, an
//! adapter's answer, and the masking of personnummer. It depends on nothing else in the
//! crate; everything else may depend on it.

pub mod effects;
pub mod envelope;
pub mod error;
pub mod files;
pub mod keys;
pub mod problem;
pub mod redact;
pub mod suggest;
pub mod vocab;

use serde_json::Value;

/// A JSON value as a header or key string: strings as they are, others as JSON text.
pub fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
