//! `include`: the steps of a shared fragment (`fragments/<name>.yaml`), run in place, so a
//! check used by several routes is written once.
//!
//! ```yaml
//! # fragments/operator-owns-unit.yaml
//! fragment: operator-owns-unit
//! description: 403 unless the school unit is the calling operator's
//! steps:
//!   - enrich: { adapter: elevregister, operation: get-unit, with: '{schoolUnitCode: .schoolUnit}', into: unit }
//!   - choice: …
//!
//! # routes/placement-change.yaml
//! steps:
//!   - validate: { schema: placement-change.v1 }
//!   - include: operator-owns-unit
//! ```
//! The route loader reads the fragment and puts its steps here; `knut check` checks them as
//! part of each route that includes them (the route's plane, bindings and endpoint apply),
//! and reports a problem in a fragment at its line in the fragment's file. A fragment may
//! include another, never itself.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kind::{StepKind, build_error};
use super::{BuildError, Context, Pipeline, Step, StepError, StepSpec};
use crate::core::envelope::Envelope;
use crate::resources::Resources;

/// `include: <fragment name>`: the steps of `fragments/<name>.yaml`.
#[derive(Debug, Clone)]
pub struct IncludeSpec {
    /// The fragment's name.
    pub fragment: String,
    /// Its steps, put here by the route loader.
    pub steps: Vec<StepSpec>,
    /// Whether the loader found the fragment (a route loaded on its own has not looked).
    pub resolved: bool,
}

impl<'de> Deserialize<'de> for IncludeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fragment = String::deserialize(d)?;
        Ok(IncludeSpec {
            fragment,
            steps: Vec::new(),
            resolved: false,
        })
    }
}

impl Serialize for IncludeSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fragment.serialize(s)
    }
}

impl JsonSchema for IncludeSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IncludeSpec".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The name of a fragment: a file `fragments/<name>.yaml` holding `fragment: <name>` and `steps: [...]`.",
            "type": "string"
        })
    }
}

impl StepKind for IncludeSpec {
    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        if !self.resolved {
            return Err(build_error(
                at,
                format!(
                    "the fragment `{}` was not read: load the route with its root (fragments/)",
                    self.fragment
                ),
            ));
        }
        Ok(Box::new(Include {
            steps: Pipeline::build(&self.steps, &format!("{at}.steps"), res)?,
        }))
    }

    fn branches(&self) -> Vec<(String, &[StepSpec])> {
        vec![("steps".to_string(), self.steps.as_slice())]
    }
}

/// The `include` step: its fragment's steps.
pub struct Include {
    steps: Pipeline,
}

#[async_trait]
impl Step for Include {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        // A failure inside keeps its own step's kind and message; the worker names the
        // include step (the fragment's steps have their paths in the dead letter's reason).
        self.steps.run(m, cx).await.map_err(|f| StepError {
            kind: f.error.kind,
            message: format!("{}: {}", f.step, f.error.message),
        })
    }
}
