//! Business keys: an id of the case a message belongs to (an OeP FlowInstanceID, an errand
//! number) that a route records by setting the header `knut-key-<name>` (a `set` step).
//! Like every header it travels with the message and its children through every route
//! after, and the journal notes which correlation ids carried it, so that one search by
//! the key (`knut trace`, `GET /api/trace/{id}`) finds the whole case, also across a
//! boundary where the correlation id changes.
//!
//! A key identifies a case, never a person: a personnummer-shaped value is refused where
//! the key is set, and the journal never records one.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::envelope::Envelope;

/// The header family of business keys: `knut-key-flowInstanceId`.
pub const PREFIX: &str = "knut-key-";

/// The longest name of a key.
pub const NAME_MAX: usize = 64;

/// The longest value of a key.
pub const VALUE_MAX: usize = 200;

/// Why `name` (after the prefix) cannot name a business key, if it cannot: a letter, then
/// letters, digits, `_`, `.` or `-`, at most [`NAME_MAX`].
pub fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some(format!(
            "`{PREFIX}` needs a name after it, e.g. `{PREFIX}flowInstanceId`"
        )),
        Some(c) if !c.is_ascii_alphabetic() => Some(format!(
            "a business key's name starts with a letter (`{PREFIX}flowInstanceId`)"
        )),
        _ if name.len() > NAME_MAX => Some(format!(
            "a business key's name is at most {NAME_MAX} characters"
        )),
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) => {
            Some("a business key's name holds only letters, digits, `_`, `.` and `-`".into())
        }
        _ => None,
    }
}

/// Why `value` cannot be a business key's value, if it cannot: empty, too long, control
/// characters, or personnummer-shaped (a key names a case, never a person). The text never
/// repeats the value.
pub fn value_problem(value: &str) -> Option<&'static str> {
    if value.trim().is_empty() {
        Some("is empty")
    } else if value.len() > VALUE_MAX {
        Some("is longer than 200 bytes")
    } else if value.chars().any(char::is_control) {
        Some("holds control characters")
    } else if !super::redact::shaped_spans(value.as_bytes()).is_empty() {
        Some("is personnummer-shaped (a business key names a case, never a person)")
    } else {
        None
    }
}

/// The business keys `m` carries (name → value), those fit to record only.
pub fn of(m: &Envelope) -> BTreeMap<String, String> {
    m.headers
        .range::<str, _>((Bound::Included(PREFIX), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(PREFIX))
        .filter_map(|(k, v)| {
            let name = &k[PREFIX.len()..];
            (name_problem(name).is_none() && value_problem(v).is_none())
                .then(|| (name.to_string(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked() {
        assert_eq!(name_problem("flowInstanceId"), None);
        assert_eq!(name_problem("errand.number-2"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem("2x").is_some());
        assert!(name_problem("a b").is_some());
        assert!(name_problem(&"a".repeat(65)).is_some());
        assert_eq!(value_problem("90017"), None);
        assert_eq!(value_problem("PRH-2026-000123"), None);
        assert!(value_problem("").is_some());
        assert!(value_problem("a\nb").is_some());
        for pnr in ["201304122383", "20130412-2383", "1304122383", "130412-2383"] {
            let why = value_problem(pnr).expect("refused");
            assert!(!why.contains(pnr));
        }
    }

    #[test]
    fn the_keys_of_a_message_are_its_key_headers() {
        let mut m = Envelope::json(serde_json::json!({}));
        m.headers.insert("family-id".into(), "412".into());
        m.headers
            .insert("knut-key-flowInstanceId".into(), "90017".into());
        m.headers
            .insert("knut-key-errandNumber".into(), "PRH-1".into());
        m.headers
            .insert("knut-key-bad".into(), "201304122383".into());
        m.headers.insert("knut-keys".into(), "x".into());
        m.headers.insert("knut-reply-to".into(), "q".into());
        let keys = of(&m);
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            vec![
                ("errandNumber".to_string(), "PRH-1".to_string()),
                ("flowInstanceId".to_string(), "90017".to_string())
            ]
        );
    }
}
