//! STUB (replaced by the codec branch).
#![allow(missing_docs, dead_code, unused_variables)]
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);
#[derive(Default, Clone)]
pub struct XmlLimits;
#[derive(Default, Clone)]
pub struct XmlToJsonOptions {
    pub arrays: Vec<String>,
    pub limits: XmlLimits,
}
#[derive(Default, Clone)]
pub struct JsonLimits;
pub fn xml_to_json(bytes: &[u8], opts: &XmlToJsonOptions) -> Result<Value, CodecError> {
    Ok(Value::Null)
}
pub fn json_to_xml(value: &Value, root: Option<&str>) -> Result<Vec<u8>, CodecError> {
    Ok(vec![])
}
pub fn parse_json(bytes: &[u8], limits: &JsonLimits) -> Result<Value, CodecError> {
    serde_json::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}
