//! Times in every shared format: RFC 3339, UTC, whole seconds (`2026-12-02T06:50:00Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Seconds since the epoch as RFC 3339; times before the epoch are the epoch.
pub fn rfc3339_secs(secs: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format() {
        assert_eq!(rfc3339_secs(1_763_755_200), "2025-11-21T20:00:00Z");
        assert_eq!(rfc3339_secs(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
