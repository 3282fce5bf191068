//! `transform`: replace the body with a jq program's output or a Tera template's rendering
//! (or, with `into`, keep that output under a key of the body: an HTML report rendered
//! beside the rows it came from).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Context, Step, StepError, compile, eval_one, eval_one_owned};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::template::Templates;

use super::BuildError;
use super::kind::{CheckCx, Problems, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `transform`: exactly one of `jq` and `template`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// A jq program; the body becomes its (single) output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
    /// A jq program in a file under `transforms/` (e.g. `reports/skolresa.jq`), for a
    /// mapping too long to read inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq_file: Option<String>,
    /// A Tera template file under `transforms/`; the body is `body`, headers are `headers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Content type of the template's output (default: from the template's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Key of the body object that takes the output (a JSON value, or a template's text as a string), the rest of the body kept; without it the output replaces the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
}

impl StepKind for TransformSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        let given = [
            self.jq.is_some(),
            self.jq_file.is_some(),
            self.template.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            out.problem(
                at,
                "a transform needs exactly one of `jq`, `jq_file` and `template`".into(),
                Some(
                    "`jq: <program>`, `jq_file: <file under transforms/>` or `template: <file under transforms/>`",
                ),
            );
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if let Some(jq) = &self.jq {
            cx.jq(&format!("{at}.jq"), jq);
        }
        if let Some(name) = &self.template {
            cx.template(&format!("{at}.template"), name);
        }
        if let Some(file) = &self.jq_file {
            cx.jq_file(&format!("{at}.jq_file"), file);
        }
    }

    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Transform {
            output: Output::new(self, res).map_err(|e| build_error(at, e))?,
            into: self.into.clone(),
        }))
    }
}

/// The `transform` step.
pub struct Transform {
    output: Output,
    into: Option<String>,
}

/// What a `transform` computes.
enum Output {
    /// A jq program; the body becomes its output.
    Jq(Program),
    /// A template under `transforms/`.
    Template {
        /// Template name.
        name: String,
        /// Content type of the output.
        content_type: String,
        /// The loaded templates.
        templates: Arc<Templates>,
    },
}

/// Content type of a template's output from its file name.
pub fn template_content_type(name: &str) -> &'static str {
    let base = name.strip_suffix(".tera").unwrap_or(name);
    if base.ends_with(".json") {
        JSON
    } else if base.ends_with(".xml") {
        crate::core::envelope::XML
    } else if base.ends_with(".html") {
        "text/html; charset=utf-8"
    } else if base.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    }
}

impl Output {
    /// Build: exactly one of `jq` and `template`.
    pub fn new(spec: &TransformSpec, res: &Resources) -> Result<Self, String> {
        match (&spec.jq, &spec.jq_file, &spec.template) {
            (Some(src), None, None) => Ok(Output::Jq(compile("jq", src)?)),
            (None, Some(file), None) => {
                let src = read_jq_file(&res.root, file)?;
                Ok(Output::Jq(compile("jq_file", &src)?))
            }
            (None, None, Some(name)) => {
                if !res.templates.contains(name) {
                    return Err(format!("no template `{name}` in transforms/"));
                }
                Ok(Output::Template {
                    name: name.clone(),
                    content_type: spec
                        .content_type
                        .clone()
                        .unwrap_or_else(|| template_content_type(name).to_string()),
                    templates: res.templates.clone(),
                })
            }
            _ => Err("write exactly one of `jq`, `jq_file` and `template`".to_string()),
        }
    }
}

/// The jq program in `transforms/<file>` under `root`; the file must stay in that folder.
pub fn read_jq_file(root: &std::path::Path, file: &str) -> Result<String, String> {
    let rel = std::path::Path::new(file);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!(
            "`{file}` must be a path inside transforms/ (no `..`, not absolute)"
        ));
    }
    std::fs::read_to_string(root.join("transforms").join(rel))
        .map_err(|e| format!("cannot read transforms/{file}: {}", e.kind()))
}

#[async_trait]
impl Step for Transform {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        if let Some(into) = &self.into {
            let out = match &self.output {
                Output::Jq(program) => {
                    let body = m.json_body()?;
                    eval_one(program, "transform", &body, &m)?
                }
                Output::Template {
                    name,
                    content_type,
                    templates,
                } => {
                    let text = render(name, templates, &m)?;
                    if crate::core::envelope::is_json_type(content_type) {
                        parse_json(name, &text)?
                    } else {
                        Value::String(text)
                    }
                }
            };
            let mut body = m.take_json_body()?;
            let Value::Object(map) = &mut body else {
                return Err(StepError::permanent(
                    "transform: `into` keeps the output under a key of the body, which must be a JSON object",
                ));
            };
            map.insert(into.clone(), out);
            m.body = Body::Json(body);
            m.content_type = JSON.to_string();
            return Ok(vec![m]);
        }
        match &self.output {
            Output::Jq(program) => {
                // The body is replaced by the output: move it into the program.
                let body = m.take_json_body()?;
                let out = eval_one_owned(program, "transform", body, &m)?;
                m.body = Body::Json(out);
                m.content_type = JSON.to_string();
            }
            Output::Template {
                name,
                content_type,
                templates,
            } => {
                let text = render(name, templates, &m)?;
                m.content_type = content_type.clone();
                m.body = if crate::core::envelope::is_json_type(content_type) {
                    Body::Json(parse_json(name, &text)?)
                } else {
                    Body::Bytes(Bytes::from(text))
                };
            }
        }
        Ok(vec![m])
    }
}

/// `name` rendered with the message's body as `body` and its headers as `headers`.
fn render(name: &str, templates: &Templates, m: &Envelope) -> Result<String, StepError> {
    let body = m.json_body()?;
    let context = json!({"body": *body, "headers": m.headers_json()});
    templates
        .render(name, &context)
        .map_err(|e| StepError::permanent(e.to_string()))
}

/// A JSON template's output, parsed.
fn parse_json(name: &str, text: &str) -> Result<Value, StepError> {
    serde_json::from_str(text).map_err(|e| {
        StepError::permanent(format!(
            "template `{name}` did not produce valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}
