//! `fixed_to_json`: read a fixed-width text body into a JSON array of rows — see [`crate::codec::fixed`]
//! for the options. A `split: { jq: '.[]' }` after it makes one message per row.

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::codec::{FixedOptions, fixed_to_json};
use crate::core::envelope::{Body, Envelope, JSON};

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;

impl StepKind for crate::codec::FixedOptions {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if let Err(e) = crate::codec::fixed::check_options(self) {
            cx.problem(at, e.to_string(), None);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            FixedToJson::new(self).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `fixed_to_json` step.
pub struct FixedToJson {
    options: FixedOptions,
}

impl FixedToJson {
    /// Build from the route file's options.
    pub fn new(spec: &FixedOptions) -> Result<Self, String> {
        crate::codec::fixed::check_options(spec)?;
        Ok(FixedToJson {
            options: spec.clone(),
        })
    }
}

#[async_trait]
impl Step for FixedToJson {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let Body::Bytes(bytes) = &m.body else {
            return Err(StepError::permanent(
                "the body is already JSON; fixed_to_json expects a fixed-width text body",
            ));
        };
        let rows = fixed_to_json(bytes, &self.options).map_err(|e| {
            StepError::permanent(format!("the body is not acceptable fixed-width text: {e}"))
        })?;
        m.body = Body::Json(rows);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
