//! The live side effects of steps: the broker, the adapters and the file system.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::adapter::client::AdapterClient;
use crate::broker::{BrokerError, SharedBroker};
use crate::core::effects::{AdapterResponse, Effects};
use crate::core::envelope::Envelope;
use crate::core::error::StepError;

/// Effects on the real broker, adapters and files.
pub struct LiveEffects {
    broker: SharedBroker,
    client: AdapterClient,
    root: PathBuf,
}

impl LiveEffects {
    /// Effects for a running system.
    pub fn new(broker: SharedBroker, client: AdapterClient, root: &Path) -> Self {
        LiveEffects {
            broker,
            client,
            root: root.to_path_buf(),
        }
    }
}

/// A broker failure as a step failure: a message nobody would receive is permanent (the
/// route or topology must change); everything else may pass later.
pub fn broker_failure(e: BrokerError) -> StepError {
    match e {
        BrokerError::Unroutable { .. } | BrokerError::NotDeclared(_) => {
            StepError::permanent(e.to_string())
        }
        other => StepError::transient(other.to_string()),
    }
}

#[async_trait]
impl Effects for LiveEffects {
    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), StepError> {
        self.broker
            .publish(exchange, key, envelope)
            .await
            .map_err(broker_failure)
    }

    async fn call(
        &self,
        adapter: &str,
        operation: &str,
        envelope: &Envelope,
    ) -> Result<AdapterResponse, StepError> {
        self.client.call(adapter, operation, envelope).await
    }

    async fn write_file(&self, dir: &str, name: &str, contents: Bytes) -> Result<(), StepError> {
        let dir = self.root.join(dir);
        crate::endpoint::file::write_atomic(&dir, name, &contents)
            .await
            .map_err(|e| {
                StepError::transient(format!("cannot write file in {}: {e}", dir.display()))
            })
    }

    async fn reply(&self, reply_to: &str, envelope: &Envelope) -> Result<(), StepError> {
        match self.broker.send_to_queue(reply_to, envelope).await {
            Ok(()) => Ok(()),
            // The caller's instance is gone; it has answered its caller with 504 already.
            Err(BrokerError::NotDeclared(_)) => {
                tracing::warn!(correlation_id = %envelope.correlation_id, "reply: the waiting caller is gone");
                Ok(())
            }
            Err(e) => Err(StepError::transient(e.to_string())),
        }
    }
}
