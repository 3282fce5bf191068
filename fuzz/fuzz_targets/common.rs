//! Checks shared by the fuzz targets.

#![allow(dead_code)] // each target uses some of these

use knutpunkt::expr::personnummer::shaped_spans;

/// Every personnummer-shaped value in `input` (see `shaped_spans`), as written and with
/// its `-`/`+` removed.
pub fn shaped_values(input: &[u8]) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    for span in shaped_spans(input) {
        let written = input[span].to_vec();
        let digits: Vec<u8> = written.iter().copied().filter(u8::is_ascii_digit).collect();
        if digits != written {
            values.push(digits);
        }
        values.push(written);
    }
    values
}

/// Panics when `text` (an error shown to people) holds a personnummer-shaped value of
/// `input`.
pub fn assert_no_leak(input: &[u8], text: &str, what: &str) {
    for value in shaped_values(input) {
        let hay = text.as_bytes();
        let leaked = hay.windows(value.len()).any(|w| w == value.as_slice());
        assert!(
            !leaked,
            "{what}: the error text holds the personnummer-shaped value `{}` of the input: {text}",
            String::from_utf8_lossy(&value)
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
