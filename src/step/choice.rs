//! `choice`: the content-based router. The first `when` whose jq predicate is true (and
//! whose `header` the message carries) runs its steps; a message no branch takes runs
//! `otherwise` (by default it continues unchanged). A branch on `header` alone reads no
//! body, so it routes XML, CSV or bytes too; a jq predicate needs a JSON body.

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

/// One branch of a `choice`: `jq`, `header` or both (then both must hold).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// jq predicate over the body (JSON); the branch is taken when its first output is `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
    /// A header the message must carry (e.g. `knut-fetch-error`), whatever its body is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Steps of the branch.
    pub steps: Vec<StepSpec>,
}

impl StepKind for ChoiceSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        for (j, w) in self.when.iter().enumerate() {
            if w.header.as_deref().is_some_and(|h| h.trim().is_empty()) {
                cx.problem(
                    &format!("{at}.when[{j}].header"),
                    "the header's name is empty".into(),
                    None,
                );
            }
            match (&w.jq, &w.header) {
                (Some(jq), _) => cx.jq(&format!("{at}.when[{j}].jq"), jq),
                (None, Some(_)) => {}
                (None, None) => cx.problem(
                    &format!("{at}.when[{j}]"),
                    "a branch needs `jq` (a predicate over the body), `header` (a header the message carries) or both".into(),
                    None,
                ),
            }
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
    branches: Vec<(Branch, Pipeline)>,
    otherwise: Pipeline,
}

/// What a branch asks of a message.
struct Branch {
    jq: Option<Program>,
    header: Option<String>,
}

impl Choice {
    /// Build the branches' pipelines.
    pub fn new(spec: &ChoiceSpec, path: &str, res: &Resources) -> Result<Self, BuildError> {
        let mut branches = Vec::with_capacity(spec.when.len());
        for (i, w) in spec.when.iter().enumerate() {
            let at = format!("{path}.when[{i}]");
            if w.jq.is_none() && w.header.is_none() {
                return Err(BuildError {
                    path: at,
                    message: "a branch needs `jq`, `header` or both".into(),
                });
            }
            let jq = match &w.jq {
                Some(jq) => Some(compile("jq", jq).map_err(|message| BuildError {
                    path: at.clone(),
                    message,
                })?),
                None => None,
            };
            let branch = Branch {
                jq,
                header: w.header.clone(),
            };
            branches.push((
                branch,
                Pipeline::build(&w.steps, &format!("{at}.steps"), res)?,
            ));
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
            let v = vars(&m);
            let mut body = None;
            for (i, (b, _)) in self.branches.iter().enumerate() {
                if b.header
                    .as_ref()
                    .is_some_and(|h| !m.headers.contains_key(h))
                {
                    continue;
                }
                let holds = match &b.jq {
                    Some(p) => {
                        let body = match &body {
                            Some(b) => b,
                            None => body.insert(m.json_body()?),
                        };
                        p.predicate(body, &v)
                            .map_err(|e| StepError::permanent(format!("when[{i}]: {e}")))?
                    }
                    None => true,
                };
                if holds {
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
