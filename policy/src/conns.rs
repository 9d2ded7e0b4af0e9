//! Connections, as the module sees them when nginx accepts them.
//!
//! - [`PerClient`]: how many connections each client holds in this worker, so that one
//!   address (or IPv6 /64) cannot take every connection nginx has: idle sockets and slowly
//!   sent headers would otherwise starve everyone else, nginx-rtmp's callbacks included.
//!   Counted per worker, with nothing shared: a worker that dies takes its counts with it.
//! - [`OwnerSlot`]: which worker process holds each RTMP connection, shared by all workers,
//!   so a publish held by a worker that was killed does not block its name.

use std::collections::HashMap;

use crate::client::ClientKey;
use crate::table::Slot;

/// Open connections per client in one worker.
#[derive(Debug, Default)]
pub struct PerClient {
    counts: HashMap<ClientKey, u32>,
}

impl PerClient {
    /// Counts a new connection; `false` (and nothing counted) when the client already
    /// holds `limit`.
    pub fn open(&mut self, key: ClientKey, limit: u32) -> bool {
        let n = self.counts.entry(key).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// Forgets one connection counted by `open`.
    pub fn close(&mut self, key: ClientKey) {
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }

    /// Connections `key` holds now.
    pub fn held(&self, key: ClientKey) -> u32 {
        self.counts.get(&key).copied().unwrap_or(0)
    }
}

/// The worker holding an RTMP connection, under nginx's connection number (which
/// nginx-rtmp reports as `clientid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Owner {
    pub pid: i32,
}

pub type OwnerSlot = Slot<u64, Owner>;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn a_client_gets_at_most_the_limit() {
        let mut c = PerClient::default();
        let a = key("192.0.2.1");
        for _ in 0..3 {
            assert!(c.open(a, 3));
        }
        assert!(!c.open(a, 3));
        // A refusal costs nothing: closing one makes room for exactly one.
        c.close(a);
        assert!(c.open(a, 3));
        assert!(!c.open(a, 3));
        // Others are not affected.
        assert!(c.open(key("192.0.2.2"), 3));
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let mut c = PerClient::default();
        assert!(c.open(key("2001:db8:1:2::1"), 2));
        assert!(c.open(key("2001:db8:1:2::2"), 2));
        assert!(!c.open(key("2001:db8:1:2:abcd::9"), 2));
        assert!(c.open(key("2001:db8:1:3::1"), 2));
    }

    #[test]
    fn closing_everything_forgets_the_client() {
        let mut c = PerClient::default();
        let a = key("192.0.2.1");
        c.open(a, 5);
        c.open(a, 5);
        c.close(a);
        c.close(a);
        assert_eq!(c.held(a), 0);
        assert!(c.counts.is_empty());
        // A close without an open (never happens) does not underflow.
        c.close(a);
        assert_eq!(c.held(a), 0);
    }
}
