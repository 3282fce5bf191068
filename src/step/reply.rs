//! `reply`: answer the synchronous HTTP request that started this message with the current
//! body. The caller's instance waits on its reply queue (named in `knut-reply-to`).

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::core::envelope::{Body, Envelope, header};
use crate::route::model::ReplySpec;

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
