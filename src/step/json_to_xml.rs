//! `json_to_xml`: serialise a JSON body as XML (UTF-8).

use async_trait::async_trait;
use bytes::Bytes;

use super::{Context, Step, StepError};
use crate::codec::json_to_xml;
use crate::core::envelope::{Body, Envelope, XML};

use super::BuildError;
use super::kind::StepKind;
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `json_to_xml`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonToXmlSpec {
    /// Name of the root element (when the body is not an object with one key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

impl StepKind for JsonToXmlSpec {
    fn build(&self, _at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(JsonToXml::new(self)))
    }
}

/// The `json_to_xml` step.
pub struct JsonToXml {
    root: Option<String>,
}

impl JsonToXml {
    /// Build from the route file's options.
    pub fn new(spec: &JsonToXmlSpec) -> Self {
        JsonToXml {
            root: spec.root.clone(),
        }
    }
}

#[async_trait]
impl Step for JsonToXml {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let xml = {
            let json = m.json_body()?;
            json_to_xml(&json, self.root.as_deref())
                .map_err(|e| StepError::permanent(format!("cannot write the body as XML: {e}")))?
        };
        m.body = Body::Bytes(Bytes::from(xml));
        m.content_type = XML.to_string();
        Ok(vec![m])
    }
}
