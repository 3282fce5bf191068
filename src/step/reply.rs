//! `reply`: answer the synchronous HTTP request that started this message. The caller's
//! instance waits on its reply queue (named in `knut-reply-to`).
//!
//! The answer is the current body (with `status` and `content_type`; a body that is a JSON
//! string, answered as a type that is not JSON, is sent as its text), or a declared RFC 9457
//! problem:
//! ```yaml
//! - reply:
//!     problem:
//!       status: 403
//!       type: wrong-operator                 # under https://knutpunkt.sundsvall.se/problems/
//!       title: The unit is another operator's
//!       detail: 'School unit {.schoolUnit} belongs to another operator: report for your own units.'
//! ```
//! `detail` may hold `{jq}` placeholders over the body; a personnummer-shaped value in it is
//! masked whole, like in every error text. The problem's `instance` is the request's path.
//! A problem answer ends the message: the caller was told no, so nothing after it runs.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kind::{CheckCx, Problems, StepKind, build_error};
use super::{BuildError, Context, Step, StepError};
use crate::core::envelope::{Body, Envelope, header};
use crate::core::problem;
use crate::expr::interpolate::Interpolated;
use crate::resources::Resources;

/// Options of `reply`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// HTTP status of the answer (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Content type of the answer (default: the message's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Answer with an RFC 9457 problem instead of the body (`application/problem+json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemSpec>,
}

/// A problem answer (RFC 9457).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemSpec {
    /// HTTP status, 400–599.
    pub status: u16,
    /// The kind of problem: a short name (`wrong-operator`, made a URI under the problems
    /// base) or a whole URI. Clients branch on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// A fixed summary of the kind of problem.
    pub title: String,
    /// What was wrong with this request and what to do; `{jq}` placeholders over the body.
    pub detail: String,
}

impl StepKind for ReplySpec {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        if let Some(p) = &self.problem {
            if !(400..=599).contains(&p.status) {
                out.problem(
                    &format!("{at}.problem.status"),
                    format!("a problem's status is 4xx or 5xx, not {}", p.status),
                    Some("e.g. 403, 422, 409"),
                );
            }
            if self.status.is_some() || self.content_type.is_some() {
                out.problem(
                    &format!("{at}.problem"),
                    "a `problem` answer sets its own status and content type".into(),
                    Some("`problem` alone, or `status`/`content_type` without it"),
                );
            }
            if p.kind.trim().is_empty() || p.kind.contains(char::is_whitespace) {
                out.problem(
                    &format!("{at}.problem.type"),
                    "the problem's `type` is a short name without spaces, or a URI".into(),
                    Some("e.g. `wrong-operator`"),
                );
            }
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if !cx.starts_from_http() {
            cx.problem(
                at,
                "`reply` answers a synchronous HTTP request, but this route does not start \
                 from `http`"
                    .into(),
                None,
            );
        }
        if let Some(p) = &self.problem
            && let Err(e) = Interpolated::parse(&p.detail, "problem.detail")
        {
            cx.problem(&format!("{at}.problem.detail"), e, None);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(Reply::new(self).map_err(|e| build_error(at, e))?))
    }
}

/// What the `reply` step answers with.
enum Answer {
    Body {
        status: u16,
        content_type: Option<String>,
    },
    Problem {
        status: u16,
        kind: String,
        title: String,
        detail: Interpolated,
    },
}

/// The `reply` step.
pub struct Reply {
    answer: Answer,
}

impl Reply {
    /// Build from the route file's options.
    pub fn new(spec: &ReplySpec) -> Result<Self, String> {
        let answer = match &spec.problem {
            Some(p) => Answer::Problem {
                status: p.status,
                kind: if p.kind.contains(':') {
                    p.kind.clone()
                } else {
                    format!("{}{}", problem::TYPE_BASE, p.kind)
                },
                title: p.title.clone(),
                detail: Interpolated::parse(&p.detail, "problem.detail")?,
            },
            None => Answer::Body {
                status: spec.status.unwrap_or(200),
                content_type: spec.content_type.clone(),
            },
        };
        Ok(Reply { answer })
    }
}

#[async_trait]
impl Step for Reply {
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let Some(reply_to) = m.header(header::REPLY_TO).map(str::to_string) else {
            return Err(StepError::permanent(
                "reply: the message did not come from a waiting HTTP caller",
            ));
        };
        let answer = match &self.answer {
            Answer::Body {
                status,
                content_type,
            } => {
                let content_type = content_type
                    .clone()
                    .unwrap_or_else(|| m.content_type.clone());
                // A JSON string answered as text (HTML, CSV…) is its text, not a quoted
                // JSON literal: a report kept as a string is downloaded as the file it is.
                // Any other JSON value cannot be such a text (a missing report is `null`).
                let body = match &m.body {
                    Body::Json(value) if !crate::core::envelope::is_json_type(&content_type) => {
                        match value {
                            serde_json::Value::String(text) => {
                                Body::Bytes(bytes::Bytes::from(text.clone()))
                            }
                            other => {
                                return Err(StepError::permanent(format!(
                                    "reply: the answer is `{content_type}`, but the body is JSON \
                                     ({}), not a text; make it a string (or answer JSON)",
                                    json_kind(other)
                                )));
                            }
                        }
                    }
                    other => other.clone(),
                };
                answer(&m, "reply", *status, body, content_type)
            }
            Answer::Problem {
                status,
                kind,
                title,
                detail,
            } => {
                let body = m.json_body()?;
                let detail = detail
                    .fill(&body, &super::vars(&m), str::to_string)
                    .map_err(|e| StepError::permanent(format!("reply problem.detail: {e}")))?;
                // An error text never carries a personnummer, whatever a placeholder gave.
                let detail = crate::core::redact::mask(&detail).into_owned();
                let mut doc = serde_json::json!({
                    "type": kind,
                    "title": title,
                    "status": status,
                    "detail": detail,
                });
                if let Some(path) = m.header(header::HTTP_PATH) {
                    doc["instance"] = crate::core::redact::mask(path).into_owned().into();
                }
                answer(&m, "reply", *status, Body::Json(doc), problem::CONTENT_TYPE)
            }
        };
        cx.effects.reply(&reply_to, &answer).await?;
        match self.answer {
            // Refused: nothing after it runs.
            Answer::Problem { .. } => Ok(Vec::new()),
            Answer::Body { .. } => Ok(vec![m]),
        }
    }
}

/// The answer to the caller waiting for `m`: `status`, `body` and `content_type`, matched by
/// the caller through `knut-reply-for` (the correlation id of the message it published).
/// `tag` names the answer among the messages derived from `m`.
pub fn answer(
    m: &Envelope,
    tag: &str,
    status: u16,
    body: Body,
    content_type: impl Into<String>,
) -> Envelope {
    let mut answer = m.derive(tag, body, content_type);
    answer
        .headers
        .insert(header::REPLY_STATUS.into(), status.to_string());
    answer
        .headers
        .insert(header::REPLY_FOR.into(), m.correlation_id.to_string());
    answer
}

/// The kind of a JSON value, for an error text (never the value itself).
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
