//! Reading and writing the XML the simulations speak (OeP's exports and SOAP callbacks, the
//! archive's FGS-ERMS metadata): a document becomes a small tree of [`Element`]s.
//!
//! Knutpunkt has its own, fuller codec; this one is as small as the simulations allow, with
//! the same rules where they meet: the encoding is the one the prolog declares (UTF-8,
//! ISO-8859-1, Windows-1252, US-ASCII), no DTD is ever processed, only the five predefined
//! entities and character references are resolved, and size and depth are limited.
//! [`Element::to_json`] writes Knutpunkt's XML → JSON mapping; a test in knutpunkt holds it
//! equal to knutpunkt's `xml_to_json` on the OeP fixtures.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use serde_json::{Map, Value};

/// The largest document read, in bytes.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// The deepest element nesting read; the root element is level 1.
pub const MAX_DEPTH: usize = 64;

/// An encoding an XML document may be declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// UTF-8, the default.
    Utf8,
    /// ISO-8859-1 (Latin-1): byte `0xNN` is `U+00NN`.
    Latin1,
    /// Windows-1252.
    Windows1252,
    /// US-ASCII.
    Ascii,
}

impl Encoding {
    /// The encoding named by an XML `encoding` label (case-insensitive), if supported.
    pub fn from_label(label: &str) -> Option<Encoding> {
        match label.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "iso_8859-1:1987" | "latin1"
            | "latin-1" | "l1" | "iso-ir-100" | "csisolatin1" | "ibm819" | "cp819" => {
                Some(Encoding::Latin1)
            }
            "windows-1252" | "cp1252" | "x-cp1252" => Some(Encoding::Windows1252),
            "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us" | "csascii" => {
                Some(Encoding::Ascii)
            }
            _ => None,
        }
    }

    /// The canonical name, for a prolog.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Latin1 => "ISO-8859-1",
            Encoding::Windows1252 => "windows-1252",
            Encoding::Ascii => "US-ASCII",
        }
    }
}

/// `text` in `encoding`; a character the encoding cannot hold becomes a character
/// reference (`&#x20AC;`). The caller writes the matching prolog.
pub fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
    let limit: u32 = match encoding {
        Encoding::Utf8 => return text.as_bytes().to_vec(),
        Encoding::Windows1252 => return encoding_rs::WINDOWS_1252.encode(text).0.into_owned(),
        Encoding::Latin1 => 0xFF,
        Encoding::Ascii => 0x7F,
    };
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) if u32::from(b) <= limit => out.push(b),
            _ => out.extend_from_slice(format!("&#x{:X};", u32::from(c)).as_bytes()),
        }
    }
    out
}

/// The `encoding` the prolog declares, if any.
fn declared(body: &[u8]) -> Result<Option<String>, String> {
    let Some(rest) = body.strip_prefix(b"<?xml") else {
        return Ok(None);
    };
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let window = &rest[..rest.len().min(1024)];
    let end = window
        .windows(2)
        .position(|w| w == b"?>")
        .ok_or("the XML declaration is not closed with `?>`")?;
    let decl = String::from_utf8_lossy(&window[..end]);
    let Some(at) = decl.find(" encoding").or_else(|| decl.find("\tencoding")) else {
        return Ok(None);
    };
    let value = decl[at + " encoding".len()..].trim_start();
    let value = value
        .strip_prefix('=')
        .ok_or("the XML declaration's encoding has no `=`")?
        .trim_start();
    let quote = value
        .chars()
        .next()
        .filter(|q| *q == '"' || *q == '\'')
        .ok_or("the XML declaration's encoding is not quoted")?;
    let name = value[1..]
        .split(quote)
        .next()
        .filter(|_| value[1..].contains(quote))
        .ok_or("the XML declaration's encoding is not quoted")?;
    Ok(Some(name.to_string()))
}

/// The document as text, in the encoding its prolog declares (UTF-8 when none), and that
/// encoding. A UTF-8 byte order mark is dropped.
pub fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, Encoding), String> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let encoding = match declared(body)? {
        None => Encoding::Utf8,
        Some(label) => Encoding::from_label(&label).ok_or(
            "the XML declaration names an encoding other than UTF-8, ISO-8859-1, \
             Windows-1252 or US-ASCII",
        )?,
    };
    if body.len() != bytes.len() && !matches!(encoding, Encoding::Utf8 | Encoding::Ascii) {
        return Err("a UTF-8 byte order mark before another declared encoding".into());
    }
    let text = match encoding {
        Encoding::Utf8 | Encoding::Ascii => {
            let s = std::str::from_utf8(body)
                .map_err(|_| format!("bytes that are not {}", encoding.name()))?;
            if encoding == Encoding::Ascii && !s.is_ascii() {
                return Err("a byte outside US-ASCII".into());
            }
            Cow::Borrowed(s)
        }
        Encoding::Latin1 => Cow::Owned(body.iter().map(|&b| char::from(b)).collect()),
        Encoding::Windows1252 => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(body)
                .0
        }
    };
    Ok((text, encoding))
}

/// One element: its local name and namespace, attributes, child elements and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The local name (without prefix).
    pub name: String,
    /// The namespace it is in, if any.
    pub namespace: Option<String>,
    /// Attributes by local name, in document order; namespace declarations are left out.
    pub attributes: Vec<(String, String)>,
    /// Child elements, in document order.
    pub children: Vec<Element>,
    /// Text and CDATA, concatenated, without leading and trailing XML whitespace.
    pub text: String,
}

impl Element {
    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The child elements named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at `path` (child names, each the first of its name).
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The text of the element at `path`, unless it is empty.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path)
            .map(|e| e.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The element in Knutpunkt's XML → JSON mapping, as `{name: value}`: an element with
    /// neither attributes nor children is its text (`null` when empty); otherwise an object
    /// of `@attribute`s, children by name (a repeated name, or one in `arrays`, an array) and
    /// `#text`.
    pub fn to_json(&self, arrays: &[&str]) -> Value {
        let mut doc = Map::new();
        let value = self.value(arrays);
        let value = if arrays.contains(&self.name.as_str()) {
            Value::Array(vec![value])
        } else {
            value
        };
        doc.insert(self.name.clone(), value);
        Value::Object(doc)
    }

    fn value(&self, arrays: &[&str]) -> Value {
        if self.attributes.is_empty() && self.children.is_empty() {
            return match self.text.as_str() {
                "" => Value::Null,
                t => Value::String(t.to_string()),
            };
        }
        let mut map = Map::new();
        let entries = self
            .attributes
            .iter()
            .map(|(k, v)| (format!("@{k}"), Value::String(v.clone()), false))
            .chain(self.children.iter().map(|c| {
                let force = arrays.contains(&c.name.as_str());
                (c.name.clone(), c.value(arrays), force)
            }));
        for (key, value, force) in entries {
            match map.get_mut(&key) {
                Some(Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = std::mem::take(existing);
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    map.insert(
                        key,
                        if force {
                            Value::Array(vec![value])
                        } else {
                            value
                        },
                    );
                }
            }
        }
        if !self.text.is_empty() {
            map.insert("#text".into(), Value::String(self.text.clone()));
        }
        Value::Object(map)
    }
}

/// Read a document (any supported declared encoding) into its root element. The errors
/// say what is wrong, never what the document holds.
pub fn parse(bytes: &[u8]) -> Result<Element, String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!("the document is larger than {MAX_BYTES} bytes"));
    }
    let (text, _) = decode(bytes)?;
    let mut reader = quick_xml::NsReader::from_str(&text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("not well-formed XML ({})", what_went_wrong(&e)))?;
        match event {
            Event::Start(_) | Event::Empty(_) if stack.is_empty() && root.is_some() => {
                return Err("a second root element".into());
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH} levels"));
                }
                stack.push(open(&start, &ns)?);
            }
            Event::Empty(start) => {
                let element = open(&start, &ns)?;
                close(element, &mut stack, &mut root);
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("an end tag that closes no element")?;
                close(element, &mut stack, &mut root);
            }
            Event::Text(t) => match stack.last_mut() {
                // Indentation before the first text is trimmed anyway.
                Some(e) if e.text.is_empty() && is_whitespace(&t) => {}
                Some(e) => e.text.push_str(&t.xml10_content()),
                None if is_whitespace(&t) => {}
                None => return Err("text outside the root element".into()),
            },
            Event::CData(c) => match stack.last_mut() {
                Some(e) => e.text.push_str(&c.xml10_content()),
                None => return Err("CDATA outside the root element".into()),
            },
            Event::GeneralRef(r) => {
                let c = reference(&r)?;
                match stack.last_mut() {
                    Some(e) => e.text.push(c),
                    None => return Err("a reference outside the root element".into()),
                }
            }
            Event::DocType(_) => {
                return Err("a <!DOCTYPE> declaration; DTDs are never processed".into());
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn open(start: &BytesStart<'_>, ns: &ResolveResult<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|_| "a malformed attribute".to_string())?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|_| "an attribute value with an unknown reference".to_string())?;
        let name = attr.key.local_name().as_ref().to_string();
        attributes.push((name, value.into_owned()));
    }
    Ok(Element {
        name: start.local_name().as_ref().to_string(),
        namespace: match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_string()),
            _ => None,
        },
        attributes,
        children: Vec::new(),
        text: String::new(),
    })
}

fn close(mut element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    let trimmed = element.text.trim_matches(is_whitespace_char);
    if trimmed.len() != element.text.len() {
        element.text = trimmed.to_string();
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// `&name;`: the five predefined entities and character references only.
fn reference(r: &BytesRef<'_>) -> Result<char, String> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(c),
            _ => Err("an invalid character reference".into()),
        };
    }
    match &**r {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err("an entity reference other than the five predefined ones".into()),
    }
}

fn what_went_wrong(e: &quick_xml::Error) -> &'static str {
    match e {
        quick_xml::Error::Syntax(quick_xml::errors::SyntaxError::UnclosedDoctype)
        | quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::MissingDoctypeName) => {
            "a <!DOCTYPE> declaration; DTDs are never processed"
        }
        quick_xml::Error::Syntax(_) => "unclosed markup",
        quick_xml::Error::IllFormed(_) => "tags that do not match",
        quick_xml::Error::InvalidAttr(_) => "a malformed attribute",
        quick_xml::Error::Escape(_) => "an invalid reference",
        _ => "malformed markup",
    }
}

fn is_whitespace_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_whitespace(s: &str) -> bool {
    s.chars().all(is_whitespace_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_latin1_document_reads_into_elements_and_json() {
        let doc = encode(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<a xmlns=\"urn:x\" xmlns:p=\"urn:p\" p:k=\"v\">\n  <b><![CDATA[  Åsa  ]]></b>\n  <b/>\n  <c>x &amp; y</c>\n</a>",
            Encoding::Latin1,
        );
        let (_, encoding) = decode(&doc).expect("decodes");
        assert_eq!(encoding, Encoding::Latin1);
        let a = parse(&doc).expect("parses");
        assert_eq!(a.namespace.as_deref(), Some("urn:x"));
        assert_eq!(a.text_at(&["b"]), Some("Åsa"));
        assert_eq!(a.children_named("b").count(), 2);
        assert_eq!(
            a.to_json(&["c"]),
            json!({"a": {"@k": "v", "b": ["Åsa", null], "c": ["x & y"]}})
        );
    }

    #[test]
    fn dtds_unknown_entities_and_deep_nesting_are_refused() {
        assert!(parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").is_err());
        assert!(parse(b"<a>&x;</a>").is_err());
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>").is_err());
    }

    #[test]
    fn characters_an_encoding_lacks_become_references() {
        assert_eq!(encode("€ ä", Encoding::Latin1), b"&#x20AC; \xE4");
        assert_eq!(encode("ä", Encoding::Ascii), b"&#xE4;");
    }
}
