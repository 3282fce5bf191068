//! `reply`: answer the synchronous HTTP request that started this message with the current
//! body. The caller's instance waits on its reply queue (named in `knut-reply-to`).

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::core::envelope::{Body, Envelope, header};

use super::BuildError;
use super::kind::{CheckCx, StepKind};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `reply`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// HTTP status of the answer (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Content type of the answer (default: the message's), e.g.
    /// `application/problem+json` for an RFC 9457 problem the route built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl StepKind for ReplySpec {
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
    }

    fn build(&self, _at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Reply::new(self)))
    }
}

/// The `reply` step.
pub struct Reply {
    status: u16,
    content_type: Option<String>,
}

impl Reply {
    /// Build from the route file's options.
    pub fn new(spec: &ReplySpec) -> Self {
        Reply {
            status: spec.status.unwrap_or(200),
            content_type: spec.content_type.clone(),
        }
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
        let content_type = self
            .content_type
            .clone()
            .unwrap_or_else(|| m.content_type.clone());
        let answer = answer(&m, "reply", self.status, m.body.clone(), content_type);
        cx.effects.reply(&reply_to, &answer).await?;
        Ok(vec![m])
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
    answer.headers.insert(
        crate::core::envelope::header::REPLY_FOR.into(),
        m.correlation_id.to_string(),
    );
    answer
}
