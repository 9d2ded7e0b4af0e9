//! Whether an IP address is on the public internet: the one check behind fetch URLs,
//! webhooks and the public address dynamic DNS publishes.
//!
//! Written by hand from IANA's IPv4 and IPv6 Special-Purpose Address Registries (2025-10)
//! and the IPv6 Address Space registry. std's `is_global` is unstable; the crates that copy
//! it (ip_rfc, ipext) are unmaintained, and iprfc lists the registries' blocks without saying
//! which are globally reachable. None judges an IPv6 address that carries an IPv4 address
//! (mapped, NAT64, 6to4, Teredo...) by that IPv4 address, which is what decides where a
//! connection to it goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks that are not globally reachable: the special-purpose registry, multicast.
const LOCAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private use
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private use
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private use
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and 255.255.255.255 broadcast
];

/// Inside those blocks, what IANA marks globally reachable: PCP and TURN anycast.
const GLOBAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(192, 0, 0, 9), 32),
    (Ipv4Addr::new(192, 0, 0, 10), 32),
];

/// Global unicast (2000::/3) blocks that are not globally reachable. Everything outside
/// 2000::/3 is not either: ::1, ::, 100::/64 (discard), 5f00::/16 (SRv6), fc00::/7 (unique
/// local), fe80::/10 (link-local), fec0::/10 (old site-local), ff00::/8 (multicast), and
/// 64:ff9b:1::/48 (local-use NAT64) among them.
const LOCAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

/// Inside 2001::/23, what IANA marks globally reachable: anycast, AMT, AS112, ORCHIDv2,
/// drone remote ID.
const GLOBAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 1), 128),
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 2), 128),
    (Ipv6Addr::new(0x2001, 1, 0, 0, 0, 0, 0, 3), 128),
    (Ipv6Addr::new(0x2001, 3, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2001, 4, 0x112, 0, 0, 0, 0, 0), 48),
    (Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28),
    (Ipv6Addr::new(0x2001, 0x30, 0, 0, 0, 0, 0, 0), 28),
];

/// True when `ip` is on the public internet: not this machine, its LAN, a provider's NAT,
/// documentation, multicast or reserved space, nor an IPv6 form of such an IPv4 address.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => global_v4(a),
        IpAddr::V6(a) => match embedded_v4(a) {
            Some(carried) => carried.into_iter().all(global_v4),
            None => global_v6(a),
        },
    }
}

/// The IPv4 addresses an IPv6 address stands for, when it is one of the forms that carry
/// them: IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96), IPv4-translated
/// (::ffff:0:0:0/96), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32: its
/// server, and its client stored inverted).
pub fn embedded_v4(a: Ipv6Addr) -> Option<Vec<Ipv4Addr>> {
    let s = a.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0, 0, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(vec![v4(hi, lo)]),
        [0x2002, hi, lo, ..] => Some(vec![v4(hi, lo)]),
        [0x2001, 0, shi, slo, _, _, chi, clo] => Some(vec![v4(shi, slo), v4(!chi, !clo)]),
        _ => None,
    }
}

fn global_v4(a: Ipv4Addr) -> bool {
    let inside = |&(net, len): &(Ipv4Addr, u8)| {
        let mask = u32::MAX << (32 - u32::from(len));
        u32::from(a) & mask == u32::from(net)
    };
    GLOBAL_V4.iter().any(inside) || !LOCAL_V4.iter().any(inside)
}

fn global_v6(a: Ipv6Addr) -> bool {
    let inside = |&(net, len): &(Ipv6Addr, u8)| {
        let mask = u128::MAX << (128 - u32::from(len));
        u128::from(a) & mask == u128::from(net)
    };
    let global_unicast = inside(&(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3));
    global_unicast && (GLOBAL_V6.iter().any(inside) || !LOCAL_V6.iter().any(inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(text: &str) -> bool {
        is_global(text.parse().unwrap())
    }

    #[test]
    fn special_purpose_ipv4_blocks_are_not_global() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!global(a), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.0.9",
            "192.0.0.10",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(global(a), "{a}");
        }
    }

    #[test]
    fn special_purpose_ipv6_blocks_are_not_global() {
        for a in [
            "::",
            "::1",
            "100::1",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "64:ff9b:1::1",
            "64:ff9b:1::808:808",
        ] {
            assert!(!global(a), "{a}");
        }
        for a in [
            "2606:4700::1111",
            "2a01:4f8::1",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2001:3::1",
            "2001:20::1",
            "2620:4f:8000::1",
        ] {
            assert!(global(a), "{a}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_are_judged_by_the_ipv4_address() {
        for a in [
            "::ffff:127.0.0.1",  // mapped
            "::127.0.0.1",       // compatible
            "::ffff:0:7f00:1",   // translated
            "64:ff9b::7f00:1",   // NAT64
            "64:ff9b::10.0.0.1", // NAT64
            "2002:7f00:1::1",    // 6to4
            "2002:c0a8:101::1",  // 6to4 of 192.168.1.1
            "::ffff:169.254.169.254",
            // Teredo: server 65.54.227.120, client 127.0.0.1 stored inverted.
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            // Teredo: server 10.0.0.1, client 8.8.8.8.
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",
        ] {
            assert!(!global(a), "{a}");
        }
        for a in [
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            // Teredo: server 65.54.227.120, client 8.8.8.8.
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            assert!(global(a), "{a}");
        }
        assert_eq!(
            embedded_v4("2001:0:4136:e378:8000:63bf:80ff:fffe".parse().unwrap()),
            Some(vec![
                Ipv4Addr::new(65, 54, 227, 120),
                Ipv4Addr::new(127, 0, 0, 1)
            ])
        );
        assert_eq!(embedded_v4("2606:4700::1111".parse().unwrap()), None);
    }
}
