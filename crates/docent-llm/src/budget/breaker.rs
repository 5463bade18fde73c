//! A circuit breaker per provider: after `failures` consecutive failures (timeouts, connection
//! errors, 5xx) the circuit *opens* and calls fail fast with `model_unavailable` for
//! `cool_down`; then it is *half-open*: one call goes through as a probe while others still
//! fail fast. The probe's success closes the circuit, its failure opens it again. Any answer
//! from the provider that proves it is up (success, 429, a refused request) counts as success.
//!
//! State is per process (a provider that is down is down for every process; each finds out
//! on its own within `failures` calls).

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker of one provider.
#[derive(Debug)]
pub struct CircuitBreaker {
    failures_to_open: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

/// Leave to make one call; report how it went. Dropped unreported (a cancelled call), a
/// probe lets the next caller probe instead.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

/// What a call says about the provider's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (even with 429 or a refusal).
    Up,
    /// It failed (timeout, connection, 5xx).
    Down,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(failures_to_open: u32, cool_down: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            cool_down,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the circuit is open (calls fail fast) right now.
    pub fn is_open(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => false,
            State::Open { until } => Instant::now() < until,
            State::HalfOpen { probing } => probing,
        }
    }

    /// A permit to call, or how long until one may be had.
    pub fn allow(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.lock();
        let now = Instant::now();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return Err(until - now),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
            // Another call is probing; ask again shortly.
            State::HalfOpen { probing: true } => {
                return Err(self.cool_down.min(Duration::from_secs(1)));
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }
}

impl Permit<'_> {
    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports the call's outcome; returns true if this opened the circuit.
    pub fn report(mut self, health: Health) -> bool {
        self.reported = true;
        let b = self.breaker;
        let mut state = b.lock();
        match (health, *state) {
            (Health::Up, _) => {
                *state = State::Closed { failures: 0 };
                false
            }
            (Health::Down, State::Closed { failures }) => {
                let failures = failures + 1;
                if failures >= b.failures_to_open {
                    *state = State::Open {
                        until: Instant::now() + b.cool_down,
                    };
                    true
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            (Health::Down, State::HalfOpen { .. }) => {
                *state = State::Open {
                    until: Instant::now() + b.cool_down,
                };
                true
            }
            // Already open (a call that started before it opened): leave the cool-down as is.
            (Health::Down, State::Open { .. }) => false,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = self.breaker.lock();
            if let State::HalfOpen { probing: true } = *state {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_cool_down() {
        let b = CircuitBreaker::new(2, Duration::from_millis(30));
        assert!(!b.allow().unwrap().report(Health::Down));
        assert!(
            !b.allow().unwrap().report(Health::Up),
            "success resets the count"
        );
        assert!(!b.allow().unwrap().report(Health::Down));
        assert!(
            b.allow().unwrap().report(Health::Down),
            "second in a row opens"
        );
        assert!(b.is_open());
        assert!(b.allow().is_err(), "fails fast while open");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.allow().unwrap();
        assert!(probe.is_probe());
        assert!(b.allow().is_err(), "one probe at a time");
        assert!(probe.report(Health::Down), "a failed probe opens again");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.allow().unwrap();
        drop(probe);
        let probe = b.allow().unwrap();
        assert!(probe.is_probe(), "an abandoned probe frees the slot");
        probe.report(Health::Up);
        assert!(!b.is_open());
        assert!(!b.allow().unwrap().is_probe());
    }
}
