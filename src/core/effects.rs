//! The outside world as steps see it: publishing, adapter calls, files, replies. The
//! runtime implements it against the broker and the adapters; route tests against
//! recordings and mocks.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

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
    /// Record one hop of a message (a step's outcome) in the message journal. Never waits:
    /// the runtime's journal drops and counts a hop it cannot take. Route tests record none.
    fn hop(&self, _hop: Hop<'_>) {}
}

/// One hop of a message for the message journal: a step or an adapter call. Ids, a path,
/// an outcome and a time — never content.
#[derive(Debug)]
pub struct Hop<'a> {
    /// The id of the message that made the hop.
    pub message_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// The message whose business keys (`knut-key-*` headers) the hop records, if any:
    /// what a step gave (a `set` step's key is recorded with the step that set it).
    pub keys_of: Option<&'a Envelope>,
    /// The step's path (`steps[2].call`), or for an adapter call the path and the
    /// operation (`steps[2].call casedata.get-errand`).
    pub step: &'a str,
    /// `ok`, `stopped` (no message came out), `failed`.
    pub outcome: &'a str,
    /// How long it took.
    pub took: Duration,
    /// A short note: an HTTP status, an error kind, how many messages came out.
    pub detail: Option<String>,
}

tokio::task_local! {
    /// The path of the step running in this task (for an adapter call's journal row).
    static STEP: std::sync::Arc<str>;
}

/// Run `f` as the step at `path`: an adapter call it makes is journaled under this path.
pub async fn in_step<F: std::future::Future>(path: &str, f: F) -> F::Output {
    STEP.scope(std::sync::Arc::from(path), f).await
}

/// The path of the step running in this task, if any (see [`in_step`]).
pub fn current_step() -> Option<std::sync::Arc<str>> {
    STEP.try_with(std::sync::Arc::clone).ok()
}
