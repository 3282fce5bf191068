//! OeP's SOAP callback contract (`IntegrationCallbackService.xsd`, namespace
//! [`NS`]) for the operations the simulation serves, as the simulation checks a request
//! before it acts on it: each operation's sequence of elements (order, how many, a choice
//! of one), their types (`xs:int`, `xs:long`, `xs:boolean`, `xs:dateTime`,
//! `xs:base64Binary`, `xs:string`, or elements of their own), and no element or text the
//! schema does not have. The first violation is the answer, worded as libxml2 words it,
//! in a SOAP Fault with HTTP 500 — as the real OeP refuses a request its schema refuses.
//!
//! The XSD itself is OeP's (AGPL-3.0) and is not in the repository: `tests/contracts.rs`
//! validates Knutpunkt's requests and the simulation's answers against it with libxml2,
//! and proves that this model and libxml2 agree, request by request, over every operation
//! and a thousand mutations of its elements (left out, repeated, swapped, given attributes,
//! nil, set to lexical edge values). Where libxml2 2.9 departs from XML Schema the model
//! follows the schema: it refuses base64 with characters outside the alphabet that
//! libxml2 lets through, and takes XML whitespace around a typed value, which the schema
//! collapses and libxml2 refuses.

use crate::xml::Element;

/// The callback's namespace.
pub const NS: &str = "http://www.oeplatform.org/version/1.0/schemas/integration/callback";

/// A simple or complex type of the schema.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Int,
    Long,
    Boolean,
    DateTime,
    Base64,
    Text,
    Sequence(&'static [Particle]),
}

/// One particle of a sequence: an element that occurs `min..=max` times (`None`:
/// unbounded), nillable or not, or a choice of exactly one of several elements.
#[derive(Debug, Clone, Copy)]
enum Particle {
    Element(&'static str, Ty, u32, Option<u32>, Nillable),
    Choice(&'static [Particle]),
}

use Particle::{Choice, Element as El};

/// Whether an element may be `xsi:nil="true"` (and then empty).
type Nillable = bool;
const NO: Nillable = false;
const NIL: Nillable = true;

const EXTERNAL_ID: Ty = Ty::Sequence(&[
    El("ID", Ty::Text, 1, Some(1), NO),
    El("System", Ty::Text, 1, Some(1), NO),
]);

const PRINCIPAL: Ty = Ty::Sequence(&[
    El("name", Ty::Text, 0, Some(1), NIL),
    El("userID", Ty::Text, 1, Some(1), NIL),
]);

const INSTANCE: Particle = Choice(&[
    El("flowInstanceID", Ty::Int, 1, Some(1), NO),
    El("externalID", EXTERNAL_ID, 1, Some(1), NO),
]);

const ATTACHMENT: Ty = Ty::Sequence(&[
    El("encodedData", Ty::Base64, 1, Some(1), NO),
    El("filename", Ty::Text, 1, Some(1), NO),
    El("size", Ty::Long, 1, Some(1), NO),
]);

const INTEGRATION_MESSAGE: Ty = Ty::Sequence(&[
    El("added", Ty::DateTime, 1, Some(1), NO),
    El("attachments", ATTACHMENT, 0, None, NIL),
    El("message", Ty::Text, 1, Some(1), NO),
    El("readReceiptEnabled", Ty::Boolean, 0, Some(1), NIL),
    El("userID", Ty::Text, 1, Some(1), NO),
]);

const MESSAGE: &[Particle] = &[
    INSTANCE,
    El("message", INTEGRATION_MESSAGE, 1, Some(1), NO),
    El("principal", PRINCIPAL, 0, Some(1), NO),
];

/// The operations the simulation serves, with their request elements.
const OPERATIONS: &[(&str, &[Particle])] = &[
    (
        "setStatus",
        &[
            INSTANCE,
            Choice(&[
                El("statusID", Ty::Int, 1, Some(1), NO),
                El("statusAlias", Ty::Text, 1, Some(1), NO),
            ]),
            El("principal", PRINCIPAL, 0, Some(1), NO),
        ],
    ),
    ("addMessage", MESSAGE),
    ("addInternalMessage", MESSAGE),
    (
        "confirmDelivery",
        &[
            El("flowInstanceID", Ty::Int, 1, Some(1), NO),
            El("externalID", EXTERNAL_ID, 0, Some(1), NO),
            El("delivered", Ty::Boolean, 1, Some(1), NO),
            El("logMessage", Ty::Text, 0, Some(1), NO),
        ],
    ),
];

/// The names of the operations the simulation serves.
pub fn operations() -> impl Iterator<Item = &'static str> {
    OPERATIONS.iter().map(|(name, _)| *name)
}

/// Check an operation element (the SOAP Body's child) against the contract: `Ok` or the
/// first violation.
pub fn check(op: &Element) -> Result<(), String> {
    if op.namespace.as_deref() != Some(NS) {
        return Err(format!(
            "Element '{}': No matching global declaration available for the validation root.",
            op.name
        ));
    }
    let Some((_, particles)) = OPERATIONS.iter().find(|(name, _)| *name == op.name) else {
        return Err(format!(
            "Unknown operation {}; the simulation serves {}",
            op.name,
            operations().collect::<Vec<_>>().join(", ")
        ));
    };
    sequence(op, particles)
}

/// The names a particle may start with, as libxml2 lists them.
fn expected(p: &Particle) -> Vec<&'static str> {
    match p {
        El(name, ..) => vec![name],
        Choice(alts) => alts.iter().flat_map(expected).collect(),
    }
}

fn sequence(parent: &Element, particles: &[Particle]) -> Result<(), String> {
    if !parent.text.trim_matches(is_xml_space).is_empty() {
        return Err(format!(
            "Element '{}': Character content other than whitespace is not allowed because the content type is 'element-only'.",
            parent.name
        ));
    }
    let children = &parent.children;
    let mut i = 0;
    // The particles still to come, for the message about an unexpected element.
    for (k, particle) in particles.iter().enumerate() {
        let (name, ty, min, max, nillable) = match particle {
            El(name, ty, min, max, nillable) => (*name, *ty, *min, *max, *nillable),
            Choice(alts) => {
                let chosen = children.get(i).and_then(|c| {
                    alts.iter()
                        .find(|a| matches!(a, El(n, ..) if *n == c.name && in_ns(c)))
                });
                match chosen {
                    Some(El(name, ty, min, max, nillable)) => (*name, *ty, *min, *max, *nillable),
                    _ => return Err(missing_or_unexpected(parent, children.get(i), particles, k)),
                }
            }
        };
        let mut count = 0;
        while let Some(c) = children.get(i) {
            if c.name != name || !in_ns(c) || max.is_some_and(|m| count >= m) {
                break;
            }
            value(c, ty, nillable)?;
            count += 1;
            i += 1;
        }
        if count < min {
            return Err(missing_or_unexpected(parent, children.get(i), particles, k));
        }
    }
    match children.get(i) {
        Some(c) => Err(format!(
            "Element '{}': This element is not expected.",
            c.name
        )),
        None => Ok(()),
    }
}

fn in_ns(e: &Element) -> bool {
    e.namespace.as_deref() == Some(NS)
}

fn missing_or_unexpected(
    parent: &Element,
    found: Option<&Element>,
    particles: &[Particle],
    from: usize,
) -> String {
    // What must come here (libxml2 names only the required particle that is missing).
    let names = expected(&particles[from]);
    let list = names.join(", ");
    match found {
        Some(c) => format!(
            "Element '{}': This element is not expected. Expected is ( {list} ).",
            c.name
        ),
        None => format!(
            "Element '{}': Missing child element(s). Expected is ( {list} ).",
            parent.name
        ),
    }
}

/// XML's whitespace (space, tab, CR, LF) — not Unicode's (a no-break space is content).
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The element's attributes against the schema, which declares none: only `xsi:nil="true"`
/// on a nillable element, which then must be empty. `Ok(true)` when it is nil.
fn attributes(e: &Element, nillable: Nillable) -> Result<bool, String> {
    let mut nil = false;
    for (name, v) in &e.attributes {
        match (name.as_str(), v.trim_matches(is_xml_space)) {
            ("nil", "true" | "1") if nillable => nil = true,
            ("nil", "false" | "0") if nillable => {}
            ("nil", _) if !nillable => {
                return Err(format!(
                    "Element '{}': The element is not 'nillable'.",
                    e.name
                ));
            }
            _ => {
                return Err(format!(
                    "Element '{}', attribute '{name}': The attribute '{name}' is not allowed.",
                    e.name
                ));
            }
        }
    }
    if nil && (!e.children.is_empty() || !e.text.is_empty()) {
        return Err(format!(
            "Element '{}': The 'nilled' element must have no character or element content.",
            e.name
        ));
    }
    Ok(nil)
}

fn value(e: &Element, ty: Ty, nillable: Nillable) -> Result<(), String> {
    if attributes(e, nillable)? {
        return Ok(());
    }
    if let Ty::Sequence(particles) = ty {
        return sequence(e, particles);
    }
    if let Some(c) = e.children.first() {
        return Err(format!(
            "Element '{}': Element content is not allowed, because the content type is a simple type definition.",
            c.name
        ));
    }
    // The types' whitespace facet collapses XML whitespace, nothing else.
    let text = e.text.trim_matches(is_xml_space);
    let (ok, type_name) = match ty {
        Ty::Int => (is_integer(text) && text.parse::<i32>().is_ok(), "xs:int"),
        Ty::Long => (is_integer(text) && text.parse::<i64>().is_ok(), "xs:long"),
        Ty::Boolean => (matches!(text, "true" | "false" | "1" | "0"), "xs:boolean"),
        Ty::DateTime => (is_date_time(text), "xs:dateTime"),
        Ty::Base64 => (is_base64(text), "xs:base64Binary"),
        Ty::Text | Ty::Sequence(_) => (true, "xs:string"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Element '{}': '{text}' is not a valid value of the atomic type '{type_name}'.",
            e.name
        ))
    }
}

/// An xs:integer's lexical form: an optional sign and ASCII digits.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `xs:dateTime` (XML Schema 1.0): `-?YYYY-MM-DDThh:mm:ss(.s+)?` — a year of four or more
/// digits, not 0000, no leading zero beyond four —, `24:00:00` only as the end of a day, and
/// an optional `Z` or `±hh:mm` of at most 14:00.
fn is_date_time(text: &str) -> bool {
    let (body, zone) = match text.strip_suffix('Z') {
        Some(b) => (b, None),
        None => match text
            .len()
            .checked_sub(6)
            .and_then(|at| text.get(at..).map(|z| (at, z)))
        {
            Some((at, z))
                if (z.starts_with('+') || z.starts_with('-')) && z.as_bytes()[3] == b':' =>
            {
                (&text[..at], Some(&z[1..]))
            }
            _ => (text, None),
        },
    };
    if let Some(z) = zone {
        let (h, m) = (two_digits(&z[..2]), two_digits(&z[3..]));
        match (h, m) {
            (Some(h), Some(m)) if m < 60 && (h < 14 || (h == 14 && m == 0)) => {}
            _ => return false,
        }
    }
    let Some((date, time)) = body.split_once('T') else {
        return false;
    };
    let date = date.strip_prefix('-').unwrap_or(date);
    let mut parts = date.rsplitn(3, '-');
    let (Some(day), Some(month), Some(year)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let year_ok = year.len() >= 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && !(year.len() > 4 && year.starts_with('0'))
        && year.bytes().any(|b| b != b'0');
    let (Some(month), Some(day)) = (two_digits(month), two_digits(day)) else {
        return false;
    };
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let year_n: u64 = year.parse().unwrap_or(0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year_n) => 29,
        2 => 28,
        _ => return false,
    };
    if !year_ok || day == 0 || day > days {
        return false;
    }
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(s)) = (
        two_digits(&hms[..2]),
        two_digits(&hms[3..5]),
        two_digits(&hms[6..]),
    ) else {
        return false;
    };
    let zero_fraction = fraction.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    (h < 24 && m < 60 && s < 60) || (h == 24 && m == 0 && s == 0 && zero_fraction)
}

/// Exactly two ASCII digits, as a number.
fn two_digits(s: &str) -> Option<u32> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `xs:base64Binary`: base64 with the whitespace the type collapses.
fn is_base64(text: &str) -> bool {
    use base64::Engine;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(xml: &str) -> Result<(), String> {
        let e = crate::xml::parse(xml.as_bytes()).expect("XML");
        check(&e)
    }

    fn add_message(inner: &str) -> String {
        format!("<addMessage xmlns=\"{NS}\"><flowInstanceID>7</flowInstanceID>{inner}</addMessage>")
    }

    #[test]
    fn the_contract_takes_what_the_schema_takes() {
        assert_eq!(
            op(&format!(
                "<setStatus xmlns=\"{NS}\"><flowInstanceID>7</flowInstanceID><statusAlias>x</statusAlias></setStatus>"
            )),
            Ok(())
        );
        assert_eq!(
            op(&format!(
                "<setStatus xmlns=\"{NS}\"><externalID><ID>A</ID><System>B</System></externalID><statusID>3</statusID><principal><userID>u</userID></principal></setStatus>"
            )),
            Ok(())
        );
        assert_eq!(
            op(&add_message(
                "<message><added>2026-12-05T10:00:00+01:00</added><attachments><encodedData>JVBE</encodedData><filename>a.pdf</filename><size>3</size></attachments><message>m</message><userID>u</userID></message>"
            )),
            Ok(())
        );
        assert_eq!(
            op(&format!(
                "<confirmDelivery xmlns=\"{NS}\"><flowInstanceID>7</flowInstanceID><delivered>true</delivered></confirmDelivery>"
            )),
            Ok(())
        );
    }

    #[test]
    fn the_contract_refuses_what_the_schema_refuses() {
        // The regression of issue 18: an IntegrationMessage without `added`.
        let e = op(&add_message(
            "<message><message>m</message><userID>u</userID></message>",
        ))
        .unwrap_err();
        assert!(e.contains("Expected is ( added )"), "{e}");
        let e = op(&add_message(
            "<message><added>igår</added><message>m</message><userID>u</userID></message>",
        ))
        .unwrap_err();
        assert!(e.contains("xs:dateTime"), "{e}");
        let e = op(&format!("<setStatus xmlns=\"{NS}\"><flowInstanceID>x</flowInstanceID><statusAlias>x</statusAlias></setStatus>")).unwrap_err();
        assert!(e.contains("xs:int"), "{e}");
        let e = op(&format!("<setStatus xmlns=\"{NS}\"><statusAlias>x</statusAlias><flowInstanceID>7</flowInstanceID></setStatus>")).unwrap_err();
        assert!(e.contains("not expected"), "{e}");
        let e = op(&format!(
            "<setStatus xmlns=\"{NS}\"><flowInstanceID>7</flowInstanceID></setStatus>"
        ))
        .unwrap_err();
        assert!(
            e.contains("Missing child element(s). Expected is ( statusID, statusAlias )"),
            "{e}"
        );
        let e = op(
            "<setStatus><flowInstanceID>7</flowInstanceID><statusAlias>x</statusAlias></setStatus>",
        )
        .unwrap_err();
        assert!(e.contains("No matching global declaration"), "{e}");
        let e = op(&format!("<confirmDelivery xmlns=\"{NS}\"><flowInstanceID>7</flowInstanceID><delivered>ja</delivered></confirmDelivery>")).unwrap_err();
        assert!(e.contains("xs:boolean"), "{e}");
    }

    #[test]
    fn date_times_are_read_as_the_schema_reads_them() {
        for ok in [
            "2026-12-05T10:00:00",
            "2026-12-05T10:00:00Z",
            "2026-12-05T10:00:00.123+01:00",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "2026-12-05",
            "2026-12-05 10:00:00",
            "2026-12-05T10:00",
            "2026-13-05T10:00:00",
            "igår",
            "2026-12-05T10:00:00.",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }
}
