//! `set`: set headers from jq expressions over the body. A header `knut-key-<name>` is a
//! business key ([`crate::core::keys`]): its name is checked when the route loads, and a
//! value that is empty or personnummer-shaped fails the message (a key never names a person).

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one, value_to_string};
use crate::core::envelope::Envelope;
use crate::core::keys;
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, Problems, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a jq program's text holds a personnummer-shaped literal.
fn has_personnummer_shape(program: &str) -> bool {
    !crate::core::redact::shaped_spans(program.as_bytes()).is_empty()
}

/// Options of `set`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// Header name → jq expression over the body (strings are taken as they are, other values as JSON).
    /// A header `knut-key-<name>` (a letter, then letters, digits, `_`, `.`, `-`) records a business
    /// key: an id of the case such as an OeP FlowInstanceID or an errand number, which travels
    /// with the message to every route after and is journaled with its hops, so that `knut
    /// trace <value>` finds the whole case. Its value must never be a personnummer (refused).
    pub headers: BTreeMap<String, String>,
}

impl StepKind for SetSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        for (header, jq) in &self.headers {
            cx.jq(&format!("{at}.headers.{header}"), jq);
        }
    }

    /// A business key's name, and no personnummer written into its expression.
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        for (header, jq) in &self.headers {
            let Some(name) = header.strip_prefix(keys::PREFIX) else {
                continue;
            };
            let path = format!("{at}.headers.{header}");
            if let Some(why) = keys::name_problem(name) {
                out.problem(&path, why, Some("knut-key-flowInstanceId"));
            }
            if has_personnummer_shape(jq) {
                out.problem(
                    &path,
                    "a business key never holds a personnummer: record a case's id \
                     (a FlowInstanceID, an errand number)"
                        .to_string(),
                    None,
                );
            }
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
                let value = value_to_string(&v);
                if let Some(key) = name.strip_prefix(keys::PREFIX)
                    && let Some(why) = keys::value_problem(&value)
                {
                    return Err(StepError::permanent(format!(
                        "the business key `{key}` (header `{name}`) {why}"
                    )));
                }
                m.headers.insert(name, value);
            }
        }
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::test_effects::context;
    use crate::store::Store;

    fn set(headers: &[(&str, &str)]) -> Set {
        Set::new(&SetSpec {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .expect("compiles")
    }

    /// A business key is set like any header; a personnummer-shaped or empty value fails
    /// the message permanently, with a reason that does not repeat it.
    #[tokio::test]
    async fn a_business_key_is_set_and_a_personnummer_refused() {
        let cx = context("r", Store::memory().await.unwrap());
        let body =
            serde_json::json!({"flowInstanceId": 90017, "civicNo": "201304122383", "none": ""});
        let out = set(&[("knut-key-flowInstanceId", ".flowInstanceId")])
            .apply(Envelope::json(body.clone()), &cx)
            .await
            .unwrap();
        assert_eq!(out[0].header("knut-key-flowInstanceId"), Some("90017"));
        for (jq, why) in [(".civicNo", "personnummer-shaped"), (".none", "is empty")] {
            let err = set(&[("knut-key-student", jq)])
                .apply(Envelope::json(body.clone()), &cx)
                .await
                .expect_err(jq);
            assert_eq!(err.kind, crate::core::error::FailureKind::Permanent);
            assert!(err.message.contains(why), "{}", err.message);
            assert!(!err.message.contains("201304122383"));
        }
        // Another header may hold what it likes.
        let out = set(&[("student", ".civicNo")])
            .apply(Envelope::json(body), &cx)
            .await
            .unwrap();
        assert_eq!(out[0].header("student"), Some("201304122383"));
    }
}
