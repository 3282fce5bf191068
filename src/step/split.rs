//! `split`: the splitter. Each output of a jq program becomes a message of its own, with
//! `knut-split-index` and `knut-split-size` headers and an id derived from its parent's, so
//! a redelivered parent gives the same parts again.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, vars};
use crate::core::envelope::{Body, Envelope, JSON, header};
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `split`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// jq program whose outputs become one message each (e.g. `.students[]`).
    pub jq: String,
}

impl StepKind for SplitSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.jq"), &self.jq);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            Split::new(self, at).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `split` step.
pub struct Split {
    program: Program,
    path: String,
}

impl Split {
    /// Build; the program must compile.
    pub fn new(spec: &SplitSpec, path: &str) -> Result<Self, String> {
        Ok(Split {
            program: compile("jq", &spec.jq)?,
            path: path.to_string(),
        })
    }
}

#[async_trait]
impl Step for Split {
    async fn apply(&self, m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let parts = {
            let body = m.json_body()?;
            self.program
                .run(&body, &vars(&m))
                .map_err(|e| StepError::permanent(format!("split: {e}")))?
        };
        let size = parts.len().to_string();
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut p = m.derive(&format!("{}/{i}", self.path), Body::Json(part), JSON);
                p.headers.insert(header::SPLIT_INDEX.into(), i.to_string());
                p.headers.insert(header::SPLIT_SIZE.into(), size.clone());
                p
            })
            .collect())
    }
}
