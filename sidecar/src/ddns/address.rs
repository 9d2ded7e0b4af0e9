//! The home's public address, from echo services that answer with the caller's address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// An address family to keep in DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn record_type(self) -> &'static str {
        match self {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
    }
}

fn global_v4(a: Ipv4Addr) -> bool {
    let [x, y, ..] = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || x == 0
        // Shared address space (carrier-grade NAT): not reachable from the internet.
        || (x == 100 && (64..128).contains(&y))
        || x >= 240)
}

fn global_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    // Global unicast is 2000::/3, less documentation (2001:db8::/32).
    (s[0] & 0xe000) == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8)
}

/// An echo service's answer, if it is a global unicast address of `family`. Private,
/// loopback, link-local, documentation and garbage answers are refused.
pub fn parse_global(body: &str, family: Family) -> Option<IpAddr> {
    let text = body.trim();
    if text.len() > 64 {
        return None;
    }
    match (family, text.parse::<IpAddr>().ok()?) {
        (Family::V4, IpAddr::V4(a)) if global_v4(a) => Some(IpAddr::V4(a)),
        (Family::V6, IpAddr::V6(a)) if global_v6(a) => Some(IpAddr::V6(a)),
        _ => None,
    }
}

/// Asks the sources in order, with short timeouts; the first good answer wins.
pub async fn discover(sources: &[String], family: Family) -> Option<(IpAddr, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    for url in sources {
        let body = match client
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => {
                tracing::debug!("address source {url}: {e}");
                continue;
            }
        };
        match parse_global(&body, family) {
            Some(a) => return Some((a, url.clone())),
            None => tracing::warn!(
                "address source {url} answered something that is not a public {} address",
                family.record_type()
            ),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_unicast_addresses() {
        assert_eq!(
            parse_global("81.2.69.142\n", Family::V4),
            Some("81.2.69.142".parse().unwrap())
        );
        for bad in [
            "192.168.1.5",
            "10.0.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "garbage",
            "",
            "<html>81.2.69.142</html>",
        ] {
            assert_eq!(parse_global(bad, Family::V4), None, "{bad}");
        }
        assert_eq!(
            parse_global("2a01:4f8::1", Family::V6),
            Some("2a01:4f8::1".parse().unwrap())
        );
        for bad in [
            "::1",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "ff02::1",
            "81.2.69.142",
        ] {
            assert_eq!(parse_global(bad, Family::V6), None, "{bad}");
        }
        assert_eq!(parse_global("2a01:4f8::1", Family::V4), None);
    }
}
