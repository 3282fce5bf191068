//! STUB (replaced by the route branch).
#![allow(missing_docs)]
#[derive(Debug, Clone)]
pub struct Diagnostic(pub String);
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
