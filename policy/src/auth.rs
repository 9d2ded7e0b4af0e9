//! The publish-auth decision: one nginx-rtmp callback in, a status and log lines out.
//! The nginx edge reads the body, refreshes the keys and takes the zone lock; everything
//! here is plain Rust over the keys file and the zone's tables.

use std::net::IpAddr;

use streamedge_formats::keys::{KeyFile, Verdict};

use crate::ban::{BanPolicy, BanState, Failure};
use crate::callback::{printable, Call, Callback};
use crate::registry::{NameKey, Now, Publish, Registry};
use crate::table::{self, Claim, Slot};

/// A publisher address, as the 16 bytes of its IPv6 form (IPv4 mapped).
pub type AddrKey = [u8; 16];
pub type BanSlot = Slot<AddrKey, BanState>;

/// Log levels the decision may ask for, mapped to nginx's at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Alert,
    Warn,
    Notice,
    Info,
}

/// What to answer and what to log.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    pub status: u16,
    pub log: Vec<(Level, String)>,
}

impl Decision {
    fn new(status: u16) -> Self {
        Decision {
            status,
            log: Vec::new(),
        }
    }

    fn log(mut self, level: Level, line: String) -> Self {
        self.log.push((level, line));
        self
    }
}

/// The zone's tables, borrowed under its lock.
pub struct Zone<'a> {
    pub registry: Registry<'a>,
    pub bans: &'a mut [BanSlot],
}

/// Settings for one decision.
pub struct Settings<'a> {
    /// `None`: the keys file cannot be used; new publishes are refused, live ones go on.
    pub keys: Option<&'a KeyFile>,
    /// `None`: no bans.
    pub ban: Option<BanPolicy>,
    pub now: Now,
}

fn addr_key(addr: IpAddr) -> AddrKey {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

impl Zone<'_> {
    fn ban_slot(&mut self, addr: IpAddr, now: u64) -> Option<(usize, Claim)> {
        let key = addr_key(addr);
        let h = table::hash(self.registry.seed, &key);
        table::claim(self.bans, h, &key, now, |s| s.is_idle(now))
    }

    fn banned_for(&self, addr: IpAddr, now: u64) -> Option<u64> {
        let key = addr_key(addr);
        let h = table::hash(self.registry.seed, &key);
        let i = table::find(self.bans, h, &key)?;
        self.bans[i].value.banned_for(now)
    }

    /// Counts a failure for `addr`, adding the log line for a ban that starts now.
    fn fail(&mut self, addr: IpAddr, set: &Settings<'_>, d: Decision) -> Decision {
        let Some(policy) = set.ban else { return d };
        let Some((i, how)) = self.ban_slot(addr, set.now.mono) else {
            return d;
        };
        let d = match how {
            Claim::Evicted => d.log(
                Level::Alert,
                "streamedge zone is full, forgetting the failures of another publisher address"
                    .into(),
            ),
            _ => d,
        };
        match self.bans[i].value.fail(&policy, set.now.mono) {
            Failure::Counted => d,
            Failure::BanStarted(ms) => d.log(
                Level::Warn,
                format!(
                    "banning publisher address {addr} for {}s after {} failed attempts",
                    ms / 1000,
                    policy.attempts
                ),
            ),
        }
    }
}

/// Decides one callback.
pub fn decide(body: &[u8], zone: &mut Zone<'_>, set: &Settings<'_>) -> Decision {
    let (parsed, addr) = Callback::parse(body);
    let cb = match parsed {
        Ok(cb) => cb,
        Err(e) => {
            let from = addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown address".into());
            let d = Decision::new(400).log(Level::Warn, format!("bad callback from {from}: {e}"));
            return match addr {
                Some(a) => zone.fail(a, set, d),
                None => d,
            };
        }
    };
    let name = NameKey::new(&cb.name).expect("checked by Callback::parse");
    match cb.call {
        Call::Publish => publish(&cb, &name, zone, set),
        Call::UpdatePublish => match verify(&cb, set) {
            // A broken keys file is the operator's to fix, not a reason to cut streams off.
            _ if set.keys.is_none() => {
                zone.registry.update(&name, cb.clientid, &set.now);
                Decision::new(200)
            }
            Verdict::Accepted => {
                zone.registry.update(&name, cb.clientid, &set.now);
                Decision::new(200)
            }
            v => Decision::new(403).log(
                Level::Notice,
                format!(
                    "ending publish of \"{}\" from {}: {}",
                    cb.name,
                    cb.addr,
                    v.reason()
                ),
            ),
        },
        Call::PublishDone => {
            if zone.registry.done(&name, cb.clientid, &set.now) {
                Decision::new(200).log(Level::Notice, format!("\"{}\" is offline", cb.name))
            } else {
                Decision::new(200)
            }
        }
        Call::Play | Call::PlayDone | Call::Other => Decision::new(200),
    }
}

fn verify(cb: &Callback<'_>, set: &Settings<'_>) -> Verdict {
    let secret = cb.key.as_deref().unwrap_or("");
    match set.keys {
        Some(keys) => keys.verify(cb.name.as_bytes(), secret.as_bytes()),
        None => Verdict::UnknownName,
    }
}

fn publish(cb: &Callback<'_>, name: &NameKey, zone: &mut Zone<'_>, set: &Settings<'_>) -> Decision {
    if let Some(ms) = zone.banned_for(cb.addr, set.now.mono) {
        return Decision::new(403).log(
            Level::Info,
            format!(
                "publish refused for \"{}\" from {}: address banned for {}s more",
                cb.name,
                cb.addr,
                ms.div_ceil(1000)
            ),
        );
    }
    if set.keys.is_none() {
        // Not the publisher's fault: refused, but not counted towards a ban.
        return Decision::new(403).log(
            Level::Warn,
            format!(
                "publish refused for \"{}\" from {}: no usable keys file",
                cb.name, cb.addr
            ),
        );
    }
    match verify(cb, set) {
        Verdict::Accepted => match zone.registry.publish(name, cb.clientid, &set.now) {
            Publish::Busy => Decision::new(409).log(
                Level::Warn,
                format!(
                    "publish refused for \"{}\" from {}: already publishing",
                    cb.name, cb.addr
                ),
            ),
            p => {
                let d = Decision::new(200).log(
                    Level::Notice,
                    format!(
                        "\"{}\" is live, client {} from {}",
                        cb.name, cb.clientid, cb.addr
                    ),
                );
                match p {
                    Publish::LiveEvicting | Publish::Untracked => d.log(
                        Level::Alert,
                        "streamedge zone is full, live registry entries are being dropped".into(),
                    ),
                    _ => d,
                }
            }
        },
        v => {
            let d = Decision::new(403).log(
                Level::Warn,
                format!(
                    "publish refused for \"{}\" from {}: {}",
                    printable(cb.name.as_bytes(), 64),
                    cb.addr,
                    v.reason()
                ),
            );
            zone.fail(cb.addr, set, d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::StreamSlot;
    use streamedge_formats::keys::{KeyEntry, KeyHash, KeyState};

    struct World {
        streams: Vec<StreamSlot>,
        bans: Vec<BanSlot>,
        keys: KeyFile,
    }

    impl World {
        fn new() -> Self {
            let entry = |name: &str, secret: &str, state| KeyEntry {
                name: name.into(),
                hash: KeyHash::of(secret.as_bytes()),
                created: String::new(),
                state,
            };
            World {
                streams: vec![StreamSlot::default(); 64],
                bans: vec![BanSlot::default(); 64],
                keys: KeyFile {
                    keys: vec![
                        entry("alice", "S3CRET", KeyState::Active),
                        entry("old", "OLD", KeyState::Revoked),
                    ],
                },
            }
        }

        fn call(&mut self, body: &str, mono: u64) -> Decision {
            self.call_with(body, mono, true)
        }

        fn call_with(&mut self, body: &str, mono: u64, keys_usable: bool) -> Decision {
            let mut zone = Zone {
                registry: Registry {
                    slots: &mut self.streams,
                    seed: [9, 9],
                },
                bans: &mut self.bans,
            };
            let set = Settings {
                keys: keys_usable.then_some(&self.keys),
                ban: Some(BanPolicy::PUBLISH_DEFAULT),
                now: Now {
                    mono,
                    wall: 1_700_000_000,
                    live_timeout: None,
                },
            };
            decide(body.as_bytes(), &mut zone, &set)
        }
    }

    fn publish(addr: &str, client: u32, name: &str, key: &str) -> String {
        format!(
            "app=live&addr={addr}&clientid={client}&call=publish&name={name}&type=live&key={key}"
        )
    }

    #[test]
    fn right_key_goes_live_and_done_ends_it() {
        let mut w = World::new();
        let d = w.call(&publish("10.0.0.1", 1, "alice", "S3CRET"), 1000);
        assert_eq!(d.status, 200);
        assert!(d.log.iter().all(|(_, l)| !l.contains("S3CRET")));
        assert_eq!(
            w.call(&publish("10.0.0.2", 2, "alice", "S3CRET"), 1100)
                .status,
            409
        );
        assert_eq!(
            w.call(
                "addr=10.0.0.1&clientid=1&call=publish_done&name=alice",
                2000
            )
            .status,
            200
        );
        assert_eq!(
            w.call(&publish("10.0.0.2", 2, "alice", "S3CRET"), 2100)
                .status,
            200
        );
    }

    #[test]
    fn wrong_keys_are_refused_without_leaking_them() {
        let mut w = World::new();
        for (body, status) in [
            (publish("10.0.0.1", 1, "alice", "WRONG"), 403),
            (
                "addr=10.0.0.1&clientid=1&call=publish&name=alice".to_string(),
                403,
            ),
            (publish("10.0.0.1", 1, "old", "OLD"), 403),
            (publish("10.0.0.1", 1, "nobody", "S3CRET"), 403),
        ] {
            let d = w.call(&body, 1000);
            assert_eq!(d.status, status, "{body}");
            let text = format!("{:?}", d.log);
            assert!(!text.contains("WRONG") && !text.contains("OLD\""), "{text}");
        }
    }

    #[test]
    fn five_failures_ban_the_address_even_with_the_right_key() {
        let mut w = World::new();
        for i in 0..4 {
            assert_eq!(
                w.call(&publish("10.0.0.9", i, "alice", "bad"), 1000 + u64::from(i))
                    .status,
                403
            );
        }
        let fifth = w.call(&publish("10.0.0.9", 5, "alice", "bad"), 1005);
        assert!(fifth
            .log
            .iter()
            .any(|(l, m)| *l == Level::Warn
                && m.contains("banning publisher address 10.0.0.9 for 900s")));
        let d = w.call(&publish("10.0.0.9", 6, "alice", "S3CRET"), 2000);
        assert_eq!(d.status, 403);
        assert!(d.log[0].1.contains("banned"));
        // Another address is unaffected, and the ban ends after 15 minutes.
        assert_eq!(
            w.call(&publish("10.0.0.8", 7, "alice", "S3CRET"), 2000)
                .status,
            200
        );
        w.call(
            "addr=10.0.0.8&clientid=7&call=publish_done&name=alice",
            2001,
        );
        assert_eq!(
            w.call(&publish("10.0.0.9", 8, "alice", "S3CRET"), 1005 + 900_000)
                .status,
            200
        );
    }

    #[test]
    fn malformed_callbacks_count_as_failures() {
        let mut w = World::new();
        let dup = format!("{}&addr=1.1.1.1", publish("10.0.0.7", 1, "alice", "S3CRET"));
        for i in 0..5 {
            let d = w.call(&dup, 1000 + i);
            assert_eq!(d.status, 400);
            assert!(d.log[0]
                .1
                .contains("from 10.0.0.7: duplicate \"addr\" field"));
        }
        assert_eq!(
            w.call(&publish("10.0.0.7", 2, "alice", "S3CRET"), 2000)
                .status,
            403
        );
        assert_eq!(w.call("garbage", 2000).status, 400);
    }

    #[test]
    fn an_unusable_keys_file_refuses_new_publishes_but_keeps_live_ones() {
        let mut w = World::new();
        assert_eq!(
            w.call(&publish("10.0.0.1", 1, "alice", "S3CRET"), 1000)
                .status,
            200
        );
        let update = "addr=10.0.0.1&clientid=1&call=update_publish&name=alice&key=S3CRET";
        assert_eq!(w.call_with(update, 2000, false).status, 200);
        for i in 0..10 {
            let d = w.call_with(&publish("10.0.0.2", 2 + i, "alice", "S3CRET"), 3000, false);
            assert_eq!(d.status, 403);
            assert!(d.log[0].1.ends_with("no usable keys file"));
        }
        // Not counted as failures: once the file is back, the address is not banned.
        w.call(
            "addr=10.0.0.1&clientid=1&call=publish_done&name=alice",
            4000,
        );
        assert_eq!(
            w.call(&publish("10.0.0.2", 20, "alice", "S3CRET"), 5000)
                .status,
            200
        );
    }

    #[test]
    fn update_with_a_revoked_or_rotated_key_ends_the_stream() {
        let mut w = World::new();
        assert_eq!(
            w.call(&publish("10.0.0.1", 1, "alice", "S3CRET"), 1000)
                .status,
            200
        );
        let update = "addr=10.0.0.1&clientid=1&call=update_publish&time=10&timestamp=1&name=alice&key=S3CRET";
        assert_eq!(w.call(update, 2000).status, 200);
        w.keys.keys[0].hash = KeyHash::of(b"NEW");
        let d = w.call(update, 3000);
        assert_eq!(d.status, 403);
        assert!(d.log[0].1.contains("ending publish of \"alice\""));
    }
}
