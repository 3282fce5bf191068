//! `idempotent`: the idempotent consumer. A message whose key was already processed (by
//! another message) stops here; a retry of the same message passes.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one, value_to_string};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::store::Claim;

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `idempotent`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotentSpec {
    /// jq expression giving the idempotency key (e.g. `.errandNumber`).
    pub key: String,
    /// Key space shared by routes (default: the route id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl StepKind for IdempotentSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.key"), &self.key);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            Idempotent::new(self).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `idempotent` step.
pub struct Idempotent {
    key: Program,
    scope: Option<String>,
}

impl Idempotent {
    /// Build; the key program must compile.
    pub fn new(spec: &IdempotentSpec) -> Result<Self, String> {
        Ok(Idempotent {
            key: compile("key", &spec.key)?,
            scope: spec.scope.clone(),
        })
    }
}

#[async_trait]
impl Step for Idempotent {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let key = {
            let body = m.json_body()?;
            value_to_string(&eval_one(&self.key, "key", &body, &m)?)
        };
        let scope = self.scope.as_deref().unwrap_or(&cx.route);
        match cx
            .store
            .claim_key(scope, &key, m.id)
            .await
            .map_err(|e| StepError::transient(format!("state store: {e}")))?
        {
            Claim::First | Claim::SameMessage => Ok(vec![m]),
            Claim::Duplicate => {
                tracing::debug!(route = %cx.route, message_id = %m.id, correlation_id = %m.correlation_id, "duplicate suppressed");
                Ok(Vec::new())
            }
        }
    }
}
