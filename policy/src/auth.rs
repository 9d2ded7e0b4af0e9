//! The publish-auth decision: one nginx-rtmp callback in, a status and log lines out.
//! The nginx edge reads the body, refreshes the keys, applies the location's limit zones
//! (whose bans count the failures this reports) and takes the registry's lock; everything
//! here is plain Rust over the keys file and the registry.

use std::net::IpAddr;

use streamedge_formats::keys::{KeyFile, KeyState, Verdict};
use streamedge_formats::token::{Refusal, Token};

use crate::callback::{printable, Call, Callback, CallbackError};
use crate::registry::{NameKey, Now, Publish, Registry};

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
    /// A failed attempt, to count against the publisher's address (bans).
    pub failure: bool,
}

impl Decision {
    fn new(status: u16) -> Self {
        Decision {
            status,
            log: Vec::new(),
            failure: false,
        }
    }

    fn log(mut self, level: Level, line: String) -> Self {
        self.log.push((level, line));
        self
    }

    fn failed(mut self) -> Self {
        self.failure = true;
        self
    }
}

/// Settings for one decision.
pub struct Settings<'a> {
    /// `None`: the keys file cannot be used; new publishes are refused, live ones go on.
    pub keys: Option<&'a KeyFile>,
    /// Signing secrets, which RTMP players of private streams need a token from.
    pub secrets: &'a [Vec<u8>],
    pub now: Now,
}

/// The answer to a callback whose fields could not be read.
pub fn malformed(error: &CallbackError, addr: Option<IpAddr>) -> Decision {
    let from = addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown address".into());
    let d = Decision::new(400).log(Level::Warn, format!("bad callback from {from}: {error}"));
    // Counted when it can be pinned on an address: garbage is a way to probe too.
    if addr.is_some() {
        d.failed()
    } else {
        d
    }
}

/// Whether a call asks to start something, and so goes through the location's limits
/// (nginx's own push does not: the publish it follows went through them).
pub fn is_limited(cb: &Callback<'_>) -> bool {
    matches!(cb.call, Call::Publish | Call::Play | Call::CheckPublish) && !cb.relay
}

/// Decides one well-formed callback.
pub fn decide(cb: &Callback<'_>, registry: &mut Registry<'_>, set: &Settings<'_>) -> Decision {
    let name = NameKey::new(&cb.name).expect("checked by Callback::parse");
    match cb.call {
        Call::Publish => publish(cb, &name, registry, set),
        Call::CheckPublish => check_publish(cb, &name, registry, set),
        Call::UpdatePublish => match verify(cb, set) {
            // A broken keys file is the operator's to fix, not a reason to cut streams off.
            _ if set.keys.is_none() => {
                registry.update(&name, cb.clientid, None, &set.now);
                Decision::new(200)
            }
            Verdict::Accepted => {
                registry.update(&name, cb.clientid, is_private(cb, set), &set.now);
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
            if registry.done(&name, cb.clientid, &set.now) {
                Decision::new(200).log(Level::Notice, format!("\"{}\" is offline", cb.name))
            } else {
                Decision::new(200)
            }
        }
        // nginx's own push, sending a stream that was published with its key.
        Call::Play if cb.relay => Decision::new(200),
        Call::Play => play(cb, &name, registry, set),
        Call::PlayDone | Call::Other => Decision::new(200),
    }
}

/// RTMP play follows the same rule as HLS: a public name plays for anyone, a private one
/// only with a signed token for `/live/NAME` (`rtmp://HOST/live/NAME?st=TOKEN`), and a
/// private name without one is refused exactly like a name that does not exist.
fn play(
    cb: &Callback<'_>,
    name: &NameKey,
    registry: &Registry<'_>,
    set: &Settings<'_>,
) -> Decision {
    let private = match set.keys {
        Some(keys) => keys
            .get(&cb.name)
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.private),
        // Keys unusable: what the registry last knew, private when unsure.
        None => registry.privacy(name).or(Some(true)),
    };
    let refused = |why: &str| {
        Decision::new(403)
            .log(
                Level::Info,
                format!(
                    "play refused for \"{}\" from {}: {why}",
                    printable(cb.name.as_bytes(), 64),
                    cb.addr
                ),
            )
            .failed()
    };
    match private {
        None => refused("no such stream"),
        Some(false) => Decision::new(200),
        Some(true) => {
            let scope = format!("/live/{}", cb.name);
            let wall = set.now.wall_ms.max(0) as u64 / 1000;
            let verdict = match cb.token.as_deref().and_then(Token::parse) {
                None => Err(Refusal::Malformed),
                Some(t) => t.verify(set.secrets, &scope, wall, Some(cb.addr)),
            };
            match verdict {
                Ok(()) => Decision::new(200),
                Err(Refusal::Expired) => refused("expired token"),
                Err(_) => refused("no valid token"),
            }
        }
    }
}

/// Whether the name's key marks its stream private; `None` when the keys are unusable.
fn is_private(cb: &Callback<'_>, set: &Settings<'_>) -> Option<bool> {
    let keys = set.keys?;
    Some(keys.get(&cb.name).is_some_and(|k| k.private))
}

fn verify(cb: &Callback<'_>, set: &Settings<'_>) -> Verdict {
    let secret = cb.key.as_deref().unwrap_or("");
    match set.keys {
        Some(keys) => keys.verify(cb.name.as_bytes(), secret.as_bytes()),
        None => Verdict::UnknownName,
    }
}

/// A publish or source (`what`) refused, 403, with why in the log; the name as printable
/// text (it may be anything a key would not match).
fn refused(cb: &Callback<'_>, what: &str, why: &str) -> Decision {
    Decision::new(403).log(
        Level::Warn,
        format!(
            "{what} refused for \"{}\" from {}: {why}",
            printable(cb.name.as_bytes(), 64),
            cb.addr
        ),
    )
}

/// A source publishing through the sidecar: its key is checked and a wrong one counted as
/// for a publish, but nothing is recorded: the sidecar's own publish that follows is.
fn check_publish(
    cb: &Callback<'_>,
    name: &NameKey,
    registry: &Registry<'_>,
    set: &Settings<'_>,
) -> Decision {
    if set.keys.is_none() {
        return refused(cb, "source", "no usable keys file");
    }
    match verify(cb, set) {
        Verdict::Accepted => {
            let live =
                crate::registry::lookup(registry.slots, registry.seed, name.as_str(), &set.now)
                    .is_some_and(|k| k.live);
            if live {
                return Decision {
                    status: 409,
                    ..refused(cb, "source", "already publishing")
                };
            }
            Decision::new(200).log(
                Level::Notice,
                format!("source accepted for \"{}\" from {}", cb.name, cb.addr),
            )
        }
        v => refused(cb, "source", v.reason()).failed(),
    }
}

fn publish(
    cb: &Callback<'_>,
    name: &NameKey,
    registry: &mut Registry<'_>,
    set: &Settings<'_>,
) -> Decision {
    if set.keys.is_none() {
        // Not the publisher's fault: refused, but not counted towards a ban.
        return refused(cb, "publish", "no usable keys file");
    }
    match verify(cb, set) {
        Verdict::Accepted => match registry.publish(
            name,
            cb.clientid,
            is_private(cb, set) == Some(true),
            &set.now,
        ) {
            Publish::Busy => Decision {
                status: 409,
                ..refused(cb, "publish", "already publishing")
            },
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
        v => refused(cb, "publish", v.reason()).failed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::StreamSlot;
    use streamedge_formats::keys::{KeyEntry, KeyHash, KeyState};

    struct World {
        streams: Vec<StreamSlot>,
        keys: KeyFile,
        secrets: Vec<Vec<u8>>,
    }

    impl World {
        fn new() -> Self {
            let entry = |name: &str, secret: &str, state| KeyEntry {
                name: name.into(),
                hash: KeyHash::of(secret.as_bytes()),
                created: String::new(),
                state,
                private: false,
                record: false,
            };
            World {
                streams: vec![StreamSlot::default(); 64],
                keys: KeyFile {
                    keys: vec![
                        entry("alice", "S3CRET", KeyState::Active),
                        entry("old", "OLD", KeyState::Revoked),
                        KeyEntry {
                            private: true,
                            record: false,
                            ..entry("hidden", "H1DDEN", KeyState::Active)
                        },
                    ],
                },
                secrets: vec![SECRET.to_vec()],
            }
        }

        fn call(&mut self, body: &str, mono: u64) -> Decision {
            self.call_with(body, mono, true)
        }

        fn call_with(&mut self, body: &str, mono: u64, keys_usable: bool) -> Decision {
            let mut registry = Registry {
                slots: &mut self.streams,
                seed: [9, 9],
            };
            let set = Settings {
                keys: keys_usable.then_some(&self.keys),
                secrets: &self.secrets,
                now: Now {
                    mono,
                    wall_ms: 1_700_000_000_000,
                    live_timeout: None,
                    conn_open: crate::registry::unknown_conn,
                },
            };
            match Callback::parse(body.as_bytes()) {
                (Ok(cb), _) => decide(&cb, &mut registry, &set),
                (Err(e), addr) => malformed(&e, addr),
            }
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn play(name: &str, token: Option<&str>) -> String {
        let st = token.map(|t| format!("&st={t}")).unwrap_or_default();
        format!("app=live&addr=10.0.0.9&clientid=4&call=play&name={name}{st}")
    }

    #[test]
    fn nginxs_own_push_plays_any_stream_without_a_token() {
        let mut w = World::new();
        let relay = |name: &str| {
            format!("app=live&addr=127.0.0.1%3A1936%2Ffeed&clientid=5&call=play&name={name}")
        };
        let d = w.call(&relay("hidden"), 1);
        assert_eq!((d.status, d.failure, d.log.len()), (200, false, 0));
        // The same from a client address is an ordinary play: refused without a token.
        assert_eq!(w.call(&play("hidden", None), 1).status, 403);
    }

    #[test]
    fn private_streams_play_over_rtmp_only_with_a_token() {
        use streamedge_formats::token::sign;
        let mut w = World::new();
        // Public: anyone. Unknown and revoked names: refused.
        assert_eq!(w.call(&play("alice", None), 1).status, 200);
        let unknown = w.call(&play("nobody", None), 1);
        assert_eq!((unknown.status, unknown.failure), (403, true));
        assert_eq!(w.call(&play("old", None), 1).status, 403);
        // Private: refused without a token, and alike to an unknown name.
        let bare = w.call(&play("hidden", None), 1);
        assert_eq!(
            (bare.status, bare.failure),
            (unknown.status, unknown.failure)
        );
        let good = sign(SECRET, "/live/hidden", 1_700_000_100, None);
        assert_eq!(w.call(&play("hidden", Some(&good)), 1).status, 200);
        // Another stream's token, an expired one, one bound to another address, garbage.
        let other = sign(SECRET, "/live/alice", 1_700_000_100, None);
        let expired = sign(SECRET, "/live/hidden", 1_699_999_999, None);
        let bound = sign(
            SECRET,
            "/live/hidden",
            1_700_000_100,
            Some("10.0.0.8".parse().unwrap()),
        );
        let mine = sign(
            SECRET,
            "/live/hidden",
            1_700_000_100,
            Some("10.0.0.9".parse().unwrap()),
        );
        for t in [&other, &expired, &bound, &"x".to_string()] {
            assert_eq!(w.call(&play("hidden", Some(t)), 1).status, 403, "{t}");
        }
        assert_eq!(w.call(&play("hidden", Some(&mine)), 1).status, 200);
        // No token text in the log lines.
        let d = w.call(&play("hidden", Some(&other)), 1);
        assert!(!format!("{:?}", d.log).contains(&other));
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
        assert_eq!((d.status, d.failure), (200, false));
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
    fn a_source_through_the_sidecar_is_checked_and_not_recorded() {
        let mut w = World::new();
        let check = |addr: &str, key: &str| {
            format!("call=check_publish&addr={addr}&clientid=0&name=alice&key={key}")
        };
        let d = w.call(&check("10.0.0.9", "S3CRET"), 1000);
        assert_eq!((d.status, d.failure), (200, false));
        assert!(d.log.iter().all(|(_, l)| !l.contains("S3CRET")));
        // Nothing went live: the sidecar's own publish does that.
        assert_eq!(
            w.call(&publish("127.0.0.1", 5, "alice", "S3CRET"), 1100)
                .status,
            200
        );
        // While it is live, another source for the name is turned away.
        assert_eq!(w.call(&check("10.0.0.9", "S3CRET"), 1200).status, 409);
        let d = w.call(&check("10.0.0.8", "WRONG"), 1300);
        assert_eq!((d.status, d.failure), (403, true));
        assert!(is_limited(
            &Callback::parse(check("10.0.0.8", "x").as_bytes())
                .0
                .unwrap()
        ));
    }

    #[test]
    fn wrong_keys_are_refused_counted_and_never_logged() {
        let mut w = World::new();
        for body in [
            publish("10.0.0.1", 1, "alice", "WRONG"),
            "addr=10.0.0.1&clientid=1&call=publish&name=alice".to_string(),
            publish("10.0.0.1", 1, "old", "OLD"),
            publish("10.0.0.1", 1, "nobody", "S3CRET"),
        ] {
            let d = w.call(&body, 1000);
            assert_eq!((d.status, d.failure), (403, true), "{body}");
            let text = format!("{:?}", d.log);
            assert!(!text.contains("WRONG") && !text.contains("OLD\""), "{text}");
        }
    }

    #[test]
    fn malformed_callbacks_are_400_and_count_when_the_address_is_known() {
        let mut w = World::new();
        let dup = format!("{}&addr=1.1.1.1", publish("10.0.0.7", 1, "alice", "S3CRET"));
        let d = w.call(&dup, 1000);
        assert_eq!((d.status, d.failure), (400, true));
        assert!(d.log[0]
            .1
            .contains("from 10.0.0.7: duplicate \"addr\" field"));
        let d = w.call("garbage", 2000);
        assert_eq!((d.status, d.failure), (400, false));
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
        let d = w.call_with(&publish("10.0.0.2", 2, "alice", "S3CRET"), 3000, false);
        assert_eq!((d.status, d.failure), (403, false));
        assert!(d.log[0].1.ends_with("no usable keys file"));
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
        assert_eq!((d.status, d.failure), (403, false));
        assert!(d.log[0].1.contains("ending publish of \"alice\""));
    }

    #[test]
    fn only_publish_and_play_go_through_limits() {
        let cb = |body: &str| -> Callback<'static> {
            let body: &'static [u8] = Box::leak(body.as_bytes().to_vec().into_boxed_slice());
            Callback::parse(body).0.unwrap()
        };
        for call in ["publish", "play"] {
            assert!(is_limited(&cb(&format!(
                "call={call}&addr=10.0.0.1&name=a"
            ))));
        }
        for call in ["publish_done", "update_publish", "play_done", "done"] {
            assert!(!is_limited(&cb(&format!(
                "call={call}&addr=10.0.0.1&name=a"
            ))));
        }
        assert!(!is_limited(&cb(
            "call=play&addr=127.0.0.1:1936/feed&name=a"
        )));
    }
}
