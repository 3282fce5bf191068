//! `xml_to_json`: parse an XML body into JSON (rules in docs/routes.md, XML ↔ JSON).

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::codec::{XmlToJsonOptions, xml_to_json};
use crate::core::envelope::{Body, Envelope, JSON};

use super::BuildError;
use super::kind::StepKind;
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `xml_to_json`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XmlToJsonSpec {
    /// Element names that always become arrays, even when they occur once (e.g. `Value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<String>,
}

impl StepKind for XmlToJsonSpec {
    fn build(&self, _at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(XmlToJson::new(self)))
    }
}

/// The `xml_to_json` step.
pub struct XmlToJson {
    options: XmlToJsonOptions,
}

impl XmlToJson {
    /// Build from the route file's options.
    pub fn new(spec: &XmlToJsonSpec) -> Self {
        XmlToJson {
            options: XmlToJsonOptions {
                arrays: spec.arrays.clone(),
                ..Default::default()
            },
        }
    }
}

#[async_trait]
impl Step for XmlToJson {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let Body::Bytes(bytes) = &m.body else {
            return Err(StepError::permanent(
                "the body is already JSON; xml_to_json expects an XML body",
            ));
        };
        let json = xml_to_json(bytes, &self.options)
            .map_err(|e| StepError::permanent(format!("the body is not acceptable XML: {e}")))?;
        m.body = Body::Json(json);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
