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

/// The longest value of a key.
pub const VALUE_MAX: usize = 128;

/// Why `value` cannot be a business key's value, if it cannot. The text never repeats the
/// value. A key names a case, never a person, so a value is refused when it is:
///
/// * empty, or longer than [`VALUE_MAX`] bytes;
/// * made of anything but ASCII letters, digits and `.`, `_`, `:`, `/`, `-` (no space, no
///   `+`, no digit of another script: forms a personnummer hides in);
/// * holding 10 or more digits in a row (a personnummer, one run into another id, or a
///   long numeric id: none can be a key);
/// * holding groups of digits, joined by single separators, that read as a personnummer:
///   groups ending in one of 4 digits that together make 10 or 12 digits (`130412-2383`,
///   `2013-04-12-2383`). An errand number `SKOL-2026-000007` (4 then 6) is a key.
pub fn value_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("is empty")
    } else if value.len() > VALUE_MAX {
        Some("is longer than 128 bytes")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
    {
        Some("holds a character other than letters, digits, `.`, `_`, `:`, `/` and `-`")
    } else if reads_as_personnummer(value) {
        Some(
            "holds 10 or more digits, in a row or in groups read as a personnummer (a business key names a case, never a person; a long numeric id cannot be a key)",
        )
    } else {
        None
    }
}

/// Whether `text` holds a run of 10 or more digits (of any script), or groups of digits
/// joined by single separators (`-`, `+`, `.`, space, `/`, `:`, `_`) of which some
/// consecutive ones end in a group of 4 digits and make 10 or 12 digits together.
pub fn reads_as_personnummer(text: &str) -> bool {
    // The digit groups of each chain: groups joined by exactly one separator.
    let mut chains: Vec<Vec<usize>> = vec![Vec::new()];
    let mut run = 0usize;
    let mut separators = 0usize;
    for c in text.chars() {
        if c.is_numeric() {
            if run == 0 && separators != 1 {
                // Not joined to the group before: a new chain.
                chains.push(Vec::new());
            }
            run += 1;
            separators = 0;
            if run >= 10 {
                return true;
            }
        } else {
            if run > 0 {
                chains.last_mut().expect("a chain").push(run);
                run = 0;
                separators = 0;
            }
            if matches!(c, '-' | '+' | '.' | ' ' | '/' | ':' | '_') {
                separators += 1;
            } else {
                // A letter or anything else ends the chain.
                separators = 2;
            }
        }
    }
    if run > 0 {
        chains.last_mut().expect("a chain").push(run);
    }
    chains.iter().any(|groups| {
        groups.iter().enumerate().any(|(end, &last)| {
            last == 4 && {
                let mut total = 0;
                groups[..=end].iter().rev().any(|&n| {
                    total += n;
                    total == 10 || total == 12
                })
            }
        })
    })
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

    /// The forms a personnummer hides in that a shape detector alone lets through, and a
    /// long numeric id, are no key; an errand number and a FlowInstanceID are.
    #[test]
    fn a_personnummer_in_any_form_is_no_key() {
        for ok in [
            "90017",
            "SKOL-2026-000007",
            "PRH-2026-000123",
            "a.b_c:d/e-f",
            "2026-11-23",
            "123456789",
            "v1.2.3",
        ] {
            assert_eq!(value_problem(ok), None, "{ok}");
        }
        assert!(value_problem(&"a".repeat(128)).is_none());
        assert!(value_problem(&"a".repeat(129)).is_some());
        for bad in [
            "20130412 2383",
            "130412 2383",
            "2013-04-12-2383",
            "13-04-12-2383",
            "2013.04.12.2383",
            "130412+2383",
            "x130412-2383",
            "90017201304122383",
            "id90017-201304122383",
            "\u{661}\u{663}\u{660}\u{664}\u{661}\u{662}\u{662}\u{663}\u{668}\u{663}",
            "\u{ff11}\u{ff13}0412-2383",
            "1234567890",
            "2026-000007-1234",
        ] {
            let why = value_problem(bad).unwrap_or_else(|| panic!("{bad:?} is refused"));
            assert!(!why.contains(bad));
        }
        assert!(reads_as_personnummer("130412 2383"));
        assert!(!reads_as_personnummer("SKOL-2026-000007"));
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
