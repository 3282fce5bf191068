//! The outside world as steps see it: publishing, adapter calls, files, replies. The
//! runtime implements it against the broker and the adapters; route tests against
//! recordings and mocks.

use async_trait::async_trait;
use bytes::Bytes;

use super::envelope::{Body, Envelope};
use super::error::StepError;

/// The answer of an adapter operation.
#[derive(Debug, Clone)]
pub struct AdapterResponse {
    /// HTTP status.
    pub status: u16,
    /// MIME type of the body.
    pub content_type: String,
    /// The body (JSON parsed; XML converted to JSON).
    pub body: Body,
}

/// The outside world as steps see it.
#[async_trait]
pub trait Effects: Send + Sync {
    /// Publish to an exchange (confirmed).
    async fn publish(
        &self,
        exchange: &str,
        key: &str,
        envelope: &Envelope,
    ) -> Result<(), StepError>;
    /// Call an adapter operation with this message.
    async fn call(
        &self,
        adapter: &str,
        operation: &str,
        envelope: &Envelope,
    ) -> Result<AdapterResponse, StepError>;
    /// Write a file atomically (`dir` relative to the root).
    async fn write_file(&self, dir: &str, name: &str, contents: Bytes) -> Result<(), StepError>;
    /// Answer a synchronous caller waiting on queue `reply_to`.
    async fn reply(&self, reply_to: &str, envelope: &Envelope) -> Result<(), StepError>;
}
