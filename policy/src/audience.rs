//! Who is watching or listening: players counted per stream and broadcast, likes, and the
//! listeners the sidecar serves itself (`/listen/NAME`).
//!
//! HLS has no connection per viewer: a player asks for its playlist again every segment or
//! so, and that request is what counts. A player is known by the address it asks from (an
//! IPv4 address or IPv6 /64) and either the `X-Playback-Session-Id` header (Apple's players
//! send one per playback; the web page sends one too) or, without it, its `User-Agent`.
//! It counts while it asked within the last [`WINDOW`] buckets of [`BUCKET_MS`] (25 to 30 s).
//!
//! Counting is constant work per request: each player's slot (in its own shared table)
//! remembers the bucket it was last counted in, and each stream keeps a ring of counters,
//! one per bucket, in its registry entry. A player that asks again within the same bucket
//! changes nothing; one that asks in a later bucket moves from its old bucket's counter to
//! the new one; one not seen within the window (or seen in an earlier broadcast) starts a
//! new session, which the broadcast's total counts. Buckets that fall out of the window
//! simply stop counting: nobody has to sweep.

use crate::table::{self, Claim, Slot};
use streamedge_formats::name::check_name;

/// The length of one bucket, in milliseconds.
pub const BUCKET_MS: u64 = 5_000;
/// Buckets a player counts in after its last request: the current one and five before.
pub const WINDOW: u32 = 6;
/// Counters in a stream's ring: more than the window, so a bucket is never counted twice.
const RING: usize = 8;
/// The sidecar's own listener count is trusted this long after its last report.
pub const DIRECT_TTL_MS: u64 = 30_000;

/// The bucket of a monotonic time.
pub fn bucket(mono_ms: u64) -> u32 {
    (mono_ms / BUCKET_MS) as u32
}

/// A stream's audience, for one broadcast (reset at each publish).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Audience {
    ids: [u32; RING],
    counts: [u32; RING],
    pub likes: u32,
    /// The most players at once (HLS and the sidecar's listeners together).
    pub peak: u32,
    /// HLS sessions this broadcast: players that came, counted once per visit.
    pub total: u32,
    /// The sidecar's listeners now, as it last reported them, and all it reported joining.
    direct: u32,
    direct_total: u32,
    direct_seen: u64,
}

/// How a player's request moves it between buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The bucket it was counted in, still within the window; `None`: a new session.
    pub from: Option<u32>,
    pub to: u32,
}

/// The figures shown for a broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Players watching or listening now.
    pub now: u32,
    pub peak: u32,
    /// Sessions this broadcast, HLS and direct listeners together.
    pub total: u32,
    pub likes: u32,
}

impl Audience {
    fn hls_now(&self, bucket: u32) -> u32 {
        self.ids
            .iter()
            .zip(self.counts)
            .filter(|(id, _)| bucket.wrapping_sub(**id) < WINDOW)
            .map(|(_, c)| c)
            .sum()
    }

    fn direct_now(&self, mono: u64) -> u32 {
        if mono.saturating_sub(self.direct_seen) < DIRECT_TTL_MS {
            self.direct
        } else {
            0
        }
    }

    /// Players now, at monotonic time `mono`.
    pub fn now(&self, mono: u64) -> u32 {
        self.hls_now(bucket(mono))
            .saturating_add(self.direct_now(mono))
    }

    pub fn figures(&self, mono: u64) -> Figures {
        let now = self.now(mono);
        Figures {
            now,
            peak: self.peak.max(now),
            total: self.total.saturating_add(self.direct_total),
            likes: self.likes,
        }
    }

    /// Applies a player's step (from [`touch`]).
    pub fn step(&mut self, step: Step, mono: u64) {
        if let Some(from) = step.from {
            let i = from as usize % RING;
            if self.ids[i] == from {
                self.counts[i] = self.counts[i].saturating_sub(1);
            }
        } else {
            self.total = self.total.saturating_add(1);
        }
        let i = step.to as usize % RING;
        if self.ids[i] != step.to {
            self.ids[i] = step.to;
            self.counts[i] = 0;
        }
        self.counts[i] = self.counts[i].saturating_add(1);
        self.peak = self.peak.max(self.now(mono));
    }

    /// The sidecar's report: `now` listeners, `joined` of them new since its last report.
    pub fn direct(&mut self, now: u32, joined: u32, mono: u64) {
        self.direct = now;
        self.direct_total = self.direct_total.saturating_add(joined);
        self.direct_seen = mono;
        self.peak = self.peak.max(self.now(mono));
    }

    pub fn like(&mut self) -> u32 {
        self.likes = self.likes.saturating_add(1);
        self.likes
    }
}

/// What a player's slot remembers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PlayerState {
    /// The broadcast it was counted in (when it went live, wall-clock milliseconds).
    broadcast: i64,
    bucket: u32,
}

pub type PlayerSlot = Slot<u64, PlayerState>;

/// The key of a player of stream `name`: the client (`ClientKey` bytes) and its session id
/// or user agent, hashed with the zone's seed.
pub fn player_key(seed: [u64; 2], name: &str, client: &[u8], id: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(name.len() + client.len() + id.len() + 2);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(client);
    bytes.push(0);
    bytes.extend_from_slice(id);
    table::hash(seed, &bytes)
}

/// Records a player's request for a playlist of the broadcast that went live at
/// `broadcast`; returns how its stream's counters move, `None` if they stay.
pub fn touch(slots: &mut [PlayerSlot], key: u64, broadcast: i64, mono: u64) -> Option<Step> {
    let to = bucket(mono);
    let expired = |p: &PlayerState| to.wrapping_sub(p.bucket) >= WINDOW;
    // The key is a hash already: it places the slot too.
    let (i, how) = table::claim(slots, key, &key, mono, expired)?;
    let p = &mut slots[i].value;
    let known = how == Claim::Found && p.broadcast == broadcast && !expired(p);
    if known && p.bucket == to {
        return None;
    }
    let from = known.then_some(p.bucket);
    *p = PlayerState {
        broadcast,
        bucket: to,
    };
    Some(Step { from, to })
}

/// The sidecar's report, `name=NAME&now=N&joined=J` in any order.
pub fn parse_report(args: &[u8]) -> Option<(&str, u32, u32)> {
    let (mut name, mut now, mut total) = (None, None, None);
    for pair in args.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let number = || std::str::from_utf8(v).ok()?.parse::<u32>().ok();
        match k {
            b"name" if check_name(v).is_ok() => name = std::str::from_utf8(v).ok(),
            b"now" => now = number(),
            b"joined" => total = number(),
            _ => return None,
        }
    }
    Some((name?, now?, total?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_700_000_000_000;

    struct World {
        slots: Vec<PlayerSlot>,
        audience: Audience,
    }

    impl World {
        fn new() -> Self {
            World {
                slots: vec![PlayerSlot::default(); 256],
                audience: Audience::default(),
            }
        }

        fn ask(&mut self, player: &str, broadcast: i64, mono: u64) {
            let key = player_key([1, 2], "alice", b"\x7f\0\0\x01", player.as_bytes());
            if let Some(step) = touch(&mut self.slots, key, broadcast, mono) {
                self.audience.step(step, mono);
            }
        }
    }

    #[test]
    fn players_count_while_they_ask_and_stop_counting_after_the_window() {
        let mut w = World::new();
        // Three players ask every 2 s; one leaves at 20 s, the others at a minute.
        let play = |w: &mut World, from: u64, to: u64| {
            for t in (from..to).step_by(2_000) {
                if t < 60_000 {
                    w.ask("a", S, t);
                    w.ask("b", S, t + 300);
                }
                if t < 20_000 {
                    w.ask("c", S, t + 700);
                }
            }
        };
        play(&mut w, 0, 20_000);
        assert_eq!(w.audience.now(20_000), 3);
        // "c" last asked at 18.7 s: counted until its bucket leaves the window.
        play(&mut w, 20_000, 44_000);
        assert_eq!(w.audience.now(44_000), 3);
        play(&mut w, 44_000, 46_000);
        assert_eq!(w.audience.now(46_000), 2);
        play(&mut w, 46_000, 60_000);
        let f = w.audience.figures(60_000);
        assert_eq!((f.now, f.peak, f.total), (2, 3, 3));
        // Nobody asks any more: all gone 30 s after the last request at most.
        assert_eq!(w.audience.now(58_000 + 25_000), 2);
        assert_eq!(w.audience.now(58_300 + 30_000), 0);
    }

    #[test]
    fn a_player_coming_back_after_the_window_is_a_new_session() {
        let mut w = World::new();
        w.ask("a", S, 0);
        w.ask("a", S, 4_000);
        assert_eq!(w.audience.figures(4_000).total, 1);
        w.ask("a", S, 100_000);
        let f = w.audience.figures(100_000);
        assert_eq!((f.now, f.peak, f.total), (1, 1, 2));
    }

    #[test]
    fn a_new_broadcast_counts_from_zero() {
        let mut w = World::new();
        w.ask("a", S, 0);
        w.ask("b", S, 0);
        // The stream is published again: its registry entry starts a fresh audience.
        w.audience = Audience::default();
        w.ask("a", S + 60_000, 1_000);
        let f = w.audience.figures(1_000);
        assert_eq!((f.now, f.peak, f.total), (1, 1, 1));
    }

    #[test]
    fn requests_within_a_bucket_change_nothing() {
        let mut w = World::new();
        let key = player_key([1, 2], "alice", b"\x7f\0\0\x01", b"a");
        assert!(touch(&mut w.slots, key, S, 0).is_some());
        assert_eq!(touch(&mut w.slots, key, S, 4_999), None);
        assert_eq!(
            touch(&mut w.slots, key, S, 5_000),
            Some(Step {
                from: Some(0),
                to: 1
            })
        );
    }

    #[test]
    fn the_sidecars_listeners_count_while_reported() {
        let mut w = World::new();
        w.ask("a", S, 0);
        w.audience.direct(4, 6, 1_000);
        let f = w.audience.figures(1_000);
        assert_eq!((f.now, f.peak, f.total), (5, 5, 7));
        // Reports add up the listeners who joined since the one before.
        w.audience.direct(4, 1, 2_000);
        assert_eq!(w.audience.figures(2_000).total, 8);
        // A report not renewed (the sidecar stopped) no longer counts.
        assert_eq!(w.audience.now(2_000 + DIRECT_TTL_MS), 0);
        assert_eq!(w.audience.figures(2_000 + DIRECT_TTL_MS).peak, 5);
    }

    #[test]
    fn players_are_told_apart_by_stream_client_and_id() {
        let k = |name, client: &[u8], id: &[u8]| player_key([1, 2], name, client, id);
        let a = k("alice", b"\x01\x02\x03\x04", b"VLC/3.0");
        assert_ne!(a, k("alice2", b"\x01\x02\x03\x04", b"VLC/3.0"));
        assert_ne!(a, k("alice", b"\x01\x02\x03\x05", b"VLC/3.0"));
        assert_ne!(a, k("alice", b"\x01\x02\x03\x04", b"VLC/3.1"));
        // No field can borrow bytes from the next.
        assert_ne!(k("ab", b"c", b""), k("a", b"bc", b""));
    }

    #[test]
    fn a_full_table_forgets_the_oldest_players_not_the_counts() {
        let mut w = World {
            slots: vec![PlayerSlot::default(); 4],
            audience: Audience::default(),
        };
        for p in 0..10 {
            w.ask(&p.to_string(), S, 100);
        }
        assert_eq!(w.audience.now(100), 10);
        assert_eq!(w.audience.figures(100).total, 10);
    }

    #[test]
    fn likes_add_up() {
        let mut a = Audience::default();
        assert_eq!(a.like(), 1);
        assert_eq!(a.like(), 2);
        assert_eq!(a.figures(0).likes, 2);
    }

    #[test]
    fn reports_name_a_stream_and_two_counts() {
        assert_eq!(
            parse_report(b"name=alice&now=3&joined=9"),
            Some(("alice", 3, 9))
        );
        assert_eq!(parse_report(b"joined=9&now=0&name=a"), Some(("a", 0, 9)));
        for bad in [
            &b""[..],
            b"name=alice&now=3",
            b"name=../x&now=1&joined=1",
            b"name=alice&now=-1&joined=1",
            b"name=alice&now=1&joined=1&x=2",
            b"name=alice&now=1&total=1",
        ] {
            assert_eq!(parse_report(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
