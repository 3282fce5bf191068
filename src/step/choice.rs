//! `choice`: the content-based router. The first `when` whose jq predicate is true runs its
//! steps; a message no branch takes runs `otherwise` (by default it continues unchanged).

use async_trait::async_trait;

use super::{BuildError, Context, Pipeline, Step, StepError, compile, vars};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::resources::Resources;
use crate::route::model::ChoiceSpec;

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
