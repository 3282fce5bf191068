//! `idempotent`: the idempotent consumer. A message whose key was already processed (by
//! another message) stops here; a retry of the same message passes.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one, value_to_string};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::route::model::IdempotentSpec;
use crate::store::Claim;

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
