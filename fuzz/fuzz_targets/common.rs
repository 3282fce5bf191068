//! Checks shared by the fuzz targets.

#![allow(dead_code)] // each target uses some of these

use knutpunkt::expr::personnummer::shaped_spans;

/// The digits of every personnummer-shaped value in `b` (see `shaped_spans`), without
/// the `-`/`+`.
pub fn shaped_digits(b: &[u8]) -> Vec<Vec<u8>> {
    shaped_spans(b)
        .into_iter()
        .map(|span| b[span].iter().copied().filter(u8::is_ascii_digit).collect())
        .collect()
}

/// Panics when `text` (an error shown to people) holds a personnummer-shaped value (as the
/// log redaction sees one) whose digits are those of a personnummer-shaped value of
/// `input`. A value inside a longer digit run is none (13 digits or more are left alone
/// by the rule), so only what the redaction would have to mask counts.
pub fn assert_no_leak(input: &[u8], text: &str, what: &str) {
    let from_input = shaped_digits(input);
    if from_input.is_empty() {
        return;
    }
    for shown in shaped_digits(text.as_bytes()) {
        assert!(
            !from_input.contains(&shown),
            "{what}: the error text holds the personnummer-shaped value `{}` of the input: {text}",
            String::from_utf8_lossy(&shown)
        );
    }
}

/// Splits off an options byte: a first byte in 0x01..=0x08 (never the start of a
/// sensible document) selects options and is not part of the document.
pub fn options_byte(data: &[u8]) -> (Option<u8>, &[u8]) {
    match data.first() {
        Some(&b @ 0x01..=0x08) => (Some(b), &data[1..]),
        _ => (None, data),
    }
}
