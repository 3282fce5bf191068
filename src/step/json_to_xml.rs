//! `json_to_xml`: serialise a JSON body as XML (UTF-8).

use async_trait::async_trait;
use bytes::Bytes;

use super::{Context, Step, StepError};
use crate::codec::json_to_xml;
use crate::core::envelope::{Body, Envelope, XML};
use crate::route::model::JsonToXmlSpec;

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
