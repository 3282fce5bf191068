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
    async fn apply(&self, m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        for t in &self.targets {
            let out = m.derive(
                &format!("{}/{}/{}", self.path, t.exchange, t.key),
                m.body.clone(),
                m.content_type.clone(),
            );
            cx.effects.publish(&t.exchange, &t.key, &out).await?;
        }
        Ok(vec![m])
    }
}
