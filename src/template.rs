//! Tera templates of a root's `transforms/` folder, for the `transform: { template: … }` step.
//!
//! - Every `*.tera` under the folder is a template named by its path relative to the folder
//!   (`casedata/errand.json.tera`), loaded and parsed once. Templates may `include`,
//!   `import` and `extends` each other by these names.
//! - Only files are templates: message data is passed as the context and is never parsed
//!   as a template.
//! - `*.xml.tera`, `*.html.tera` and `*.htm.tera` autoescape every `{{ … }}` (`&`, `<`,
//!   `>`, `"`, `'` become entities); use `| safe` only for text already escaped.
//! - `*.json.tera` are not escaped: write values with the `json` filter, which emits a
//!   valid JSON literal (a string with its quotes and escapes, a number, an object…):
//!   `{"name": {{ body.name | json }}}`. Writing `"{{ body.name }}"` breaks on a quote
//!   or newline in the data.
//! - Filter `mask_personnummer`: a string with every personnummer-shaped value masked
//!   (`20100101-****`), see [`crate::expr::personnummer::mask`].
//! - Filter `base64`: a string's UTF-8 bytes in standard base64 (an attachment's content).
//! - Filter `base64_size`: how many bytes a standard base64 string decodes to (an
//!   attachment's `size`); an error for a string that is not base64.
//! - Function `now()`: the current time, UTC, RFC 3339 to the second (`2026-12-05T14:00:00Z`).
//! - `get_env` is disabled (it would let a template print secrets from the environment).
//! - Error texts name the template and, for syntax errors, the line and column; data
//!   that Tera quotes in a render error is cut and personnummer-shaped values masked.
//!   Tera does not report line numbers for render errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

/// Template suffixes that are autoescaped for XML/HTML.
const ESCAPED: [&str; 3] = [".xml.tera", ".html.tera", ".htm.tera"];

/// Errors from loading or rendering templates.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// A template file or folder could not be read.
    #[error("{}: cannot read template: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A template file is not UTF-8.
    #[error("{}: a template must be UTF-8 text", .path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// One or more templates do not parse (the reason gives line and column).
    #[error("templates do not parse: {reason}")]
    Parse {
        /// Tera's description, naming the template, line and column.
        reason: String,
    },
    /// No template of this name was loaded.
    #[error(
        "no template named `{name}` is loaded; templates are the `*.tera` files under transforms/, named by their relative path"
    )]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The render context is not a JSON object.
    #[error(
        "template `{name}`: the render context must be a JSON object (e.g. {{\"body\": …, \"headers\": {{…}}}})"
    )]
    Context {
        /// The template.
        name: String,
    },
    /// Rendering failed (a missing variable, a filter applied to the wrong type, …).
    #[error("template `{name}` failed to render: {reason}")]
    Render {
        /// The template.
        name: String,
        /// What went wrong, sanitised.
        reason: String,
    },
}

/// The loaded, parsed templates.
pub struct Templates {
    tera: tera::Tera,
    names: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.names)
            .finish()
    }
}

impl Templates {
    /// Load and parse every `*.tera` under `dir` (recursively). A missing folder gives no
    /// templates.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let mut files = Vec::new();
        if dir.exists() {
            collect_tera_files(dir, &mut files)?;
        }
        files.sort();
        let mut sources = Vec::with_capacity(files.len());
        for path in files {
            let bytes = std::fs::read(&path).map_err(|source| TemplateError::Io {
                path: path.clone(),
                source,
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| TemplateError::NotUtf8 { path: path.clone() })?;
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            sources.push((name, text));
        }
        Self::from_sources(sources)
    }

    /// No templates.
    pub fn empty() -> Templates {
        Templates {
            tera: tera::Tera::default(),
            names: Vec::new(),
        }
    }

    /// Build from (name, source) pairs; `load` reads them from files.
    fn from_sources(sources: Vec<(String, String)>) -> Result<Templates, TemplateError> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(ESCAPED.to_vec());
        tera.set_escape_fn(escape_markup);
        tera.register_filter("json", json_filter);
        tera.register_filter("mask_personnummer", mask_filter);
        tera.register_filter("base64", base64_filter);
        tera.register_filter("base64_size", base64_size_filter);
        tera.register_function("get_env", no_env);
        tera.register_function("now", now);
        let names = sources.iter().map(|(n, _)| n.clone()).collect();
        tera.add_raw_templates(sources)
            .map_err(|e| TemplateError::Parse { reason: chain(&e) })?;
        Ok(Templates { tera, names })
    }

    /// True if a template of this name was loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Names of the loaded templates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Render the template `name` with `context`, a JSON object such as
    /// `{"body": …, "headers": {…}}`.
    pub fn render(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        if !self.contains(name) {
            return Err(TemplateError::NotFound {
                name: name.to_owned(),
            });
        }
        if !context.is_object() {
            return Err(TemplateError::Context {
                name: name.to_owned(),
            });
        }
        let ctx =
            tera::Context::from_value(context.clone()).map_err(|_| TemplateError::Context {
                name: name.to_owned(),
            })?;
        let out = self
            .tera
            .render(name, &ctx)
            .map_err(|e| TemplateError::Render {
                name: name.to_owned(),
                reason: crate::expr::sanitize(&chain(&e)),
            })?;
        // XML 1.0 cannot carry most control characters, not even as references: refuse
        // rather than send a document its reader rejects (the code point only, no data).
        if name.ends_with(".xml.tera")
            && let Some(c) = out.chars().find(|c| !xml_char(*c))
        {
            return Err(TemplateError::Render {
                name: name.to_owned(),
                reason: format!(
                    "a value holds U+{:04X}, a character XML 1.0 cannot carry",
                    u32::from(c)
                ),
            });
        }
        Ok(out)
    }
}

/// May XML 1.0 carry `c`?
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn collect_tera_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TemplateError> {
    let io = |source| TemplateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_tera_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "tera") {
            out.push(path);
        }
    }
    Ok(())
}

/// Tera's error and its sources in one line.
fn chain(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.replace('\n', " ")
}

/// Escape for XML and HTML text and attribute values.
fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A reader turns a literal CR into LF; as a reference it survives.
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// `json`: the value as a JSON literal.
fn json_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    serde_json::to_string(value)
        .map(Value::String)
        .map_err(|_| tera::Error::msg("the json filter could not encode its value"))
}

/// `mask_personnummer`: a string with every personnummer-shaped value masked; null stays null.
fn mask_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    match value {
        Value::String(s) => Ok(Value::String(crate::expr::personnummer::mask(s))),
        Value::Null => Ok(Value::Null),
        _ => Err(tera::Error::msg(
            "the mask_personnummer filter takes a string",
        )),
    }
}

/// `base64`: a string's UTF-8 bytes in standard base64.
fn base64_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    use base64::Engine as _;
    match value {
        Value::String(s) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
        )),
        _ => Err(tera::Error::msg("the base64 filter takes a string")),
    }
}

/// `base64_size`: how many bytes a standard base64 string decodes to.
fn base64_size_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    use base64::Engine as _;
    let Value::String(s) = value else {
        return Err(tera::Error::msg("the base64_size filter takes a string"));
    };
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map(|bytes| Value::from(bytes.len()))
        .map_err(|e| tera::Error::msg(format!("the base64_size filter: not base64 ({e})")))
}

/// `now()`: the current time, UTC, as RFC 3339 to the second (an xs:dateTime too).
fn now(_: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

fn no_env(_: &HashMap<String, Value>) -> tera::Result<Value> {
    Err(tera::Error::msg(
        "get_env is not available in Knutpunkt templates; pass values in through headers",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates(files: &[(&str, &str)]) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let t = Templates::load(dir.path()).unwrap();
        (dir, t)
    }

    #[test]
    fn xml_is_escaped() {
        let (_d, t) = templates(&[(
            "archive/item.xml.tera",
            r#"<Item name="{{ body.name }}">{{ body.note }}</Item>"#,
        )]);
        assert!(t.contains("archive/item.xml.tera"));
        let out = t
            .render(
                "archive/item.xml.tera",
                &json!({"body": {"name": "A \"B\" & 'C'", "note": "<script>x</script>"}}),
            )
            .unwrap();
        assert_eq!(
            out,
            r#"<Item name="A &quot;B&quot; &amp; &apos;C&apos;">&lt;script&gt;x&lt;/script&gt;</Item>"#
        );
        // A carriage return survives as a reference; a character XML cannot carry is refused,
        // naming the code point and not the value.
        let out = t
            .render(
                "archive/item.xml.tera",
                &json!({"body": {"name": "a", "note": "rad\r\nny"}}),
            )
            .unwrap();
        assert!(out.contains("rad&#xD;\nny"), "{out}");
        let err = t
            .render(
                "archive/item.xml.tera",
                &json!({"body": {"name": "a", "note": "hemlig\u{1}text"}}),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("U+0001") && !err.contains("hemlig"), "{err}");
    }

    #[test]
    fn json_filter_gives_valid_json() {
        let (_d, t) = templates(&[(
            "casedata/errand.json.tera",
            r#"{"title": {{ body.title | json }}, "n": {{ body.n | json }}, "unit": {{ headers.unit | json }}, "tags": {{ body.tags | json }}}"#,
        )]);
        let ctx = json!({
            "body": {"title": "Ansökan \"ledighet\"\nrad två\\slut </x>", "n": 3, "tags": ["a", null]},
            "headers": {"unit": "Skola 7"}
        });
        let out = t.render("casedata/errand.json.tera", &ctx).unwrap();
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed,
            json!({"title": "Ansökan \"ledighet\"\nrad två\\slut </x>", "n": 3, "unit": "Skola 7", "tags": ["a", null]})
        );
    }

    #[test]
    fn base64_filter_encodes_utf8() {
        let (_d, t) = templates(&[("a.txt.tera", "{{ body.doc | base64 }}")]);
        let out = t
            .render("a.txt.tera", &json!({"body": {"doc": "Åsa {\"x\": 1}"}}))
            .unwrap();
        assert_eq!(out, "w4VzYSB7IngiOiAxfQ==");
        let err = t.render("a.txt.tera", &json!({"body": {"doc": 3}}));
        assert!(err.is_err());
    }

    #[test]
    fn base64_size_filter_counts_decoded_bytes() {
        let (_d, t) = templates(&[("a.txt.tera", "{{ body.doc | base64_size }}")]);
        let size = |doc: &str| t.render("a.txt.tera", &json!({"body": {"doc": doc}}));
        assert_eq!(size("w4VzYSB7IngiOiAxfQ==").unwrap(), "13");
        assert_eq!(size("JVBE\nRi0x").unwrap(), "6");
        assert_eq!(size("").unwrap(), "0");
        assert!(size("inte base64!").is_err());
    }

    #[test]
    fn data_is_never_a_template() {
        let (_d, t) = templates(&[("a.txt.tera", "{{ body }}")]);
        let out = t.render(
            "a.txt.tera",
            &json!({"body": "{{ 1 + 1 }} {% if true %}x{% endif %}"}),
        );
        assert_eq!(out.unwrap(), "{{ 1 + 1 }} {% if true %}x{% endif %}");
    }

    #[test]
    fn mask_filter_and_no_env() {
        // Fictional personnummer, constructed with a valid Luhn digit.
        let (_d, t) = templates(&[
            ("m.txt.tera", "{{ body.who | mask_personnummer }}"),
            ("e.txt.tera", r#"{{ get_env(name="PATH") }}"#),
        ]);
        assert_eq!(
            t.render(
                "m.txt.tera",
                &json!({"body": {"who": "Elev 20100101-1236"}})
            )
            .unwrap(),
            "Elev 20100101-****"
        );
        let err = t.render("e.txt.tera", &json!({})).unwrap_err();
        assert!(
            err.to_string().contains("get_env is not available"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_template_and_line_not_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.json.tera"),
            "{\n  \"a\": {{ body.a \n}",
        )
        .unwrap();
        let err = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.json.tera"), "{err}");
        assert!(err.contains("--> 3:1"), "{err}");

        let (_d, t) = templates(&[("r.txt.tera", "{{ body.student | round }}")]);
        // Fictional personnummer with a valid Luhn digit.
        let err = t
            .render("r.txt.tera", &json!({"body": {"student": "201001011236"}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("r.txt.tera"), "{err}");
        assert!(!err.contains("201001011236"), "{err}");

        let err = t.render("missing.tera", &json!({})).unwrap_err();
        assert!(matches!(err, TemplateError::NotFound { .. }));
        let err = t.render("r.txt.tera", &json!([1])).unwrap_err();
        assert!(matches!(err, TemplateError::Context { .. }));
        let err = t.render("r.txt.tera", &json!({})).unwrap_err().to_string();
        assert!(err.contains("body.student"), "{err}");
    }

    #[test]
    fn includes_by_relative_name_and_missing_dir() {
        let (_d, t) = templates(&[
            ("common/sign.txt.tera", "Hälsningar {{ headers.unit }}"),
            (
                "letter.txt.tera",
                r#"Hej! {% include "common/sign.txt.tera" %}"#,
            ),
        ]);
        let out = t.render("letter.txt.tera", &json!({"headers": {"unit": "Skola 7"}}));
        assert_eq!(out.unwrap(), "Hej! Hälsningar Skola 7");
        let t = Templates::load(Path::new("/nonexistent/knut/transforms")).unwrap();
        assert!(!t.contains("x.tera"));
    }
}
