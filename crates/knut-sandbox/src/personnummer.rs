//! Personnummer as far as the simulations need them: building the seed's fictional numbers
//! with their check digit, and recognising a number where none may be (verksamhetsplanering
//! gets no personal data).
//!
//! Knutpunkt's own module (`knutpunkt::expr::personnummer`) is the full one; a test there
//! holds [`is_valid`] and [`with_check_digit`] in agreement with it on a table of fictional
//! numbers.
//!
//! A personnummer is `YYYYMMDDNNNC` (or `YYYYMMDD-NNNC`, or the short `YYMMDD-NNNC` /
//! `YYMMDD+NNNC`): a birth date, a birth number and a Luhn check digit over the last ten
//! digits; a samordningsnummer has 60 added to the day. The short form's century is the
//! latest one that puts the year not after this year (`+`: a hundred years before that).

use chrono::{Datelike, NaiveDate};

/// The Luhn check digit of `digits` (values 0–9): weights 2, 1, 2, … from the left.
fn luhn(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let p = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A 12-digit number from its first eleven digits (`YYYYMMDDNNN`) with the check digit
/// appended; `None` unless given eleven ASCII digits.
pub fn with_check_digit(first_eleven: &str) -> Option<String> {
    if first_eleven.len() != 11 || !first_eleven.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: Vec<u8> = first_eleven.bytes().map(|b| b - b'0').collect();
    Some(format!("{first_eleven}{}", luhn(&digits[2..])))
}

/// Whether `s` is a personnummer or samordningsnummer in one of the accepted shapes: a real
/// date (day − 60 for a samordningsnummer) and a matching check digit.
pub fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    let digits_of = |r: &[u8]| r.iter().all(u8::is_ascii_digit).then(|| r.to_vec());
    let (date_digits, ten): (Vec<u8>, Vec<u8>) = match b.len() {
        12 => match digits_of(b) {
            Some(d) => (d[..8].to_vec(), d[2..].to_vec()),
            None => return false,
        },
        13 if b[8] == b'-' => match (digits_of(&b[..8]), digits_of(&b[9..])) {
            (Some(d), Some(n)) => (d.clone(), [&d[2..], &n[..]].concat()),
            _ => return false,
        },
        11 if b[6] == b'-' || b[6] == b'+' => match (digits_of(&b[..6]), digits_of(&b[7..])) {
            (Some(d), Some(n)) => {
                // The latest year ending in YY not after this year; `+`: a hundred before.
                let this_year = chrono::Local::now().year();
                let yy = i32::from(d[0] - b'0') * 10 + i32::from(d[1] - b'0');
                let mut year = this_year - (this_year - yy).rem_euclid(100);
                if b[6] == b'+' {
                    year -= 100;
                }
                let Ok(year) = u32::try_from(year) else {
                    return false;
                };
                let century = format!("{:02}", year / 100);
                ([century.as_bytes(), &d].concat(), [&d[..], &n[..]].concat())
            }
            _ => return false,
        },
        _ => return false,
    };
    let num = |d: &[u8]| d.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    let (year, month, mut day) = (
        num(&date_digits[..4]),
        num(&date_digits[4..6]),
        num(&date_digits[6..8]),
    );
    if day > 60 {
        day -= 60;
    }
    let Ok(year) = i32::try_from(year) else {
        return false;
    };
    if NaiveDate::from_ymd_opt(year, month, day).is_none() {
        return false;
    }
    let ten: Vec<u8> = ten.iter().map(|c| c - b'0').collect();
    luhn(&ten[..9]) == ten[9]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fictional_numbers_are_told_apart() {
        let good = with_check_digit("20130412238").expect("eleven digits");
        assert_eq!(good, "201304122383");
        assert!(is_valid(&good));
        assert!(is_valid("20130412-2383"));
        assert!(is_valid("130412-2383"));
        assert!(!is_valid("201304122384"), "check digit");
        assert!(!is_valid("20130432-2383"), "no such day");
        assert!(!is_valid("2013-04-12"));
        assert_eq!(with_check_digit("2013041223"), None);
    }
}
