//! `filter`: the message filter. Messages for which the jq predicate is not true stop here.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, vars};
use crate::core::envelope::Envelope;
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `filter`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// jq predicate over the body; messages for which it is not `true` stop here (recorded in the journal).
    pub jq: String,
}

impl StepKind for FilterSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.jq"), &self.jq);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Filter::new(self).map_err(|e| build_error(at, e))?))
    }
}

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
