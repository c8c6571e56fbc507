//! Capped exponential backoff with optional jitter, shared by RPC retries and outcome polling.

use std::time::Duration;

/// A sequence of pauses: `initial`, then multiplied by `multiplier` each step, never above `max`;
/// each pause is then jittered down by up to `jitter` of itself.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    multiplier: f64,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// `multiplier` must be ≥ 1 and `jitter` in `[0, 1]`; callers validate their options.
    pub(crate) fn new(initial: Duration, multiplier: f64, max: Duration, jitter: f64) -> Backoff {
        Backoff {
            next: initial.min(max),
            multiplier,
            max,
            jitter,
        }
    }

    /// The next pause. `unit_random` returns a uniform value in `[0, 1)`; it is only called
    /// when jitter is on.
    pub(crate) fn next_pause_with(&mut self, unit_random: impl FnOnce() -> f64) -> Duration {
        let base = self.next;
        let grown = base.as_secs_f64() * self.multiplier;
        self.next = if grown >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(grown)
        };
        if self.jitter > 0.0 {
            // "Equal jitter": keep at least (1 − jitter) of the pause so polling never collapses
            // into a busy loop, randomise the rest so clients do not move in step.
            let keep = 1.0 - self.jitter * unit_random();
            base.mul_f64(keep)
        } else {
            base
        }
    }

    /// The next pause, jittered with the thread's fast random generator.
    pub(crate) fn next_pause(&mut self) -> Duration {
        self.next_pause_with(fastrand::f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn wait_schedule_without_jitter_matches_the_documented_defaults() {
        let mut backoff = Backoff::new(
            Duration::from_millis(400),
            1.6,
            Duration::from_secs(30),
            0.0,
        );
        let pauses: Vec<Duration> = (0..12)
            .map(|_| backoff.next_pause_with(|| unreachable!("no jitter")))
            .collect();
        let rounded: Vec<u64> = pauses.iter().map(|d| d.as_millis() as u64).collect();
        assert_eq!(
            rounded,
            vec![400, 640, 1024, 1638, 2621, 4194, 6710, 10737, 17179, 27487, 30000, 30000]
        );
    }

    #[test]
    fn retry_schedule_doubles_and_caps() {
        let mut backoff = Backoff::new(
            Duration::from_millis(100),
            2.0,
            Duration::from_millis(350),
            0.0,
        );
        let pauses: Vec<Duration> = (0..4).map(|_| backoff.next_pause_with(|| 0.0)).collect();
        assert_eq!(pauses, ms(&[100, 200, 350, 350]));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let mut backoff = Backoff::new(
            Duration::from_millis(1000),
            1.0,
            Duration::from_secs(1),
            0.5,
        );
        assert_eq!(backoff.next_pause_with(|| 0.0), Duration::from_millis(1000));
        assert_eq!(backoff.next_pause_with(|| 0.5), Duration::from_millis(750));
        let lowest = backoff.next_pause_with(|| 0.999_999);
        assert!(lowest >= Duration::from_millis(500) && lowest < Duration::from_millis(501));
        for _ in 0..1000 {
            let pause = backoff.next_pause();
            assert!(pause >= Duration::from_millis(500) && pause <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn initial_above_max_is_capped() {
        let mut backoff = Backoff::new(Duration::from_secs(5), 2.0, Duration::from_secs(1), 0.0);
        assert_eq!(backoff.next_pause_with(|| 0.0), Duration::from_secs(1));
    }
}
