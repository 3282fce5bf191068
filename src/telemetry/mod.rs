//! STUB (replaced by the ops branch).
#![allow(missing_docs, unused_variables)]
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TelemetryError(pub String);
pub fn init(format: crate::config::LogFormat, level: &str) -> Result<(), TelemetryError> {
    Ok(())
}
