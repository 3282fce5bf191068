//! `publish`: publish the message to an exchange; a list of targets is a recipient list.
//! Each published message has an id derived from the current one and the target, so a retry
//! republishes the same ids and consumers downstream can recognise the duplicate.

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::envelope::Envelope;
use crate::route::model::{PublishSpec, PublishTarget};

/// The `publish` step.
pub struct Publish {
    targets: Vec<PublishTarget>,
    path: String,
}

impl Publish {
    /// Build from the route file's options.
    pub fn new(spec: &PublishSpec, path: &str) -> Self {
        Publish {
            targets: spec.targets().to_vec(),
            path: path.to_string(),
        }
    }
}

#[async_trait]
impl Step for Publish {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        for t in &self.targets {
            // The body moves into the published message and back: publishing only reads
            // it, so a parsed JSON body is never copied.
            let body = std::mem::take(&mut m.body);
            let out = m.derive(
                &format!("{}/{}/{}", self.path, t.exchange, t.key),
                body,
                m.content_type.clone(),
            );
            let published = cx.effects.publish(&t.exchange, &t.key, &out).await;
            m.body = out.body;
            published?;
        }
        Ok(vec![m])
    }
}
