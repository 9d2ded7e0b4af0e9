//! The home's public address, from echo services that answer with the caller's address.

use std::net::IpAddr;
use std::time::Duration;

use crate::address;

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

/// An echo service's answer, if it is a public address of `family`. Private, loopback,
/// link-local, documentation and garbage answers are refused, and so is an IPv4 address
/// dressed as IPv6 (::ffff:..., 6to4, NAT64...): an AAAA record wants the home's own IPv6.
pub fn parse_global(body: &str, family: Family) -> Option<IpAddr> {
    let text = body.trim();
    if text.len() > 64 {
        return None;
    }
    match (family, text.parse::<IpAddr>().ok()?) {
        (Family::V4, ip @ IpAddr::V4(_)) if address::is_global(ip) => Some(ip),
        (Family::V6, ip @ IpAddr::V6(a))
            if address::is_global(ip) && address::embedded_v4(a).is_none() =>
        {
            Some(ip)
        }
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
            "198.18.0.1",
            "240.0.0.1",
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
            "::ffff:81.2.69.142",
            "2002:5102:458e::1",
            "64:ff9b::5102:458e",
        ] {
            assert_eq!(parse_global(bad, Family::V6), None, "{bad}");
        }
        assert_eq!(parse_global("2a01:4f8::1", Family::V4), None);
    }
}
