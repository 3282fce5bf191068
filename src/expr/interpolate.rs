//! Text with `{jq}` placeholders: an adapter operation's path
//! (`/errands/{.errandId}/decisions`) and a publish step's routing key
//! (`application.{.familyId}.submitted`). Braces may nest inside a placeholder
//! (`{ {a: 1} | .a }`); each placeholder is one jq program over the message body.

use serde_json::Value;

use super::{Program, Vars};

/// One piece of an interpolated text.
pub enum Part {
    /// Literal text.
    Lit(String),
    /// A `{jq}` placeholder.
    Jq(Program),
}

/// A text with `{jq}` placeholders, compiled.
pub struct Interpolated {
    parts: Vec<Part>,
}

/// Why an interpolated text could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// The placeholder's program failed.
    #[error("`{{{placeholder}}}`: {message}")]
    Failed {
        /// The placeholder's program.
        placeholder: String,
        /// What went wrong (sanitised by the jq runner).
        message: String,
    },
    /// The placeholder gave no value or null: the message lacks it.
    #[error("the placeholder `{{{placeholder}}}` gave no value: the message lacks that value")]
    Missing {
        /// The placeholder's program.
        placeholder: String,
    },
}

impl Interpolated {
    /// Split `template` into literal text and `{jq}` placeholders; every placeholder must
    /// compile. `what` names the text in errors (e.g. ``path `/x/{.a}` ``).
    pub fn parse(template: &str, what: &str) -> Result<Interpolated, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '{' {
                lit.push(c);
                continue;
            }
            let mut depth = 1;
            let start = i + 1;
            let mut end = None;
            for (j, d) in chars.by_ref() {
                match d {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| format!("{what}: a `{{` is never closed"))?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            let src = &template[start..end];
            parts
                .push(Part::Jq(Program::compile(src).map_err(|e| {
                    format!("{what}: placeholder `{{{src}}}`: {e}")
                })?));
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Interpolated { parts })
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when the text has at least one placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Jq(_)))
    }

    /// The text with every placeholder replaced by its value over `input` (strings as they
    /// are, other values as JSON text), each passed through `encode` (e.g. URL-encoding).
    /// A placeholder giving nothing or null is an error: the text would be wrong.
    pub fn fill(
        &self,
        input: &Value,
        vars: &Vars,
        encode: impl Fn(&str) -> String,
    ) -> Result<String, FillError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Jq(p) => {
                    let value = p.first(input, vars).map_err(|e| FillError::Failed {
                        placeholder: p.source().to_string(),
                        message: e.to_string(),
                    })?;
                    match value {
                        None | Some(Value::Null) => {
                            return Err(FillError::Missing {
                                placeholder: p.source().to_string(),
                            });
                        }
                        Some(Value::String(s)) => out.push_str(&encode(&s)),
                        Some(other) => out.push_str(&encode(&other.to_string())),
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_and_braces_nest() {
        let t = Interpolated::parse("application.{.familyId}.submitted", "key").unwrap();
        assert!(t.has_placeholders());
        let out = t
            .fill(&json!({"familyId": 412}), &Vars::default(), str::to_string)
            .unwrap();
        assert_eq!(out, "application.412.submitted");
        let nested = Interpolated::parse("/x/{ {a: 1} | .a }", "path").unwrap();
        assert_eq!(
            nested
                .fill(&json!(null), &Vars::default(), str::to_string)
                .unwrap(),
            "/x/1"
        );
        let plain = Interpolated::parse("placement.changed", "key").unwrap();
        assert!(!plain.has_placeholders());
    }

    #[test]
    fn a_missing_value_or_an_unclosed_brace_is_an_error() {
        assert!(Interpolated::parse("/x/{.a", "path").is_err());
        assert!(Interpolated::parse("/x/{.a | }", "path").is_err());
        let t = Interpolated::parse("a.{.b}", "key").unwrap();
        let err = t
            .fill(&json!({}), &Vars::default(), str::to_string)
            .unwrap_err();
        assert!(matches!(err, FillError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("{.b}"));
    }
}
