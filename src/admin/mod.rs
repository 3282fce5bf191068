//! STUB (replaced by the ops branch).
#![allow(missing_docs)]
pub mod metrics;
