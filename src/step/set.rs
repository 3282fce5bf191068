//! `set`: set headers from jq expressions over the body. A header `knut-key-<name>` is a
//! business key ([`crate::core::keys`]): its name is checked when the route loads, and a
//! value that is empty or no key (a long number, a personnummer in any form: a key never
//! names a person) is not set — a warning naming the key (never the value) and the counter
//! `knut_keys_dropped_total{route}` say so — and the message goes on without it.

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

/// Whether a jq program's text holds a personnummer-shaped literal, in any form a key
/// refuses (`130412 2383`, `2013-04-12-2383`, 10 or more digits in a row).
fn has_personnummer_shape(program: &str) -> bool {
    !crate::core::redact::shaped_spans(program.as_bytes()).is_empty()
        || keys::reads_as_personnummer(program)
}

/// Options of `set`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    /// Header name → jq expression over the body (strings are taken as they are, other values as JSON).
    /// A header `knut-key-<name>` (a letter, then letters, digits, `_`, `.`, `-`) records a business
    /// key: an id of the case such as an OeP FlowInstanceID or an errand number, which travels
    /// with the message to every route after and is journaled with its hops, so that `knut
    /// trace <value>` finds the whole case. Its value holds only letters, digits, `.`, `_`,
    /// `:`, `/`, `-` (at most 128) and never a personnummer or 10 digits in a row: a value
    /// that is empty or no key is not set (a warning and `knut_keys_dropped_total`), and the
    /// message goes on.
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
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
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
                    // A key is for finding the case again: without it the message still
                    // goes on. The warning names the key, never its value.
                    tracing::warn!(route = %cx.route, key, "the business key {why}; not set");
                    crate::telemetry::metrics::key_dropped(&cx.route);
                    continue;
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

    /// A business key is set like any header; a value that is empty or no key (a
    /// personnummer in any form, one run into an id, a long number) is not set and the
    /// message goes on — never failed, never repeating the value.
    #[tokio::test]
    async fn a_business_key_is_set_and_a_refused_value_dropped() {
        let cx = context("r", Store::memory().await.unwrap());
        let body = serde_json::json!({
            "flowInstanceId": 90017, "civicNo": "201304122383", "none": "",
            "spaced": "20130412 2383", "short": "130412 2383", "dashed": "2013-04-12-2383",
            "id": "90017", "arabic": "\u{661}\u{663}\u{660}\u{664}\u{661}\u{662}-\u{662}\u{663}\u{668}\u{663}",
        });
        let out = set(&[("knut-key-flowInstanceId", ".flowInstanceId")])
            .apply(Envelope::json(body.clone()), &cx)
            .await
            .unwrap();
        assert_eq!(out[0].header("knut-key-flowInstanceId"), Some("90017"));
        for jq in [
            ".civicNo",
            ".none",
            ".spaced",
            ".short",
            ".dashed",
            "\"\\(.id)\\(.civicNo)\"",
            ".arabic",
        ] {
            let out = set(&[("knut-key-student", jq), ("other", "\"x\"")])
                .apply(Envelope::json(body.clone()), &cx)
                .await
                .unwrap_or_else(|e| panic!("{jq}: {e:?}"));
            assert_eq!(out.len(), 1, "{jq}");
            assert_eq!(out[0].header("knut-key-student"), None, "{jq}");
            assert_eq!(out[0].header("other"), Some("x"), "{jq}");
        }
        // Another header may hold what it likes.
        let out = set(&[("student", ".civicNo")])
            .apply(Envelope::json(body), &cx)
            .await
            .unwrap();
        assert_eq!(out[0].header("student"), Some("201304122383"));
    }
}
