//! `aggregate`: the aggregator. Messages with the same correlation key are collected in the
//! state store; when the group is complete (by size, by a predicate over `{key, items}`, or
//! by timeout) one message `{"key": …, "items": [...]}` goes on and the group is removed.
//!
//! Timeouts are completed by the route's sweeper (see `runtime`), which sends the completed
//! group through the route's work queue with the `knut-resume-after` header, so the steps
//! after the aggregator run on a delivery of their own, with its own retries.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Context, Step, StepError, compile, eval_one, value_to_string, vars};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::store::Group;

use super::BuildError;
use super::kind::{CheckCx, Problems, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `aggregate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// jq expression giving the correlation key of a message.
    pub correlation: String,
    /// When a group is complete (at least one condition).
    pub complete: CompletionSpec,
}

/// Completion conditions of an aggregate group; whichever holds first completes it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionSpec {
    /// Complete when the group holds this many messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Complete when this jq predicate over `{key, items}` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Complete this long after the group's first message.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

impl StepKind for AggregateSpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        let c = &self.complete;
        if c.size.is_none() && c.when.is_none() && c.timeout.is_none() {
            out.problem(
                &format!("{at}.complete"),
                "an aggregate needs at least one completion condition".into(),
                Some("one or more of: size, when, timeout"),
            );
        }
        if c.size == Some(0) {
            out.problem(
                &format!("{at}.complete.size"),
                "size must be at least 1".into(),
                Some("a whole number ≥ 1"),
            );
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.correlation"), &self.correlation);
        if let Some(w) = &self.complete.when {
            cx.jq(&format!("{at}.complete.when"), w);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            Aggregate::new(self, at).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// Header naming the aggregate step a completed group resumes after.
pub const RESUME_AFTER: &str = "knut-resume-after";

/// The `aggregate` step.
pub struct Aggregate {
    correlation: Program,
    size: Option<usize>,
    when: Option<Program>,
    timeout: Option<Duration>,
    path: String,
}

impl Aggregate {
    /// Build; needs at least one completion condition.
    pub fn new(spec: &AggregateSpec, path: &str) -> Result<Self, String> {
        let c = &spec.complete;
        if c.size.is_none() && c.when.is_none() && c.timeout.is_none() {
            return Err("`complete` needs `size`, `when` or `timeout`".into());
        }
        Ok(Aggregate {
            correlation: compile("correlation", &spec.correlation)?,
            size: c.size,
            when: c
                .when
                .as_deref()
                .map(|w| compile("complete.when", w))
                .transpose()?,
            timeout: c.timeout,
            path: path.to_string(),
        })
    }

    /// The completion timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// The message a completed group becomes.
pub fn completed(parent: &Envelope, path: &str, group: Group) -> Envelope {
    let body = json!({"key": group.key, "items": group.items});
    parent.derive(&format!("{path}/{}", group.key), Body::Json(body), JSON)
}

#[async_trait]
impl Step for Aggregate {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let (key, item) = {
            let body = m.json_body()?;
            let key = eval_one(&self.correlation, "correlation", &body, &m)?;
            (value_to_string(&key), body.into_owned())
        };
        let group = cx
            .store
            .aggregate_add(&cx.route, &key, m.id, &item)
            .await
            .map_err(|e| StepError::transient(format!("state store: {e}")))?;
        let mut done = self.size.is_some_and(|n| group.items.len() >= n);
        if !done && let Some(p) = &self.when {
            let input = json!({"key": key, "items": group.items});
            done = p
                .predicate(&input, &vars(&m))
                .map_err(|e| StepError::permanent(format!("complete.when: {e}")))?;
        }
        if !done {
            return Ok(Vec::new());
        }
        match cx
            .store
            .aggregate_take(&cx.route, &key)
            .await
            .map_err(|e| StepError::transient(format!("state store: {e}")))?
        {
            Some(group) => Ok(vec![completed(&m, &self.path, group)]),
            // Another delivery completed it at the same moment.
            None => Ok(Vec::new()),
        }
    }
}
