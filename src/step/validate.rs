//! `validate`: check the body against a schema (JSON Schema 2020-12). A message that does
//! not satisfy it is dead-lettered with every failing path. An XML body is checked in its
//! JSON form (as `xml_to_json` reads it, as the HTTP ingress does) and passed on as it came,
//! so a bridge can check an export before it crosses into the internal plane unchanged.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::core::envelope::Envelope;
use crate::schema::SchemaRegistry;

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `validate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    /// Schema name: a file `schemas/<name>.json` (JSON Schema 2020-12).
    pub schema: String,
}

impl StepKind for ValidateSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.schema(&format!("{at}.schema"), &self.schema);
    }

    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            Validate::new(self, res).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `validate` step.
pub struct Validate {
    schema: String,
    registry: Arc<SchemaRegistry>,
}

impl Validate {
    /// Build; the schema must exist.
    pub fn new(spec: &ValidateSpec, res: &Resources) -> Result<Self, String> {
        if !res.schemas.contains(&spec.schema) {
            return Err(format!("no schema `{}` in schemas/", spec.schema));
        }
        Ok(Validate {
            schema: spec.schema.clone(),
            registry: res.schemas.clone(),
        })
    }
}

#[async_trait]
impl Step for Validate {
    async fn apply(&self, m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        {
            let body = match &m.body {
                crate::core::envelope::Body::Bytes(b)
                    if crate::core::envelope::is_xml_type(&m.content_type) =>
                {
                    std::borrow::Cow::Owned(
                        crate::codec::xml_to_json(b, &crate::codec::XmlToJsonOptions::default())
                            .map_err(|e| {
                                StepError::permanent(format!("the XML body cannot be read: {e}"))
                            })?,
                    )
                }
                _ => m.json_body()?,
            };
            if let Err(violations) = self.registry.validate(&self.schema, &body) {
                let list: Vec<String> = violations
                    .iter()
                    .map(|v| {
                        let at = if v.instance_path.is_empty() {
                            "/"
                        } else {
                            &v.instance_path
                        };
                        format!("{at}: {}", v.reason)
                    })
                    .collect();
                return Err(StepError::permanent(format!(
                    "the body does not satisfy schema `{}`: {}",
                    self.schema,
                    list.join("; ")
                )));
            }
        }
        Ok(vec![m])
    }
}
