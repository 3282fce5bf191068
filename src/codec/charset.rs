//! Character encodings of XML documents: read the prolog's `encoding`, decode to UTF-8.
//!
//! Supported: UTF-8 (the default when none is declared; a byte order mark is accepted),
//! ISO-8859-1 / Latin-1 (each byte is the code point U+00XX, exactly — not the WHATWG
//! reinterpretation as Windows-1252), Windows-1252 (via `encoding_rs`) and US-ASCII.
//! Anything else is an error, as are bytes that do not decode: never mojibake.

use std::borrow::Cow;

use super::{CodecError, CodecErrorKind, Position};

/// The UTF-8 byte order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How far into the document the XML declaration may end (it is short; this bounds the scan).
const MAX_PROLOG_LEN: usize = 1024;

/// An encoding an XML document may be declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XmlEncoding {
    /// UTF-8, the default.
    Utf8,
    /// ISO-8859-1 (Latin-1): byte `0xNN` is `U+00NN`.
    Latin1,
    /// Windows-1252 (Latin-1 with printable characters such as `€“”` in `0x80..=0x9F`).
    Windows1252,
    /// US-ASCII: bytes `0x00..=0x7F` only.
    Ascii,
}

impl XmlEncoding {
    /// The encoding named by an XML `encoding` label (case-insensitive), if supported.
    pub fn from_label(label: &str) -> Option<Self> {
        let l = label.trim().to_ascii_lowercase();
        match l.as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "iso_8859-1:1987" | "latin1"
            | "latin-1" | "l1" | "iso-ir-100" | "csisolatin1" | "ibm819" | "cp819" => {
                Some(Self::Latin1)
            }
            "windows-1252" | "cp1252" | "x-cp1252" => Some(Self::Windows1252),
            "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us" | "csascii" => {
                Some(Self::Ascii)
            }
            _ => None,
        }
    }

    /// The canonical name of the encoding.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Latin1 => "ISO-8859-1",
            Self::Windows1252 => "windows-1252",
            Self::Ascii => "US-ASCII",
        }
    }
}

/// Encodes XML text (UTF-8) in `encoding` for sending. A character the encoding cannot
/// hold is written as a numeric character reference (`&#x20AC;`), which XML readers turn
/// back into the character — except inside a CDATA section, where it stays literal text.
/// The caller writes the matching `encoding="…"` into the prolog.
pub fn encode_xml(text: &str, encoding: XmlEncoding) -> Vec<u8> {
    let limit = match encoding {
        XmlEncoding::Utf8 => return text.as_bytes().to_vec(),
        XmlEncoding::Windows1252 => {
            return encoding_rs::WINDOWS_1252.encode(text).0.into_owned();
        }
        XmlEncoding::Latin1 => 0xFF,
        XmlEncoding::Ascii => 0x7F,
    };
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = u32::from(c);
        match u8::try_from(code) {
            Ok(b) if code <= limit => out.push(b),
            _ => out.extend_from_slice(format!("&#x{code:X};").as_bytes()),
        }
    }
    out
}

/// The `encoding` declared in the XML prolog (`<?xml version="1.0" encoding="…"?>`), as
/// written, or `None` when there is no declaration or it names no encoding.
///
/// A UTF-8 byte order mark before the declaration is skipped. Errors: a UTF-16 or UTF-32
/// byte order mark (`Unsupported`), a declaration that is not closed or whose `encoding`
/// value is not quoted (`Malformed`).
pub fn declared_encoding(bytes: &[u8]) -> Result<Option<String>, CodecError> {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    if body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF") {
        return Err(CodecError::new(
            CodecErrorKind::Unsupported,
            "the XML document is UTF-16 or UTF-32 encoded (it starts with such a byte order \
             mark); send it as UTF-8, ISO-8859-1, Windows-1252 or US-ASCII",
        )
        .at(Position { line: 1, column: 1 }));
    }
    let Some(rest) = body.strip_prefix(b"<?xml") else {
        return Ok(None);
    };
    // `<?xml-stylesheet …?>` and the like are processing instructions, not the declaration.
    if !rest.first().is_some_and(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let window = &rest[..rest.len().min(MAX_PROLOG_LEN)];
    let Some(end) = window.windows(2).position(|w| w == b"?>") else {
        return Err(CodecError::new(
            CodecErrorKind::Malformed,
            "the XML declaration (`<?xml …`) is not closed with `?>`",
        )
        .at(Position { line: 1, column: 1 }));
    };
    let decl = &window[..end];
    let Some(at) = find_pseudo_attribute(decl, b"encoding") else {
        return Ok(None);
    };
    let value = &decl[at..];
    let malformed = || {
        CodecError::new(
            CodecErrorKind::Malformed,
            "the `encoding` in the XML declaration is not a quoted name, e.g. \
             encoding=\"UTF-8\"",
        )
        .at(Position { line: 1, column: 1 })
    };
    let Some(&quote) = value.first() else {
        return Err(malformed());
    };
    if quote != b'"' && quote != b'\'' {
        return Err(malformed());
    }
    let Some(len) = value[1..].iter().position(|&b| b == quote) else {
        return Err(malformed());
    };
    let name = &value[1..1 + len];
    let valid = !name.is_empty()
        && name[0].is_ascii_alphabetic()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if !valid {
        return Err(malformed());
    }
    // Checked above: ASCII only.
    Ok(Some(String::from_utf8_lossy(name).into_owned()))
}

/// Finds `name` followed by optional whitespace and `=` and optional whitespace in `decl`;
/// returns the offset of the value's opening quote.
fn find_pseudo_attribute(decl: &[u8], name: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = decl[from..].windows(name.len()).position(|w| w == name) {
        let start = from + i;
        let preceded_by_space = start > 0 && decl[start - 1].is_ascii_whitespace();
        let mut j = start + name.len();
        while j < decl.len() && decl[j].is_ascii_whitespace() {
            j += 1;
        }
        if preceded_by_space && decl.get(j) == Some(&b'=') {
            j += 1;
            while j < decl.len() && decl[j].is_ascii_whitespace() {
                j += 1;
            }
            return Some(j);
        }
        from = start + 1;
    }
    None
}

/// Decodes an XML document to UTF-8 text using the encoding its prolog declares (UTF-8 when
/// none is declared). A UTF-8 byte order mark is removed. Borrows when no conversion is needed.
///
/// Errors (`Encoding`): an unknown declared encoding, a byte order mark that contradicts the
/// declaration, bytes that are not valid in the encoding (with the line and column of the
/// first bad byte).
pub fn decode_xml(bytes: &[u8]) -> Result<(Cow<'_, str>, XmlEncoding), CodecError> {
    let declared = declared_encoding(bytes)?;
    let has_bom = bytes.starts_with(UTF8_BOM);
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let encoding = match declared.as_deref() {
        None => XmlEncoding::Utf8,
        Some(label) => XmlEncoding::from_label(label).ok_or_else(|| {
            CodecError::new(
                CodecErrorKind::Encoding,
                "the XML declaration names an encoding that is not supported; use UTF-8, \
                 ISO-8859-1, Windows-1252 or US-ASCII",
            )
            .at(Position { line: 1, column: 1 })
        })?,
    };
    if has_bom && !matches!(encoding, XmlEncoding::Utf8 | XmlEncoding::Ascii) {
        return Err(CodecError::new(
            CodecErrorKind::Encoding,
            format!(
                "the XML document starts with a UTF-8 byte order mark but declares {}; \
                 remove the mark or declare UTF-8",
                encoding.name()
            ),
        )
        .at(Position { line: 1, column: 1 }));
    }
    let text = match encoding {
        XmlEncoding::Utf8 => Cow::Borrowed(decode_utf8(body, "UTF-8")?),
        XmlEncoding::Ascii => {
            if let Some(bad) = body.iter().position(|b| !b.is_ascii()) {
                return Err(CodecError::new(
                    CodecErrorKind::Encoding,
                    "the XML document declares US-ASCII but has a byte outside ASCII; \
                     declare the encoding it is really in",
                )
                .at(Position::in_bytes(body, bad)));
            }
            // All ASCII, so this cannot fail; map the impossible case to an error anyway.
            Cow::Borrowed(decode_utf8(body, "US-ASCII")?)
        }
        XmlEncoding::Latin1 => decode_latin1(body),
        XmlEncoding::Windows1252 => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(body);
            text
        }
    };
    Ok((text, encoding))
}

/// Validates UTF-8, reporting the position of the first bad byte.
pub(crate) fn decode_utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, CodecError> {
    std::str::from_utf8(bytes).map_err(|e| {
        CodecError::new(
            CodecErrorKind::Encoding,
            format!(
                "the body is not valid {what}: a byte sequence does not decode; send it in \
                 the encoding it declares"
            ),
        )
        .at(Position::in_bytes(bytes, e.valid_up_to()))
    })
}

/// ISO-8859-1: byte `0xNN` → `U+00NN`. Borrows when the input is all ASCII.
fn decode_latin1(bytes: &[u8]) -> Cow<'_, str> {
    let high = bytes.iter().filter(|b| !b.is_ascii()).count();
    if high == 0 {
        // All ASCII is valid UTF-8.
        if let Ok(s) = std::str::from_utf8(bytes) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len() + high);
    for run in bytes.split_inclusive(|b| !b.is_ascii()) {
        // Each run is ASCII, possibly followed by one high byte.
        let (ascii, high) = match run.split_last() {
            Some((&last, init)) if !last.is_ascii() => (init, Some(last)),
            _ => (run, None),
        };
        match std::str::from_utf8(ascii) {
            Ok(s) => out.push_str(s),
            Err(_) => out.extend(ascii.iter().map(|&b| b as char)),
        }
        if let Some(b) = high {
            out.push(b as char);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn encode_then_decode_round_trips() {
        let text = "Åsa Öhrnbjörk € ok";
        let latin1 = encode_xml(text, XmlEncoding::Latin1);
        assert_eq!(&latin1[..3], &[0xC5, b's', b'a']);
        assert!(String::from_utf8_lossy(&latin1).contains("&#x20AC;"));
        let ascii = encode_xml("å", XmlEncoding::Ascii);
        assert_eq!(ascii, b"&#xE5;");
        let doc = [
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>".as_slice(),
            &latin1,
            b"</a>",
        ]
        .concat();
        let (decoded, enc) = decode_xml(&doc).expect("decodes");
        assert_eq!(enc, XmlEncoding::Latin1);
        assert!(decoded.contains("Åsa Öhrnbjörk"));
    }

    use super::*;

    #[test]
    fn declared_encoding_reads_the_prolog() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
                Some("ISO-8859-1"),
            ),
            (
                b"<?xml version='1.0' encoding = 'windows-1252' ?><a/>",
                Some("windows-1252"),
            ),
            (
                b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>",
                Some("UTF-8"),
            ),
            (b"<?xml version=\"1.0\"?><a/>", None),
            (b"<a/>", None),
            (b"<?xml-stylesheet href=\"x\"?><a/>", None),
            (
                b"<?xml version=\"1.0\" standalone=\"yes\"?><a encoding=\"x\"/>",
                None,
            ),
        ];
        for (doc, expected) in cases {
            assert_eq!(
                declared_encoding(doc).unwrap().as_deref(),
                *expected,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn declared_encoding_errors() {
        let unclosed = declared_encoding(b"<?xml version=\"1.0\" encoding=\"UTF-8\"").unwrap_err();
        assert_eq!(unclosed.kind(), CodecErrorKind::Malformed);
        let unquoted =
            declared_encoding(b"<?xml version=\"1.0\" encoding=UTF-8?><a/>").unwrap_err();
        assert_eq!(unquoted.kind(), CodecErrorKind::Malformed);
        let utf16 = declared_encoding(b"\xFF\xFE<\x00a\x00/\x00>\x00").unwrap_err();
        assert_eq!(utf16.kind(), CodecErrorKind::Unsupported);
    }

    #[test]
    fn latin1_is_exact_for_every_byte() {
        // 0x80..=0x9F are C1 controls in ISO-8859-1, not Windows-1252's printable characters.
        let mut doc = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".to_vec();
        let start = doc.len();
        doc.extend(0x20u8..=0xFF);
        let (text, enc) = decode_xml(&doc).unwrap();
        assert_eq!(enc, XmlEncoding::Latin1);
        let decoded: Vec<u32> = text[start..].chars().map(|c| c as u32).collect();
        let expected: Vec<u32> = (0x20u32..=0xFF).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn windows_1252_maps_euro_and_quotes() {
        let doc = b"<?xml version=\"1.0\" encoding=\"Windows-1252\"?><a>\x80 \x93x\x94</a>";
        let (text, enc) = decode_xml(doc).unwrap();
        assert_eq!(enc, XmlEncoding::Windows1252);
        assert!(text.ends_with("<a>€ “x”</a>"));
    }

    #[test]
    fn invalid_bytes_are_errors_with_position() {
        let bad_utf8 = b"<a>\n  <b>ok\xC3</b></a>";
        let e = decode_xml(bad_utf8).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
        assert_eq!(e.position(), Some(Position { line: 2, column: 8 }));

        let non_ascii = b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?>\n<a>\xE5</a>";
        let e = decode_xml(non_ascii).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
        assert_eq!(e.position(), Some(Position { line: 2, column: 4 }));

        let unknown = b"<?xml version=\"1.0\" encoding=\"EBCDIC-FI-SE\"?><a/>";
        assert_eq!(
            decode_xml(unknown).unwrap_err().kind(),
            CodecErrorKind::Encoding
        );

        let bom_conflict = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>";
        assert_eq!(
            decode_xml(bom_conflict).unwrap_err().kind(),
            CodecErrorKind::Encoding
        );
    }

    #[test]
    fn utf8_bom_is_removed_and_plain_utf8_borrows() {
        let (text, _) = decode_xml(b"\xEF\xBB\xBF<a>\xC3\xA5</a>").unwrap();
        assert_eq!(text, "<a>å</a>");
        let (text, _) = decode_xml("<a>ö</a>".as_bytes()).unwrap();
        assert!(matches!(text, Cow::Borrowed(_)));
    }
}
