//! Codecs: message bodies between XML, JSON and the character encodings they arrive in.
//!
//! Used by the `xml_to_json` / `json_to_xml` steps and by the HTTP ingress, which checks
//! bodies at the door (a [`CodecError`] of any kind is the client's fault: answer `400`).
//!
//! # XML → JSON (the documented contract)
//!
//! [`xml_to_json`] reads the document with a streaming quick-xml reader (events, no
//! serde mapping) and builds a [`serde_json::Value`]:
//!
//! - an element becomes a key named by its *local* name (the namespace prefix is dropped);
//! - repeated siblings with the same name become an array, in document order; element
//!   names listed in [`XmlToJsonOptions::arrays`] always become arrays, even when single;
//! - attributes become `"@name"` keys (local name); `xmlns` and `xmlns:*` declarations are
//!   not mapped;
//! - the text of an element that also has attributes or children becomes `"#text"`;
//! - the text of a leaf element becomes a string; text and CDATA pieces are concatenated
//!   and the surrounding whitespace is trimmed;
//! - an empty element (no attributes, no children, only whitespace) becomes `null`;
//! - an element with only attributes becomes an object of `@` keys;
//! - comments and processing instructions are ignored;
//! - the document becomes `{"<root local name>": <content>}`.
//!
//! The encoding comes from the prolog: UTF-8 (the default), ISO-8859-1 / Latin-1 (each
//! byte is the code point U+00XX), Windows-1252 and US-ASCII; a UTF-8 byte order mark is
//! accepted. Bytes that do not decode in the declared encoding are an error, never
//! mojibake. A `<!DOCTYPE` is always rejected (no DTD processing, ever); only the five
//! predefined entities and numeric character references are understood. Size and depth
//! are limited by [`XmlLimits`].
//!
//! # JSON → XML
//!
//! [`json_to_xml`] is the inverse mapping (arrays → repeated elements, `@x` → attributes,
//! `#text` → text, `null` → empty element), written as UTF-8 with an XML declaration.
//!
//! # JSON bodies
//!
//! [`parse_json`] checks a JSON body: valid UTF-8, one value and nothing after it, nesting
//! and size within [`JsonLimits`].
//!
//! # Privacy
//!
//! A [`CodecError`] names kinds, positions (line, column) and key paths, never the text of
//! the document: bodies carry personnummer and other personal data.

pub mod charset;
pub mod csv;
pub mod excel;
pub mod fixed;
pub mod json;
pub mod xml;

pub use charset::{XmlEncoding, declared_encoding, decode_xml, encode_xml};
pub use csv::{CsvOptions, csv_to_json};
pub use excel::{ExcelOptions, excel_to_json};
pub use fixed::{FixedOptions, fixed_to_json};
pub use json::{JsonLimits, parse_json};
pub use xml::{XmlLimits, XmlToJsonOptions, json_to_xml, xml_to_json};

use std::fmt;

/// What kind of problem a [`CodecError`] reports.
///
/// Every kind means the body (or value) given to the codec is unacceptable; the HTTP
/// ingress answers all of them with `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// Not well-formed: syntax errors, unclosed or mismatched tags, no root element,
    /// content after the root, trailing data after a JSON value.
    Malformed,
    /// The XML document has a `<!DOCTYPE` declaration (DTDs are never processed).
    Doctype,
    /// An entity reference other than the five predefined ones, or a bad character reference.
    Entity,
    /// The bytes do not decode in the declared (or default) encoding, or the declared
    /// encoding is unknown.
    Encoding,
    /// Elements or JSON arrays/objects are nested deeper than the limit allows.
    TooDeep,
    /// The body is larger than the limit allows.
    TooLarge,
    /// The input is well-formed but cannot be represented in the target format
    /// (e.g. a JSON array of arrays turned into XML, a character XML cannot carry).
    Unsupported,
    /// A JSON key cannot be used as an XML element or attribute name.
    InvalidName,
    /// A field's value does not fit its declared type (a CSV decimal that is not a number).
    InvalidValue,
}

impl CodecErrorKind {
    /// A short, stable, machine-friendly name for the kind (e.g. for a problem `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Doctype => "doctype",
            Self::Entity => "entity",
            Self::Encoding => "encoding",
            Self::TooDeep => "too-deep",
            Self::TooLarge => "too-large",
            Self::Unsupported => "unsupported",
            Self::InvalidName => "invalid-name",
            Self::InvalidValue => "invalid-value",
        }
    }
}

impl fmt::Display for CodecErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position in a document: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Line, counting from 1.
    pub line: u64,
    /// Column in characters, counting from 1.
    pub column: u64,
}

impl Position {
    /// The line and column of byte offset `offset` in `text` (clamped to its length).
    pub fn in_text(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.bytes().filter(|&b| b == b'\n').count() as u64 + 1;
        let column = before[line_start..].chars().count() as u64 + 1;
        Self { line, column }
    }

    /// The line and column of byte offset `offset` in `bytes`, where `bytes[..offset]` is
    /// treated as UTF-8 for counting columns (invalid sequences count one per byte).
    pub fn in_bytes(bytes: &[u8], offset: usize) -> Self {
        let offset = offset.min(bytes.len());
        let before = &bytes[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        // Count characters: every byte that is not a UTF-8 continuation byte starts one.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count() as u64
            + 1;
        Self { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// An error from a codec: what kind, where, and a message for people.
///
/// The message never contains text from the document (bodies carry personal data); it names
/// positions, key paths and kinds. Key paths are masked where they look like identity
/// numbers (see [`json_to_xml`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CodecError {
    kind: CodecErrorKind,
    position: Option<Position>,
    path: Option<String>,
    message: String,
}

impl CodecError {
    /// A new error of `kind` with `message` (must not contain document text).
    pub fn new(kind: CodecErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            position: None,
            path: None,
            message: message.into(),
        }
    }

    /// The same error, located at `position`.
    pub fn at(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    /// The same error, located at a key path in a JSON value (already masked by the caller).
    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// What kind of problem this is; the HTTP layer maps every kind to `400`.
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }

    /// Where in the document the problem is, when known.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// The line (1-based) of the problem, when known.
    pub fn line(&self) -> Option<u64> {
        self.position.map(|p| p.line)
    }

    /// The column (1-based, in characters) of the problem, when known.
    pub fn column(&self) -> Option<u64> {
        self.position.map(|p| p.column)
    }

    /// The key path (JSON Pointer, masked) of the problem in a JSON value, when known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The message for people, without position or path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (&self.position, &self.path) {
            (Some(p), Some(path)) => write!(f, " (at {p}, key path {path})"),
            (Some(p), None) => write!(f, " (at {p})"),
            (None, Some(path)) => write!(f, " (at key path {path})"),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_in_text_counts_lines_and_characters() {
        let text = "ab\nåäö<x";
        let offset = text.find('<').unwrap();
        assert_eq!(
            Position::in_text(text, offset),
            Position { line: 2, column: 4 }
        );
        assert_eq!(Position::in_text(text, 0), Position { line: 1, column: 1 });
        // Offsets past the end or inside a character are clamped, never panic.
        assert_eq!(Position::in_text(text, 1000).line, 2);
        let inside = text.find('å').unwrap() + 1;
        assert_eq!(
            Position::in_text(text, inside),
            Position { line: 2, column: 1 }
        );
    }

    #[test]
    fn position_in_bytes_counts_utf8_characters() {
        let bytes = "a\nåä\u{FF}".as_bytes();
        let offset = bytes.len() - 2;
        assert_eq!(
            Position::in_bytes(bytes, offset),
            Position { line: 2, column: 3 }
        );
    }

    #[test]
    fn display_has_message_position_and_path() {
        let e = CodecError::new(CodecErrorKind::Malformed, "XML is broken")
            .at(Position { line: 3, column: 7 })
            .at_path("/a/b");
        assert_eq!(
            e.to_string(),
            "XML is broken (at line 3, column 7, key path /a/b)"
        );
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
        assert_eq!(e.line(), Some(3));
        assert_eq!(e.column(), Some(7));
        assert_eq!(e.path(), Some("/a/b"));
        assert_eq!(e.kind().as_str(), "malformed");
    }
}
