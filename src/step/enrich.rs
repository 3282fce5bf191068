//! `enrich`: the content enricher. Calls an adapter operation with the message and stores
//! the result under a key of the body.

use async_trait::async_trait;
use serde_json::Value;

use super::{Context, Step, StepError};
use crate::core::envelope::{Body, Envelope, JSON};

use super::BuildError;
use super::kind::{CheckCx, Edges, StepKind};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `enrich`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichSpec {
    /// Adapter name (a file `adapters/<name>.yaml`).
    pub adapter: String,
    /// Operation of the adapter.
    pub operation: String,
    /// Key of the body object the result is stored under.
    pub into: String,
}

impl StepKind for EnrichSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.adapter(at, "operation", &self.adapter, &self.operation);
    }

    fn edges(&self, g: &mut dyn Edges) {
        g.adapter(&self.adapter, &self.operation);
    }

    fn build(&self, _at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Enrich::new(self)))
    }
}

/// The `enrich` step.
pub struct Enrich {
    adapter: String,
    operation: String,
    into: String,
}

impl Enrich {
    /// Build from the route file's options.
    pub fn new(spec: &EnrichSpec) -> Self {
        Enrich {
            adapter: spec.adapter.clone(),
            operation: spec.operation.clone(),
            into: spec.into.clone(),
        }
    }
}

#[async_trait]
impl Step for Enrich {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let response = cx.effects.call(&self.adapter, &self.operation, &m).await?;
        let result = match response.body {
            Body::Json(v) => v,
            Body::Bytes(b) if b.is_empty() => Value::Null,
            Body::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        };
        let mut body = m.json_body()?.into_owned();
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(format!(
                "enrich needs a JSON object body to store `{}` in",
                self.into
            )));
        };
        map.insert(self.into.clone(), result);
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
