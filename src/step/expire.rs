//! `expire`: message expiration. A message whose time — a jq expression over the body
//! giving an RFC 3339 time or a `YYYY-MM-DD` date (its start in Stockholm) — lies more
//! than `after` in the past stops here, recorded in the journal as stopped: an absence
//! notice held up by an outage is not mailed to a guardian days later.
//!
//! ```yaml
//! - expire: { jq: .date, after: 2d }
//! ```
//! A time the expression does not give, or cannot be read, is a permanent failure (dead
//! letter): the route's author learns of it rather than every message going through.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kind::{CheckCx, StepKind, build_error};
use super::{BuildError, Context, Step, StepError, compile, eval_one};
use crate::core::envelope::Envelope;
use crate::expr::Program;
use crate::resources::Resources;

/// Options of `expire`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireSpec {
    /// jq expression over the body giving the message's time: an RFC 3339 time or a
    /// `YYYY-MM-DD` date (counted from its start in Stockholm).
    pub jq: String,
    /// How long after that time the message is still worth handling, e.g. `2d`, `6h`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub after: Duration,
}

impl StepKind for ExpireSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.jq"), &self.jq);
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn Step>, BuildError> {
        Ok(Box::new(Expire::new(self).map_err(|e| build_error(at, e))?))
    }
}

/// The `expire` step.
pub struct Expire {
    time: Program,
    after: chrono::Duration,
}

impl Expire {
    /// Build; the expression must compile and `after` be a span chrono can hold.
    pub fn new(spec: &ExpireSpec) -> Result<Self, String> {
        Ok(Expire {
            time: compile("jq", &spec.jq)?,
            after: chrono::Duration::from_std(spec.after)
                .map_err(|_| "`after` is too long".to_string())?,
        })
    }
}

/// `text` as a point in time: RFC 3339, or a date's start in Stockholm.
fn point_in_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    chrono_tz::Europe::Stockholm
        .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[async_trait]
impl Step for Expire {
    async fn apply(&self, m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let time = {
            let body = m.json_body()?;
            let value = eval_one(&self.time, "expire", &body, &m)?;
            // The value itself stays out of the error: it may be anything of the body.
            value.as_str().and_then(point_in_time).ok_or_else(|| {
                StepError::permanent(
                    "expire: the message's time is not an RFC 3339 time or a YYYY-MM-DD date",
                )
            })?
        };
        Ok(if Utc::now() > time + self.after {
            Vec::new()
        } else {
            vec![m]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_and_dates() {
        assert_eq!(
            point_in_time("2026-11-24T08:10:00+01:00").map(|t| t.to_rfc3339()),
            Some("2026-11-24T07:10:00+00:00".into())
        );
        assert_eq!(
            point_in_time("2026-07-01").map(|t| t.to_rfc3339()),
            Some("2026-06-30T22:00:00+00:00".into())
        );
        assert_eq!(point_in_time("igår"), None);
    }
}
