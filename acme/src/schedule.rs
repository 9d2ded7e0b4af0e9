//! When to renew, and when to try again after a failure. Time is passed in.

use std::time::{Duration, SystemTime};

/// When a certificate valid from `not_before` to `not_after` should be renewed: with a third
/// of its lifetime left, or earlier when the CA's renewal information (ARI) suggests a window
/// that starts sooner.
pub fn renew_at(
    not_before: SystemTime,
    not_after: SystemTime,
    ari_start: Option<SystemTime>,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let third = not_after.checked_sub(lifetime / 3).unwrap_or(not_before);
    match ari_start {
        Some(start) if start < third => start,
        _ => third,
    }
}

/// How long to wait after the `failures`-th failure in a row: minutes at first, then
/// hours, never more than 12 hours, so a CA outage is survived without hammering it.
pub fn retry_delay(failures: u32) -> Duration {
    const STEPS: [u64; 7] = [
        5 * 60,
        15 * 60,
        45 * 60,
        2 * 3600,
        4 * 3600,
        8 * 3600,
        12 * 3600,
    ];
    Duration::from_secs(STEPS[(failures.max(1) as usize - 1).min(STEPS.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn t(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(days * DAY)
    }

    #[test]
    fn a_third_of_the_lifetime_left() {
        assert_eq!(renew_at(t(0), t(90), None), t(60));
        assert_eq!(renew_at(t(10), t(16), None), t(14));
    }

    #[test]
    fn renewal_information_can_only_bring_it_forward() {
        assert_eq!(renew_at(t(0), t(90), Some(t(30))), t(30));
        assert_eq!(renew_at(t(0), t(90), Some(t(80))), t(60));
    }

    #[test]
    fn retries_widen_and_are_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(300));
        assert_eq!(retry_delay(2), Duration::from_secs(900));
        assert!(retry_delay(4) >= Duration::from_secs(3600));
        assert_eq!(retry_delay(7), Duration::from_secs(12 * 3600));
        assert_eq!(retry_delay(1000), Duration::from_secs(12 * 3600));
        let delays: Vec<_> = (1..10).map(retry_delay).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }
}
