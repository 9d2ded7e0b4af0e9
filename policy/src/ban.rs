//! Bans after repeated failures: "N failures within WINDOW ban the key for TIME".
//!
//! Failures are metered with GCRA (the arithmetic of a leaky bucket, one timestamp per key):
//! each failure costs WINDOW/N, and the key is banned when the failures it has piled up reach
//! a whole WINDOW, which is the N-th failure in a burst. Time is passed in (milliseconds on a
//! monotonic clock that all workers share), so this is plain arithmetic with plain tests.

/// How many failures, how fast, and for how long a ban lasts. Times are in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    pub attempts: u32,
    pub window: u64,
    pub ban: u64,
}

impl BanPolicy {
    fn cost(&self) -> u64 {
        (self.window / u64::from(self.attempts.max(1))).max(1)
    }
}

/// What one key has done lately. All zero means nothing to remember.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BanState {
    /// GCRA's "theoretical arrival time" of the next failure.
    tat: u64,
    /// The key is banned until this time (0: not banned).
    until: u64,
}

/// Outcome of recording a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Counted,
    /// This failure started a ban of the given length (milliseconds).
    BanStarted(u64),
}

impl BanState {
    /// Milliseconds of ban left at `now`, if any.
    pub fn banned_for(&self, now: u64) -> Option<u64> {
        (self.until > now).then(|| self.until - now)
    }

    /// Counts one failure at `now`.
    pub fn fail(&mut self, policy: &BanPolicy, now: u64) -> Failure {
        // Saturating: times near u64::MAX stay banned rather than wrap to "free".
        self.tat = self.tat.max(now).saturating_add(policy.cost());
        // Debt beyond N-1 failures' worth: this is the N-th failure within the window. In
        // whole costs, not `window - cost`, which WINDOW/N rounded down would put further off.
        let tolerance = u64::from(policy.attempts.max(1) - 1) * policy.cost();
        if self.tat - now > tolerance {
            self.tat = now;
            self.until = now.saturating_add(policy.ban);
            return Failure::BanStarted(policy.ban);
        }
        Failure::Counted
    }

    /// True when the state no longer affects anything, so its slot may be reused.
    pub fn is_idle(&self, now: u64) -> bool {
        self.tat <= now && self.until <= now
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    /// streamedge's default for publishers: 5 failures within 10 minutes ban for 15.
    pub const P: BanPolicy = BanPolicy {
        attempts: 5,
        window: 10 * MIN,
        ban: 15 * MIN,
    };

    #[test]
    fn fifth_quick_failure_bans_for_fifteen_minutes() {
        let mut s = BanState::default();
        let t = 1_000_000;
        for i in 0..4 {
            assert_eq!(s.fail(&P, t + i), Failure::Counted, "failure {}", i + 1);
            assert_eq!(s.banned_for(t + i), None);
        }
        assert_eq!(s.fail(&P, t + 4), Failure::BanStarted(15 * MIN));
        assert_eq!(s.banned_for(t + 4), Some(15 * MIN));
        assert_eq!(s.banned_for(t + 4 + 15 * MIN - 1), Some(1));
        assert_eq!(s.banned_for(t + 4 + 15 * MIN), None);
        assert!(s.is_idle(t + 4 + 15 * MIN));
    }

    #[test]
    fn failures_spread_out_are_forgiven() {
        let mut s = BanState::default();
        let mut t = 5_000_000;
        // One failure every three minutes is slower than 5 per 10 minutes: never banned.
        for _ in 0..50 {
            assert_eq!(s.fail(&P, t), Failure::Counted);
            t += 3 * MIN;
        }
        // Four quick failures, a long pause, four more: the pause drains the first four.
        let mut s = BanState::default();
        for i in 0..4 {
            assert_eq!(s.fail(&P, t + i), Failure::Counted);
        }
        t += 10 * MIN;
        for i in 0..4 {
            assert_eq!(s.fail(&P, t + i), Failure::Counted);
        }
        assert_eq!(s.fail(&P, t + 5), Failure::BanStarted(15 * MIN));
    }

    #[test]
    fn the_nth_quick_failure_bans_when_the_window_does_not_divide() {
        // Found by props: 31 failures within 96 ms cost 3 ms each and banned only at the 32nd.
        let p = BanPolicy {
            attempts: 31,
            window: 96,
            ban: 1000,
        };
        let mut s = BanState::default();
        for _ in 0..30 {
            assert_eq!(s.fail(&p, 7), Failure::Counted);
        }
        assert_eq!(s.fail(&p, 7), Failure::BanStarted(1000));
    }

    #[test]
    fn one_attempt_policy_bans_at_once() {
        let p = BanPolicy {
            attempts: 1,
            window: 1000,
            ban: 5000,
        };
        let mut s = BanState::default();
        assert_eq!(s.fail(&p, 10), Failure::BanStarted(5000));
        assert!(!s.is_idle(10));
    }
}
