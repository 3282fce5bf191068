//! The metrics the runtime records, exported in Prometheus text format on `/metrics`.
//!
//! Call [`install`] once at start (it is safe to call again: it returns the same handle),
//! then the helpers below from the runtime. Labels are only `route`, `step`, `queue`,
//! `outcome` and `adapter`, whose values come from configuration (route ids, step kinds,
//! queue and adapter names) or from [`Outcome`] — never from message data.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Messages accepted into a route (`route`).
pub const MESSAGES_IN: &str = "knut_messages_in_total";
/// Messages a route finished successfully (`route`).
pub const MESSAGES_OUT: &str = "knut_messages_out_total";
/// Message processing attempts that failed (`route`).
pub const MESSAGES_FAILED: &str = "knut_messages_failed_total";
/// Messages scheduled for another attempt after a transient failure (`route`).
pub const MESSAGES_RETRIED: &str = "knut_messages_retried_total";
/// Messages moved to the route's dead-letter queue (`route`).
pub const MESSAGES_DEAD_LETTERED: &str = "knut_messages_dead_lettered_total";
/// Time one step took (`route`, `step`), in seconds.
pub const STEP_DURATION: &str = "knut_step_duration_seconds";
/// Messages waiting in a queue (`queue`).
pub const QUEUE_DEPTH: &str = "knut_queue_depth";
/// Calls to an adapter's system (`adapter`, `outcome`).
pub const ADAPTER_CALLS: &str = "knut_adapter_calls_total";
/// Time an adapter call took (`adapter`), in seconds.
pub const ADAPTER_CALL_DURATION: &str = "knut_adapter_call_duration_seconds";
/// The circuit of an adapter (`adapter`): 0 closed, 1 open, 2 half-open.
pub const CIRCUIT_STATE: &str = "knut_adapter_circuit_state";

/// Polls a `poll` endpoint made (`route`), whatever their result.
pub const POLLS: &str = "knut_poll_runs_total";
/// New items a `poll` endpoint handed to its route (`route`).
pub const POLL_ITEMS: &str = "knut_poll_items_total";
/// Failures of a `poll` endpoint (`route`): a list call, an item's fetch or hand-over.
pub const POLL_FAILURES: &str = "knut_poll_failures_total";
/// Whether this instance holds the poll lease of a route (`route`): 1 it polls, 0 another
/// instance does (or nobody: the store could not be reached).
pub const POLL_LEASE_HELD: &str = "knut_poll_lease_held";
/// Times this instance held a route's poll lease and then did not get it again at its next
/// turn (`route`): another instance took it over, or the store failed.
pub const POLL_LEASE_LOST: &str = "knut_poll_lease_lost_total";

/// Requests a route's HTTP ingress answered (`route`, `status_class`: `2xx` … `5xx`).
pub const HTTP_REQUESTS: &str = "knut_http_requests_total";

/// Journal entries (a message's hops) dropped because the journal's queue was full.
pub const JOURNAL_DROPPED: &str = "knut_journal_dropped_total";
/// Business keys a `set` step did not set (`route`): the value was empty or no key (see
/// `core::keys::value_problem`); the message went on without it.
pub const KEYS_DROPPED: &str = "knut_keys_dropped_total";
/// Refusals of anonymous admin callers over the audit journal's rate, counted instead.
pub const ADMIN_REFUSALS_NOT_JOURNALED: &str = "knut_admin_refusals_not_journaled_total";

/// Every metric name knut exports, as written to `/metrics` (a histogram's series add
/// `_bucket`, `_sum` and `_count`). A test scans `src/` for the metric macros and fails on a
/// name missing here; `tests/deploy.rs` fails on a dashboard or alert naming one not here.
pub const NAMES: &[&str] = &[
    MESSAGES_IN,
    MESSAGES_OUT,
    MESSAGES_FAILED,
    MESSAGES_RETRIED,
    MESSAGES_DEAD_LETTERED,
    STEP_DURATION,
    QUEUE_DEPTH,
    ADAPTER_CALLS,
    ADAPTER_CALL_DURATION,
    CIRCUIT_STATE,
    POLLS,
    POLL_ITEMS,
    POLL_FAILURES,
    POLL_LEASE_HELD,
    POLL_LEASE_LOST,
    HTTP_REQUESTS,
    JOURNAL_DROPPED,
    KEYS_DROPPED,
    ADMIN_REFUSALS_NOT_JOURNALED,
];

/// The histograms among [`NAMES`] (exported as `_bucket`, `_sum` and `_count` series).
pub const HISTOGRAMS: &[&str] = &[STEP_DURATION, ADAPTER_CALL_DURATION];

/// Histogram buckets in seconds: from 1 ms (in-process steps) to 60 s (slow systems).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The result of an adapter call, as a bounded label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed in a way worth retrying (timeout, connection error, 5xx, 429).
    Transient,
    /// The call failed in a way that retrying cannot fix (4xx, invalid response).
    Permanent,
}

impl Outcome {
    /// The label value: `success`, `transient` or `permanent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Transient => "transient",
            Outcome::Permanent => "permanent",
        }
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Builds a Prometheus recorder with Knutpunkt's histogram buckets, not installed anywhere.
/// [`install`] uses it; tests use it with `metrics::with_local_recorder`.
pub fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    let builder = [STEP_DURATION, ADAPTER_CALL_DURATION]
        .into_iter()
        .fold(builder, |b, name| {
            // Only fails for empty buckets, which DURATION_BUCKETS is not; fall back to a
            // fresh builder (summaries) rather than panic.
            b.set_buckets_for_metric(Matcher::Full(name.to_owned()), DURATION_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        });
    builder.build_recorder()
}

/// Installs the global Prometheus recorder and describes Knutpunkt's metrics; returns the
/// handle that renders them. Calling it again returns the same handle. If another global
/// recorder was installed first, a warning is logged and the handle renders nothing.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    spawn_upkeep(handle.clone());
                }
                Err(_) => tracing::warn!(
                    "another metrics recorder is installed already; /metrics will be empty"
                ),
            }
            handle
        })
        .clone()
}

/// How often the recorder folds the histogram samples recorded since into its buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until it folds them into the buckets, which
/// a scrape of `/metrics` does — so without scrapes (a monitoring outage) memory would grow
/// with every message. A thread of its own folds them every [`UPKEEP_EVERY`], scraped or not.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("knut-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "no metrics upkeep thread: histogram samples grow until /metrics is scraped");
    }
}

/// Registers the HELP text and unit of every metric with the current recorder.
pub fn describe() {
    describe_counter!(MESSAGES_IN, Unit::Count, "Messages accepted into a route.");
    describe_counter!(
        MESSAGES_OUT,
        Unit::Count,
        "Messages a route finished successfully."
    );
    describe_counter!(
        MESSAGES_FAILED,
        Unit::Count,
        "Message processing attempts that failed."
    );
    describe_counter!(
        MESSAGES_RETRIED,
        Unit::Count,
        "Messages scheduled for another attempt after a transient failure."
    );
    describe_counter!(
        MESSAGES_DEAD_LETTERED,
        Unit::Count,
        "Messages moved to the route's dead-letter queue."
    );
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Time one step of a route took."
    );
    describe_gauge!(QUEUE_DEPTH, Unit::Count, "Messages waiting in a queue.");
    describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker of an adapter: 0 closed, 1 open (calls fail at once), 2 half-open."
    );
    describe_counter!(
        ADAPTER_CALLS,
        Unit::Count,
        "Calls to an adapter's system, by outcome."
    );
    describe_histogram!(
        ADAPTER_CALL_DURATION,
        Unit::Seconds,
        "Time an adapter call took."
    );
    describe_counter!(POLLS, Unit::Count, "Polls a poll endpoint made.");
    describe_counter!(
        POLL_ITEMS,
        Unit::Count,
        "New items a poll endpoint handed to its route."
    );
    describe_counter!(
        POLL_FAILURES,
        Unit::Count,
        "Failed list calls, fetches and hand-overs of a poll endpoint."
    );
    describe_gauge!(
        POLL_LEASE_HELD,
        "Whether this instance holds the poll lease of a route: 1 it polls, 0 it does not."
    );
    describe_counter!(
        POLL_LEASE_LOST,
        Unit::Count,
        "Times this instance held a route's poll lease and did not get it again at its next turn."
    );
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "Requests a route's HTTP ingress answered, by status class."
    );
    describe_counter!(
        KEYS_DROPPED,
        Unit::Count,
        "Business keys not set because the value was empty or no key; the message went on."
    );
    describe_counter!(
        JOURNAL_DROPPED,
        Unit::Count,
        "Journal entries dropped because the journal's queue was full."
    );
    describe_counter!(
        ADMIN_REFUSALS_NOT_JOURNALED,
        Unit::Count,
        "Refusals of anonymous admin callers over the audit journal's rate, not journaled."
    );
}

/// A message entered `route`.
pub fn message_in(route: &str) {
    counter!(MESSAGES_IN, "route" => label(route)).increment(1);
    super::live::count(route, |c| &c.messages_in);
}

/// `route` finished a message successfully.
pub fn message_out(route: &str) {
    counter!(MESSAGES_OUT, "route" => label(route)).increment(1);
    super::live::count(route, |c| &c.messages_out);
}

/// An attempt to process a message in `route` failed.
pub fn message_failed(route: &str) {
    counter!(MESSAGES_FAILED, "route" => label(route)).increment(1);
    super::live::count(route, |c| &c.failed);
}

/// A message of `route` was scheduled for another attempt.
pub fn message_retried(route: &str) {
    counter!(MESSAGES_RETRIED, "route" => label(route)).increment(1);
    super::live::count(route, |c| &c.retried);
}

/// A message of `route` went to its dead-letter queue.
pub fn message_dead_lettered(route: &str) {
    counter!(MESSAGES_DEAD_LETTERED, "route" => label(route)).increment(1);
    super::live::count(route, |c| &c.dead_lettered);
}

/// Step `step` (its kind, e.g. `transform`) of `route` took `d`.
pub fn step_duration(route: &str, step: &str, d: Duration) {
    histogram!(STEP_DURATION, "route" => label(route), "step" => label(step))
        .record(d.as_secs_f64());
}

/// `queue` holds `n` messages.
pub fn queue_depth(queue: &str, n: u64) {
    gauge!(QUEUE_DEPTH, "queue" => label(queue)).set(n as f64);
    super::live::set_queue_depth(queue, n);
}

/// A call to `adapter` ended with `outcome` after `d`.
pub fn adapter_call(adapter: &str, outcome: Outcome, d: Duration) {
    counter!(ADAPTER_CALLS, "adapter" => label(adapter), "outcome" => outcome.as_str())
        .increment(1);
    histogram!(ADAPTER_CALL_DURATION, "adapter" => label(adapter)).record(d.as_secs_f64());
}

/// The circuit breaker of `adapter` is in `state` (0 closed, 1 open, 2 half-open).
pub fn circuit_state(adapter: &str, state: f64) {
    gauge!(CIRCUIT_STATE, "adapter" => label(adapter)).set(state);
    super::live::set_circuit(adapter, state);
}

/// The poll endpoint of `route` polled once: `items` new items handed on, `failures`
/// failures (the list call, or items not handed on).
pub fn poll(route: &str, items: u64, failures: u64) {
    counter!(POLLS, "route" => label(route)).increment(1);
    counter!(POLL_ITEMS, "route" => label(route)).increment(items);
    counter!(POLL_FAILURES, "route" => label(route)).increment(failures);
}

/// The HTTP ingress of `route` answered a request with `status`: counted by its class
/// (`2xx` … `5xx`), never by path, client or anything the request carried.
pub fn http_request(route: &str, status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!(HTTP_REQUESTS, "route" => label(route), "status_class" => class).increment(1);
}

/// The poll endpoint of `route` took its turn: `held` whether it holds the poll lease now,
/// `before` whether it held it at its previous turn (a lease held then and not now is lost).
pub fn poll_lease(route: &str, before: bool, held: bool) {
    gauge!(POLL_LEASE_HELD, "route" => label(route)).set(if held { 1.0 } else { 0.0 });
    let lost = counter!(POLL_LEASE_LOST, "route" => label(route));
    // Present from the first turn on (at 0), so that `increase()` sees the first loss.
    lost.increment(u64::from(before && !held));
}

/// A `set` step of `route` did not set a business key (its value was empty or no key).
pub fn key_dropped(route: &str) {
    counter!(KEYS_DROPPED, "route" => label(route)).increment(1);
}

/// A label value as the exporter gets it: route ids, step paths, queue and adapter names
/// come from files, but a personnummer-shaped run in one is masked all the same, so no
/// label can ever carry one.
fn label(value: &str) -> String {
    crate::core::redact::mask(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_all() {
        describe();
        message_in("placement-change");
        message_in("placement-change");
        message_out("placement-change");
        message_failed("placement-change");
        message_retried("placement-change");
        message_dead_lettered("placement-change");
        step_duration("placement-change", "transform", Duration::from_millis(3));
        queue_depth("route.placement-change", 7);
        adapter_call(
            "elevregister",
            Outcome::Transient,
            Duration::from_millis(120),
        );
        poll("oep-poll", 3, 1);
        circuit_state("elevregister", 1.0);
        poll("oep-poll", 0, 0);
        poll_lease("oep-poll", false, true);
        poll_lease("oep-poll", true, false);
        http_request("placement-change", 202);
        http_request("placement-change", 503);
        counter!(JOURNAL_DROPPED).increment(1);
        key_dropped("case-open");
        counter!(ADMIN_REFUSALS_NOT_JOURNALED).increment(1);
    }

    #[test]
    fn no_label_value_carries_a_personnummer() {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            queue_depth("knut.route.elev-201304122383", 3);
            step_duration("r", "steps[0] 20130412-2383", Duration::from_millis(1));
        });
        let text = handle.render();
        assert!(!text.contains("2013041"), "{text}");
        assert!(
            text.contains("queue=\"knut.route.elev-********-****\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn rendered_text_has_every_metric_with_help_and_labels() {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, record_all);
        let text = handle.render();
        for &name in NAMES {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} HELP:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} TYPE:\n{text}"
            );
        }
        assert!(
            text.contains("knut_messages_in_total{route=\"placement-change\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE knut_step_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "knut_step_duration_seconds_bucket{route=\"placement-change\",step=\"transform\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("knut_queue_depth{queue=\"route.placement-change\"} 7"),
            "{text}"
        );
        assert!(
            text.contains(
                "knut_adapter_calls_total{adapter=\"elevregister\",outcome=\"transient\"} 1"
            ),
            "{text}"
        );
        for line in [
            "knut_poll_lease_held{route=\"oep-poll\"} 0",
            "knut_poll_lease_lost_total{route=\"oep-poll\"} 1",
            "knut_http_requests_total{route=\"placement-change\",status_class=\"2xx\"} 1",
            "knut_http_requests_total{route=\"placement-change\",status_class=\"5xx\"} 1",
            "knut_poll_runs_total{route=\"oep-poll\"} 2",
            "knut_poll_items_total{route=\"oep-poll\"} 3",
            "knut_poll_failures_total{route=\"oep-poll\"} 1",
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
    }

    #[test]
    fn a_poll_lease_is_lost_only_when_held_before() {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            poll_lease("p", false, false);
            poll_lease("p", false, true);
            poll_lease("p", true, true);
        });
        let text = handle.render();
        assert!(
            text.contains("knut_poll_lease_lost_total{route=\"p\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("knut_poll_lease_held{route=\"p\"} 1"),
            "{text}"
        );
    }

    /// Every metric the sources record is in [`NAMES`], and every name there is recorded:
    /// the first argument of each `counter!`, `gauge!` and `histogram!` in `src/` is a
    /// `"knut_…"` literal or one of this file's constants.
    #[test]
    fn names_lists_every_metric_the_sources_record() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let this = std::fs::read_to_string(src.join("telemetry/metrics.rs")).expect("metrics.rs");
        let consts = regex::Regex::new(r#"pub const ([A-Z_]+): &str = "(knut_[a-z0-9_]+)";"#)
            .expect("regex");
        let constant: std::collections::BTreeMap<String, String> = consts
            .captures_iter(&this)
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect();
        let call =
            regex::Regex::new(r#"\b(?:counter|gauge|histogram)!\(\s*([^,)\s]+)"#).expect("regex");
        let mut recorded = std::collections::BTreeSet::new();
        let mut files = vec![src];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read_dir") {
                    files.push(entry.expect("entry").path());
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for c in call.captures_iter(&text) {
                let arg = c[1].trim_start_matches("metrics::");
                let name = match arg.strip_prefix('"') {
                    Some(lit) => lit.trim_end_matches('"').to_string(),
                    None => constant
                        .get(arg.rsplit("::").next().unwrap_or(arg))
                        .cloned()
                        .unwrap_or_else(|| {
                            panic!("{}: a metric named by `{arg}`, not a literal or a constant of metrics.rs", path.display())
                        }),
                };
                recorded.insert(name);
            }
        }
        for name in &recorded {
            assert!(
                NAMES.contains(&name.as_str()),
                "{name} is recorded but not in NAMES"
            );
        }
        for name in NAMES {
            assert!(
                recorded.contains(*name),
                "{name} is in NAMES but nothing records it"
            );
        }
        for name in HISTOGRAMS {
            assert!(NAMES.contains(name), "{name}");
        }
    }

    #[test]
    fn install_twice_returns_the_same_recorder() {
        let a = install();
        let b = install();
        message_in("install-twice-test");
        for handle in [a, b] {
            assert!(
                handle
                    .render()
                    .contains("knut_messages_in_total{route=\"install-twice-test\"} 1")
            );
        }
    }
}
