//! `log`: write a log line with the route, message and correlation ids; an optional jq
//! expression adds a `data` field. Personnummer are masked by the log writer.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::route::model::{LogLevel, LogSpec};

/// The `log` step.
pub struct Log {
    message: String,
    level: LogLevel,
    data: Option<Program>,
}

impl Log {
    /// Build; the jq expression must compile.
    pub fn new(spec: &LogSpec) -> Result<Self, String> {
        Ok(Log {
            message: spec.message.clone(),
            level: spec.level.unwrap_or(LogLevel::Info),
            data: spec.jq.as_deref().map(|j| compile("jq", j)).transpose()?,
        })
    }
}

#[async_trait]
impl Step for Log {
    async fn apply(&self, m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let data = match &self.data {
            Some(p) => {
                let body = m.json_body()?;
                eval_one(p, "log", &body, &m)?.to_string()
            }
            None => String::new(),
        };
        // The route, message and correlation ids are on the worker's span of this message.
        let text = &self.message;
        match self.level {
            LogLevel::Trace => tracing::trace!(data, "{text}"),
            LogLevel::Debug => tracing::debug!(data, "{text}"),
            LogLevel::Info => tracing::info!(data, "{text}"),
            LogLevel::Warn => tracing::warn!(data, "{text}"),
            LogLevel::Error => tracing::error!(data, "{text}"),
        }
        Ok(vec![m])
    }
}
