//! Exponential back-off with jitter, for reconnecting to a mail server.
//!
//! Pure: the jitter comes from a seeded generator, so tests can pin every delay. Doubling from
//! one second to a five-minute cap means a restarted server is found again within seconds, and
//! a long outage costs one attempt every few minutes per folder, not a storm; jitter keeps many
//! folders from reconnecting in lockstep.

use std::time::Duration;

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
    state: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff::with(Duration::from_secs(1), Duration::from_secs(300), seed)
    }

    pub(crate) fn with(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            attempt: 0,
            base,
            cap,
            // xorshift must not start at zero.
            state: seed | 1,
        }
    }

    /// The delay before the next attempt: `base · 2^attempt`, capped, then scaled by a random
    /// factor in [0.75, 1.25).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        let d = exp.min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = 0.75 + (self.random() % 1000) as f64 / 2000.0;
        d.mul_f64(jitter)
    }

    /// A success: the next failure starts again from `base`.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    fn random(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(42);
        let delays: Vec<f64> = (0..12).map(|_| b.next_delay().as_secs_f64()).collect();
        for (i, d) in delays.iter().enumerate().take(8) {
            let nominal = (1u64 << i).min(300) as f64;
            assert!(
                *d >= nominal * 0.75 && *d < nominal * 1.25,
                "attempt {i}: {d}"
            );
        }
        assert!(delays[11] <= 300.0 * 1.25 && delays[11] >= 300.0 * 0.75);
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(1250));
    }

    #[test]
    fn different_seeds_spread_the_retries() {
        let a = Backoff::new(1).next_delay();
        let b = Backoff::new(2).next_delay();
        assert_ne!(a, b);
    }
}
