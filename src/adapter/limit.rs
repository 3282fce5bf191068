//! Limits on how hard knut calls a system: `concurrency` (calls in flight at once) and
//! `rate_limit` (calls per second, spaced evenly). A call waits for its turn, but never
//! longer than the adapter's timeout: then it fails as a transient failure (retried later
//! from the broker), so a backlog never turns into unbounded waiting in memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::error::StepError;

/// The limits of one adapter.
#[derive(Debug, Default)]
pub struct Limits {
    slots: Option<Arc<Semaphore>>,
    rate: Option<Rate>,
}

#[derive(Debug)]
struct Rate {
    interval: Duration,
    next: Mutex<Instant>,
}

/// A call's turn: holds its concurrency slot until dropped.
#[derive(Debug)]
pub struct Turn {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Limits {
    /// `concurrency` calls at once, `per_second` calls a second (either optional).
    pub fn new(concurrency: Option<u32>, per_second: Option<f64>) -> Limits {
        Limits {
            slots: concurrency.map(|n| Arc::new(Semaphore::new(n.max(1) as usize))),
            rate: per_second
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| Rate {
                    interval: Duration::from_secs_f64(1.0 / r),
                    next: Mutex::new(Instant::now()),
                }),
        }
    }

    /// Wait for a turn, at most `within`.
    pub async fn turn(&self, what: &str, within: Duration) -> Result<Turn, StepError> {
        let deadline = Instant::now() + within;
        if let Some(rate) = &self.rate {
            let slot = {
                let mut next = rate.next.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let slot = (*next).max(now);
                if slot > deadline {
                    return Err(StepError::transient(format!(
                        "{what}: rate limit: no free call slot within {within:?}"
                    )));
                }
                *next = slot + rate.interval;
                slot
            };
            tokio::time::sleep_until(slot.into()).await;
        }
        let slot = match &self.slots {
            None => None,
            Some(s) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, s.clone().acquire_owned()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        return Err(StepError::transient(format!(
                            "{what}: concurrency limit: no free slot within {within:?}"
                        )));
                    }
                }
            }
        };
        Ok(Turn { _slot: slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrency_is_bounded_and_waiting_is_bounded() {
        let l = Limits::new(Some(2), None);
        let a = l.turn("x", Duration::from_millis(50)).await.unwrap();
        let _b = l.turn("x", Duration::from_millis(50)).await.unwrap();
        let e = l.turn("x", Duration::from_millis(50)).await.unwrap_err();
        assert!(e.message.contains("concurrency limit"), "{}", e.message);
        drop(a);
        l.turn("x", Duration::from_millis(50)).await.unwrap();
    }

    #[tokio::test]
    async fn calls_are_spaced_by_the_rate() {
        let l = Limits::new(None, Some(20.0));
        let start = Instant::now();
        for _ in 0..5 {
            l.turn("x", Duration::from_secs(2)).await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
        let l = Limits::new(None, Some(1.0));
        l.turn("x", Duration::from_millis(100)).await.unwrap();
        let e = l.turn("x", Duration::from_millis(100)).await.unwrap_err();
        assert!(e.message.contains("rate limit"), "{}", e.message);
    }
}
