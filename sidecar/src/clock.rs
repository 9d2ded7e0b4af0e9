//! Times as the sidecar writes them (RFC 3339, UTC, whole seconds, as `formats` defines) and
//! random bytes from the system: one helper each, for every file and answer that needs them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// `2026-12-02T06:50:00Z`: the format every shared file and answer uses.
pub use streamedge_formats::time::rfc3339;

/// [`rfc3339`] of seconds since the epoch.
pub fn rfc3339_secs(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

/// [`rfc3339`] of now.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `N` bytes from the system's random source (secrets, tokens, ids).
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).context("cannot get random bytes from the system")?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format() {
        assert_eq!(rfc3339_secs(1_763_755_200), "2025-11-21T20:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert!(now_rfc3339().ends_with('Z'));
        assert_ne!(random_bytes::<16>().unwrap(), [0u8; 16]);
    }
}
