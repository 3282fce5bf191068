//! Diagnostics: what is wrong in a route file, where, what was expected, and a suggestion.
//!
//! A diagnostic names positions, YAML paths, kinds and names — never the values of a route
//! file, which could be data. As a last guard, [`Diagnostic`]'s `Display` masks every
//! personnummer-shaped digit run.

use std::fmt;

pub use crate::core::suggest::{did_you_mean, printable_name};
use std::path::PathBuf;

/// One problem found in a route file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The route file, relative to the root (or as given to the loader).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the file as a whole.
    pub line: usize,
    /// 1-based column; 0 when the problem concerns the file as a whole.
    pub column: usize,
    /// YAML path of the value concerned, e.g. `steps[2].validate.schema` (empty: the document).
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
    /// What was expected, written to follow "expected", e.g. `one of: http, queue` or `a string`.
    pub expected: Option<String>,
    /// The closest known name, for "did you mean".
    pub suggestion: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without `expected` or `suggestion` (personnummer shapes in `message` are masked).
    pub fn new(
        file: impl Into<PathBuf>,
        (line, column): (usize, usize),
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            column,
            path: path.into(),
            message: redact(&message.into()),
            expected: None,
            suggestion: None,
        }
    }

    /// Set what was expected (written to follow "expected").
    pub fn with_expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Set the "did you mean" suggestion.
    pub fn with_suggestion(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }

    /// Expect one of `names`, and suggest the one closest to `given` when it is close enough.
    pub fn with_choices<S: AsRef<str>>(mut self, given: &str, names: &[S]) -> Self {
        if !names.is_empty() {
            self.expected = Some(format!("one of: {}", join_names(names)));
        }
        self.suggestion = did_you_mean(given, names);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", redact(&self.path))?;
        }
        write!(f, "{}", redact(&self.message))?;
        if let Some(expected) = &self.expected {
            write!(f, "\n  expected {}", redact(expected))?;
        }
        if let Some(suggestion) = &self.suggestion {
            write!(f, "\n  did you mean `{}`?", redact(suggestion))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Names joined with `, ` (at most 40; the rest is summarised).
pub fn join_names<S: AsRef<str>>(names: &[S]) -> String {
    const MAX: usize = 40;
    let mut out: Vec<&str> = names.iter().take(MAX).map(AsRef::as_ref).collect();
    let more = names.len().saturating_sub(MAX);
    let tail = format!("… ({more} more)");
    if more > 0 {
        out.push(&tail);
    }
    out.join(", ")
}

/// Mask every personnummer-shaped digit run (10 or 12 digits, optionally with `-` or `+`
/// before the last four) with `…`. Letters around a run do not protect it
/// (`x201203142384`): whatever the log redaction masks ([`shaped_spans`]) is masked too,
/// since keys and names from a route file reach messages and YAML paths.
///
/// [`shaped_spans`]: crate::expr::personnummer::shaped_spans
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            // Take the digit run, allowing one `-`/`+` separator.
            let mut j = i;
            let mut digits = 0;
            let mut sep = false;
            while j < chars.len() {
                let c = chars[j];
                if c.is_ascii_digit() {
                    digits += 1;
                } else if (c == '-' || c == '+')
                    && !sep
                    && j + 1 < chars.len()
                    && chars[j + 1].is_ascii_digit()
                {
                    sep = true;
                } else {
                    break;
                }
                j += 1;
            }
            let bounded = j == chars.len() || !chars[j].is_ascii_alphanumeric();
            if bounded && (digits == 10 || digits == 12) {
                out.push('…');
            } else {
                out.extend(&chars[i..j]);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    let spans = crate::expr::personnummer::shaped_spans(out.as_bytes());
    if spans.is_empty() {
        return out;
    }
    let mut masked = String::with_capacity(out.len());
    let mut at = 0;
    for span in spans {
        // Spans are ASCII digits and a sign, so these are char boundaries.
        masked.push_str(&out[at..span.start]);
        masked.push('…');
        at = span.end;
    }
    masked.push_str(&out[at..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_position_path_expected_and_suggestion() {
        let d = Diagnostic::new(
            "routes/placement.yaml",
            (12, 7),
            "steps[2]",
            "unknown step kind `valdate`",
        )
        .with_choices("valdate", &["xml_to_json", "validate", "transform"]);
        assert_eq!(
            d.to_string(),
            "routes/placement.yaml:12:7: steps[2]: unknown step kind `valdate`\n  \
             expected one of: xml_to_json, validate, transform\n  did you mean `validate`?"
        );
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(
            did_you_mean("schmea", &["schema", "template"]),
            Some("schema".into())
        );
        assert_eq!(
            did_you_mean("elevregistr", &["elevregister", "oep"]).as_deref(),
            Some("elevregister")
        );
        assert_eq!(
            did_you_mean("kye", &["exchange", "key"]).as_deref(),
            Some("key")
        );
        assert_eq!(did_you_mean("zzz", &["schema", "template"]), None);
        assert_eq!(did_you_mean("schema", &["schema"]), None);
    }

    #[test]
    fn redacts_personnummer_shapes() {
        // Fictional personnummer (born 2012, Luhn-valid check digit).
        assert_eq!(redact("id 201203142384 here"), "id … here");
        assert_eq!(redact("x 120314-2384."), "x ….");
        assert_eq!(redact("20120314+2384"), "…");
        assert_eq!(redact("line 12 col 7, 2MiB"), "line 12 col 7, 2MiB");
        // Letters around the digits do not protect them (a key such as `x201203142384`
        // reaches messages and YAML paths).
        assert_eq!(redact("abc1203142384"), "abc…");
        assert_eq!(
            redact("unknown key `rout201203142384e`"),
            "unknown key `rout…e`"
        );
        assert_eq!(redact("steps[0].set.pnr120314-2384"), "steps[0].set.pnr…");
    }

    #[test]
    fn names_that_could_be_data_are_not_printable() {
        assert_eq!(printable_name("schmea"), Some("schmea"));
        assert_eq!(printable_name("201203142384"), None);
        assert_eq!(printable_name("Anna Andersson"), None);
        assert_eq!(printable_name(""), None);
    }
}
