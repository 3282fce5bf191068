//! Custom JSON Schema formats, registered on every schema of the registry.
//!
//! | format | accepts |
//! |---|---|
//! | `personnummer` | `YYYYMMDDNNNC` or `YYYYMMDD-NNNC`: a real date (samordningsnummer: day + 60) and a Luhn check digit over the last ten digits. The ten-digit short form is refused in messages: its century depends on the day it is read. |
//! | `organisationsnummer` | ten digits, optional `-` after the sixth, optional `16` prefix, third digit at least 2, Luhn check digit |
//!
//! Both are checked by [`crate::expr::personnummer`].

use crate::expr::personnummer;

/// Name of the personnummer format.
pub const PERSONNUMMER: &str = "personnummer";
/// Name of the organisationsnummer format.
pub const ORGANISATIONSNUMMER: &str = "organisationsnummer";

/// The `personnummer` format: long forms only (12 digits, optionally `-` before the last four).
pub fn is_personnummer(s: &str) -> bool {
    matches!(s.len(), 12 | 13) && personnummer::parse(s).is_ok()
}

/// The `organisationsnummer` format.
pub fn is_organisationsnummer(s: &str) -> bool {
    personnummer::valid_organisationsnummer(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personnummer_format() {
        // Fictional, constructed with a valid Luhn digit.
        assert!(is_personnummer("201001011236"));
        assert!(is_personnummer("20100101-1236"));
        assert!(is_personnummer("201303611238"));
        assert!(!is_personnummer("100101-1236"));
        assert!(!is_personnummer("201001011237"));
        assert!(!is_personnummer("2010-01-01"));
    }

    #[test]
    fn organisationsnummer_format() {
        assert!(is_organisationsnummer("212000-0142"));
        assert!(!is_organisationsnummer("212000-0143"));
    }
}
