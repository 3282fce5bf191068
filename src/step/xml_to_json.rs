//! `xml_to_json`: parse an XML body into JSON (rules in the README, section XML ↔ JSON).

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::codec::{XmlToJsonOptions, xml_to_json};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::route::model::XmlToJsonSpec;

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
