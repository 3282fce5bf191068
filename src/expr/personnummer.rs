//! Swedish personal identity numbers (personnummer), coordination numbers
//! (samordningsnummer) and organisation numbers (organisationsnummer).
//!
//! Pure Rust, no I/O. Used by the jq domain functions (`expr::domain`) and by the
//! `personnummer` / `organisationsnummer` JSON Schema formats (`schema::formats`).
//!
//! Rules (Skatteverket SKV 704 / SKV 707):
//! - a personnummer is `YYYYMMDDNNNC`: a birth date, a three-digit birth number and a
//!   check digit `C` computed with the Luhn algorithm over the last ten digits;
//! - a samordningsnummer has 60 added to the day of birth (`DD` is 61–91);
//! - the ten-digit short form `YYMMDD-NNNC` uses `-`, and `+` from the year the person
//!   turns 100, so the century follows from the separator and a reference date.
//!
//! Errors never echo the number: they say what is wrong, not what was given.

use chrono::{Datelike, NaiveDate};
use thiserror::Error;

/// Why a string is not a valid personnummer. The texts never contain the number itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PersonnummerError {
    /// Not one of the accepted shapes (12 digits, 8+4 with `-`, or 6+4 with `-`/`+`).
    #[error(
        "not a personnummer: expected YYYYMMDDNNNC, YYYYMMDD-NNNC or YYMMDD-NNNC \
         (found {length} characters in another shape)"
    )]
    BadFormat {
        /// Number of characters in the input (not the characters themselves).
        length: usize,
    },
    /// The date part is not a real calendar date (also after subtracting 60 from the day).
    #[error("not a personnummer: the date part is not a real date")]
    NotADate,
    /// The Luhn check digit does not match the other nine digits.
    #[error("not a personnummer: the check digit (last digit) does not match")]
    CheckDigit,
}

/// A validated personnummer or samordningsnummer.
///
/// Its `Debug` output masks the birth number and check digit, so accidentally logging a
/// `Personnummer` does not reveal the whole number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Personnummer {
    /// The twelve digits `YYYYMMDDNNNC` (day + 60 kept for samordningsnummer).
    digits: [u8; 12],
    birth_date: NaiveDate,
    coordination: bool,
}

impl std::fmt::Debug for Personnummer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Personnummer")
            .field("birth_date", &self.birth_date)
            .field("coordination", &self.coordination)
            .field("number", &"****")
            .finish()
    }
}

/// Parse a personnummer, using today's date (local time) as the reference for the
/// century of the ten-digit short form.
///
/// Accepts `YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDD-NNNC` and `YYMMDD+NNNC`.
pub fn parse(s: &str) -> Result<Personnummer, PersonnummerError> {
    parse_with_reference(s, chrono::Local::now().date_naive())
}

/// Like [`parse`], with an explicit reference date for the century of the short form:
/// `YYMMDD-NNNC` is the latest year ending in `YY` not after the reference year,
/// `YYMMDD+NNNC` is a hundred years before that.
pub fn parse_with_reference(
    s: &str,
    reference: NaiveDate,
) -> Result<Personnummer, PersonnummerError> {
    let bytes = s.as_bytes();
    let bad = || PersonnummerError::BadFormat {
        length: s.chars().count(),
    };
    let all_digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
    let mut digits = [0u8; 12];
    match bytes.len() {
        12 if all_digits(bytes) => digits.copy_from_slice(bytes),
        13 if bytes[8] == b'-' && all_digits(&bytes[..8]) && all_digits(&bytes[9..]) => {
            digits[..8].copy_from_slice(&bytes[..8]);
            digits[8..].copy_from_slice(&bytes[9..]);
        }
        11 if (bytes[6] == b'-' || bytes[6] == b'+')
            && all_digits(&bytes[..6])
            && all_digits(&bytes[7..]) =>
        {
            let yy = i32::from(bytes[0] - b'0') * 10 + i32::from(bytes[1] - b'0');
            let ref_year = reference.year();
            let mut year = ref_year - (ref_year - yy).rem_euclid(100);
            if bytes[6] == b'+' {
                year -= 100;
            }
            if !(0..=9999).contains(&year) {
                return Err(PersonnummerError::NotADate);
            }
            let century = format!("{:02}", year / 100);
            digits[..2].copy_from_slice(century.as_bytes());
            digits[2..8].copy_from_slice(&bytes[..6]);
            digits[8..].copy_from_slice(&bytes[7..]);
        }
        _ => return Err(bad()),
    }
    for d in &mut digits {
        *d -= b'0';
    }
    from_digits(digits)
}

fn from_digits(digits: [u8; 12]) -> Result<Personnummer, PersonnummerError> {
    let num =
        |r: std::ops::Range<usize>| digits[r].iter().fold(0u32, |a, d| a * 10 + u32::from(*d));
    let year = num(0..4) as i32;
    let month = num(4..6);
    let mut day = num(6..8);
    let coordination = day > 60;
    if coordination {
        day -= 60;
    }
    let birth_date =
        NaiveDate::from_ymd_opt(year, month, day).ok_or(PersonnummerError::NotADate)?;
    if luhn_check_digit(&digits[2..11]) != digits[11] {
        return Err(PersonnummerError::CheckDigit);
    }
    Ok(Personnummer {
        digits,
        birth_date,
        coordination,
    })
}

/// A 12-digit personnummer (or samordningsnummer) from its first eleven digits
/// (`YYYYMMDDNNN`), with the Luhn check digit appended; `None` unless given 11 ASCII digits.
/// For building fictional test persons that are valid by construction.
pub fn with_check_digit(first_eleven: &str) -> Option<String> {
    if first_eleven.len() != 11 || !first_eleven.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: Vec<u8> = first_eleven.bytes().map(|b| b - b'0').collect();
    Some(format!(
        "{first_eleven}{}",
        luhn_check_digit(&digits[2..11])
    ))
}

/// The Luhn check digit for the given digits (values 0–9): weights 2, 1, 2, … from the left.
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = u32::from(*d) * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl Personnummer {
    /// The date of birth (for a samordningsnummer, with 60 subtracted from the day).
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// True for a samordningsnummer (coordination number: day of birth + 60).
    pub fn is_coordination_number(&self) -> bool {
        self.coordination
    }

    /// Age in whole years on `date` (0 if `date` is before the birth date).
    ///
    /// A person born on 29 February has their birthday on 1 March in years that are not
    /// leap years (the day after 28 February).
    pub fn age_on(&self, date: NaiveDate) -> u32 {
        let b = self.birth_date;
        let mut years = date.year() - b.year();
        if (date.month(), date.day()) < (b.month(), b.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }

    /// The canonical twelve-digit form `YYYYMMDDNNNC` (day + 60 kept for samordningsnummer).
    pub fn canonical(&self) -> String {
        self.digits.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

/// True if `s` is a valid Swedish organisationsnummer: ten digits (an optional `-` after
/// the sixth, an optional `16` prefix), the third digit at least 2, and a Luhn check digit.
pub fn valid_organisationsnummer(s: &str) -> bool {
    let b = s.as_bytes();
    let b = if b.len() >= 12 && b.starts_with(b"16") {
        &b[2..]
    } else {
        b
    };
    let mut digits = Vec::with_capacity(10);
    match b.len() {
        10 => digits.extend_from_slice(b),
        11 if b[6] == b'-' => {
            digits.extend_from_slice(&b[..6]);
            digits.extend_from_slice(&b[7..]);
        }
        _ => return false,
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    for d in &mut digits {
        *d -= b'0';
    }
    digits[2] >= 2 && luhn_check_digit(&digits[..9]) == digits[9]
}

pub use crate::core::redact::shaped_spans;

/// Replace every personnummer-shaped value in `s` (see [`shaped_spans`]) by its date part
/// followed by `****`: `201001011236` becomes `20100101****`, `20100101-1236` becomes
/// `20100101-****`, `100101-1236` becomes `100101-****`.
pub fn mask(s: &str) -> String {
    let spans = shaped_spans(s.as_bytes());
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    for span in spans {
        // Spans are ASCII digits (and a sign), so these offsets are char boundaries.
        let keep = span.end - 4;
        out.push_str(&s[copied..keep]);
        out.push_str("****");
        copied = span.end;
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sandbox (crate knut-sandbox) builds its seed's numbers and refuses personal data
    /// with a small personnummer module of its own; it must agree with this one. The table
    /// is made of fictional numbers: valid ones built with a check digit, and each of them
    /// spoiled (another check digit, no such date) and written in every accepted shape.
    #[test]
    fn the_sandbox_agrees_on_which_numbers_are_valid() {
        use knut_sandbox::personnummer as sandbox;
        let firsts = [
            "20130412238", // born 2013-04-12
            "20100101123", // 2010-01-01
            "20000229123", // the leap day 2000
            "19000229123", // not a date: 1900 was no leap year
            "20130361123", // samordningsnummer, born 2013-03-01
            "20131301123", // no month 13
            "20130400123", // no day 0
            "20130432123", // no 32 April
            "19760415123", // an adult, born 1976
            "19250610123", // over a hundred years old
            "20260101000", // a birth number 000
        ];
        let mut table = vec![
            String::new(),
            "2013-04-12".into(),
            "20130412 2383".into(),
            "2013041223834".into(),
        ];
        for first in firsts {
            let ours = with_check_digit(first);
            assert_eq!(sandbox::with_check_digit(first), ours, "{first}");
            let full = ours.expect("eleven digits");
            let wrong = format!("{first}{}", (full.as_bytes()[11] - b'0' + 1) % 10);
            for n in [full, wrong] {
                table.push(format!("{}-{}", &n[..8], &n[8..]));
                table.push(format!("{}-{}", &n[2..8], &n[8..]));
                table.push(format!("{}+{}", &n[2..8], &n[8..]));
                table.push(n);
            }
        }
        assert_eq!(
            sandbox::with_check_digit("2013041223"),
            with_check_digit("2013041223")
        );
        let mut valid = 0;
        for n in &table {
            let ours = parse(n).is_ok();
            assert_eq!(sandbox::is_valid(n), ours, "{n:?}");
            valid += usize::from(ours);
        }
        assert!(
            valid >= 10 && valid < table.len() / 2,
            "{valid} of {}",
            table.len()
        );
        // Every number the sandbox's world is seeded with is one this module takes.
        for p in knut_sandbox::seed::Population::seed().persons {
            assert!(
                parse(&p.civic_no).is_ok(),
                "{} {}",
                p.given_name,
                p.family_name
            );
        }
    }

    // All numbers below are fictional: constructed for these tests with a valid Luhn digit.
    // 20100101-1236: born 2010-01-01. 20120229-1231: born on the leap day 2012-02-29.
    // 20130361-1238: samordningsnummer, born 2013-03-01. 20071022-1235: born 2007-10-22.
    const PNR: &str = "201001011236";
    const LEAP: &str = "201202291231";
    const SAMORDNING: &str = "201303611238";
    const ADULT_SOON: &str = "200710221235";

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn luhn_digits_of_fixtures() {
        assert_eq!(luhn_check_digit(&[1, 0, 0, 1, 0, 1, 1, 2, 3]), 6);
        // Skatteverket's own example 811218-9876.
        assert_eq!(luhn_check_digit(&[8, 1, 1, 2, 1, 8, 9, 8, 7]), 6);
    }

    #[test]
    fn accepts_long_forms() {
        let p = parse(PNR).unwrap();
        assert_eq!(p.birth_date(), d(2010, 1, 1));
        assert!(!p.is_coordination_number());
        assert_eq!(p.canonical(), PNR);
        let p2 = parse("20100101-1236").unwrap();
        assert_eq!(p, p2);
    }

    #[test]
    fn leap_day() {
        let p = parse(LEAP).unwrap();
        assert_eq!(p.birth_date(), d(2012, 2, 29));
        // 2011-02-29 does not exist (fictional number with a correct check digit for it).
        let not_leap = "201102291234";
        let digits: Vec<u8> = not_leap.bytes().map(|b| b - b'0').collect();
        let fixed = format!("{}{}", &not_leap[..11], luhn_check_digit(&digits[2..11]));
        assert_eq!(parse(&fixed), Err(PersonnummerError::NotADate));
        // Born 29 Feb: in a non-leap year the birthday is 1 March.
        assert_eq!(p.age_on(d(2013, 2, 28)), 0);
        assert_eq!(p.age_on(d(2013, 3, 1)), 1);
        assert_eq!(p.age_on(d(2016, 2, 29)), 4);
    }

    #[test]
    fn samordningsnummer() {
        let p = parse(SAMORDNING).unwrap();
        assert!(p.is_coordination_number());
        assert_eq!(p.birth_date(), d(2013, 3, 1));
        assert_eq!(p.canonical(), SAMORDNING);
    }

    #[test]
    fn bad_check_digit() {
        assert_eq!(parse("201001011237"), Err(PersonnummerError::CheckDigit));
    }

    #[test]
    fn bad_shapes_and_dates() {
        for s in [
            "",
            "2010010112",
            "2010010112369",
            "20100101_1236",
            "2010010a1236",
        ] {
            assert!(
                matches!(parse(s), Err(PersonnummerError::BadFormat { .. })),
                "{s}"
            );
        }
        assert_eq!(parse("201013011234"), Err(PersonnummerError::NotADate));
        assert_eq!(parse("201001321234"), Err(PersonnummerError::NotADate));
    }

    #[test]
    fn errors_do_not_echo_the_number() {
        for s in ["201001011237", "201013011234", "20100101x1236"] {
            let text = parse(s).unwrap_err().to_string();
            assert!(!text.contains("2010"), "{text}");
            assert!(!text.contains("1236"), "{text}");
        }
    }

    #[test]
    fn short_forms_and_plus_separator() {
        let today = d(2025, 6, 1);
        let p = parse_with_reference("100101-1236", today).unwrap();
        assert_eq!(p.birth_date(), d(2010, 1, 1));
        assert_eq!(p.canonical(), PNR);
        // `+`: a person aged 100 or more, born 1910.
        let p = parse_with_reference("100101+1236", today).unwrap();
        assert_eq!(p.birth_date(), d(1910, 1, 1));
        assert_eq!(p.canonical(), "191001011236");
        // Year after the reference year's last two digits: previous century.
        let p = parse_with_reference("300101-1232", today).unwrap();
        assert_eq!(p.birth_date(), d(1930, 1, 1));
    }

    #[test]
    fn age_around_18th_birthday() {
        let p = parse(ADULT_SOON).unwrap();
        assert_eq!(p.age_on(d(2025, 10, 21)), 17);
        assert_eq!(p.age_on(d(2025, 10, 22)), 18);
        assert_eq!(p.age_on(d(2000, 1, 1)), 0);
    }

    #[test]
    fn debug_masks_number() {
        let text = format!("{:?}", parse(PNR).unwrap());
        assert!(!text.contains("1236"), "{text}");
    }

    #[test]
    fn organisationsnummer() {
        // Fictional-format examples with valid Luhn digits (third digit >= 2).
        assert!(valid_organisationsnummer("2120000142"));
        assert!(valid_organisationsnummer("212000-0142"));
        assert!(valid_organisationsnummer("162120000142"));
        assert!(!valid_organisationsnummer("2120000143"));
        assert!(!valid_organisationsnummer("2100000142"));
        assert!(!valid_organisationsnummer("212000-014"));
        assert!(!valid_organisationsnummer("21200a0142"));
        assert!(!valid_organisationsnummer(""));
    }

    #[test]
    fn masking() {
        assert_eq!(mask("pnr 201001011236."), "pnr 20100101****.");
        assert_eq!(mask("x=20100101-1236"), "x=20100101-****");
        assert_eq!(
            mask("100101+1236 and 1001011236"),
            "100101+**** and 100101****"
        );
        assert_eq!(mask("5-201001011236"), "5-20100101****");
        // Not personnummer-shaped: left alone.
        assert_eq!(
            mask("order 12345678901234, 2025-06-01"),
            "order 12345678901234, 2025-06-01"
        );
        assert_eq!(mask("åäö 201001011236 ö"), "åäö 20100101**** ö");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn uuids_count_only_standing_alone() {
        let uuid = "0190f3c4-5a6b-7c8d-9e0f-112233445566";
        assert_eq!(mask(&format!("id={uuid}.")), format!("id={uuid}."));
        // Found by fuzzing: ten digits run into a UUID-like text. Masking them broke the
        // "UUID" up, and its last group was left as a personnummer-shaped value.
        let glued = "1234567890-1234-1234-1234-123456789012";
        let masked = mask(glued);
        assert_eq!(masked, "123456****-1234-1234-1234-12345678****");
        assert!(shaped_spans(masked.as_bytes()).is_empty(), "{masked}");
        // A span running out of the UUID's last group.
        let tail = "12345678-1234-1234-1234-abcd12345678-2384";
        let masked = mask(tail);
        assert!(shaped_spans(masked.as_bytes()).is_empty(), "{masked}");
        // A `-` without digits beyond it still lets a UUID stand alone.
        let named = "dlq-0190f3c4-5a6b-7c8d-9e0f-112233445566-retry";
        assert_eq!(mask(named), named);
    }
}
