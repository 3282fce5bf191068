//! Personnummer parsing and masking.
//!
//! Checks: parsing never panics; a parsed number's canonical form parses back to the same
//! value at any reference date, has 12 digits and the parsed birth date; the short form's
//! century follows the reference date and the separator; error texts never hold the
//! number; `shaped_spans` gives ordered, non-overlapping spans of the documented shape;
//! neither `mask` leaves a personnummer-shaped span behind, and both change nothing else.
#![no_main]

mod common;

use chrono::{Datelike, NaiveDate};
use knutpunkt::expr::personnummer::{
    Personnummer, PersonnummerError, mask, parse, parse_with_reference, shaped_spans,
    valid_organisationsnummer, with_check_digit,
};
use knutpunkt::telemetry::redact;
use libfuzzer_sys::fuzz_target;

fn check_parsed(s: &str, reference: NaiveDate, p: &Personnummer) {
    let canonical = p.canonical();
    assert_eq!(canonical.len(), 12, "{canonical}");
    assert!(canonical.bytes().all(|b| b.is_ascii_digit()), "{canonical}");
    // The canonical form is century-complete: it reads back the same at any reference.
    for r in [reference, NaiveDate::MIN, NaiveDate::MAX] {
        assert_eq!(
            parse_with_reference(&canonical, r).as_ref(),
            Ok(p),
            "{canonical} at {r}"
        );
    }
    let birth = p.birth_date();
    let day: u32 = canonical[6..8].parse().unwrap_or(0);
    assert_eq!(p.is_coordination_number(), day > 60, "{canonical}");
    assert_eq!(
        format!(
            "{:04}{:02}{:02}",
            birth.year(),
            birth.month(),
            birth.day() + if p.is_coordination_number() { 60 } else { 0 }
        ),
        canonical[..8],
        "{canonical}"
    );
    // The digits given are kept: long forms exactly, short forms after the century.
    let given: String = s.chars().filter(char::is_ascii_digit).collect();
    assert!(canonical.ends_with(&given), "{s} -> {canonical}");
    if s.len() == 11 {
        let ref_year = reference.year();
        let year = birth.year();
        let (lo, hi) = if s.as_bytes()[6] == b'+' {
            (ref_year - 199, ref_year - 100)
        } else {
            (ref_year - 99, ref_year)
        };
        assert!((lo..=hi).contains(&year), "{s} at {reference}: born {year}");
    }
    assert_eq!(p.age_on(birth), 0);
    // Debug shows the birth date (which may hold the same four digits, e.g. 2126-07-24 and
    // …-2126), never the number's last four digits or the whole number.
    let debug = format!("{p:?}");
    let without_date = debug.replace(&birth.to_string(), "");
    assert!(
        !without_date.contains(&canonical[8..]) && !debug.contains(&canonical),
        "Debug shows the number: {debug}"
    );
}

fn check_error(s: &str, e: &PersonnummerError) {
    let text = format!("{e} {e:?}");
    common::assert_no_leak(s.as_bytes(), &text, "parse");
    if s.bytes().filter(u8::is_ascii_digit).count() >= 6 {
        assert!(!text.contains(s), "the error echoes the input: {text}");
    }
}

fn check_spans(b: &[u8]) {
    let spans = shaped_spans(b);
    let mut last_end = 0;
    for span in &spans {
        assert!(span.start >= last_end && span.end <= b.len(), "{spans:?}");
        last_end = span.end;
        let v = &b[span.clone()];
        let seps = v.iter().filter(|c| matches!(c, b'-' | b'+')).count();
        let digits = v.iter().filter(|c| c.is_ascii_digit()).count();
        assert_eq!(seps + digits, v.len(), "{v:?}");
        assert!(seps <= 1 && (digits == 10 || digits == 12), "{v:?}");
        // Maximal runs: no digit touches the span from outside.
        assert!(
            span.start == 0 || !b[span.start - 1].is_ascii_digit(),
            "{v:?}"
        );
        assert!(
            span.end == b.len() || !b[span.end].is_ascii_digit(),
            "{v:?}"
        );
    }
}

fn check_masks(s: &str) {
    let spans = shaped_spans(s.as_bytes());

    let masked = mask(s);
    assert_eq!(masked.len(), s.len());
    assert!(
        shaped_spans(masked.as_bytes()).is_empty(),
        "personnummer::mask left a personnummer-shaped span: {s:?} -> {masked:?}"
    );
    // Outside the spans nothing changes; inside, only the last four characters.
    let mut at = 0;
    for span in &spans {
        assert_eq!(masked[at..span.end - 4], s[at..span.end - 4]);
        assert_eq!(&masked[span.end - 4..span.end], "****");
        at = span.end;
    }
    assert_eq!(masked[at..], s[at..]);

    let redacted = redact::mask(s);
    assert!(
        shaped_spans(redacted.as_bytes()).is_empty(),
        "redact::mask left a personnummer-shaped span: {s:?} -> {redacted:?}"
    );
    assert_eq!(
        redacted.len(),
        s.len()
            + spans
                .iter()
                .map(|r| redact::MASK.len() - r.len())
                .sum::<usize>()
    );
    assert_eq!(
        redact::mask_bytes(s.as_bytes()).as_ref(),
        redacted.as_bytes()
    );
}

fuzz_target!(|data: &[u8]| {
    check_spans(data);
    let redacted = redact::mask_bytes(data);
    assert!(
        shaped_spans(&redacted).is_empty(),
        "{data:?} -> {redacted:?}"
    );

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_masks(s);
    let _ = valid_organisationsnummer(s);

    let reference = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default();
    for (r, result) in [
        (reference, parse_with_reference(s, reference)),
        (chrono::Local::now().date_naive(), parse(s)),
    ] {
        match result {
            Ok(p) => check_parsed(s, r, &p),
            Err(e) => check_error(s, &e),
        }
    }

    // A number built with its check digit fails, if at all, only for its date.
    if let Some(full) = with_check_digit(s) {
        match parse_with_reference(&full, reference) {
            Ok(p) => assert_eq!(p.canonical(), full),
            Err(e) => assert_eq!(e, PersonnummerError::NotADate, "{full}"),
        }
    }
});
