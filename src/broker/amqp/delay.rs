//! The retry ladder: broker-held delays for `retry_later`.
//!
//! A queue only expires the message at its head, so one shared queue with per-message TTLs
//! would hold a 100 ms retry behind a 10 min one. Instead every route has a ladder of delay
//! queues `knut.retry.<route>.<rung>`, each with a fixed `x-message-ttl`, whose expired
//! messages dead-letter (`x-dead-letter-exchange: ""`,
//! `x-dead-letter-routing-key: knut.route.<route>`) back into the route's work queue.
//!
//! **Rounding**: a delay is rounded *up* to the next rung, so a retry never comes earlier
//! than asked (800 ms waits 1 s; 3 s waits 5 s). Delays longer than the top rung (1 h) wait
//! one hour. A zero delay needs no delay queue.

use std::time::Duration;

/// The rungs of the ladder, in milliseconds.
pub const RUNGS_MS: [u64; 14] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    1_800_000, 3_600_000,
];

/// The rung (TTL in milliseconds) a delay waits on: the smallest rung not shorter than the
/// delay, or the top rung for longer delays.
pub fn rung_for(delay: Duration) -> u64 {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    RUNGS_MS
        .iter()
        .copied()
        .find(|&r| r >= ms)
        .unwrap_or(RUNGS_MS[RUNGS_MS.len() - 1])
}

/// The delay queue of a route for one rung.
pub fn delay_queue(route: &str, rung_ms: u64) -> String {
    format!("knut.retry.{route}.{}", label(rung_ms))
}

/// `100ms`, `1s`, `2m`, `1h`: a rung as a short, readable suffix.
fn label(ms: u64) -> String {
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_the_next_rung() {
        assert_eq!(rung_for(Duration::from_millis(1)), 100);
        assert_eq!(rung_for(Duration::from_millis(100)), 100);
        assert_eq!(rung_for(Duration::from_millis(101)), 250);
        assert_eq!(rung_for(Duration::from_millis(800)), 1_000);
        assert_eq!(rung_for(Duration::from_secs(3)), 5_000);
        assert_eq!(rung_for(Duration::from_secs(600)), 600_000);
    }

    #[test]
    fn long_delays_wait_the_top_rung() {
        assert_eq!(rung_for(Duration::from_secs(7_200)), 3_600_000);
        assert_eq!(rung_for(Duration::MAX), 3_600_000);
    }

    #[test]
    fn rungs_ascend() {
        assert!(RUNGS_MS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn queue_names_are_readable() {
        assert_eq!(delay_queue("r", 250), "knut.retry.r.250ms");
        assert_eq!(delay_queue("r", 1_000), "knut.retry.r.1s");
        assert_eq!(delay_queue("r", 30_000), "knut.retry.r.30s");
        assert_eq!(delay_queue("r", 120_000), "knut.retry.r.2m");
        assert_eq!(delay_queue("r", 3_600_000), "knut.retry.r.1h");
    }
}
