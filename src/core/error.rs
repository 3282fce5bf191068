//! Failures of a message's processing: what went wrong, and whether trying again may help.

/// Is a failure worth retrying?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Timeouts, connection errors, 5xx, 429, an unreachable broker: retried later.
    Transient,
    /// Invalid input, 4xx, transform errors: dead-lettered at once.
    Permanent,
}

/// A step's failure. The message is for people and never holds message content.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    /// Retry or dead-letter?
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
}

impl StepError {
    /// A failure that may pass when tried again later.
    pub fn transient(message: impl Into<String>) -> Self {
        StepError {
            kind: FailureKind::Transient,
            message: message.into(),
        }
    }

    /// A failure that will fail again however often it is tried.
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError {
            kind: FailureKind::Permanent,
            message: message.into(),
        }
    }
}

impl From<crate::core::envelope::BodyError> for StepError {
    fn from(e: crate::core::envelope::BodyError) -> Self {
        StepError::permanent(e.to_string())
    }
}

/// A failure and the step it happened in.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step's path in the route, e.g. `steps[2].to`.
    pub step: String,
    /// The failure.
    pub error: StepError,
}
