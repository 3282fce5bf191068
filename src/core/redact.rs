//! Masking of personnummer-shaped values: the one detector, and the mask every log line,
//! error text, metric label and dead-letter view goes through.
//!
//! The redaction happens at the writer: [`RedactingMakeWriter`] wraps whatever the log
//! formatter writes to and passes every formatted line through [`mask`] before it reaches
//! stderr (or any other sink). No field, span, nested `Debug` value or log line from a
//! dependency can escape it, in text or JSON format.
//!
//! # The rule
//!
//! Within a maximal run of ASCII digits:
//!
//! * a run of exactly **10 or 12 digits** is masked (`1203150014`, `201203150014`);
//! * a run of **6 or 8 digits** followed by `-` or `+` and a run of exactly **4 digits** is
//!   masked as one value (`120315-0014`, `120315+0014`, `20120315-0014`);
//! * a run of **13 or more digits** is left as it is: a personnummer is exactly 10 or 12
//!   digits, and inside a longer run it cannot be told apart from millisecond timestamps,
//!   counters or account numbers, which must stay readable;
//! * shorter runs are never masked, so dates, times, durations and ports stay readable
//!   (`2026-11-23T10:15:00+01:00`, `1.5s`);
//! * digits inside a canonical UUID (`8-4-4-4-12` hex groups) are left as they are.
//!
//! Letters around a run do not protect it (`pnr201203150014` is masked). Dates and Luhn
//! digits are deliberately not checked: a mistyped personnummer still points at a person,
//! and a 10-digit phone number is personal data too. Every match becomes [`MASK`], which
//! keeps nothing of the value, not even its length or form.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

/// What a masked value is replaced with.
pub const MASK: &str = "********-****";

/// Returns `s` with every personnummer-shaped value replaced by [`MASK`] (see the module
/// documentation for the rule). Borrows when there is nothing to mask.
pub fn mask(s: &str) -> Cow<'_, str> {
    let spans = find(s.as_bytes());
    if spans.is_empty() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + spans.len() * MASK.len());
    let mut at = 0;
    for span in spans {
        // Spans start and end at ASCII digits, so these are char boundaries.
        out.push_str(&s[at..span.start]);
        out.push_str(MASK);
        at = span.end;
    }
    out.push_str(&s[at..]);
    Cow::Owned(out)
}

/// A request path as the admin audit journal and a problem's `instance` show it. The path
/// is percent-decoded first (again while it changes, a few times at most), so that
/// `130412%2B2383` or a number written all in `%3N` escapes hides nothing; then each
/// segment is kept when it is a UUID, replaced by [`MASK`] when it holds a personnummer in
/// any form a business key refuses ([`crate::core::keys::reads_as_personnummer`]: 10 or
/// more digits in a row, or digit groups such as `130412 2383`), and else masked by [`mask`].
pub fn mask_path(path: &str) -> String {
    let mut decoded = path.to_string();
    for _ in 0..4 {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    decoded
        .split('/')
        .map(|segment| {
            if uuid::Uuid::parse_str(segment).is_ok() {
                segment.to_string()
            } else if super::keys::reads_as_personnummer(segment) {
                MASK.to_string()
            } else {
                mask(segment).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `%XY` escapes decoded (others left as they are); bytes that are no UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Like [`mask`], for bytes that may not be UTF-8.
pub fn mask_bytes(b: &[u8]) -> Cow<'_, [u8]> {
    let spans = find(b);
    if spans.is_empty() {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len() + spans.len() * MASK.len());
    let mut at = 0;
    for span in spans {
        out.extend_from_slice(&b[at..span.start]);
        out.extend_from_slice(MASK.as_bytes());
        at = span.end;
    }
    out.extend_from_slice(&b[at..]);
    Cow::Owned(out)
}

fn find(b: &[u8]) -> Vec<Range<usize>> {
    shaped_spans(b)
}

/// The byte ranges of personnummer-shaped values in `b`, in order and not overlapping.
///
/// Shape, not validity, decides (a mistyped personnummer still points at a person): within
/// a maximal run of ASCII digits, a run of exactly 10 or 12 digits, or a run of 6 or 8
/// digits followed by `-` or `+` and exactly 4 digits. Runs of 13 or more digits
/// (timestamps, counters) and digits inside a canonical UUID (standing alone: not run
/// together with letters or digits) are not matched. This is the
/// one detector behind the log redaction, [`mask`] and the display mask of
/// `expr::personnummer::mask`.
pub fn shaped_spans(b: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    // Fast path: fewer than 10 digits cannot hold a personnummer.
    if b.iter().filter(|c| c.is_ascii_digit()).nth(9).is_none() {
        return spans;
    }
    let run_end = |from: usize| {
        b[from..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(b.len(), |n| from + n)
    };
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let end = run_end(start);
        let len = end - start;
        if (len == 6 || len == 8) && end + 1 < b.len() && matches!(b[end], b'-' | b'+') {
            let tail_end = run_end(end + 1);
            if tail_end - (end + 1) == 4 {
                spans.push(start..tail_end);
                i = tail_end;
                continue;
            }
        }
        if len == 10 || len == 12 {
            spans.push(start..end);
        }
        i = end;
    }
    if !spans.is_empty()
        && let Some(uuid) = UUID.as_ref()
    {
        let uuids: Vec<Range<usize>> = uuid
            .find_iter(b)
            .map(|m| m.range())
            .filter(|r| standing_alone(b, r))
            .collect();
        if !uuids.is_empty() {
            spans.retain(|s| !uuids.iter().any(|u| u.start <= s.start && s.end <= u.end));
        }
    }
    spans
}

/// Is the UUID-shaped text at `r` a UUID of its own? Run together with more letters or
/// digits, or with `-`/`+` and a digit (`1234567890-1234-…`), it is none: a span reaching
/// into it would be masked, break it up and expose the digits it seemed to hold.
fn standing_alone(b: &[u8], r: &Range<usize>) -> bool {
    let before = r.start.checked_sub(1).and_then(|i| b.get(i));
    let after = b.get(r.end);
    let joins = |c: Option<&u8>, next: Option<&u8>| match c {
        Some(c) if c.is_ascii_alphanumeric() => true,
        Some(b'-' | b'+') => next.is_some_and(u8::is_ascii_digit),
        _ => false,
    };
    !joins(before, r.start.checked_sub(2).and_then(|i| b.get(i))) && !joins(after, b.get(r.end + 1))
}

static UUID: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}").ok()
});

#[cfg(test)]
mod path_tests {
    use super::*;

    /// A personnummer percent-encoded in a path, in part or whole, or in a form the shape
    /// detector lets through, leaves no digit of it; ids and names stay readable.
    #[test]
    fn a_path_is_decoded_before_it_is_masked() {
        let all: String = "130412-2383".bytes().map(|b| format!("%{b:02X}")).collect();
        for path in [
            "/api/trace/130412%2B2383".to_string(),
            "/api/trace/130412%252B2383".to_string(),
            format!("/api/trace/{all}"),
            "/api/trace/130412%202383".to_string(),
            "/api/trace/2013-04-12-2383".to_string(),
            "/api/trace/%31%33%30%34%31%32%32%33%38%33".to_string(),
        ] {
            let shown = mask_path(&path);
            assert_eq!(shown, format!("/api/trace/{MASK}"), "{path}");
        }
        let id = "0192f0c4-1f2b-7c3d-8e9f-0123456789ab";
        assert_eq!(
            mask_path(&format!("/api/routes/case-open/dlq/{id}")),
            format!("/api/routes/case-open/dlq/{id}")
        );
        assert_eq!(
            mask_path("/api/trace/SKOL-2026-000007"),
            "/api/trace/SKOL-2026-000007"
        );
    }
}
