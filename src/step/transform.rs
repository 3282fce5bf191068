//! `transform`: replace the body with a jq program's output or a Tera template's rendering.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;

use super::{Context, Step, StepError, compile, eval_one_owned};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::resources::Resources;
use crate::route::model::TransformSpec;
use crate::template::Templates;

/// The `transform` step.
pub enum Transform {
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

impl Transform {
    /// Build: exactly one of `jq` and `template`.
    pub fn new(spec: &TransformSpec, res: &Resources) -> Result<Self, String> {
        match (&spec.jq, &spec.template) {
            (Some(src), None) => Ok(Transform::Jq(compile("jq", src)?)),
            (None, Some(name)) => {
                if !res.templates.contains(name) {
                    return Err(format!("no template `{name}` in transforms/"));
                }
                Ok(Transform::Template {
                    name: name.clone(),
                    content_type: spec
                        .content_type
                        .clone()
                        .unwrap_or_else(|| template_content_type(name).to_string()),
                    templates: res.templates.clone(),
                })
            }
            _ => Err("write exactly one of `jq` and `template`".to_string()),
        }
    }
}

#[async_trait]
impl Step for Transform {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        match self {
            Transform::Jq(program) => {
                // The body is replaced by the output: move it into the program.
                let body = m.take_json_body()?;
                let out = eval_one_owned(program, "transform", body, &m)?;
                m.body = Body::Json(out);
                m.content_type = JSON.to_string();
            }
            Transform::Template {
                name,
                content_type,
                templates,
            } => {
                let text = {
                    let body = m.json_body()?;
                    let context = json!({"body": *body, "headers": m.headers_json()});
                    templates
                        .render(name, &context)
                        .map_err(|e| StepError::permanent(e.to_string()))?
                };
                m.content_type = content_type.clone();
                m.body = if crate::core::envelope::is_json_type(content_type) {
                    Body::Json(serde_json::from_str(&text).map_err(|e| {
                        StepError::permanent(format!(
                            "template `{name}` did not produce valid JSON (line {}, column {})",
                            e.line(),
                            e.column()
                        ))
                    })?)
                } else {
                    Body::Bytes(Bytes::from(text))
                };
            }
        }
        Ok(vec![m])
    }
}
