//! `aggregate`: the aggregator. Messages with the same correlation key are collected in the
//! state store; when the group is complete (by size, by a predicate over `{key, items}`, or
//! by timeout) one message `{"key": …, "items": [...]}` goes on and the group is removed.
//!
//! Completion loses nothing and repeats nothing: the message that completes a group
//! claims it in the store (from then on it takes no new member), publishes the completed
//! message to the route's work queue with the `knut-resume-after` header (confirmed), and
//! only then finishes the group — removes it and remembers its members, so that a member
//! redelivered later adds nothing instead of opening a one-member group. The steps after
//! the aggregator run on the completed message's own delivery, with its own retries, so
//! their failure never runs a member again. A crash between claim and finish is repaired
//! by the member's redelivery (it holds the claim: the completed message's id is derived
//! from it), or, if that message never comes back, by a member or sweep finding the claim
//! stale after [`STALE_CLAIM`]. Timeouts are completed the same way by the route's sweeper
//! (see `runtime`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Context, Step, StepError, compile, eval_one, value_to_string, vars};
use crate::core::envelope::{Body, Envelope, JSON};
use crate::expr::Program;
use crate::store::{Added, Group};

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

/// How long a claim on a group may stand before another takes its completion over (its
/// claimant died between claim and finish and its message is not coming back).
pub const STALE_CLAIM: Duration = Duration::from_secs(15 * 60);

/// The claims older than [`STALE_CLAIM`] end before this.
pub fn stale_before() -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::Duration::from_std(STALE_CLAIM)
        .ok()
        .map(|d| chrono::Utc::now() - d)
}

/// Complete a claimed group: publish its completed message to the route's work queue,
/// resuming after the aggregator at `path` (confirmed), then finish the group in the store.
/// `message` is the group `key`'s completed message; its id is the claim.
pub async fn complete(
    effects: &dyn crate::core::effects::Effects,
    store: &crate::store::Store,
    route: &str,
    path: &str,
    key: &str,
    mut message: Envelope,
) -> Result<(), StepError> {
    let claimant = message.id.to_string();
    message
        .headers
        .insert(RESUME_AFTER.into(), path.to_string());
    effects
        .publish(crate::broker::INGRESS_EXCHANGE, route, &message)
        .await?;
    store
        .aggregate_finish(route, key, &claimant)
        .await
        .map_err(store_error)
}

/// A state store failure: transient (retried).
fn store_error(e: crate::store::StoreError) -> StepError {
    StepError::transient(format!("state store: {e}"))
}

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

/// The message a completed group becomes: its id derived from the message that completed
/// it (the same on a redelivery), see [`completed_id`].
pub fn completed(parent: &Envelope, path: &str, group: &Group) -> Envelope {
    let body = json!({"key": group.key, "items": group.items});
    parent.derive(&completion_tag(path, &group.key), Body::Json(body), JSON)
}

/// The id [`completed`] gives the group `key` completed by `parent` — the claim — without
/// building its body (every member asks, so a large group is not copied per member).
pub fn completed_id(parent: &Envelope, path: &str, key: &str) -> uuid::Uuid {
    parent
        .derive(&completion_tag(path, key), Body::default(), JSON)
        .id
}

fn completion_tag(path: &str, key: &str) -> String {
    format!("{path}/{key}")
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
            .map_err(store_error)?;
        // The id of the message this group would complete into, if this message completes it.
        let claimant = completed_id(&m, &self.path, &key).to_string();
        match group.added {
            // A redelivery of a member of a group completed before: it is in that group.
            Added::AlreadyCompleted => return Ok(Vec::new()),
            Added::GroupCompleting => {
                // Its claimant died and is not coming back: complete it in its place.
                self.claim_and_complete(&m, cx, &key, &claimant, stale_before())
                    .await?;
                // This message belongs to the next group: it joins it on its retry.
                return Err(StepError::transient(
                    "its aggregate group is being completed; the message joins the next group",
                ));
            }
            Added::Member => {}
        }
        let done = match group.completing.as_deref() {
            // Claimed by this message before a crash: complete it again.
            Some(c) if c == claimant => true,
            // Claimed by another member, which completes it with this one in it.
            Some(_) => return Ok(Vec::new()),
            None => {
                let mut done = self.size.is_some_and(|n| group.items.len() >= n);
                if !done && let Some(p) = &self.when {
                    let input = json!({"key": key, "items": group.items});
                    done = p
                        .predicate(&input, &vars(&m))
                        .map_err(|e| StepError::permanent(format!("complete.when: {e}")))?;
                }
                done
            }
        };
        if !done {
            return Ok(Vec::new());
        }
        // Claim, publish (confirmed), finish: the group is removed only once its completed
        // message is safely on the work queue. Another delivery that claimed it at the same
        // moment completes it, with this message in it.
        self.claim_and_complete(&m, cx, &key, &claimant, None)
            .await?;
        Ok(Vec::new())
    }
}

impl Aggregate {
    /// Claim group `key` for `claimant` (also from a claimant whose claim is older than
    /// `stale`) and, when the claim is had, publish its completed message and finish it.
    async fn claim_and_complete(
        &self,
        m: &Envelope,
        cx: &Context,
        key: &str,
        claimant: &str,
        stale: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StepError> {
        let Some(claimed) = cx
            .store
            .aggregate_claim(&cx.route, key, claimant, stale)
            .await
            .map_err(store_error)?
        else {
            return Ok(());
        };
        let out = completed(m, &self.path, &claimed);
        complete(
            cx.effects.as_ref(),
            &cx.store,
            &cx.route,
            &self.path,
            key,
            out,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim a member computes is the id of the message it would complete into.
    #[test]
    fn the_claim_is_the_completed_message_id() {
        let m = Envelope::json(json!({"class": "7B"}));
        let group = Group {
            key: "7B".into(),
            items: vec![json!(1), json!(2)],
            opened_at: chrono::Utc::now(),
            completing: None,
            added: crate::store::Added::Member,
        };
        let out = completed(&m, "steps[0].aggregate", &group);
        assert_eq!(out.id, completed_id(&m, "steps[0].aggregate", "7B"));
        assert_ne!(out.id, completed_id(&m, "steps[0].aggregate", "8A"));
        assert_eq!(out.json_body().unwrap()["items"], json!([1, 2]));
    }
}
