//! `audit_lookup`: a content enricher from the access audit — for each question a jq
//! program asks (who, on whose behalf, what, which resources), how many allowed rows the
//! audit holds and when the newest was, kept under a key of the body. For the reports of
//! who viewed and who did not (seed 002: "a report of who viewed and who did not").
//!
//! ```yaml
//! - audit_lookup:
//!     each: '.pairs[] | {actor: .guardian.civicNo, on_behalf_of: .child.civicNo, action: "view-case", resources: [.caseId]}'
//!     into: views
//! ```
//!
//! The people are given as they are — a personnummer in any form, or another identity —
//! and hashed by the step under the instance's audit key, as the `audit` step stores them:
//! the report needs no key and the body never holds a hash. Only allowed rows count (a
//! refusal is no view). The answers are `{count, last}` (last: RFC 3339, or null), in the
//! order of the questions. A store that cannot be reached is a transient failure, retried.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kind::{CheckCx, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, compile, vars};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::resources::Resources;
use crate::store::{AccessAuditQuery, MAX_QUERY_LIMIT};

/// Options of `audit_lookup`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLookupSpec {
    /// jq program over the body whose every output is one question: `{actor, on_behalf_of?,
    /// action?, resources?}` — `actor` and `on_behalf_of` as they are (a personnummer in
    /// any form, or an identity such as a staff token's), `action` e.g. `"view-case"`,
    /// `resources` the case ids any of which counts (left out: any).
    pub each: String,
    /// Key of the body object the answers are stored under: a list of `{count, last}` in
    /// the order of the questions (`last`: the newest allowed row's time, or null).
    pub into: String,
}

impl StepKind for AuditLookupSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.each"), &self.each);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(AuditLookup {
            each: compile("each", &self.each).map_err(|e| build_error(at, e))?,
            into: self.into.clone(),
        }))
    }
}

/// The `audit_lookup` step.
pub struct AuditLookup {
    each: Program,
    into: String,
}

/// One question, read from an output of `each`; the error names the field, never a value.
struct Question {
    actor: String,
    on_behalf_of: Option<String>,
    action: Option<String>,
    resources: Option<Vec<String>>,
}

fn question(index: usize, v: &Value) -> Result<Question, StepError> {
    let wrong = |field: &str, what: &str| {
        StepError::permanent(format!(
            "audit_lookup: question {index}: `{field}` must be {what}"
        ))
    };
    let text = |field: &str| -> Result<Option<String>, StepError> {
        match &v[field] {
            Value::Null => Ok(None),
            Value::String(s) if !s.trim().is_empty() => Ok(Some(s.clone())),
            _ => Err(wrong(field, "a text")),
        }
    };
    if !v.is_object() {
        return Err(StepError::permanent(format!(
            "audit_lookup: question {index} is not an object {{actor, on_behalf_of, action, resources}}"
        )));
    }
    let resources = match &v["resources"] {
        Value::Null => None,
        Value::Array(list) => Some(
            list.iter()
                .map(|r| match r {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(wrong("resources", "a list of texts")),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(wrong("resources", "a list of texts")),
    };
    Ok(Question {
        actor: text("actor")?.ok_or_else(|| wrong("actor", "someone (a text)"))?,
        on_behalf_of: text("on_behalf_of")?,
        action: text("action")?,
        resources,
    })
}

#[async_trait]
impl Step for AuditLookup {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let mut body = m.json_body()?.into_owned();
        let questions = self
            .each
            .run(&body, &vars(&m))
            .map_err(|e| StepError::permanent(format!("audit_lookup each: {e}")))?
            .iter()
            .enumerate()
            .map(|(i, v)| question(i, v))
            .collect::<Result<Vec<_>, _>>()?;
        let hash = |who: &str| {
            cx.store
                .audit_hash(who)
                .map_err(|e| StepError::permanent(format!("audit_lookup: {e}")))
        };
        let mut answers = Vec::with_capacity(questions.len());
        for q in &questions {
            let query = AccessAuditQuery {
                actor: Some(hash(&q.actor)?),
                on_behalf_of: q.on_behalf_of.as_deref().map(hash).transpose()?,
                action: q.action.clone(),
                limit: Some(MAX_QUERY_LIMIT),
                ..Default::default()
            };
            let rows = cx
                .store
                .access_audit_query(&query)
                .await
                .map_err(|e| StepError::transient(format!("audit_lookup: state store: {e}")))?;
            let counted: Vec<_> = rows
                .iter()
                .filter(|r| r.allowed)
                .filter(|r| match (&q.resources, &r.resource) {
                    (None, _) => true,
                    (Some(wanted), Some(resource)) => wanted.contains(resource),
                    (Some(_), None) => false,
                })
                .collect();
            // Newest first, as the store answers.
            let last = counted
                .first()
                .map(|r| r.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            answers.push(json!({"count": counted.len(), "last": last}));
        }
        let Value::Object(map) = &mut body else {
            return Err(StepError::permanent(format!(
                "audit_lookup needs a JSON object body to store `{}` in",
                self.into
            )));
        };
        map.insert(self.into.clone(), Value::Array(answers));
        m.body = Body::Json(body);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::FailureKind;
    use crate::store::{AccessRecord, Store};
    use chrono::{Duration, Utc};
    use uuid::Uuid;

    const GUARDIAN: &str = "197903141237";
    const OTHER: &str = "198006112463";
    const CHILD: &str = "201304122383";

    fn step(each: &str) -> AuditLookup {
        AuditLookup {
            each: compile("each", each).expect("compiles"),
            into: "views".into(),
        }
    }

    async fn row(store: &Store, minutes_ago: i64, actor: &str, resource: &str, allowed: bool) {
        store
            .access_audit_append(&AccessRecord {
                at: Utc::now() - Duration::minutes(minutes_ago),
                actor: actor.into(),
                on_behalf_of: Some(CHILD.into()),
                action: "view-case".into(),
                resource: Some(resource.into()),
                right: Some("guardian-view".into()),
                allowed,
                route: "case-view".into(),
                correlation_id: Uuid::now_v7(),
            })
            .await
            .expect("appended");
    }

    #[tokio::test]
    async fn counts_allowed_views_per_question_newest_first_and_never_refusals() {
        let store = Store::memory().await.unwrap();
        row(&store, 30, GUARDIAN, "casedata-7", true).await;
        row(&store, 10, GUARDIAN, "oep-5003", true).await;
        row(&store, 5, GUARDIAN, "casedata-8", true).await;
        // A refusal is no view.
        row(&store, 1, OTHER, "casedata-7", false).await;
        let cx = crate::step::test_effects::context("report", store);
        // The guardian's number in another form is the same person.
        let s = step(
            r#".who[] | {actor: ., on_behalf_of: "20130412-2383", action: "view-case", resources: ["casedata-7", "oep-5003"]}"#,
        );
        let m = Envelope::json(json!({"who": ["19790314-1237", OTHER]}));
        let out = s.apply(m, &cx).await.unwrap();
        let views = out[0].json_body().unwrap()["views"].clone();
        assert_eq!(views[0]["count"], 2, "{views}");
        assert!(views[0]["last"].is_string(), "{views}");
        assert_eq!(views[1], json!({"count": 0, "last": null}));
        // A question without an actor fails, naming the field only.
        let bad = step(r#"{on_behalf_of: "201304122383"}"#);
        let err = bad.apply(Envelope::json(json!({})), &cx).await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(err.message.contains("`actor`"), "{}", err.message);
        assert!(!err.message.contains("2383"), "{}", err.message);
    }
}
