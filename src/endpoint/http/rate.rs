//! How often a client may call a route: a token bucket per client and route (GCRA, through
//! `governor`); over it the ingress answers 429 with `Retry-After`.

use std::time::Duration;

use crate::config::RateLimitConfig;

/// Requests per client of one route: a token bucket per client (GCRA), the idle ones
/// forgotten now and then so the table stays small.
pub(super) struct RateLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    checks: std::sync::atomic::AtomicU64,
}

impl RateLimiter {
    pub(super) fn new(limit: RateLimitConfig) -> RateLimiter {
        let burst = std::num::NonZeroU32::new(limit.burst).unwrap_or(std::num::NonZeroU32::MIN);
        // At least a nanosecond between requests (a billion a second: no limit at all).
        let period =
            Duration::from_secs_f64(1.0 / limit.per_second.max(1e-6)).max(Duration::from_nanos(1));
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        RateLimiter {
            limiter: governor::RateLimiter::keyed(quota),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Ok` when `client` may send now; else the whole seconds to wait (at least 1).
    pub(super) fn check(&self, client: &str) -> Result<(), u64> {
        use governor::clock::Clock as _;
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 1024 == 1023 {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&client.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }
}
