//! STUB (replaced by the expr branch): jq programs.
#![allow(missing_docs, dead_code, unused_variables)]
use serde_json::Value;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExprError(pub String);
#[derive(Default)]
pub struct Vars {
    pub headers: Value,
}
pub struct Program {
    src: String,
}
impl Program {
    pub fn compile(src: &str) -> Result<Program, ExprError> {
        Ok(Program { src: src.into() })
    }
    pub fn run(&self, input: &Value, vars: &Vars) -> Result<Vec<Value>, ExprError> {
        Ok(vec![input.clone()])
    }
    pub fn first(&self, input: &Value, vars: &Vars) -> Result<Option<Value>, ExprError> {
        Ok(Some(input.clone()))
    }
    pub fn predicate(&self, input: &Value, vars: &Vars) -> Result<bool, ExprError> {
        Ok(true)
    }
    pub fn source(&self) -> &str {
        &self.src
    }
}
