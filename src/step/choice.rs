//! `choice`: the content-based router. The first `when` whose jq predicate is true runs its
//! steps; a message no branch takes runs `otherwise` (by default it continues unchanged).

use async_trait::async_trait;

use super::{BuildError, Context, Pipeline, Step, StepError, compile, vars};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::resources::Resources;

use super::StepSpec;
use super::kind::{CheckCx, StepKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `choice`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceSpec {
    /// Branches, tried in order.
    pub when: Vec<WhenSpec>,
    /// Steps for messages no branch took (default: none, the message continues unchanged).
    #[serde(default)]
    pub otherwise: Vec<StepSpec>,
}

/// One branch of a `choice`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// jq predicate over the body; the branch is taken when its first output is `true`.
    pub jq: String,
    /// Steps of the branch.
    pub steps: Vec<StepSpec>,
}

impl StepKind for ChoiceSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        for (j, w) in self.when.iter().enumerate() {
            cx.jq(&format!("{at}.when[{j}].jq"), &w.jq);
        }
    }

    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Choice::new(self, at, res)?))
    }

    fn branches(&self) -> Vec<(String, &[StepSpec])> {
        let mut out: Vec<(String, &[StepSpec])> = self
            .when
            .iter()
            .enumerate()
            .map(|(j, w)| (format!("when[{j}].steps"), w.steps.as_slice()))
            .collect();
        out.push(("otherwise".to_string(), self.otherwise.as_slice()));
        out
    }
}

/// The `choice` step.
pub struct Choice {
    branches: Vec<(Program, Pipeline)>,
    otherwise: Pipeline,
}

impl Choice {
    /// Build the branches' pipelines.
    pub fn new(spec: &ChoiceSpec, path: &str, res: &Resources) -> Result<Self, BuildError> {
        let mut branches = Vec::with_capacity(spec.when.len());
        for (i, w) in spec.when.iter().enumerate() {
            let at = format!("{path}.when[{i}]");
            let p = compile("jq", &w.jq).map_err(|message| BuildError {
                path: at.clone(),
                message,
            })?;
            branches.push((p, Pipeline::build(&w.steps, &format!("{at}.steps"), res)?));
        }
        let otherwise = Pipeline::build(&spec.otherwise, &format!("{path}.otherwise"), res)?;
        Ok(Choice {
            branches,
            otherwise,
        })
    }
}

#[async_trait]
impl Step for Choice {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let mut taken = None;
        {
            let body = m.json_body()?;
            let v = vars(&m);
            for (i, (p, _)) in self.branches.iter().enumerate() {
                if p.predicate(&body, &v)
                    .map_err(|e| StepError::permanent(format!("when[{i}]: {e}")))?
                {
                    taken = Some(i);
                    break;
                }
            }
        }
        let pipeline = match taken {
            Some(i) => &self.branches[i].1,
            None => &self.otherwise,
        };
        pipeline.run(m, cx).await.map_err(|f| StepError {
            kind: f.error.kind,
            message: format!("{}: {}", f.step, f.error.message),
        })
    }
}
