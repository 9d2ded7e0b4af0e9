//! Rate limits with bans, per key: GCRA (a leaky bucket kept as one timestamp, the same
//! arithmetic as nginx's `limit_req ... nodelay`), and a ban after repeated refusals.
//!
//! At a steady rate one request passes every `interval`; `burst` more may pass at once. A
//! refusal (by the rate, or by whoever uses the zone, such as a wrong stream key) counts
//! towards a ban: `ban_after` refusals within `ban_window` refuse the key for `ban_time`.
//! Time is passed in: milliseconds on a monotonic clock all workers share.

use std::net::IpAddr;

use crate::ban::{BanPolicy, BanState, Failure};

/// Parses `Nr/s` or `Nr/m` into the interval between requests, in microseconds.
pub fn parse_rate(s: &str) -> Option<u64> {
    let (n, per) = s.split_once("r/")?;
    // Digits only: `u64::from_str` alone also takes "+10".
    if !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = n.parse().ok().filter(|&n| n > 0 && n <= 1_000_000)?;
    let window_us = match per {
        "s" => 1_000_000,
        "m" => 60_000_000,
        _ => return None,
    };
    Some((window_us / n).max(1))
}

/// One zone's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Microseconds between requests at the steady rate.
    pub interval_us: u64,
    /// Requests allowed at once beyond the steady rate.
    pub burst: u32,
    pub ban: Option<BanPolicy>,
}

/// What a zone says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Over the rate. `retry_after` is whole seconds until one would pass; `ban_started` is
    /// the length of a ban this refusal started, in seconds.
    Limited {
        retry_after: u64,
        ban_started: Option<u64>,
    },
    /// The key is banned for `retry_after` more seconds.
    Banned {
        retry_after: u64,
    },
}

impl Outcome {
    pub fn refused(&self) -> bool {
        !matches!(self, Outcome::Passed)
    }

    /// Seconds a client should wait, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match *self {
            Outcome::Passed => None,
            Outcome::Limited { retry_after, .. } | Outcome::Banned { retry_after } => {
                Some(retry_after)
            }
        }
    }

    /// For `$streamedge_limit_result`: how bad, so several zones report the worst.
    pub fn severity(&self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Limited { .. } => 1,
            Outcome::Banned { .. } => 2,
        }
    }
}

fn ceil_secs_us(us: u64) -> u64 {
    us.div_ceil(1_000_000).max(1)
}

fn ceil_secs_ms(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// What a zone keeps per key: 24 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct LimitState {
    /// GCRA's theoretical arrival time of the next request, in microseconds.
    tat_us: u64,
    ban: BanState,
}

impl LimitState {
    /// Decides one request at `now` (ms) and records it.
    pub fn check(&mut self, p: &LimitPolicy, now: u64) -> Outcome {
        if let Some(ms) = self.ban.banned_for(now) {
            return Outcome::Banned {
                retry_after: ceil_secs_ms(ms),
            };
        }
        // Saturating, like the ban: no wrap for any clock value.
        let now_us = now.saturating_mul(1000);
        let tat = self.tat_us.max(now_us);
        let tolerance = u64::from(p.burst) * p.interval_us;
        if tat - now_us <= tolerance {
            self.tat_us = tat.saturating_add(p.interval_us);
            return Outcome::Passed;
        }
        // The earliest time this key passes again: when its backlog is back within the burst.
        let wait_us = tat - now_us - tolerance;
        match self.refuse(p, now) {
            Some(ban) => Outcome::Limited {
                retry_after: ban,
                ban_started: Some(ban),
            },
            None => Outcome::Limited {
                retry_after: ceil_secs_us(wait_us),
                ban_started: None,
            },
        }
    }

    /// Decides one request without recording a pass: only a refusal (which counts towards a
    /// ban) is recorded. With several zones, passes are recorded with [`LimitState::check`]
    /// once every zone agreed, so a request refused by one zone costs nothing in the others.
    pub fn check_refusal(&mut self, p: &LimitPolicy, now: u64) -> Outcome {
        let mut next = *self;
        let outcome = next.check(p, now);
        if outcome.refused() {
            *self = next;
        }
        outcome
    }

    /// Counts a refusal made elsewhere (a wrong key) towards a ban; returns the length in
    /// seconds of a ban it starts.
    pub fn refuse(&mut self, p: &LimitPolicy, now: u64) -> Option<u64> {
        let ban = p.ban?;
        match self.ban.fail(&ban, now) {
            Failure::BanStarted(ms) => Some(ceil_secs_ms(ms)),
            Failure::Counted => None,
        }
    }

    /// True when forgetting this key would change nothing.
    pub fn is_idle(&self, now: u64) -> bool {
        self.tat_us <= now.saturating_mul(1000) && self.ban.is_idle(now)
    }
}

/// A key as it may appear in a log: text when it is text; an address for the 4 or 16 bytes
/// of `$binary_remote_addr`; escaped bytes otherwise.
pub fn printable_key(key: &[u8]) -> String {
    if key.iter().all(|c| (0x21..0x7f).contains(c)) {
        return crate::callback::printable(key, 64);
    }
    match key.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(key).expect("4 bytes")).to_string(),
        // An IPv6 client's /64 (`$streamedge_client`).
        8 => crate::client::ClientKey::from_bytes(key)
            .map(|k| k.to_string())
            .unwrap_or_default(),
        16 => IpAddr::from(<[u8; 16]>::try_from(key).expect("16 bytes")).to_string(),
        _ => crate::callback::printable(key, 64),
    }
}

/// An address range for `streamedge_limit_allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/BITS` or a single `ADDR`. An IPv4-mapped network (`::ffff:a.b.c.d/N`)
    /// is the IPv4 network it carries, since clients are matched as IPv4; one shorter than
    /// /96 would reach beyond IPv4 and is refused.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) if b.bytes().all(|c| c.is_ascii_digit()) => {
                (a, Some(b.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = bits.unwrap_or(max);
        if prefix > max {
            return None;
        }
        match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (prefix >= 96).then_some(Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                }),
                None => Some(Cidr { addr, prefix }),
            },
            IpAddr::V4(_) => Some(Cidr { addr, prefix }),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(i)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), self.prefix),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        a & mask == b & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rate: &str, burst: u32, ban: Option<BanPolicy>) -> LimitPolicy {
        LimitPolicy {
            interval_us: parse_rate(rate).unwrap(),
            burst,
            ban,
        }
    }

    #[test]
    fn mapped_networks_are_ipv4_networks() {
        // Found by props: "::ffff:192.0.2.0/120" matched no client, not even 192.0.2.1.
        let c = Cidr::parse("::ffff:192.0.2.0/120").unwrap();
        assert_eq!(c, Cidr::parse("192.0.2.0/24").unwrap());
        assert!(c.contains("192.0.2.1".parse().unwrap()));
        assert!(c.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert_eq!(Cidr::parse("::ffff:192.0.2.0/64"), None);
        assert_eq!(Cidr::parse("10.0.0.0/+8"), None);
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1r/s"), Some(1_000_000));
        assert_eq!(parse_rate("10r/s"), Some(100_000));
        assert_eq!(parse_rate("30r/m"), Some(2_000_000));
        for bad in [
            "", "0r/s", "10", "10r/h", "r/s", "-1r/s", "1.5r/s", "10 r/s", "+10r/s",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_per_second_burst_five_lets_six_of_twenty_through() {
        let p = policy("1r/s", 5, None);
        let mut s = LimitState::default();
        let passed = (0..20)
            .filter(|_| s.check(&p, 10_000) == Outcome::Passed)
            .count();
        assert_eq!(passed, 6);
        // One second later exactly one more passes.
        assert_eq!(s.check(&p, 11_000), Outcome::Passed);
        assert!(s.check(&p, 11_000).refused());
    }

    #[test]
    fn retry_after_is_the_wait_in_whole_seconds() {
        let p = policy("1r/m", 0, None);
        let mut s = LimitState::default();
        assert_eq!(s.check(&p, 1000), Outcome::Passed);
        assert_eq!(s.check(&p, 1000).retry_after(), Some(60));
        assert_eq!(s.check(&p, 31_000).retry_after(), Some(30));
        assert_eq!(s.check(&p, 60_999).retry_after(), Some(1));
        assert_eq!(s.check(&p, 61_000), Outcome::Passed);
        // A steady rate that keeps to the limit is never refused.
        let p = policy("2r/s", 0, None);
        let mut s = LimitState::default();
        assert!((0..100).all(|i| s.check(&p, i * 500) == Outcome::Passed));
    }

    #[test]
    fn refusals_ban_and_the_ban_ends() {
        let ban = BanPolicy {
            attempts: 3,
            window: 60_000,
            ban: 5_000,
        };
        let p = policy("1r/m", 0, Some(ban));
        let mut s = LimitState::default();
        assert_eq!(s.check(&p, 0), Outcome::Passed);
        assert!(matches!(
            s.check(&p, 1),
            Outcome::Limited {
                ban_started: None,
                ..
            }
        ));
        assert!(matches!(
            s.check(&p, 2),
            Outcome::Limited {
                ban_started: None,
                ..
            }
        ));
        assert_eq!(
            s.check(&p, 3),
            Outcome::Limited {
                retry_after: 5,
                ban_started: Some(5)
            }
        );
        assert_eq!(s.check(&p, 1003), Outcome::Banned { retry_after: 4 });
        // After the ban, the rate still applies (one a minute), but no ban.
        assert!(matches!(
            s.check(&p, 5003),
            Outcome::Limited {
                ban_started: None,
                ..
            }
        ));
        assert_eq!(s.check(&p, 60_000), Outcome::Passed);
        assert!(!s.is_idle(60_000));
        assert!(s.is_idle(200_000));
    }

    #[test]
    fn checking_for_refusal_records_only_refusals() {
        let p = policy("1r/m", 1, None);
        let mut s = LimitState::default();
        for _ in 0..5 {
            assert_eq!(s.check_refusal(&p, 0), Outcome::Passed);
        }
        assert_eq!(s.check(&p, 0), Outcome::Passed);
        assert_eq!(s.check(&p, 0), Outcome::Passed);
        assert!(s.check_refusal(&p, 0).refused());
    }

    #[test]
    fn outside_refusals_count_towards_the_ban() {
        let p = policy("10r/s", 10, Some(crate::ban::tests::P));
        let mut s = LimitState::default();
        for i in 0..4 {
            assert_eq!(s.refuse(&p, i), None);
        }
        assert_eq!(s.refuse(&p, 4), Some(900));
        assert_eq!(s.check(&p, 5), Outcome::Banned { retry_after: 900 });
        // Without ban settings, refusals are not counted.
        let p = policy("10r/s", 10, None);
        assert_eq!(LimitState::default().refuse(&p, 0), None);
    }

    #[test]
    fn keys_print_readably() {
        assert_eq!(printable_key(&[127, 0, 0, 1]), "127.0.0.1");
        assert_eq!(printable_key(b"alice"), "alice");
        assert_eq!(printable_key(b"abcd"), "abcd");
        assert_eq!(printable_key(&[0x20, 1, 2]), " \\x01\\x02");
        let v6 = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(printable_key(&v6), "2001:db8::1");
        let net = crate::client::ClientKey::of("2001:db8:1:2::9".parse().unwrap());
        assert_eq!(printable_key(net.as_bytes()), "2001:db8:1:2::/64");
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
