//! STUB (replaced by the expr branch): schema registry.
#![allow(missing_docs, dead_code, unused_variables)]
use serde_json::Value;
use std::path::Path;
#[derive(Debug)]
pub struct SchemaLoadError(pub String);
impl std::fmt::Display for SchemaLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
pub struct Violation {
    pub instance_path: String,
    pub reason: String,
}
pub struct SchemaRegistry;
impl SchemaRegistry {
    pub fn load(dir: &Path) -> Result<SchemaRegistry, Vec<SchemaLoadError>> {
        Ok(SchemaRegistry)
    }
    pub fn empty() -> SchemaRegistry {
        SchemaRegistry
    }
    pub fn contains(&self, name: &str) -> bool {
        true
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }
    pub fn raw(&self, name: &str) -> Option<&Value> {
        None
    }
    pub fn validate(&self, name: &str, instance: &Value) -> Result<(), Vec<Violation>> {
        Ok(())
    }
}
