//! XML ↔ JSON: a streaming quick-xml reader builds a [`Value`]; a small writer turns a
//! [`Value`] back into XML. The mapping is documented on the [`codec`](super) module.

use std::borrow::Cow;
use std::io::Write as _;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;
use serde_json::{Map, Value};

use super::charset::decode_xml;
use super::{CodecError, CodecErrorKind, Position};

/// Limits applied while reading an XML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// The largest document accepted, in bytes (before decoding). Default 16 MiB.
    pub max_bytes: usize,
    /// The deepest element nesting accepted; the root element is level 1. Default 64.
    pub max_depth: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Options for [`xml_to_json`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlToJsonOptions {
    /// Element local names that always become JSON arrays, even when they occur once.
    pub arrays: Vec<String>,
    /// Size and depth limits.
    pub limits: XmlLimits,
}

/// The deepest JSON nesting [`json_to_xml`] writes (it recurses; this bounds the stack).
const MAX_JSON_TO_XML_DEPTH: usize = 256;

/// One open element while reading.
struct Frame {
    /// Local name of the element.
    name: String,
    /// Attributes (`@name`) and children, in document order.
    map: Map<String, Value>,
    /// Text and CDATA pieces, concatenated.
    text: String,
}

/// Converts an XML document to JSON following the documented mapping (see [`super`]).
///
/// The encoding is taken from the prolog (see [`decode_xml`]). Errors carry a kind and the
/// line and column of the problem, never document text: malformed XML, a `<!DOCTYPE`,
/// unknown entities, undecodable bytes, and exceeded [`XmlLimits`].
pub fn xml_to_json(bytes: &[u8], opts: &XmlToJsonOptions) -> Result<Value, CodecError> {
    if bytes.len() > opts.limits.max_bytes {
        return Err(CodecError::new(
            CodecErrorKind::TooLarge,
            format!(
                "the XML document is {} bytes, more than the limit of {} bytes",
                bytes.len(),
                opts.limits.max_bytes
            ),
        ));
    }
    let (text, _encoding) = decode_xml(bytes)?;
    convert(&text, opts)
}

fn convert(text: &str, opts: &XmlToJsonOptions) -> Result<Value, CodecError> {
    if let Some(bad) = find_non_xml_char(text) {
        return Err(CodecError::new(
            CodecErrorKind::Malformed,
            "the XML document contains a character XML 1.0 does not allow (a control \
             character other than tab, line feed and carriage return, or U+FFFE/U+FFFF)",
        )
        .at(Position::in_text(text, bad)));
    }
    let at = |offset: u64| Position::in_text(text, usize::try_from(offset).unwrap_or(usize::MAX));
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut root: Option<(String, Value)> = None;
    let mut spare_text: Vec<String> = Vec::new();

    loop {
        let event_start = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => return Err(reader_error(&e).at(at(reader.error_position()))),
        };
        match event {
            Event::Start(_) | Event::Empty(_) if stack.is_empty() && root.is_some() => {
                return Err(CodecError::new(
                    CodecErrorKind::Malformed,
                    "the XML document has a second root element; a document has exactly one",
                )
                .at(at(event_start)));
            }
            Event::Start(start) => {
                let frame = open(&start, &stack, opts, spare_text.pop())
                    .map_err(|e| e.at(at(event_start)))?;
                stack.push(frame);
            }
            Event::Empty(start) => {
                let frame = open(&start, &stack, opts, spare_text.pop())
                    .map_err(|e| e.at(at(event_start)))?;
                close(frame, &mut stack, &mut root, opts, &mut spare_text);
            }
            Event::End(_) => match stack.pop() {
                Some(frame) => close(frame, &mut stack, &mut root, opts, &mut spare_text),
                None => {
                    return Err(CodecError::new(
                        CodecErrorKind::Malformed,
                        "the XML document has an end tag that closes no open element",
                    )
                    .at(at(event_start)));
                }
            },
            Event::Text(t) => match stack.last_mut() {
                // Leading whitespace is trimmed anyway: skip whitespace-only pieces until
                // the element has some text (typical indentation between children).
                Some(frame) if frame.text.is_empty() && is_xml_whitespace(&t) => {}
                Some(frame) => frame.text.push_str(&t.xml10_content()),
                None => {
                    if !is_xml_whitespace(&t) {
                        // Point at the first character that is not whitespace.
                        let skipped = t.len() - t.trim_start_matches(is_xml_ws_char).len();
                        let what = if root.is_some() { "after" } else { "before" };
                        return Err(CodecError::new(
                            CodecErrorKind::Malformed,
                            format!(
                                "the XML document has text {what} the root element; only \
                                 whitespace, comments and processing instructions may be there"
                            ),
                        )
                        .at(at(event_start + skipped as u64)));
                    }
                }
            },
            Event::CData(c) => match stack.last_mut() {
                Some(frame) => frame.text.push_str(&c.xml10_content()),
                None => {
                    return Err(CodecError::new(
                        CodecErrorKind::Malformed,
                        "the XML document has a CDATA section outside the root element",
                    )
                    .at(at(event_start)));
                }
            },
            Event::GeneralRef(r) => {
                let ch = resolve_reference(&r).map_err(|e| e.at(at(event_start)))?;
                match stack.last_mut() {
                    Some(frame) => frame.text.push(ch),
                    None => {
                        return Err(CodecError::new(
                            CodecErrorKind::Malformed,
                            "the XML document has a character reference outside the root \
                             element",
                        )
                        .at(at(event_start)));
                    }
                }
            }
            Event::DocType(_) => {
                return Err(CodecError::new(
                    CodecErrorKind::Doctype,
                    "the XML document has a <!DOCTYPE> declaration; DTDs are never processed, \
                     remove it",
                )
                .at(at(event_start)));
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }

    if !stack.is_empty() {
        return Err(CodecError::new(
            CodecErrorKind::Malformed,
            format!(
                "the XML document ends while {} element(s) are still open; close every \
                 start tag",
                stack.len()
            ),
        )
        .at(Position::in_text(text, text.len())));
    }
    match root {
        Some((name, value)) => {
            let mut doc = Map::with_capacity(1);
            doc.insert(name, value);
            Ok(Value::Object(doc))
        }
        None => Err(CodecError::new(
            CodecErrorKind::Malformed,
            "the XML document has no root element",
        )
        .at(Position::in_text(text, text.len()))),
    }
}

/// Starts a frame for an element: checks the depth, maps the attributes.
fn open(
    start: &BytesStart<'_>,
    stack: &[Frame],
    opts: &XmlToJsonOptions,
    text: Option<String>,
) -> Result<Frame, CodecError> {
    if stack.len() >= opts.limits.max_depth {
        return Err(CodecError::new(
            CodecErrorKind::TooDeep,
            format!(
                "the XML document nests elements deeper than the limit of {} levels",
                opts.limits.max_depth
            ),
        ));
    }
    let mut map = Map::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| {
            CodecError::new(
                CodecErrorKind::Malformed,
                format!(
                    "the XML document has a malformed attribute in this start tag ({})",
                    attr_error_kind(&e)
                ),
            )
        })?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| attribute_value_error(&e))?;
        let local = attr.key.local_name();
        if !is_qualified_name(attr.key.as_ref(), local.as_ref()) {
            return Err(bad_name());
        }
        let mut key = String::with_capacity(1 + local.as_ref().len());
        key.push('@');
        key.push_str(local.as_ref());
        insert_child(&mut map, key, Value::String(value.into_owned()), false);
    }
    let name = start.local_name().as_ref().to_owned();
    if !is_qualified_name(start.name().as_ref(), &name) {
        return Err(bad_name());
    }
    let mut text = text.unwrap_or_default();
    text.clear();
    Ok(Frame { name, map, text })
}

/// Is `qname` an XML name with at most one prefix, and `local` its part after the `:`?
/// quick-xml does not check names: `a:b:c` would keep the local name `b:c` (written back,
/// read as `c`), and `p:@x` would become the key of an attribute.
fn is_qualified_name(qname: &str, local: &str) -> bool {
    is_xml_name(qname) && !local.is_empty() && !local.contains(':')
}

fn bad_name() -> CodecError {
    CodecError::new(
        CodecErrorKind::Malformed,
        "the XML document has an element or attribute name that is not an XML name (a \
         letter or `_` first, then letters, digits, `-`, `_`, `.`; at most one namespace \
         prefix)",
    )
}

/// Finishes a frame and puts its value into its parent (or makes it the root).
fn close(
    frame: Frame,
    stack: &mut [Frame],
    root: &mut Option<(String, Value)>,
    opts: &XmlToJsonOptions,
    spare_text: &mut Vec<String>,
) {
    let Frame {
        name,
        mut map,
        mut text,
    } = frame;
    let trimmed = trim_xml_whitespace(&text);
    let text_value = if trimmed.is_empty() {
        None
    } else if trimmed.len() == text.len() {
        Some(std::mem::take(&mut text))
    } else {
        Some(trimmed.to_owned())
    };
    if text.capacity() > 0 {
        spare_text.push(text);
    }
    let value = if map.is_empty() {
        match text_value {
            None => Value::Null,
            Some(s) => Value::String(s),
        }
    } else {
        if let Some(s) = text_value {
            map.insert("#text".to_owned(), Value::String(s));
        }
        Value::Object(map)
    };
    match stack.last_mut() {
        Some(parent) => {
            let force_array = opts.arrays.contains(&name);
            insert_child(&mut parent.map, name, value, force_array);
        }
        None => {
            let value = if opts.arrays.contains(&name) {
                Value::Array(vec![value])
            } else {
                value
            };
            *root = Some((name, value));
        }
    }
}

/// Inserts `value` under `key`; a repeated key becomes an array in document order.
fn insert_child(map: &mut Map<String, Value>, key: String, value: Value, force_array: bool) {
    match map.get_mut(&key) {
        // Element values are never arrays themselves, so an array here is one we made.
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = std::mem::take(existing);
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            let value = if force_array {
                Value::Array(vec![value])
            } else {
                value
            };
            map.insert(key, value);
        }
    }
}

/// Resolves `&name;`: the five predefined entities and numeric character references only.
fn resolve_reference(r: &BytesRef<'_>) -> Result<char, CodecError> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(ch)) if is_xml_char(ch) => Ok(ch),
            _ => Err(CodecError::new(
                CodecErrorKind::Entity,
                "the XML document has a character reference (&#…;) that is not a valid \
                 XML character",
            )),
        };
    }
    match &**r {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(CodecError::new(
            CodecErrorKind::Entity,
            "the XML document uses an entity reference other than &lt; &gt; &amp; &apos; \
             &quot; or a numeric character reference; custom entities are not supported",
        )),
    }
}

fn attribute_value_error(e: &quick_xml::Error) -> CodecError {
    match e {
        quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(..)) => {
            CodecError::new(
                CodecErrorKind::Entity,
                "an attribute value uses an entity reference other than &lt; &gt; &amp; \
                 &apos; &quot; or a numeric character reference",
            )
        }
        quick_xml::Error::Escape(quick_xml::escape::EscapeError::InvalidCharRef(_)) => {
            CodecError::new(
                CodecErrorKind::Entity,
                "an attribute value has a character reference (&#…;) that is not a valid XML \
                 character",
            )
        }
        _ => CodecError::new(
            CodecErrorKind::Malformed,
            "an attribute value has an `&` that does not start a reference; write it as &amp;",
        ),
    }
}

/// A description of an attribute error without any document text.
fn attr_error_kind(e: &quick_xml::events::attributes::AttrError) -> &'static str {
    use quick_xml::events::attributes::AttrError;
    match e {
        AttrError::ExpectedEq(_) => "an attribute name is not followed by `=`",
        AttrError::ExpectedValue(_) => "an attribute has no value",
        AttrError::UnquotedValue(_) => "an attribute value is not quoted",
        AttrError::ExpectedQuote(..) => "an attribute value is not closed with its quote",
        AttrError::Duplicated(..) => "an attribute is given twice",
    }
}

/// Maps a reader error to a [`CodecError`] without copying any names or text from the input.
fn reader_error(e: &quick_xml::Error) -> CodecError {
    use quick_xml::errors::{IllFormedError, SyntaxError};
    let (kind, message): (CodecErrorKind, Cow<'static, str>) = match e {
        quick_xml::Error::Syntax(s) => {
            let m = match s {
                SyntaxError::InvalidBangMarkup => "unknown markup after `<!`",
                SyntaxError::UnclosedPI => "a processing instruction is not closed with `?>`",
                SyntaxError::UnclosedXmlDecl => "the XML declaration is not closed with `?>`",
                SyntaxError::UnclosedComment => "a comment is not closed with `-->`",
                SyntaxError::UnclosedDoctype => {
                    return CodecError::new(
                        CodecErrorKind::Doctype,
                        "the XML document has a <!DOCTYPE> declaration; DTDs are never \
                         processed, remove it",
                    );
                }
                SyntaxError::UnclosedCData => "a CDATA section is not closed with `]]>`",
                SyntaxError::UnclosedTag => "a tag is not closed with `>`",
                SyntaxError::UnclosedSingleQuotedAttributeValue
                | SyntaxError::UnclosedDoubleQuotedAttributeValue => {
                    "an attribute value is not closed with its quote"
                }
            };
            (CodecErrorKind::Malformed, m.into())
        }
        quick_xml::Error::IllFormed(i) => {
            let m = match i {
                IllFormedError::MissingDeclVersion(_) => {
                    "the XML declaration does not start with `version`"
                }
                IllFormedError::UnknownVersion => "the XML declaration has an unknown version",
                IllFormedError::MissingDoctypeName => {
                    return CodecError::new(
                        CodecErrorKind::Doctype,
                        "the XML document has a <!DOCTYPE> declaration; DTDs are never \
                         processed, remove it",
                    );
                }
                IllFormedError::MissingEndTag(_) => "an element is not closed",
                IllFormedError::UnmatchedEndTag(_) => "an end tag closes no open element",
                IllFormedError::MismatchedEndTag { .. } => {
                    "an end tag does not match the element it closes"
                }
                IllFormedError::DoubleHyphenInComment => "a comment contains `--`",
                IllFormedError::UnclosedReference => {
                    "an `&` does not start a reference ending in `;`; write it as &amp;"
                }
            };
            (CodecErrorKind::Malformed, m.into())
        }
        quick_xml::Error::InvalidAttr(a) => (
            CodecErrorKind::Malformed,
            format!("a malformed attribute ({})", attr_error_kind(a)).into(),
        ),
        quick_xml::Error::Encoding(_) => {
            (CodecErrorKind::Encoding, "bytes that do not decode".into())
        }
        quick_xml::Error::Escape(_) => (
            CodecErrorKind::Entity,
            "an invalid entity or character reference".into(),
        ),
        _ => (CodecErrorKind::Malformed, "malformed markup".into()),
    };
    CodecError::new(
        kind,
        format!("the XML document is not well-formed: {message}"),
    )
}

/// XML whitespace: space, tab, carriage return, line feed.
fn is_xml_ws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn trim_xml_whitespace(s: &str) -> &str {
    // XML whitespace is ASCII, so byte offsets next to it are character boundaries.
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// The byte offset of the first character outside the XML 1.0 `Char` production, if any.
/// (Surrogates cannot occur in a `str`; this finds C0 controls and U+FFFE/U+FFFF.)
fn find_non_xml_char(text: &str) -> Option<usize> {
    const CHUNK: usize = 64;
    let bytes = text.as_bytes();
    let suspect = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) | (b == 0xEF);
    for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
        // A branch-free pass per chunk (vectorised); look closer only where it flags.
        if !chunk.iter().fold(false, |acc, &b| acc | suspect(b)) {
            continue;
        }
        for (k, &b) in chunk.iter().enumerate() {
            let i = n * CHUNK + k;
            let bad = match b {
                0xEF => {
                    bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
                }
                _ => suspect(b),
            };
            if bad {
                return Some(i);
            }
        }
    }
    None
}

/// The XML 1.0 `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

// ---------------------------------------------------------------------------------------
// JSON → XML
// ---------------------------------------------------------------------------------------

/// One step of a key path, for error messages.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Converts a JSON value to an XML document (UTF-8, with an XML declaration): the inverse of
/// [`xml_to_json`].
///
/// With `root` given, the whole `value` is the content of an element named `root`. Without
/// it, `value` must be an object with exactly one key, which names the root element.
/// Arrays become repeated elements, `"@x"` keys attributes, `"#text"` the text, `null` an
/// empty element, numbers and booleans text. All text and attribute values are escaped;
/// carriage returns, and tabs and line feeds in attributes, are written as character
/// references so they survive a round trip.
///
/// Errors: no root name (`Malformed`), a key that is not an XML name (`InvalidName`, naming
/// the key path), arrays in arrays, objects as attribute values, characters XML cannot
/// carry (`Unsupported`), nesting deeper than 256 levels (`TooDeep`). Key paths are JSON
/// Pointers; a segment with six or more digits has its digits masked as `#`, so identity
/// numbers used as keys never reach an error text.
pub fn json_to_xml(value: &Value, root: Option<&str>) -> Result<Vec<u8>, CodecError> {
    let single = match value {
        Value::Object(map) if map.len() == 1 => map.iter().next(),
        _ => None,
    };
    let (name, content) = match (root, single) {
        (Some(name), _) => (name, value),
        (None, Some((name, content))) => (name.as_str(), content),
        (None, None) => {
            return Err(CodecError::new(
                CodecErrorKind::Malformed,
                "cannot name the XML root element: the JSON value is not an object with \
                 exactly one key, and no root name is configured",
            ));
        }
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let mut path: Vec<Seg<'_>> = Vec::with_capacity(16);
    path.push(Seg::Key(name));
    if content.is_array() {
        return Err(CodecError::new(
            CodecErrorKind::Unsupported,
            "the root element's value is an array, which would make several root elements; \
             wrap it in an object or configure a root name",
        )
        .at_path(render_path(&path)));
    }
    write_element(&mut out, name, content, &mut path)?;
    Ok(out)
}

fn write_element<'v>(
    out: &mut Vec<u8>,
    name: &'v str,
    value: &'v Value,
    path: &mut Vec<Seg<'v>>,
) -> Result<(), CodecError> {
    if path.len() > MAX_JSON_TO_XML_DEPTH {
        return Err(CodecError::new(
            CodecErrorKind::TooDeep,
            format!("the JSON value nests deeper than {MAX_JSON_TO_XML_DEPTH} levels"),
        )
        .at_path(render_path(path)));
    }
    if !is_xml_name(name) {
        return Err(invalid_name(path));
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                if item.is_array() {
                    return Err(CodecError::new(
                        CodecErrorKind::Unsupported,
                        "an array directly inside an array cannot be written as XML; wrap \
                         the inner array in an object",
                    )
                    .at_path(render_path(path)));
                }
                write_element(out, name, item, path)?;
                path.pop();
            }
        }
        Value::Null => {
            out.push(b'<');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"/>");
        }
        Value::Object(map) => {
            out.push(b'<');
            out.extend_from_slice(name.as_bytes());
            let mut has_content = false;
            for (key, v) in map {
                if let Some(attr) = key.strip_prefix('@') {
                    path.push(Seg::Key(key));
                    if !is_xml_name(attr) {
                        return Err(invalid_name(path));
                    }
                    out.push(b' ');
                    out.extend_from_slice(attr.as_bytes());
                    out.extend_from_slice(b"=\"");
                    write_scalar(out, v, true, path, "an attribute value")?;
                    out.push(b'"');
                    path.pop();
                } else {
                    has_content = true;
                }
            }
            if !has_content {
                out.extend_from_slice(b"/>");
                return Ok(());
            }
            out.push(b'>');
            if let Some(text) = map.get("#text") {
                path.push(Seg::Key("#text"));
                write_scalar(out, text, false, path, "the text (#text)")?;
                path.pop();
            }
            for (key, v) in map {
                if key.starts_with('@') || key == "#text" {
                    continue;
                }
                path.push(Seg::Key(key));
                write_element(out, key, v, path)?;
                path.pop();
            }
            out.extend_from_slice(b"</");
            out.extend_from_slice(name.as_bytes());
            out.push(b'>');
        }
        scalar => {
            out.push(b'<');
            out.extend_from_slice(name.as_bytes());
            out.push(b'>');
            write_scalar(out, scalar, false, path, "the text")?;
            out.extend_from_slice(b"</");
            out.extend_from_slice(name.as_bytes());
            out.push(b'>');
        }
    }
    Ok(())
}

/// Writes a string, number or boolean escaped; `null` writes nothing.
fn write_scalar(
    out: &mut Vec<u8>,
    value: &Value,
    attribute: bool,
    path: &[Seg<'_>],
    what: &str,
) -> Result<(), CodecError> {
    match value {
        Value::Null => Ok(()),
        Value::Bool(b) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
            Ok(())
        }
        Value::Number(n) => {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{n}");
            Ok(())
        }
        Value::String(s) => escape_into(out, s, attribute).map_err(|()| {
            CodecError::new(
                CodecErrorKind::Unsupported,
                format!(
                    "{what} contains a character XML 1.0 cannot carry (a control character \
                     or U+FFFE/U+FFFF)"
                ),
            )
            .at_path(render_path(path))
        }),
        Value::Array(_) | Value::Object(_) => Err(CodecError::new(
            CodecErrorKind::Unsupported,
            format!("{what} must be a string, number, boolean or null, not an array or object"),
        )
        .at_path(render_path(path))),
    }
}

/// Escapes `s` for XML text or a double-quoted attribute value. `Err` on characters that
/// XML 1.0 cannot carry.
fn escape_into(out: &mut Vec<u8>, s: &str, attribute: bool) -> Result<(), ()> {
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#13;",
            b'"' if attribute => b"&quot;",
            b'\n' if attribute => b"&#10;",
            b'\t' if attribute => b"&#9;",
            b'\n' | b'\t' => continue,
            0x00..=0x1F => return Err(()),
            // U+FFFE and U+FFFF are EF BF BE / EF BF BF in UTF-8.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                return Err(());
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(replacement);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
    Ok(())
}

fn invalid_name(path: &[Seg<'_>]) -> CodecError {
    CodecError::new(
        CodecErrorKind::InvalidName,
        "a JSON key cannot be used as an XML element or attribute name (XML names start \
         with a letter or `_` and hold letters, digits, `-`, `_`, `.`); rename it in a \
         transform step before json_to_xml",
    )
    .at_path(render_path(path))
}

/// A JSON Pointer for `path`; segments with six or more digits have their digits masked.
fn render_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Index(i) => out.push_str(&i.to_string()),
            Seg::Key(k) => {
                let mask = k.chars().filter(char::is_ascii_digit).count() >= 6;
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c if mask && c.is_ascii_digit() => out.push('#'),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out
}

/// An XML 1.0 `Name`, with at most one `:` that is neither first nor last (namespaces).
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if first == ':' || !is_name_start_char(first) || name.ends_with(':') {
        return false;
    }
    if name.bytes().filter(|&b| b == b':').count() > 1 {
        return false;
    }
    chars.all(is_name_char)
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The sandbox (crate knut-sandbox) reads OeP's exports, its SOAP callbacks and the
    /// archive's metadata with a small reader of its own. On the OeP fixtures, the exports
    /// the sandbox serves (ISO-8859-1 and UTF-8) and documents with attributes, namespaces,
    /// references and forced arrays, it must read what this codec reads.
    #[test]
    fn the_sandbox_reads_documents_as_xml_to_json_does() {
        use crate::codec::{XmlEncoding, encode_xml};
        use knut_sandbox::xml as sandbox;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oep");
        let mut docs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("tests/fixtures/oep")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
            .map(|e| {
                let path = e.path();
                (
                    path.display().to_string(),
                    std::fs::read(&path).expect("fixture"),
                )
            })
            .collect();
        assert!(docs.len() >= 3, "the OeP fixtures are read: {docs:?}");
        for i in &knut_sandbox::oep::Instances::default().list {
            for e in [sandbox::Encoding::Latin1, sandbox::Encoding::Utf8] {
                docs.push((
                    format!("seeded instance {} in {}", i.id, e.name()),
                    i.export(e),
                ));
            }
        }
        docs.push(("OeP-shaped, Latin-1".into(), flow_instance_latin1()));
        docs.push((
            "attributes, namespaces, references, mixed text".into(),
            b"<?xml version=\"1.0\"?>\n<r:Leveransobjekt xmlns:r=\"urn:r\" xmlns:x=\"urn:x\" x:a=\"1 &amp; 2\">\n  \
              <Bilaga Namn=\"betyg.pdf\"/><Bilaga>  <![CDATA[ett]]> &#xE5;  </Bilaga>\n  \
              <Tom/><Tom></Tom>text <b>mellan</b> barn\n</r:Leveransobjekt>"
                .to_vec(),
        ));
        for (what, bytes) in &docs {
            let ours = to_json(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            let theirs = sandbox::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(theirs.to_json(&[]), ours, "{what}");
            let arrays = ["Bilaga", "Values", "Tom"];
            let opts = XmlToJsonOptions {
                arrays: arrays.map(String::from).to_vec(),
                ..XmlToJsonOptions::default()
            };
            assert_eq!(
                theirs.to_json(&arrays),
                xml_to_json(bytes, &opts).expect("readable"),
                "{what}, with arrays"
            );
            let (text, encoding) = decode_xml(bytes).expect("decodes");
            let (sandbox_text, sandbox_encoding) = sandbox::decode(bytes).expect("decodes");
            assert_eq!(
                (sandbox_text, sandbox_encoding.name()),
                (text, encoding.name())
            );
        }
        // What the sandbox writes, each of them writes alike.
        for (ours, theirs) in [
            (XmlEncoding::Utf8, sandbox::Encoding::Utf8),
            (XmlEncoding::Latin1, sandbox::Encoding::Latin1),
            (XmlEncoding::Windows1252, sandbox::Encoding::Windows1252),
            (XmlEncoding::Ascii, sandbox::Encoding::Ascii),
        ] {
            let text = "<a>Åsa Öhrnbjörk – 100 €</a>";
            assert_eq!(sandbox::encode(text, theirs), encode_xml(text, ours));
            assert_eq!(XmlEncoding::from_label(theirs.name()), Some(ours));
        }
        for label in [
            "utf-8",
            "UTF8",
            "iso-8859-1",
            "ISO_8859-1:1987",
            "latin1",
            "l1",
            "iso-ir-100",
            "csISOLatin1",
            "ibm819",
            "cp819",
            "windows-1252",
            "cp1252",
            "x-cp1252",
            "us-ascii",
            "ANSI_X3.4-1968",
            "iso646-us",
            "us",
            "csascii",
            "utf-16",
            "ebcdic",
            "",
        ] {
            assert_eq!(
                sandbox::Encoding::from_label(label).map(sandbox::Encoding::name),
                XmlEncoding::from_label(label).map(XmlEncoding::name),
                "{label}"
            );
        }
        // And both refuse a DTD.
        let dtd = b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>";
        assert!(to_json(dtd).is_err() && sandbox::parse(dtd).is_err());
    }

    // Fictional personnummer (born 2013, Luhn-valid), used to prove errors never echo input.
    const FICTIONAL_PNR: &str = "201304112381";

    fn to_json(xml: &[u8]) -> Result<Value, CodecError> {
        xml_to_json(xml, &XmlToJsonOptions::default())
    }

    fn latin1(s: &str) -> Vec<u8> {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).expect("test text is Latin-1"))
            .collect()
    }

    /// A FlowInstance shaped like OeP's exports: ISO-8859-1, default namespace, CDATA wrapped
    /// in whitespace. All people are fictional.
    fn flow_instance_latin1() -> Vec<u8> {
        latin1(&format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" standalone="no"?>
<FlowInstance xmlns="http://www.oeplatform.org/version/2.0/schemas/flowinstance" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
	<Header>
		<Flow>
			<FamilyID>261</FamilyID>
			<Name>
				<![CDATA[Busskortsansökan för gymnasieelever]]>
			</Name>
		</Flow>
		<FlowInstanceID>12</FlowInstanceID>
		<Status>
			<ID>123</ID>
			<Name><![CDATA[Manuell handläggning]]></Name>
		</Status>
	</Header>
	<Values>
		<applicant QueryID="66864" kommun="Sundsvall" ort="Matfors, Åkroken">
			<Name><![CDATA[Sökande]]></Name>
			<firstname>
				<![CDATA[Åsa]]>
			</firstname>
			<lastname><![CDATA[Öström]]></lastname>
			<citizenIdentifier><![CDATA[{FICTIONAL_PNR}]]></citizenIdentifier>
		</applicant>
		<!-- a comment that must be ignored -->
		<?some-pi ignored?>
		<empty/>
		<blank>   </blank>
	</Values>
</FlowInstance>
"#
        ))
    }

    #[test]
    fn latin1_flow_instance_comes_out_as_utf8() {
        let v = to_json(&flow_instance_latin1()).unwrap();
        let expected = json!({"FlowInstance": {
            "Header": {
                "Flow": {"FamilyID": "261", "Name": "Busskortsansökan för gymnasieelever"},
                "FlowInstanceID": "12",
                "Status": {"ID": "123", "Name": "Manuell handläggning"}
            },
            "Values": {
                "applicant": {
                    "@QueryID": "66864",
                    "@kommun": "Sundsvall",
                    "@ort": "Matfors, Åkroken",
                    "Name": "Sökande",
                    "firstname": "Åsa",
                    "lastname": "Öström",
                    "citizenIdentifier": FICTIONAL_PNR
                },
                "empty": null,
                "blank": null
            }
        }});
        assert_eq!(v, expected);
        // Key order follows the document.
        let header = &v["FlowInstance"]["Values"]["applicant"];
        let keys: Vec<&str> = header
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys[..4], ["@QueryID", "@kommun", "@ort", "Name"]);
    }

    #[test]
    fn windows_1252_euro_and_quotes() {
        let mut doc =
            b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><p belopp=\"100 \x80\">".to_vec();
        doc.extend_from_slice(b"\x93Citat\x94 \x96 \xE5\xE4\xF6</p>");
        let v = to_json(&doc).unwrap();
        assert_eq!(
            v,
            json!({"p": {"@belopp": "100 €", "#text": "“Citat” – åäö"}})
        );
    }

    #[test]
    fn ascii_and_utf8_bom() {
        let v = to_json(b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a>&#229;</a>").unwrap();
        assert_eq!(v, json!({"a": "å"}));
        let v = to_json(b"\xEF\xBB\xBF<a>\xC3\xB6</a>").unwrap();
        assert_eq!(v, json!({"a": "ö"}));
    }

    #[test]
    fn undecodable_bytes_are_errors_not_mojibake() {
        // Latin-1 bytes without a declaration: the default is UTF-8, so this is an error.
        let e = to_json(b"<a>\n<b>K\xE5lla</b></a>").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
        assert_eq!(e.position(), Some(Position { line: 2, column: 5 }));
        let e = to_json(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\xFF</a>").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
        let e = to_json(b"<?xml version=\"1.0\" encoding=\"ascii\"?><a>\xC3\xB6</a>").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
        let e = to_json(b"<?xml version=\"1.0\" encoding=\"KOI8-R\"?><a/>").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
    }

    #[test]
    fn doctype_is_always_rejected() {
        let billion_laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"#;
        let e = to_json(billion_laughs).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Doctype);
        assert_eq!(e.position(), Some(Position { line: 2, column: 1 }));

        let docs: [&[u8]; 5] = [
            b"<!DOCTYPE a><a/>",
            b"<!doctype a><a/>",
            b"<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a>x</a>",
            b"<a/><!DOCTYPE a>",
            b"<!DOCTYPE a [<!ENTITY x",
        ];
        for doc in docs {
            let e = to_json(doc).unwrap_err();
            assert_eq!(
                e.kind(),
                CodecErrorKind::Doctype,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        // The word inside text or CDATA is just text.
        assert!(to_json(b"<a><![CDATA[<!DOCTYPE x>]]></a>").is_ok());
    }

    #[test]
    fn only_predefined_entities_and_character_references() {
        let v = to_json(b"<a t=\"&lt;&#x41;&quot;\">&lt;&gt;&amp;&apos;&quot; &#229;&#xE4;</a>")
            .unwrap();
        assert_eq!(v, json!({"a": {"@t": "<A\"", "#text": "<>&'\" åä"}}));
        for doc in [
            &b"<a>&nbsp;</a>"[..],
            b"<a x=\"&custom;\"/>",
            b"<a>&#0;</a>",
            b"<a>&#xD800;</a>",
            b"<a>&#1;</a>",
        ] {
            let e = to_json(doc).unwrap_err();
            assert_eq!(
                e.kind(),
                CodecErrorKind::Entity,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        assert_eq!(
            to_json(b"<a>a & b</a>").unwrap_err().kind(),
            CodecErrorKind::Malformed
        );
    }

    #[test]
    fn depth_limit() {
        let opts = |max_depth| XmlToJsonOptions {
            arrays: vec![],
            limits: XmlLimits {
                max_depth,
                ..XmlLimits::default()
            },
        };
        let doc = b"<a><b><c/></b></a>";
        assert!(xml_to_json(doc, &opts(3)).is_ok());
        let e = xml_to_json(doc, &opts(2)).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::TooDeep);
        assert_eq!(e.position(), Some(Position { line: 1, column: 7 }));
        // Default: 64 levels.
        let deep = |n: usize| format!("{}{}", "<e>".repeat(n), "</e>".repeat(n));
        assert!(to_json(deep(64).as_bytes()).is_ok());
        assert_eq!(
            to_json(deep(65).as_bytes()).unwrap_err().kind(),
            CodecErrorKind::TooDeep
        );
        // Deep enough to overflow a recursive parser: still a clean error.
        assert_eq!(
            to_json(deep(100_000).as_bytes()).unwrap_err().kind(),
            CodecErrorKind::TooDeep
        );
    }

    #[test]
    fn size_limit() {
        let opts = XmlToJsonOptions {
            arrays: vec![],
            limits: XmlLimits {
                max_bytes: 10,
                ..XmlLimits::default()
            },
        };
        assert!(xml_to_json(b"<a>1</a>", &opts).is_ok());
        let e = xml_to_json(b"<a>12345678</a>", &opts).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::TooLarge);
    }

    #[test]
    fn namespaces_are_dropped() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<erms:Leveransobjekt xmlns:erms="http://xml.ra.se/e-arkiv/FGS-ERMS" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="x y">
  <erms:ArkivobjektListaHandlingar>
    <erms:ArkivobjektHandling>
      <erms:Bilaga erms:Namn="Ritning.pdf" Lank="Ritning.pdf"/>
    </erms:ArkivobjektHandling>
  </erms:ArkivobjektListaHandlingar>
</erms:Leveransobjekt>"#;
        let v = to_json(doc).unwrap();
        assert_eq!(
            v,
            json!({"Leveransobjekt": {
                "@schemaLocation": "x y",
                "ArkivobjektListaHandlingar": {"ArkivobjektHandling": {
                    "Bilaga": {"@Namn": "Ritning.pdf", "@Lank": "Ritning.pdf"}
                }}
            }})
        );
    }

    #[test]
    fn repeated_siblings_become_arrays_in_document_order() {
        let doc = b"<r><i>1</i><x/><i>2</i><i a=\"3\"/></r>";
        let v = to_json(doc).unwrap();
        assert_eq!(v, json!({"r": {"i": ["1", "2", {"@a": "3"}], "x": null}}));
    }

    #[test]
    fn arrays_option_forces_arrays() {
        let opts = XmlToJsonOptions {
            arrays: vec!["Handling".to_owned(), "root".to_owned()],
            ..XmlToJsonOptions::default()
        };
        let v = xml_to_json(
            b"<root><Handling>a</Handling><Other>b</Other></root>",
            &opts,
        )
        .unwrap();
        assert_eq!(v, json!({"root": [{"Handling": ["a"], "Other": "b"}]}));
        let v = xml_to_json(b"<r><Handling>a</Handling><Handling/></r>", &opts).unwrap();
        assert_eq!(v, json!({"r": {"Handling": ["a", null]}}));
    }

    #[test]
    fn mixed_content_text_and_cdata() {
        let v = to_json(b"<p>\n  Hej <b>du</b> och\n dig <![CDATA[<ok>]]>  </p>").unwrap();
        assert_eq!(v, json!({"p": {"b": "du", "#text": "Hej  och\n dig <ok>"}}));
        let v = to_json(b"<p a=\"1\">  text  </p>").unwrap();
        assert_eq!(v, json!({"p": {"@a": "1", "#text": "text"}}));
        let v = to_json(b"<p a=\"1\">   </p>").unwrap();
        assert_eq!(v, json!({"p": {"@a": "1"}}));
        // Text and CDATA pieces are concatenated; CRLF is normalised to LF.
        let v = to_json(b"<p> a<![CDATA[ b ]]>c\r\nd </p>").unwrap();
        assert_eq!(v, json!({"p": "a b c\nd"}));
    }

    #[test]
    fn names_that_are_not_xml_names_are_malformed() {
        // Found by fuzzing: `e:a:b` read as the local name `a:b`, which json_to_xml wrote
        // back as `a:b`, read again as `b`; `p:@x` became the key of an attribute.
        for doc in [
            &b"<r>\n <e:a:b/></r>"[..],
            b"<r>\n <e x:y:z=\"1\"/></r>",
            b"<r>\n <p:@x/></r>",
            b"<r>\n <e @x=\"1\"/></r>",
            b"<r>\n <1a/></r>",
        ] {
            let e = to_json(doc).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::Malformed);
            assert_eq!(e.position(), Some(Position { line: 2, column: 2 }));
        }
        // One prefix is fine, and dropped.
        assert_eq!(
            to_json(b"<e:a x:y=\"1\"/>").unwrap(),
            json!({"a": {"@y": "1"}})
        );
    }

    #[test]
    fn malformed_documents_report_line_and_column() {
        let cases: [(&[u8], u64, u64); 6] = [
            (b"<a>\n  <b>\n</a>", 3, 1),
            (b"<a>\n<b></b>", 2, 8),
            (b"<a/>\ntext", 2, 1),
            (b"<a/>\n<b/>", 2, 1),
            (b"", 1, 1),
            (b"<a x=\"1\" x=\"2\"/>", 1, 1),
        ];
        for (doc, line, column) in cases {
            let e = to_json(doc).unwrap_err();
            assert_eq!(
                e.kind(),
                CodecErrorKind::Malformed,
                "{}",
                String::from_utf8_lossy(doc)
            );
            assert_eq!(
                e.position(),
                Some(Position { line, column }),
                "{}: {e}",
                String::from_utf8_lossy(doc)
            );
        }
        assert_eq!(
            to_json(b"<!-- only -->").unwrap_err().kind(),
            CodecErrorKind::Malformed
        );
        // Characters XML 1.0 does not allow, raw (not only as references).
        let e = to_json(b"<a>\n ok \x01</a>").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
        assert_eq!(e.position(), Some(Position { line: 2, column: 5 }));
        let e = to_json("<a x=\"\u{FFFF}\"/>".as_bytes()).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
        assert!(to_json("<a>\t\u{FFFD}\u{10000}\u{FEFF}\u{F000}</a>".as_bytes()).is_ok());
        // Past the first 64-byte chunk, too.
        let late = format!("<a>{}\u{FFFE}</a>", "x".repeat(100));
        let e = to_json(late.as_bytes()).unwrap_err();
        assert_eq!(
            e.position(),
            Some(Position {
                line: 1,
                column: 104
            })
        );
        assert_eq!(
            to_json(b"</a>").unwrap_err().kind(),
            CodecErrorKind::Malformed
        );
        assert_eq!(
            to_json(b"<a><b></a>").unwrap_err().kind(),
            CodecErrorKind::Malformed
        );
    }

    #[test]
    fn errors_never_contain_document_text() {
        let docs = [
            format!("<a>\n<b{FICTIONAL_PNR}>x</c{FICTIONAL_PNR}></a>"),
            format!("<a>{FICTIONAL_PNR}</a>{FICTIONAL_PNR}"),
            format!("<a>&p{FICTIONAL_PNR};</a>"),
            format!("<a x=\"&p{FICTIONAL_PNR};\"/>"),
            format!("<a x{FICTIONAL_PNR}=\"1\" x{FICTIONAL_PNR}=\"2\"/>"),
            format!("<!DOCTYPE p{FICTIONAL_PNR}><a/>"),
            format!("<a><p{FICTIONAL_PNR}>"),
            format!("<?xml version=\"1.0\" encoding=\"x{FICTIONAL_PNR}\"?><a/>"),
        ];
        for doc in &docs {
            let e = to_json(doc.as_bytes()).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(!text.contains(FICTIONAL_PNR), "{text}");
            assert!(e.position().is_some(), "{doc}: {e}");
        }
    }

    #[test]
    fn json_to_xml_writes_the_inverse_mapping() {
        let v = json!({"Root": {
            "@id": "7", "@ok": true,
            "item": ["a", {"@n": 2, "#text": "b"}, null],
            "n": 1.5, "t": false, "s": "x < y & \"z\"", "nothing": null,
            "obj": {"@only": "attr"}
        }});
        let xml = json_to_xml(&v, None).unwrap();
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Root id=\"7\" ok=\"true\">\
             <item>a</item><item n=\"2\">b</item><item/><n>1.5</n><t>false</t>\
             <s>x &lt; y &amp; \"z\"</s><nothing/><obj only=\"attr\"/></Root>"
        );
        // With a root name the whole value is the content.
        let xml = json_to_xml(&json!({"a": 1, "b": "å"}), Some("Svar")).unwrap();
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Svar><a>1</a><b>å</b></Svar>"
        );
        // Attribute values keep quotes, tabs and line breaks through escaping.
        let xml = json_to_xml(&json!({"a": {"@v": "\"x\"\t\n\r<"}}), None).unwrap();
        assert!(
            String::from_utf8(xml.clone())
                .unwrap()
                .contains("v=\"&quot;x&quot;&#9;&#10;&#13;&lt;\"")
        );
        assert_eq!(to_json(&xml).unwrap(), json!({"a": {"@v": "\"x\"\t\n\r<"}}));
    }

    #[test]
    fn json_to_xml_errors() {
        let e = json_to_xml(&json!({"a": 1, "b": 2}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
        let e = json_to_xml(&json!([1]), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
        let e = json_to_xml(&json!({"a": [1, 2]}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Unsupported);

        let e = json_to_xml(&json!({"a": {"list": [{"bad key": 1}]}}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::InvalidName);
        assert_eq!(e.path(), Some("/a/list/0/bad key"));

        // A personnummer used as a key is masked in the path.
        let e = json_to_xml(&json!({"elever": {FICTIONAL_PNR: {"namn": "x"}}}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::InvalidName);
        assert_eq!(e.path(), Some("/elever/############"));
        assert!(!e.to_string().contains(FICTIONAL_PNR));

        let e = json_to_xml(&json!({"a": {"@1x": "v"}}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::InvalidName);
        assert_eq!(e.path(), Some("/a/@1x"));
        let e = json_to_xml(&json!({"a": {"@x": {"y": 1}}}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Unsupported);
        let e = json_to_xml(&json!({"a": {"b": [[1]]}}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Unsupported);
        assert_eq!(e.path(), Some("/a/b/0"));
        let e = json_to_xml(&json!({"a": "bell \u{7}"}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Unsupported);
        let e = json_to_xml(&json!({"a": "\u{FFFF}"}), None).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Unsupported);
        for bad in ["", "1a", ":a", "a:", "a:b:c", "a b", "#text2", "-a"] {
            assert!(json_to_xml(&json!({ bad: 1 }), None).is_err(), "{bad}");
        }
        for good in ["a", "_a", "a-b.c", "soap:Envelope", "Åsa", "a1"] {
            assert!(json_to_xml(&json!({ good: 1 }), None).is_ok(), "{good}");
        }
        let mut deep = json!(1);
        for _ in 0..300 {
            deep = json!({ "d": deep });
        }
        assert_eq!(
            json_to_xml(&deep, None).unwrap_err().kind(),
            CodecErrorKind::TooDeep
        );
    }

    #[test]
    fn round_trip_is_stable() {
        let docs: Vec<Vec<u8>> = vec![
            flow_instance_latin1(),
            b"<r><i>1</i><x/><i>2</i><i a=\"3\"/></r>".to_vec(),
            b"<p a=\"&lt;&amp;&#10;\">Hej <b>du</b> och &amp; <![CDATA[<x>]]></p>".to_vec(),
            b"<a><b c=\"1\"><d>\xC3\xA5</d><d/><e f=\"\"/></b></a>".to_vec(),
        ];
        for doc in docs {
            let first = to_json(&doc).unwrap();
            let xml = json_to_xml(&first, None).unwrap();
            let second = to_json(&xml).unwrap();
            assert_eq!(first, second, "{}", String::from_utf8_lossy(&xml));
            let xml_again = json_to_xml(&second, None).unwrap();
            assert_eq!(xml, xml_again);
        }
    }
}
