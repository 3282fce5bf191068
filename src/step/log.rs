//! `log`: write a log line with the route, message and correlation ids; an optional jq
//! expression adds a `data` field. Personnummer are masked by the log writer.

use async_trait::async_trait;

use super::{Context, Step, StepError, compile, eval_one};
use crate::core::envelope::Envelope;
use crate::expr::Program;

use super::BuildError;
use super::kind::{CheckCx, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `log`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// The text of the log line.
    pub message: String,
    /// Level: `trace`, `debug`, `info` (default), `warn`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// Optional jq expression over the body whose result is logged as the `data` field (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
}

/// Log level.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    Info,
    /// warn
    Warn,
    /// error
    Error,
}

impl StepKind for LogSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if let Some(jq) = &self.jq {
            cx.jq(&format!("{at}.jq"), jq);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(Log::new(self).map_err(|e| build_error(at, e))?))
    }
}

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
