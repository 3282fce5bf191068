//! `set`: set headers from jq expressions over the body.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one, value_to_string};
use crate::core::envelope::Envelope;
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Options of `set`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// Header name → jq expression over the body (strings are taken as they are, other values as JSON).
    pub headers: BTreeMap<String, String>,
}

impl StepKind for SetSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        for (header, jq) in &self.headers {
            cx.jq(&format!("{at}.headers.{header}"), jq);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Set::new(self).map_err(|e| build_error(at, e))?))
    }
}

/// The `set` step.
pub struct Set {
    headers: Vec<(String, Program)>,
}

impl Set {
    /// Build; every program must compile.
    pub fn new(spec: &SetSpec) -> Result<Self, String> {
        let headers = spec
            .headers
            .iter()
            .map(|(name, src)| Ok((name.clone(), compile(&format!("headers.{name}"), src)?)))
            .collect::<Result<_, String>>()?;
        Ok(Set { headers })
    }
}

#[async_trait]
impl Step for Set {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let values = {
            let body = m.json_body()?;
            self.headers
                .iter()
                .map(|(name, p)| {
                    Ok((
                        name.clone(),
                        eval_one(p, &format!("header `{name}`"), &body, &m)?,
                    ))
                })
                .collect::<Result<Vec<_>, StepError>>()?
        };
        for (name, v) in values {
            if v.is_null() {
                m.headers.remove(&name);
            } else {
                m.headers.insert(name, value_to_string(&v));
            }
        }
        Ok(vec![m])
    }
}
