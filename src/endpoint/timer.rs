//! Timer endpoint: a cron schedule evaluated in Europe/Stockholm.
//!
//! Each tick accepts one JSON message for the route: the route's `body` (when it is an
//! object) with `firedAt` (RFC 3339, Stockholm time) merged in, and the header
//! `knut-fired-at`. Daylight-saving changes follow croner's rules: a fixed-time job whose
//! time falls in the spring-forward gap runs at the first instant after the gap; in the
//! fall-back overlap it runs once.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Europe::Stockholm;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Ingress;
use crate::core::envelope::Envelope;
use crate::route::model::TimerFrom;

/// Header holding the tick's time (RFC 3339, Stockholm time).
pub const FIRED_AT: &str = "knut-fired-at";

/// Attempts to accept one tick before it is given up.
const ACCEPT_ATTEMPTS: u32 = 4;

/// Parse a cron expression of 5 fields (minute hour day-of-month month day-of-week) or 6
/// (seconds first). The error says what is wrong with the expression.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 \
             (seconds first), this one has {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("not a valid cron expression: {e}"))
}

/// The first time strictly after `after` at which `cron` fires, evaluated on Stockholm wall
/// clock time. `None` when the schedule never fires again.
pub fn next_fire(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&Stockholm);
    cron.find_next_occurrence(&local, false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The body of a tick: `spec_body` with `firedAt` merged in when it is an object (or absent);
/// any other body as it is.
pub fn tick_body(spec_body: Option<&Value>, fired_at: &str) -> Value {
    match spec_body {
        None => serde_json::json!({ "firedAt": fired_at }),
        Some(Value::Object(map)) => {
            let mut map = map.clone();
            map.insert("firedAt".into(), Value::String(fired_at.to_string()));
            Value::Object(map)
        }
        Some(other) => other.clone(),
    }
}

/// Run the timer of `route` until `shutdown`: sleep until the next fire time, then accept a
/// message. A failed accept is retried a few times with a short backoff (warn), then the tick
/// is given up (error).
pub async fn run(route: String, spec: TimerFrom, ingress: Ingress, shutdown: CancellationToken) {
    let cron = match parse_cron(&spec.cron) {
        Ok(c) => c,
        Err(reason) => {
            tracing::error!(route, %reason, "timer not started: invalid cron expression");
            return;
        }
    };
    let mut after = Utc::now();
    while let Some(at) = wait_for_fire(&route, &cron, after, &shutdown).await {
        after = at;
        fire(&route, &spec, &ingress, at, &shutdown).await;
    }
}

/// Sleep until the first time after `after` at which `cron` fires, and return it; `None`
/// when `shutdown` comes first or the schedule never fires again (a warning for `route`).
pub async fn wait_for_fire(
    route: &str,
    cron: &Cron,
    after: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> Option<DateTime<Utc>> {
    let Some(at) = next_fire(cron, after) else {
        tracing::warn!(route, "the schedule never fires again; the endpoint stops");
        return None;
    };
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::select! {
        _ = shutdown.cancelled() => None,
        _ = tokio::time::sleep(wait) => Some(at),
    }
}

async fn fire(
    route: &str,
    spec: &TimerFrom,
    ingress: &Ingress,
    at: DateTime<Utc>,
    shutdown: &CancellationToken,
) {
    let fired_at = at
        .with_timezone(&Stockholm)
        .to_rfc3339_opts(SecondsFormat::Secs, false);
    let mut envelope = Envelope::json(tick_body(spec.body.as_ref(), &fired_at));
    envelope.headers.insert(FIRED_AT.into(), fired_at.clone());
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ACCEPT_ATTEMPTS {
        match ingress.accept(route, &envelope).await {
            Ok(()) => return,
            Err(error) if attempt < ACCEPT_ATTEMPTS => {
                tracing::warn!(route, fired_at, attempt, %error, "timer tick not accepted, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff *= 2;
            }
            Err(error) => {
                tracing::error!(route, fired_at, attempts = attempt, %error, "timer tick given up: the broker did not accept it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, RouteQueue, Topology, work_queue};
    use chrono::TimeZone;
    use futures::StreamExt;
    use std::sync::Arc;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_five_and_six_fields() {
        assert!(parse_cron("0 6 * * 1-5").is_ok());
        assert!(parse_cron("*/10 * * * * *").is_ok());
        assert!(parse_cron("0 6 * *").unwrap_err().contains("has 4"));
        assert!(parse_cron("0 0 6 * * 1 2026").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn next_fire_is_in_stockholm_time() {
        let cron = parse_cron("0 6 * * *").unwrap();
        // Winter: CET = UTC+1.
        assert_eq!(
            next_fire(&cron, utc("2026-01-15T12:00:00Z")),
            Some(utc("2026-01-16T05:00:00Z"))
        );
        // Summer: CEST = UTC+2.
        assert_eq!(
            next_fire(&cron, utc("2026-07-15T12:00:00Z")),
            Some(utc("2026-07-16T04:00:00Z"))
        );
        // Strictly after.
        assert_eq!(
            next_fire(&cron, utc("2026-01-16T05:00:00Z")),
            Some(utc("2026-01-17T05:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_day() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let daily = parse_cron("30 2 * * *").unwrap();
        let next = next_fire(&daily, utc("2026-03-28T12:00:00Z")).unwrap();
        // Runs at the first instant after the gap (03:00 CEST = 01:00 UTC), once.
        assert_eq!(next, utc("2026-03-29T01:00:00Z"));
        let after = next_fire(&daily, next).unwrap();
        assert_eq!(after, utc("2026-03-30T00:30:00Z"));
        // A 06:00 job is 04:00 UTC after the change.
        let six = parse_cron("0 6 * * *").unwrap();
        assert_eq!(
            next_fire(&six, utc("2026-03-28T12:00:00Z")),
            Some(utc("2026-03-29T04:00:00Z"))
        );
    }

    #[test]
    fn fall_back_day() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let daily = parse_cron("30 2 * * *").unwrap();
        let first = next_fire(&daily, utc("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-10-25T00:30:00Z")); // 02:30 CEST
        // A fixed-time job runs once: the next run is the following day.
        let second = next_fire(&daily, first).unwrap();
        assert_eq!(second, utc("2026-10-26T01:30:00Z"));
        // An hourly job runs in both 02:xx hours.
        let hourly = parse_cron("0 * * * *").unwrap();
        let a = next_fire(&hourly, utc("2026-10-24T23:30:00Z")).unwrap(); // 02:00 CEST
        let b = next_fire(&hourly, a).unwrap(); // 02:00 CET
        assert_eq!(a, utc("2026-10-25T00:00:00Z"));
        assert_eq!(b, utc("2026-10-25T01:00:00Z"));
    }

    #[test]
    fn tick_body_merges_into_objects_only() {
        let at = "2026-01-16T06:00:00+01:00";
        assert_eq!(tick_body(None, at), serde_json::json!({"firedAt": at}));
        assert_eq!(
            tick_body(Some(&serde_json::json!({"check": "moves"})), at),
            serde_json::json!({"check": "moves", "firedAt": at})
        );
        assert_eq!(
            tick_body(Some(&serde_json::json!([1, 2])), at),
            serde_json::json!([1, 2])
        );
    }

    #[tokio::test]
    async fn fire_accepts_a_message_with_header() {
        let broker = EmbeddedBroker::new();
        broker
            .declare(&Topology {
                exchanges: vec![],
                outlets: Vec::new(),
                routes: vec![RouteQueue {
                    route: "tick".into(),
                    bindings: vec![],
                    partitions: None,
                }],
            })
            .await
            .unwrap();
        let ingress = Ingress::new(Arc::new(broker.clone()));
        let spec = TimerFrom {
            cron: "0 6 * * *".into(),
            body: Some(serde_json::json!({"check": "moves"})),
        };
        let at = Utc.with_ymd_and_hms(2026, 1, 16, 5, 0, 0).unwrap();
        fire("tick", &spec, &ingress, at, &CancellationToken::new()).await;
        let mut c = broker.consume(&work_queue("tick"), 1).await.unwrap();
        let d = c.next().await.unwrap();
        assert_eq!(
            d.envelope.header(FIRED_AT),
            Some("2026-01-16T06:00:00+01:00")
        );
        let body = d.envelope.json_body().unwrap().into_owned();
        assert_eq!(body["firedAt"], "2026-01-16T06:00:00+01:00");
        assert_eq!(body["check"], "moves");
    }

    #[tokio::test]
    async fn run_stops_on_shutdown() {
        let ingress = Ingress::new(Arc::new(EmbeddedBroker::new()));
        let shutdown = CancellationToken::new();
        let spec = TimerFrom {
            cron: "0 6 * * *".into(),
            body: None,
        };
        let task = tokio::spawn(run("tick".into(), spec, ingress, shutdown.clone()));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }
}
