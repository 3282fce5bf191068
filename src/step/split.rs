//! `split`: the splitter. Each output of a jq program becomes a message of its own, with
//! `knut-split-index` and `knut-split-size` headers and an id derived from its parent's, so
//! a redelivered parent gives the same parts again.
//!
//! By default (`scope: item`) every part is a message of its own in the broker: it goes
//! back to the route's work queue and through the steps after the split on its own, with
//! its own retries and, when it fails, its own dead letter (its index in
//! `knut-split-index`) — one bad row of a file never holds back the others, and a retry of
//! one part never repeats what another already did. `scope: all` runs the parts through
//! the rest of the route within the one delivery: all of them pass, or the whole message is
//! retried or dead-lettered (for an all-or-nothing file).
//!
//! ```yaml
//! - csv_to_json: { … }
//! - split: { jq: '.[]' }                 # one retry scope per row
//! - to: { adapter: elevregister, operation: update-placement }
//! ```

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, vars};
use crate::core::envelope::{Body, Envelope, JSON, header};
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, Problems, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `split`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// jq program whose outputs become one message each (e.g. `.students[]`).
    pub jq: String,
    /// `item` (default): every part its own message, retried and dead-lettered alone;
    /// `all`: the parts run on within the one delivery, all or nothing.
    #[serde(default)]
    pub scope: SplitScope,
}

/// How far a failure of one part reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SplitScope {
    /// Each part alone.
    #[default]
    Item,
    /// The whole message.
    All,
}

impl StepKind for SplitSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        // A part resumes after its split in the route's own steps: only a split of the
        // route's top level can be resumed at.
        if self.scope == SplitScope::Item && at.matches('[').count() > 1 {
            out.problem(
                &format!("{at}.scope"),
                "a split inside a `choice` or an `include` runs its parts within the delivery: \
                 write `scope: all`, or put the split at the route's top level for one retry \
                 scope per part"
                    .into(),
                Some("`scope: all`"),
            );
        }
    }

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
    scope: SplitScope,
}

impl Split {
    /// Build; the program must compile.
    pub fn new(spec: &SplitSpec, path: &str) -> Result<Self, String> {
        Ok(Split {
            program: compile("jq", &spec.jq)?,
            path: path.to_string(),
            scope: spec.scope,
        })
    }
}

#[async_trait]
impl Step for Split {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let parts = {
            let body = m.json_body()?;
            self.program
                .run(&body, &vars(&m))
                .map_err(|e| StepError::permanent(format!("split: {e}")))?
        };
        let size = parts.len().to_string();
        let parts: Vec<Envelope> = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut p = m.derive(&format!("{}/{i}", self.path), Body::Json(part), JSON);
                p.headers.insert(header::SPLIT_INDEX.into(), i.to_string());
                p.headers.insert(header::SPLIT_SIZE.into(), size.clone());
                p
            })
            .collect();
        if self.scope == SplitScope::All {
            return Ok(parts);
        }
        // Each part back to this route's work queue, resuming after this step: confirmed
        // before the split message is done, so none is lost; a redelivered split publishes
        // the same parts (same ids) again.
        for mut p in parts {
            p.headers
                .insert(super::aggregate::RESUME_AFTER.into(), self.path.clone());
            // With traces on, each part's hop is a child of this step's span.
            crate::telemetry::otel::inject(&mut p.headers);
            cx.effects
                .publish(crate::broker::INGRESS_EXCHANGE, &cx.route, &p)
                .await?;
        }
        Ok(Vec::new())
    }
}
