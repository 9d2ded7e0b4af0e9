//! Who a client is, for limits and bans: an IPv4 address, or the /64 network of an IPv6
//! address. An IPv6 subscriber is handed a whole /64 (RFC 6177) and can pick any address
//! inside it, so keying on the full address would let one client rotate past every limit.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as dual-stack sockets report IPv4 peers)
//! count as the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A client's identity: 4 bytes for IPv4, the first 8 bytes for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    bytes: [u8; 8],
    len: u8,
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 8];
        match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                ClientKey { bytes, len: 4 }
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::of(IpAddr::V4(v4)),
                None => {
                    bytes.copy_from_slice(&v6.octets()[..8]);
                    ClientKey { bytes, len: 8 }
                }
            },
        }
    }

    /// The binary form (as `$binary_remote_addr` is for a full address): a limit zone key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Reads back a binary form; `None` for any other length.
    pub fn from_bytes(key: &[u8]) -> Option<Self> {
        match key.len() {
            4 | 8 => {
                let mut bytes = [0u8; 8];
                bytes[..key.len()].copy_from_slice(key);
                Some(ClientKey {
                    bytes,
                    len: key.len() as u8,
                })
            }
            _ => None,
        }
    }
}

/// `192.0.2.1`, or `2001:db8:1:2::/64`.
impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 4 {
            let [a, b, c, d, ..] = self.bytes;
            return write!(f, "{}", Ipv4Addr::new(a, b, c, d));
        }
        let mut full = [0u8; 16];
        full[..8].copy_from_slice(&self.bytes);
        write!(f, "{}/64", Ipv6Addr::from(full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::1").as_bytes().len(), 8);
    }

    #[test]
    fn ipv4_clients_are_their_address() {
        assert_eq!(key("192.0.2.7").as_bytes(), &[192, 0, 2, 7]);
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
    }

    #[test]
    fn binary_form_round_trips() {
        for s in ["10.1.2.3", "2001:db8::1", "::1"] {
            let k = key(s);
            assert_eq!(ClientKey::from_bytes(k.as_bytes()), Some(k));
        }
        assert_eq!(ClientKey::from_bytes(&[1, 2, 3]), None);
        assert_eq!(ClientKey::from_bytes(&[0; 16]), None);
    }
}
