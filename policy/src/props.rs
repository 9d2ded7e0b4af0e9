//! Property tests: arbitrary bytes at every parser of outside input (callback bodies, URL
//! paths, signed paths, limit keys, rates, address ranges, the keys file on disk), and the
//! limit and ban arithmetic for any times.

use std::net::{IpAddr, Ipv6Addr};

use proptest::prelude::*;
use streamedge_formats::keys::{KeyEntry, KeyFile, KeyHash, KeyState};
use streamedge_formats::name::check_name;
use streamedge_formats::token::{sign, signed_path, Token};

use crate::auth::{decide, malformed, Settings};
use crate::ban::{BanPolicy, BanState, Failure};
use crate::callback::{printable, Callback};
use crate::client::ClientKey;
use crate::hls::{parse_path, parse_signed, token_arg, Mode};
use crate::keycache::{KeyCache, Refresh};
use crate::limit::{parse_rate, printable_key, Cidr, LimitPolicy, LimitState, Outcome};
use crate::registry::{unknown_conn, Now, Registry, StreamSlot};

/// The fields nginx-rtmp sets (and `st`), which may appear once.
const FIELDS: [&str; 6] = ["call", "name", "addr", "clientid", "key", "st"];

/// A form body built from likely fields and values, so that many parse; plus raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("call".to_string()),
        Just("name".to_string()),
        Just("addr".to_string()),
        Just("clientid".to_string()),
        Just("key".to_string()),
        Just("st".to_string()),
        "[a-z]{1,6}",
        ".{0,4}",
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "publish",
            "publish_done",
            "update_publish",
            "play",
            "play_done",
            "done",
            "alice",
            "hidden",
            "S3CRET",
            "H1DDEN",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
            "7",
        ])
        .prop_map(str::to_string),
        "[A-Za-z0-9_.%&=+-]{0,70}",
        ".{0,8}",
    ];
    prop_oneof![
        4 => proptest::collection::vec((key, value), 0..10).prop_map(|kv| {
            kv.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A URI from pieces that make good and bad paths alike.
fn uri(start: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "alice",
        "x1",
        "/",
        "//",
        ".",
        "..",
        ".hidden",
        "%2e",
        "\\",
        "\0",
        "index.m3u8",
        "seg_1.ts",
        "720p",
        "master.m3u8",
        "a.m4s",
        "é",
        "-",
        "_",
        "file.exe",
        "poster.jpg",
    ]);
    (
        prop::sample::select(start.to_vec()),
        proptest::collection::vec(piece, 0..8),
    )
        .prop_map(|(s, p)| format!("{s}{}", p.concat()).into_bytes())
}

fn ban_policy() -> impl Strategy<Value = BanPolicy> {
    // The module's parser takes ban_after >= 1 and times > 0 (ngx_parse_time, milliseconds).
    let ms = || prop_oneof![1u64..1000, 1u64..=u64::from(u32::MAX)];
    (prop_oneof![1u32..100, 1u32..], ms(), ms()).prop_map(|(attempts, window, ban)| BanPolicy {
        attempts,
        window,
        ban,
    })
}

fn world_keys() -> KeyFile {
    let entry = |name: &str, secret: &str, state, private| KeyEntry {
        name: name.into(),
        hash: KeyHash::of(secret.as_bytes()),
        created: String::new(),
        state,
        private,
        record: false,
    };
    KeyFile {
        keys: vec![
            entry("alice", "S3CRET", KeyState::Active, false),
            entry("old", "OLD", KeyState::Revoked, false),
            entry("hidden", "H1DDEN", KeyState::Active, true),
        ],
    }
}

proptest! {
    #[test]
    fn callbacks_accepted_are_well_formed(body in body()) {
        let (parsed, addr) = Callback::parse(&body);
        match parsed {
            Ok(cb) => {
                prop_assert!(check_name(cb.name.as_bytes()).is_ok());
                prop_assert_eq!(Some(cb.addr), addr);
                prop_assert!(cb.key.as_ref().is_none_or(|k| k.len() <= 256));
                prop_assert!(cb.token.as_ref().is_none_or(|t| t.len() <= 64));
                // No field nginx-rtmp sets appears twice in an accepted body.
                for f in FIELDS {
                    let n = form_urlencoded::parse(&body).filter(|(k, _)| k == f).count();
                    prop_assert!(n <= 1, "{f} appears {n} times");
                }
            }
            Err(e) => {
                let d = malformed(&e, addr);
                prop_assert_eq!(d.status, 400);
                prop_assert_eq!(d.failure, addr.is_some());
            }
        }
    }

    #[test]
    fn any_callback_gets_a_decision_that_never_logs_the_key(
        bodies in proptest::collection::vec(body(), 1..6),
        mono in any::<u64>(),
        wall_ms in any::<i64>(),
        keys_usable in any::<bool>(),
    ) {
        let keys = world_keys();
        let mut slots = vec![StreamSlot::default(); 8];
        let secrets = vec![b"0123456789abcdef0123456789abcdef".to_vec()];
        for body in &bodies {
            let mut registry = Registry { slots: &mut slots, seed: [1, 2] };
            let set = Settings {
                keys: keys_usable.then_some(&keys),
                secrets: &secrets,
                now: Now { mono, wall_ms, live_timeout: Some(10_000), conn_open: unknown_conn },
            };
            let d = match Callback::parse(body) {
                (Ok(cb), _) => {
                    let d = decide(&cb, &mut registry, &set);
                    if let Some(k) = cb.key.as_deref().filter(|k| k.len() >= 6) {
                        prop_assert!(d.log.iter().all(|(_, l)| !l.contains(k)), "{:?}", d.log);
                    }
                    d
                }
                (Err(e), addr) => malformed(&e, addr),
            };
            prop_assert!(matches!(d.status, 200 | 400 | 403 | 409), "{}", d.status);
        }
    }

    #[test]
    fn accepted_paths_are_safe(
        mode in prop::sample::select(vec![Mode::Live, Mode::Vod]),
        raw in prop_oneof![
            uri(&["/live/", "/vod/", "/live", "/s/", ""]),
            proptest::collection::vec(any::<u8>(), 0..80),
        ],
    ) {
        if let Ok(t) = parse_path(mode, &raw) {
            let text = std::str::from_utf8(&raw).unwrap();
            prop_assert_eq!(text, format!("{}{}/{}", mode.prefix(), t.name, t.file));
            prop_assert!(check_name(t.name.as_bytes()).is_ok());
            for bad in ["..", "//", "%", "\0", "\\", "/."] {
                prop_assert!(!text.contains(bad), "{text} contains {bad:?}");
            }
            prop_assert!(!t.file.starts_with('.') && !t.file.ends_with('/'));
            let depth = if mode == Mode::Live { 1 } else { 3 };
            prop_assert!(t.file.split('/').count() <= depth);
        }
    }

    #[test]
    fn signed_paths_give_back_the_token_and_the_inner_path(
        secret in proptest::collection::vec(any::<u8>(), 16..40),
        name in "[A-Za-z0-9_-]{1,64}",
        vod in any::<bool>(),
        file in prop::sample::select(vec!["index.m3u8", "seg_1.ts", "720p/a.m4s"]),
        expiry in 1u64..,
        addr in proptest::option::of(any::<IpAddr>()),
    ) {
        let (mode, file) = if vod { (Mode::Vod, file) } else { (Mode::Live, "index.m3u8") };
        let scope = format!("{}{name}", mode.prefix());
        let inner = format!("{scope}/{file}");
        let token = sign(&secret, &scope, expiry, addr);
        let uri = signed_path(&token, &inner);
        let s = parse_signed(uri.as_bytes()).unwrap();
        prop_assert_eq!((s.token, s.mode), (token.as_str(), mode));
        prop_assert_eq!(&uri[s.inner_start..], inner.as_str());
        let t = parse_path(mode, &uri.as_bytes()[s.inner_start..]).unwrap();
        prop_assert_eq!(t.scope(mode), scope.clone());
        let verified = Token::parse(s.token).unwrap().verify(&[secret], &scope, expiry - 1, addr);
        prop_assert_eq!(verified, Ok(()));
    }

    #[test]
    fn signed_path_parts_are_in_the_token_alphabet(
        raw in prop_oneof![
            uri(&["/s/1.abc/", "/s/", "/s/1.i.x", "/s//"]),
            proptest::collection::vec(any::<u8>(), 0..100),
        ],
    ) {
        if let Ok(s) = parse_signed(&raw) {
            prop_assert!(!s.token.is_empty() && s.token.len() <= 64);
            prop_assert!(s.token.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)));
            prop_assert!(raw[s.inner_start..].starts_with(s.mode.prefix().as_bytes()));
        }
        if let Some(t) = token_arg(&raw) {
            prop_assert!(!t.contains('&'));
        }
    }

    #[test]
    fn rates_are_digits_then_r_per_second_or_minute(text in prop_oneof![
        "[0-9+ -]{0,9}r/[smh]",
        any::<String>(),
    ]) {
        if let Some(interval) = parse_rate(&text) {
            let (n, per) = text.split_once("r/").unwrap();
            prop_assert!(n.bytes().all(|c| c.is_ascii_digit()), "{text}");
            let n: u64 = n.parse().unwrap();
            let window = if per == "s" { 1_000_000 } else { 60_000_000 };
            prop_assert!((1..=1_000_000).contains(&n));
            prop_assert_eq!(interval, (window / n).max(1));
        }
    }

    #[test]
    fn limit_keys_print_as_one_safe_line(key in proptest::collection::vec(any::<u8>(), 0..100)) {
        let p = printable_key(&key);
        prop_assert!(p.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'"'), "{p}");
        prop_assert!(p.len() <= 64 * 4 + 3);
        prop_assert!(printable(&key, 64).len() <= 64 * 4 + 3);
    }

    #[test]
    fn cidr_contains_is_a_prefix_match(
        net in any::<IpAddr>(),
        bits in 0u8..=128,
        ip in any::<IpAddr>(),
        keep in 0u8..=128,
    ) {
        let max = if net.is_ipv4() { 32 } else { 128 };
        let text = format!("{net}/{bits}");
        // A mapped network is the IPv4 network it carries, and only from /96 on.
        let (net, bits) = match net {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if bits >= 96 => (IpAddr::V4(v4), bits - 96),
                Some(_) => (net, 200),
                None => (net, bits),
            },
            v4 => (v4, bits),
        };
        let Some(c) = Cidr::parse(&text) else {
            prop_assert!(bits > max);
            return Ok(());
        };
        prop_assert!(bits <= max);
        prop_assert!(c.contains(net), "{text} does not contain its own address");
        // A client that shares `keep` leading bits with the network.
        let near = |n: u128, ip: u128, width: u32| {
            let k = u32::from(keep).min(width);
            let mask = if k == 0 { 0 } else { (!0u128 >> (128 - width)) << (width - k) };
            (n & mask) | (ip & !mask & (!0u128 >> (128 - width)))
        };
        let probes = match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let x = near(u32::from(n).into(), u32::from(i).into(), 32) as u32;
                vec![IpAddr::V4(x.into()), IpAddr::V6(std::net::Ipv4Addr::from(x).to_ipv6_mapped()), ip]
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                vec![IpAddr::V6(near(n.into(), i.into(), 128).into()), ip]
            }
            _ => vec![ip],
        };
        for probe in probes {
            // The straightforward computation: same family (mapped IPv4 counts as IPv4), and
            // at least `bits` leading bits in common.
            let canon = |a: IpAddr| match a {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
                v4 => v4,
            };
            let want = match (canon(net), canon(probe)) {
                (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() >= u32::from(bits),
                (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() >= u32::from(bits),
                _ => false,
            };
            prop_assert_eq!(c.contains(probe), want, "{} contains {}", text, probe);
        }
    }

    #[test]
    fn cidr_of_anything_never_panics(text in prop_oneof!["[0-9a-f.:/]{0,45}", any::<String>()]) {
        if let Some(c) = Cidr::parse(&text) {
            let _ = c.contains("::1".parse().unwrap());
        }
    }

    #[test]
    fn client_keys_round_trip_and_are_the_64(
        ip in any::<IpAddr>(),
        net in any::<u64>(),
        hosts in any::<(u64, u64)>(),
        other in any::<u64>(),
        raw in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let k = ClientKey::of(ip);
        prop_assert_eq!(ClientKey::from_bytes(k.as_bytes()), Some(k));
        let _ = k.to_string();
        prop_assert_eq!(ClientKey::from_bytes(&raw).is_some(), matches!(raw.len(), 4 | 8));
        let v6 = |n: u64, h: u64| IpAddr::V6(Ipv6Addr::from((u128::from(n) << 64) | u128::from(h)));
        let (a, b) = (v6(net, hosts.0), v6(net, hosts.1));
        // Mapped IPv4 addresses (::ffff:a.b.c.d) live in /64 0 and are keyed as IPv4.
        if net != 0 {
            prop_assert_eq!(ClientKey::of(a), ClientKey::of(b));
            if other != net {
                prop_assert_ne!(ClientKey::of(a), ClientKey::of(v6(other, hosts.0)));
            }
        }
    }

    #[test]
    fn bans_never_panic_and_the_nth_burst_failure_bans(
        policy in ban_policy(),
        start in any::<u64>(),
        steps in proptest::collection::vec(0u64..100_000, 1..40),
    ) {
        // Failures at one instant: the N-th bans, not one earlier or later.
        let burst_at = start.min(u64::MAX - u64::from(u32::MAX) * 2);
        let mut s = BanState::default();
        let n = policy.attempts.min(64);
        for i in 1..=n {
            let f = s.fail(&policy, burst_at);
            if i < policy.attempts {
                prop_assert_eq!(f, Failure::Counted, "failure {} of {:?}", i, policy);
            } else {
                prop_assert_eq!(f, Failure::BanStarted(policy.ban));
                prop_assert_eq!(s.banned_for(burst_at), Some(policy.ban));
                prop_assert!(s.is_idle(burst_at + policy.ban));
            }
        }
        // Any times at all: no panic, and a ban only shrinks as time passes.
        let mut s = BanState::default();
        let mut t = start;
        for step in steps {
            t = t.saturating_add(step);
            let _ = s.fail(&policy, t);
            let left = s.banned_for(t);
            let later = s.banned_for(t.saturating_add(step));
            prop_assert!(later <= left || left.is_none() && later.is_none());
        }
    }

    #[test]
    fn limits_never_panic_and_retry_after_is_honest(
        rate in 1u64..=1_000_000,
        per_minute in any::<bool>(),
        burst in 0u32..1000,
        ban in proptest::option::of(ban_policy()),
        start in any::<u64>(),
        steps in proptest::collection::vec(0u64..5_000, 1..40),
    ) {
        let interval_us = parse_rate(&format!("{rate}r/{}", if per_minute { "m" } else { "s" })).unwrap();
        let p = LimitPolicy { interval_us, burst, ban };
        let mut s = LimitState::default();
        let mut t = start;
        for step in steps {
            t = t.saturating_add(step);
            let _ = s.check_refusal(&p, t);
            let outcome = s.check(&p, t);
            if let Some(secs) = outcome.retry_after() {
                prop_assert!(secs >= 1);
                // Without bans, waiting as told always lets the next request through.
                if ban.is_none() && t < u64::MAX / 1000 - secs * 1000 {
                    let mut again = s;
                    prop_assert_eq!(again.check(&p, t + secs * 1000), Outcome::Passed);
                }
            }
        }
        // A fresh key passes burst + 1 requests at one instant (when the clock fits in µs).
        let at = start % (u64::MAX / 1000);
        let mut fresh = LimitState::default();
        let passed = (0..=burst + 1).filter(|_| fresh.check(&p, at) == Outcome::Passed).count();
        prop_assert_eq!(passed as u64, u64::from(burst) + 1);
    }
}

proptest! {
    // Each case writes a file: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keycache_of_any_file_serves_what_parses(texts in proptest::collection::vec(
        prop_oneof![any::<String>(), Just(world_keys().to_toml())], 1..4,
    )) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut cache = KeyCache::new(path.clone());
        for text in texts {
            // Replaced by rename, as the sidecar does, so the cache sees a new file.
            let tmp = dir.path().join("keys.tmp");
            std::fs::write(&tmp, &text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            let want = KeyFile::parse(&text).ok();
            match cache.refresh() {
                Refresh::Loaded(n) => prop_assert_eq!(Some(n), want.as_ref().map(|k| k.keys.len())),
                Refresh::Failed(_) => prop_assert!(want.is_none()),
                Refresh::Unchanged => {}
            }
            prop_assert_eq!(cache.keys(), want.as_ref());
        }
    }
}
