//! JSON bodies: checked for encoding, size, depth and trailing data before they are trusted.

use serde::Deserialize as _;
use serde_json::Value;

use super::charset::decode_utf8;
use super::{CodecError, CodecErrorKind, Position};

/// Limits applied while parsing a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// The largest body accepted, in bytes. Default 16 MiB.
    pub max_bytes: usize,
    /// The deepest nesting of arrays and objects accepted; the outermost one is level 1.
    /// Default 64.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Parses a JSON body into a [`Value`].
///
/// Errors (with line and column where known, never with body text): more than
/// `max_bytes` (`TooLarge`), invalid UTF-8 (`Encoding`), arrays/objects nested deeper than
/// `max_depth` (`TooDeep`), syntax errors, an empty body and data after the value
/// (`Malformed`). A leading UTF-8 byte order mark is ignored, as RFC 8259 allows.
pub fn parse_json(bytes: &[u8], limits: &JsonLimits) -> Result<Value, CodecError> {
    if bytes.len() > limits.max_bytes {
        return Err(CodecError::new(
            CodecErrorKind::TooLarge,
            format!(
                "the JSON body is {} bytes, more than the limit of {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = decode_utf8(bytes, "UTF-8 (JSON must be UTF-8)")?;
    check_depth(bytes, limits.max_depth)?;

    let mut de = serde_json::Deserializer::from_str(text);
    let value = Value::deserialize(&mut de).map_err(|e| json_error(&e, false))?;
    de.end().map_err(|e| json_error(&e, true))?;
    Ok(value)
}

/// Scans for nesting deeper than `max_depth` before any parsing (serde_json's own limit is a
/// fixed 128). Only brackets outside strings count.
fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), CodecError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(CodecError::new(
                        CodecErrorKind::TooDeep,
                        format!(
                            "the JSON body nests arrays/objects deeper than the limit of \
                             {max_depth} levels"
                        ),
                    )
                    .at(Position::in_bytes(bytes, i)));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Maps a serde_json error. serde_json's messages for untyped parsing are a fixed vocabulary
/// ("expected value", "EOF while parsing a string", …) and never quote the input.
fn json_error(e: &serde_json::Error, at_end: bool) -> CodecError {
    let full = e.to_string();
    let reason = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(reason, _)| reason);
    let (kind, message) = if at_end {
        (
            CodecErrorKind::Malformed,
            "the JSON body has data after the JSON value; send exactly one value".to_owned(),
        )
    } else if reason.contains("recursion limit") {
        (
            CodecErrorKind::TooDeep,
            "the JSON body nests arrays/objects too deeply".to_owned(),
        )
    } else if e.is_eof() {
        (
            CodecErrorKind::Malformed,
            format!("the JSON body ends before the value is complete ({reason})"),
        )
    } else {
        (
            CodecErrorKind::Malformed,
            format!("the JSON body is not valid JSON ({reason})"),
        )
    };
    let error = CodecError::new(kind, message);
    if e.line() > 0 {
        error.at(Position {
            line: e.line() as u64,
            column: e.column() as u64,
        })
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Fictional personnummer (born 2012, Luhn-valid), used to prove errors never echo input.
    const FICTIONAL_PNR: &str = "201203152383";

    fn parse(s: &[u8]) -> Result<Value, CodecError> {
        parse_json(s, &JsonLimits::default())
    }

    #[test]
    fn parses_a_valid_body_in_key_order() {
        let v = parse(br#"{"b": 1, "a": [true, null, "x"]}"#).unwrap();
        assert_eq!(v, json!({"b": 1, "a": [true, null, "x"]}));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["b", "a"]);
        // A UTF-8 BOM is ignored.
        assert_eq!(parse(b"\xEF\xBB\xBF[1]").unwrap(), json!([1]));
    }

    #[test]
    fn trailing_data_is_rejected_with_position() {
        let e = parse(b"{\"a\": 1}\n {\"b\": 2}").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Malformed);
        assert_eq!(e.line(), Some(2));
        assert!(e.message().contains("after the JSON value"), "{e}");
        // Whitespace after the value is fine.
        assert!(parse(b"{\"a\": 1}\n  \n").is_ok());
    }

    #[test]
    fn depth_limit_is_checked_by_us() {
        let limits = JsonLimits {
            max_depth: 3,
            ..JsonLimits::default()
        };
        assert!(parse_json(b"[[[1]]]", &limits).is_ok());
        let e = parse_json(b"[[[[1]]]]", &limits).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::TooDeep);
        assert_eq!(e.position(), Some(Position { line: 1, column: 4 }));
        // Brackets inside strings do not count, escaped quotes do not end strings.
        assert!(parse_json(br#"[{"a": "[[[[\"[[[["}]"#, &limits).is_ok());
        // The default (64) is below serde_json's 128: 65 levels are refused by us.
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err().kind(),
            CodecErrorKind::TooDeep
        );
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn serde_recursion_limit_maps_to_too_deep() {
        let limits = JsonLimits {
            max_depth: 10_000,
            ..JsonLimits::default()
        };
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse_json(deep.as_bytes(), &limits).unwrap_err().kind(),
            CodecErrorKind::TooDeep
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_with_position() {
        let e = parse(b"{\"name\":\n \"\xC3\x28\"}").unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::Encoding);
        assert_eq!(e.position(), Some(Position { line: 2, column: 3 }));
        // Latin-1 bytes are not UTF-8.
        assert_eq!(
            parse(b"{\"n\": \"\xE5\"}").unwrap_err().kind(),
            CodecErrorKind::Encoding
        );
    }

    #[test]
    fn size_limit() {
        let limits = JsonLimits {
            max_bytes: 8,
            ..JsonLimits::default()
        };
        assert!(parse_json(b"[1,2,3]", &limits).is_ok());
        let e = parse_json(b"[1,2,3,4,5]", &limits).unwrap_err();
        assert_eq!(e.kind(), CodecErrorKind::TooLarge);
    }

    #[test]
    fn syntax_errors_do_not_echo_the_body() {
        let bodies = [
            format!("{{\"pnr\": {FICTIONAL_PNR}x}}"),
            format!("{{\"pnr\": \"{FICTIONAL_PNR}"),
            format!("{{{FICTIONAL_PNR}: 1}}"),
            format!("[\"{FICTIONAL_PNR}\"] {FICTIONAL_PNR}"),
            String::new(),
        ];
        for body in &bodies {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), CodecErrorKind::Malformed, "{body}");
            assert!(e.line().is_some(), "{body}: {e}");
            let text = format!("{e} {e:?}");
            assert!(!text.contains(FICTIONAL_PNR), "{text}");
            assert!(!text.contains("2012"), "{text}");
        }
    }
}
