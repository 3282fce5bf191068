//! `call`: call an adapter operation that changes something in a system (a write: open an
//! errand, register a document) and keep its answer under a key of the body — the id of
//! what it made, say. Where `to` sends and forgets the answer, and `enrich` reads, a write
//! whose answer the route needs reads as what it is. `with:` gives the operation its input.
//!
//! ```yaml
//! - call: { adapter: casedata, operation: open-errand, with: '{errand: .errand}', into: opened }
//! ```
//! A retried message calls the operation again: pair it with a read first (find what an
//! earlier attempt made) or an operation the system deduplicates (Idempotency-Key).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::enrich::CallInto;
use super::kind::{CheckCx, Edges, StepKind, build_error};
use super::{BuildError, Step};
use crate::resources::Resources;

/// Options of `call`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter (a write).
    pub operation: String,
    /// jq program over the body giving the operation its input (its path placeholders,
    /// query and body read it); without it the operation gets the message as it is.
    #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
    pub with_input: Option<String>,
    /// Key of the body object the answer is stored under.
    pub into: String,
}

impl StepKind for CallSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.operation_with(
            at,
            &self.adapter,
            &self.operation,
            self.with_input.as_deref(),
        );
    }

    fn edges(&self, g: &mut dyn Edges) {
        g.adapter(&self.adapter, &self.operation);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(
            CallInto::new(
                "call",
                &self.adapter,
                &self.operation,
                self.with_input.as_deref(),
                &self.into,
            )
            .map_err(|e| build_error(at, e))?,
        ))
    }
}
