//! Fault injection: deterministic random faults from a seed, and scripted failures.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::config::{FailWhen, FaultConfig};

/// How a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Answer UNAVAILABLE.
    Unavailable,
    /// Drop the connection.
    CloseConnection,
    /// GOAWAY on the connection (before acting: and refuse the stream; after acting: and
    /// close the connection after a short drain).
    Goaway,
}

/// What to do to one call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct FaultAction {
    pub latency: Duration,
    pub stall: bool,
    /// Fail before acting.
    pub before: Option<Failure>,
    /// Act, then fail.
    pub after: Option<Failure>,
    pub malformed: bool,
    /// Answer a delivery status ERROR without acting (or UNAVAILABLE, for other calls).
    pub delivery_error: bool,
}

/// SplitMix64: small, fast and deterministic; plenty for drawing faults.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The fault state of a relay (kept under a mutex).
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
    rng: SplitMix64,
    /// Draws for the connection faults, from a second generator so that a seed keeps failing
    /// the same calls with the first three kinds of fault as before they existed.
    conn_rng: SplitMix64,
    /// Per method, runs of scripted failures: (how, how many calls are left).
    scripted: HashMap<String, VecDeque<(FailWhen, u32)>>,
}

/// Mixed into the seed of the connection faults' generator.
const CONN_SEED_MIX: u64 = 0x636f_6e6e_6563_7421;

/// Normalises a method name: `/noxy.agent.AgentService/RouteDecision` → `RouteDecision`.
pub(crate) fn short_method(method: &str) -> &str {
    method.rsplit('/').next().unwrap_or(method)
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Faults {
            rng: SplitMix64(config.seed),
            conn_rng: SplitMix64(config.seed ^ CONN_SEED_MIX),
            config,
            scripted: HashMap::new(),
        }
    }

    /// Replaces the random fault configuration (and reseeds). Scripted failures stay.
    pub fn set(&mut self, config: FaultConfig) {
        self.rng = SplitMix64(config.seed);
        self.conn_rng = SplitMix64(config.seed ^ CONN_SEED_MIX);
        self.config = config;
    }

    /// Scripts the next `count` calls of `method` to fail.
    pub fn fail_next(&mut self, method: &str, count: u32, when: FailWhen) {
        if count > 0 {
            self.scripted
                .entry(short_method(method).to_string())
                .or_default()
                .push_back((when, count));
        }
    }

    /// Takes the next scripted failure of `method`, if any.
    fn next_scripted(&mut self, method: &str) -> Option<FailWhen> {
        let runs = self.scripted.get_mut(method)?;
        let (when, left) = runs.front_mut()?;
        let when = *when;
        *left -= 1;
        if *left == 0 {
            runs.pop_front();
        }
        Some(when)
    }

    /// Decides the fate of one call of `method`.
    pub fn decide(&mut self, method: &str) -> FaultAction {
        let method = short_method(method);
        if let Some(when) = self.next_scripted(method) {
            let (before, after) = match when {
                FailWhen::BeforeActing => (Some(Failure::Unavailable), None),
                FailWhen::AfterActing => (None, Some(Failure::Unavailable)),
                FailWhen::MalformedAnswer => (None, None),
                FailWhen::CloseConnectionBeforeActing => (Some(Failure::CloseConnection), None),
                FailWhen::CloseConnectionAfterActing => (None, Some(Failure::CloseConnection)),
                FailWhen::GoawayBeforeActing => (Some(Failure::Goaway), None),
                FailWhen::GoawayAfterActing => (None, Some(Failure::Goaway)),
                FailWhen::DeliveryError => (None, None),
            };
            return FaultAction {
                before,
                after,
                malformed: when == FailWhen::MalformedAnswer,
                delivery_error: when == FailWhen::DeliveryError,
                ..FaultAction::default()
            };
        }
        let c = &self.config;
        if c.is_off() {
            return FaultAction::default();
        }
        if let Some(methods) = &c.methods {
            if !methods.iter().any(|m| short_method(m) == method) {
                return FaultAction::default();
            }
        }
        // Always draw the same numbers so that the sequence depends on the call count only.
        let (a, b, d) = (
            self.rng.next_f64(),
            self.rng.next_f64(),
            self.rng.next_f64(),
        );
        let (e, f, g, h) = (
            self.conn_rng.next_f64(),
            self.conn_rng.next_f64(),
            self.conn_rng.next_f64(),
            self.conn_rng.next_f64(),
        );
        let stall = a < c.stall_fraction;
        let before = if stall {
            None
        } else if b < c.unavailable_before_fraction {
            Some(Failure::Unavailable)
        } else if e < c.close_before_fraction {
            Some(Failure::CloseConnection)
        } else if f < c.goaway_before_fraction {
            Some(Failure::Goaway)
        } else {
            None
        };
        let after = if stall || before.is_some() {
            None
        } else if d < c.unavailable_after_fraction {
            Some(Failure::Unavailable)
        } else if g < c.close_after_fraction {
            Some(Failure::CloseConnection)
        } else if h < c.goaway_after_fraction {
            Some(Failure::Goaway)
        } else {
            None
        };
        FaultAction {
            latency: c.latency,
            stall,
            before,
            after,
            malformed: false,
            delivery_error: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_failures_come_first_and_run_out() {
        let mut f = Faults::new(FaultConfig::default());
        f.fail_next(
            "/noxy.agent.AgentService/RouteDecision",
            2,
            FailWhen::AfterActing,
        );
        assert!(f.decide("GetQuota") == FaultAction::default());
        assert_eq!(f.decide("RouteDecision").after, Some(Failure::Unavailable));
        assert_eq!(f.decide("RouteDecision").after, Some(Failure::Unavailable));
        assert_eq!(f.decide("RouteDecision"), FaultAction::default());
    }

    #[test]
    fn scripted_runs_keep_their_order_and_a_huge_count_costs_nothing() {
        let mut f = Faults::new(FaultConfig::default());
        f.fail_next("GetQuota", 1, FailWhen::BeforeActing);
        f.fail_next("GetQuota", 0, FailWhen::MalformedAnswer);
        // "Fail from now on": once stored as 4 billion queue entries.
        f.fail_next("GetQuota", u32::MAX, FailWhen::AfterActing);
        assert_eq!(f.decide("GetQuota").before, Some(Failure::Unavailable));
        for _ in 0..1000 {
            assert_eq!(f.decide("GetQuota").after, Some(Failure::Unavailable));
        }
    }

    #[test]
    fn random_faults_are_deterministic() {
        let cfg = FaultConfig {
            seed: 42,
            unavailable_before_fraction: 0.3,
            unavailable_after_fraction: 0.3,
            methods: Some(vec!["RouteDecision".into()]),
            ..FaultConfig::default()
        };
        let run = |cfg: &FaultConfig| {
            let mut f = Faults::new(cfg.clone());
            (0..200)
                .map(|_| f.decide("RouteDecision"))
                .collect::<Vec<_>>()
        };
        let a = run(&cfg);
        assert_eq!(a, run(&cfg));
        let before = a.iter().filter(|x| x.before.is_some()).count();
        let after = a.iter().filter(|x| x.after.is_some()).count();
        assert!((30..90).contains(&before), "{before}");
        assert!((20..80).contains(&after), "{after}");
        let mut f = Faults::new(cfg);
        assert_eq!(f.decide("GetQuota"), FaultAction::default());
    }

    #[test]
    fn connection_faults_are_drawn_and_scripted() {
        let cfg = FaultConfig {
            seed: 9,
            close_before_fraction: 0.25,
            goaway_before_fraction: 0.25,
            close_after_fraction: 0.25,
            goaway_after_fraction: 0.25,
            ..FaultConfig::default()
        };
        let mut f = Faults::new(cfg.clone());
        let draws: Vec<_> = (0..400).map(|_| f.decide("GetQuota")).collect();
        for kind in [Failure::CloseConnection, Failure::Goaway] {
            assert!(draws.iter().any(|d| d.before == Some(kind)), "{kind:?}");
            assert!(draws.iter().any(|d| d.after == Some(kind)), "{kind:?}");
        }
        assert!(draws
            .iter()
            .all(|d| d.before.is_none() || d.after.is_none()));
        assert!(draws
            .iter()
            .any(|d| d.before.is_none() && d.after.is_none()));

        // The connection faults do not change which calls the older faults hit.
        let old = FaultConfig {
            seed: 9,
            unavailable_before_fraction: 0.3,
            ..FaultConfig::default()
        };
        let with_conn = FaultConfig {
            close_after_fraction: 0.5,
            ..old.clone()
        };
        let (mut a, mut b) = (Faults::new(old), Faults::new(with_conn));
        for _ in 0..200 {
            let (x, y) = (a.decide("GetQuota"), b.decide("GetQuota"));
            assert_eq!(x.before, y.before);
        }

        let mut f = Faults::new(FaultConfig::default());
        f.fail_next("GetQuota", 1, FailWhen::GoawayAfterActing);
        f.fail_next("GetQuota", 1, FailWhen::CloseConnectionBeforeActing);
        assert_eq!(f.decide("GetQuota").after, Some(Failure::Goaway));
        assert_eq!(f.decide("GetQuota").before, Some(Failure::CloseConnection));
    }
}
