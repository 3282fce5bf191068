//! The same numbers as the metrics, readable in the process: per route the messages in,
//! out, failed, retried and dead-lettered, per queue its depth, per adapter its circuit. The
//! web console shows them (`/console`); the Prometheus recorder cannot be read back, so
//! every helper of [`super::metrics`] counts here too, in a few atomics.
//!
//! Like the metrics' labels, the keys are names from configuration (route ids, queue and
//! adapter names) — never message data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;

/// One route's counts since the process started.
#[derive(Debug, Default)]
pub struct RouteCounts {
    /// Messages accepted into the route.
    pub messages_in: AtomicU64,
    /// Messages it finished.
    pub messages_out: AtomicU64,
    /// Attempts that failed.
    pub failed: AtomicU64,
    /// Messages scheduled for another attempt.
    pub retried: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
}

/// A route's counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouteSnapshot {
    /// Messages accepted into the route.
    pub messages_in: u64,
    /// Messages it finished.
    pub messages_out: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Messages scheduled for another attempt.
    pub retried: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
}

impl RouteCounts {
    fn snapshot(&self) -> RouteSnapshot {
        RouteSnapshot {
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Live {
    routes: RwLock<BTreeMap<String, Arc<RouteCounts>>>,
    queues: RwLock<BTreeMap<String, u64>>,
    circuits: RwLock<BTreeMap<String, u8>>,
}

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(Live::default)
}

/// The counters of `route` (made on first use).
pub fn route(route: &str) -> Arc<RouteCounts> {
    let l = live();
    if let Some(c) = l
        .routes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(route)
    {
        return c.clone();
    }
    l.routes
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(route.to_string())
        .or_default()
        .clone()
}

/// Add one to `route`'s counter chosen by `which`.
pub fn count(route_id: &str, which: fn(&RouteCounts) -> &AtomicU64) {
    which(&route(route_id)).fetch_add(1, Ordering::Relaxed);
}

/// `route`'s counts now (zeros for a route that has counted nothing yet).
pub fn route_snapshot(route_id: &str) -> RouteSnapshot {
    live()
        .routes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(route_id)
        .map(|c| c.snapshot())
        .unwrap_or_default()
}

/// `queue` holds `n` messages (as last measured).
pub fn set_queue_depth(queue: &str, n: u64) {
    live()
        .queues
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(queue.to_string(), n);
}

/// The depth of `queue` as last measured, if it ever was.
pub fn queue_depth(queue: &str) -> Option<u64> {
    live()
        .queues
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(queue)
        .copied()
}

/// The circuit of `adapter` is in `state` (0 closed, 1 open, 2 half-open).
pub fn set_circuit(adapter: &str, state: f64) {
    let state = match state {
        s if s >= 1.5 => 2,
        s if s >= 0.5 => 1,
        _ => 0,
    };
    live()
        .circuits
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(adapter.to_string(), state);
}

/// The circuit of `adapter`: `closed`, `open` or `half-open`; `None` when it has none yet
/// (no call made).
pub fn circuit(adapter: &str) -> Option<&'static str> {
    live()
        .circuits
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(adapter)
        .map(|s| match s {
            1 => "open",
            2 => "half-open",
            _ => "closed",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_depths_and_circuits_read_back() {
        count("live-test", |c| &c.messages_in);
        count("live-test", |c| &c.messages_in);
        count("live-test", |c| &c.dead_lettered);
        let s = route_snapshot("live-test");
        assert_eq!((s.messages_in, s.dead_lettered, s.messages_out), (2, 1, 0));
        assert_eq!(route_snapshot("live-test-none"), RouteSnapshot::default());
        set_queue_depth("knut.route.live-test", 4);
        assert_eq!(queue_depth("knut.route.live-test"), Some(4));
        assert_eq!(queue_depth("knut.route.live-none"), None);
        set_circuit("live-adapter", 1.0);
        assert_eq!(circuit("live-adapter"), Some("open"));
        set_circuit("live-adapter", 2.0);
        assert_eq!(circuit("live-adapter"), Some("half-open"));
        set_circuit("live-adapter", 0.0);
        assert_eq!(circuit("live-adapter"), Some("closed"));
        assert_eq!(circuit("live-none"), None);
    }
}
