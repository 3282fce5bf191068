//! Circuit breaker per adapter: after `failures` transient failures in a row the circuit
//! opens and calls fail at once (as transient failures, so messages wait in the broker's
//! retry queues instead of hammering a system that is down); after `open_for` one call is
//! let through as a probe (half-open): its success closes the circuit, its failure opens it
//! again. Answers that are the caller's fault (4xx) count as the system being up.
//!
//! The state is the gauge `knut_adapter_circuit_state{adapter}`: 0 closed, 1 open,
//! 2 half-open.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `circuit_breaker: { failures: 5, open_for: 30s }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    /// Transient failures in a row that open the circuit (default 5).
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// How long the circuit stays open before a probe (default 30s).
    #[serde(default = "default_open_for", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub open_for: Duration,
}

fn default_failures() -> u32 {
    5
}

fn default_open_for() -> Duration {
    Duration::from_secs(30)
}

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls pass.
    Closed,
    /// Calls fail at once until the given time.
    Open,
    /// One probe is under way; other calls fail at once.
    HalfOpen,
}

impl State {
    /// The gauge value.
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_until: Option<Instant>,
    /// When the probe under way started (half-open).
    probing: Option<Instant>,
}

/// The circuit breaker of one adapter.
#[derive(Debug)]
pub struct Breaker {
    adapter: String,
    spec: BreakerSpec,
    inner: Mutex<Inner>,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go ahead.
    Pass,
    /// Go ahead as the half-open probe.
    Probe,
    /// Fail at once: the circuit is open for this much longer.
    Reject(Duration),
}

impl Breaker {
    /// A closed circuit for `adapter`.
    pub fn new(adapter: &str, spec: BreakerSpec) -> Breaker {
        let b = Breaker {
            adapter: adapter.to_string(),
            spec,
            inner: Mutex::new(Inner {
                failures: 0,
                open_until: None,
                probing: None,
            }),
        };
        b.publish(State::Closed);
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: State) {
        crate::telemetry::metrics::circuit_state(&self.adapter, state.gauge());
    }

    /// The current state.
    pub fn state(&self) -> State {
        let i = self.lock();
        match i.open_until {
            None => State::Closed,
            Some(_) if i.probing.is_some() => State::HalfOpen,
            Some(_) => State::Open,
        }
    }

    /// May a call go ahead now?
    pub fn admit(&self) -> Admit {
        let mut i = self.lock();
        let Some(until) = i.open_until else {
            return Admit::Pass;
        };
        let now = Instant::now();
        // A probe that never reported (its call was abandoned, say at shutdown) is given
        // up after `open_for`, so the circuit cannot stay half-open for good.
        if let Some(since) = i.probing
            && now.duration_since(since) < self.spec.open_for
        {
            return Admit::Reject(self.spec.open_for.min(Duration::from_secs(1)));
        }
        if i.probing.is_none() && now < until {
            return Admit::Reject(until - now);
        }
        i.probing = Some(now);
        drop(i);
        self.publish(State::HalfOpen);
        Admit::Probe
    }

    /// The system answered (success, or a refusal that is the caller's fault).
    pub fn success(&self) {
        let mut i = self.lock();
        let was_open = i.open_until.is_some();
        *i = Inner {
            failures: 0,
            open_until: None,
            probing: None,
        };
        drop(i);
        if was_open {
            tracing::info!(adapter = %self.adapter, "circuit closed: the system answers again");
            self.publish(State::Closed);
        }
    }

    /// The call failed transiently (timeout, connection, 5xx, 429).
    pub fn failure(&self) {
        let mut i = self.lock();
        i.failures = i.failures.saturating_add(1);
        if i.probing.is_some() || i.failures >= self.spec.failures.max(1) {
            let first = i.open_until.is_none();
            i.open_until = Some(Instant::now() + self.spec.open_for);
            i.probing = None;
            drop(i);
            if first {
                tracing::warn!(adapter = %self.adapter, open_for = ?self.spec.open_for, "circuit opened: calls fail at once until the probe");
            }
            self.publish(State::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let b = Breaker::new(
            "x",
            BreakerSpec {
                failures: 3,
                open_for: Duration::from_millis(50),
            },
        );
        assert_eq!(b.admit(), Admit::Pass);
        b.failure();
        b.failure();
        b.success();
        b.failure();
        b.failure();
        assert_eq!(b.state(), State::Closed, "a success resets the count");
        b.failure();
        assert_eq!(b.state(), State::Open);
        assert!(matches!(b.admit(), Admit::Reject(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admit::Probe);
        assert!(matches!(b.admit(), Admit::Reject(_)), "one probe at a time");
        assert_eq!(b.state(), State::HalfOpen);
        b.failure();
        assert_eq!(b.state(), State::Open, "a failed probe opens again");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admit::Probe);
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(), Admit::Pass);
    }

    #[test]
    fn an_abandoned_probe_does_not_hold_the_circuit_half_open() {
        let b = Breaker::new(
            "x",
            BreakerSpec {
                failures: 1,
                open_for: Duration::from_millis(40),
            },
        );
        b.failure();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.admit(), Admit::Probe);
        // The probe's call never reports back.
        assert!(matches!(b.admit(), Admit::Reject(_)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.admit(), Admit::Probe, "a new probe after open_for");
        b.success();
        assert_eq!(b.state(), State::Closed);
    }
}
