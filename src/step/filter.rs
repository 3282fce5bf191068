//! `filter`: the message filter. Messages for which the jq predicate is not true stop here.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, vars};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::route::model::FilterSpec;

/// The `filter` step.
pub struct Filter {
    predicate: Program,
}

impl Filter {
    /// Build; the predicate must compile.
    pub fn new(spec: &FilterSpec) -> Result<Self, String> {
        Ok(Filter {
            predicate: compile("jq", &spec.jq)?,
        })
    }
}

#[async_trait]
impl Step for Filter {
    async fn apply(&self, m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let keep = {
            let body = m.json_body()?;
            self.predicate
                .predicate(&body, &vars(&m))
                .map_err(|e| StepError::permanent(format!("filter: {e}")))?
        };
        Ok(if keep { vec![m] } else { Vec::new() })
    }
}
