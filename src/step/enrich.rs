//! `enrich`: the content enricher. Calls an adapter operation that reads (a lookup) and
//! keeps its answer under a key of the body. `with:` gives the operation its input.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kind::{CheckCx, Edges, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, With};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::resources::Resources;

/// Options of `enrich`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter (a read: it is called again when the message is retried).
    pub operation: String,
    /// jq program over the body giving the operation its input (its path placeholders,
    /// query and body read it), e.g. `{personId: .guardian.id}`; without it the operation
    /// gets the message as it is.
    #[serde(default, rename = "with", skip_serializing_if = "Option::is_none")]
    pub with_input: Option<String>,
    /// Key of the body object the answer is stored under.
    pub into: String,
}

impl StepKind for EnrichSpec {
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
                "enrich",
                &self.adapter,
                &self.operation,
                self.with_input.as_deref(),
                &self.into,
            )
            .map_err(|e| build_error(at, e))?,
        ))
    }
}

/// Call an adapter operation with the message (or its `with:` input) and keep the answer
/// under a key of the body: `enrich` (a read) and `call` (a write) both run this.
pub struct CallInto {
    kind: &'static str,
    adapter: String,
    operation: String,
    with: With,
    into: String,
}

impl CallInto {
    /// Build; `with` must compile.
    pub fn new(
        kind: &'static str,
        adapter: &str,
        operation: &str,
        with: Option<&str>,
        into: &str,
    ) -> Result<Self, String> {
        Ok(CallInto {
            kind,
            adapter: adapter.to_string(),
            operation: operation.to_string(),
            with: With::new(with)?,
            into: into.to_string(),
        })
    }
}

#[async_trait]
impl Step for CallInto {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let response = {
            let input = self.with.input(&m)?;
            cx.effects
                .call(&self.adapter, &self.operation, &input)
                .await?
        };
        let result = match response.body {
            Body::Json(v) => v,
            Body::Bytes(b) if b.is_empty() => Value::Null,
            Body::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        };
        let mut body = m.json_body()?.into_owned();
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(format!(
                "{} needs a JSON object body to store `{}` in",
                self.kind, self.into
            )));
        };
        map.insert(self.into.clone(), result);
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
