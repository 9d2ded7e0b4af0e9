//! Who is live: one slot per stream name, shared by all workers, fed by nginx-rtmp's
//! publish, update and publish_done callbacks.
//!
//! A stream is live from an accepted publish until its publish_done, and only while the
//! publisher's RTMP connection is still open in a running worker: the module sees nginx
//! accept and close every RTMP connection, so a publisher lost without a publish_done (a
//! killed worker, a callback that could not be sent) neither stays "live" nor blocks its
//! own name, and a live stream does not depend on nginx-rtmp's heartbeats arriving. Only
//! when the connection is unknown (an entry older than the module's view, or one the
//! connection table had to drop) does the heartbeat decide: a stream whose last publish or
//! update is older than the live timeout is offline.

use crate::audience::{Audience, Figures, Step};
use crate::table::{self, Claim, Slot};
use streamedge_formats::name::MAX_NAME_LEN;

/// A stream name as a fixed-size key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct NameKey {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

impl Default for NameKey {
    fn default() -> Self {
        NameKey {
            len: 0,
            bytes: [0; MAX_NAME_LEN],
        }
    }
}

impl NameKey {
    /// `None` for names longer than any valid stream name.
    pub fn new(name: &str) -> Option<Self> {
        let b = name.as_bytes();
        let mut key = NameKey::default();
        key.bytes.get_mut(..b.len())?.copy_from_slice(b);
        key.len = b.len() as u8;
        Some(key)
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from a `&str` in `new`.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// What the registry keeps per stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct StreamState {
    pub live: bool,
    /// Plays only through signed links (from the name's key).
    pub private: bool,
    /// nginx-rtmp's connection number of the current publisher.
    pub clientid: u64,
    /// Wall-clock milliseconds when the stream went live, or offline.
    pub since: i64,
    /// Monotonic milliseconds of the last publish or update.
    pub seen: u64,
    /// Players, likes and listeners of the current (or last) broadcast.
    pub audience: Audience,
}

pub type StreamSlot = Slot<NameKey, StreamState>;

/// Whether an RTMP connection (by nginx's connection number, nginx-rtmp's `clientid`) is
/// open in a running worker; `None` when that is not known.
pub type ConnOpen = fn(u64) -> Option<bool>;

/// No connection is known: liveness comes from callbacks alone.
pub fn unknown_conn(_clientid: u64) -> Option<bool> {
    None
}

/// Clocks and settings for one registry operation.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic milliseconds, the same clock in every worker.
    pub mono: u64,
    /// Wall-clock milliseconds since the epoch.
    pub wall_ms: i64,
    /// Without a sign of life for this long a stream whose connection is unknown is
    /// offline; `None`: no heartbeat.
    pub live_timeout: Option<u64>,
    pub conn_open: ConnOpen,
}

impl Now {
    fn is_live(&self, s: &StreamState) -> bool {
        if !s.live {
            return false;
        }
        match (self.conn_open)(s.clientid) {
            Some(open) => open,
            None => self
                .live_timeout
                .is_none_or(|t| self.mono.saturating_sub(s.seen) < t),
        }
    }
}

/// Outcome of a publish for the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    Live,
    /// Another publisher holds this name and is still alive.
    Busy,
    /// The table had to drop another stream's entry to make room.
    LiveEvicting,
    /// No slot at all (a zero-sized table): the stream may still publish.
    Untracked,
}

/// A view of the registry's slots, taken under the zone lock.
pub struct Registry<'a> {
    pub slots: &'a mut [StreamSlot],
    pub seed: [u64; 2],
}

impl Registry<'_> {
    fn hash(&self, key: &NameKey) -> u64 {
        table::hash(self.seed, key.as_str().as_bytes())
    }

    /// Records an accepted publish.
    pub fn publish(&mut self, key: &NameKey, clientid: u64, private: bool, now: &Now) -> Publish {
        let h = self.hash(key);
        let Some((i, how)) = table::claim(self.slots, h, key, now.mono, |s| !now.is_live(s)) else {
            return Publish::Untracked;
        };
        let s = &mut self.slots[i].value;
        if now.is_live(s) && s.clientid != clientid {
            return Publish::Busy;
        }
        *s = StreamState {
            live: true,
            private,
            clientid,
            since: now.wall_ms,
            seen: now.mono,
            audience: Audience::default(),
        };
        match how {
            Claim::Evicted => Publish::LiveEvicting,
            _ => Publish::Live,
        }
    }

    /// Records a heartbeat from a publisher that is still sending, with the name's current
    /// privacy (`None`: unknown, keep it). A heartbeat for a stream the registry lost (a zone
    /// that was recreated) brings it back.
    pub fn update(&mut self, key: &NameKey, clientid: u64, private: Option<bool>, now: &Now) {
        let h = self.hash(key);
        match table::find(self.slots, h, key) {
            Some(i) if self.slots[i].value.live && self.slots[i].value.clientid == clientid => {
                let slot = &mut self.slots[i];
                slot.value.seen = now.mono;
                slot.value.private = private.unwrap_or(slot.value.private);
                slot.touched = now.mono;
            }
            Some(i) if self.slots[i].value.live => {}
            _ => {
                // Unknown privacy for a stream seen again: private until known, the safe side.
                self.publish(key, clientid, private.unwrap_or(true), now);
            }
        }
    }

    /// Whether a stream the registry has seen is private; `None` if never seen.
    pub fn privacy(&self, key: &NameKey) -> Option<bool> {
        let i = table::find(self.slots, self.hash(key), key)?;
        Some(self.slots[i].value.private)
    }

    /// Records the end of a publish. An old publisher's late "done" does not end a newer one.
    pub fn done(&mut self, key: &NameKey, clientid: u64, now: &Now) -> bool {
        let h = self.hash(key);
        let Some(i) = table::find(self.slots, h, key) else {
            return false;
        };
        let s = &mut self.slots[i].value;
        if !s.live || s.clientid != clientid {
            return false;
        }
        s.live = false;
        s.since = now.wall_ms;
        true
    }

    /// Changes the audience of the broadcast of `name` that went live at `broadcast`, if
    /// it is still the current one; returns its figures then.
    pub fn audience(
        &mut self,
        name: &str,
        broadcast: Option<i64>,
        now: &Now,
        f: impl FnOnce(&mut Audience),
    ) -> Option<Figures> {
        let key = NameKey::new(name)?;
        let i = table::find(self.slots, self.hash(&key), &key)?;
        let s = &mut self.slots[i].value;
        if !now.is_live(s) || broadcast.is_some_and(|b| b != s.since) {
            return None;
        }
        f(&mut s.audience);
        Some(s.audience.figures(now.mono))
    }

    /// Counts a player's step (`audience::touch`) for the broadcast it was made in.
    pub fn player(&mut self, name: &str, broadcast: i64, step: Step, now: &Now) {
        self.audience(name, Some(broadcast), now, |a| a.step(step, now.mono));
    }
}

/// One stream as the registry lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub name: NameKey,
    pub live: bool,
    pub since: i64,
    pub private: bool,
    /// The current broadcast's audience, or the last one's.
    pub audience: Figures,
}

/// Every stream in `slots`.
pub fn list(slots: &[StreamSlot], now: &Now) -> Vec<Listed> {
    slots
        .iter()
        .filter(|s| s.used)
        .map(|s| Listed {
            name: s.key,
            live: now.is_live(&s.value),
            since: s.value.since,
            private: s.value.private,
            audience: s.value.audience.figures(now.mono),
        })
        .collect()
}

/// What the registry knows of one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub live: bool,
    pub private: bool,
    /// Wall-clock milliseconds when it went live (or last went offline).
    pub since: i64,
}

/// Whether `name` is live now, whether it is private, and since when; `None` if never seen.
pub fn lookup(slots: &[StreamSlot], seed: [u64; 2], name: &str, now: &Now) -> Option<Known> {
    let key = NameKey::new(name)?;
    let i = table::find(slots, table::hash(seed, name.as_bytes()), &key)?;
    let s = &slots[i].value;
    Some(Known {
        live: now.is_live(s),
        private: s.private,
        since: s.since,
    })
}

/// Whether a live stream's playlist (or thumbnail) belongs to the broadcast that started at `since_ms`: a
/// playlist written before it is the previous broadcast's, left until nginx-rtmp writes
/// the first one of this broadcast (a fragment later). Only a current playlist plays.
/// Milliseconds: a publisher that reconnects at once does so within the second its last
/// playlist was written.
pub fn playlist_is_current(playlist: &std::path::Path, since_ms: i64) -> bool {
    std::fs::metadata(playlist)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|t| t.as_millis() as i64 >= since_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(mono: u64, timeout: Option<u64>) -> Now {
        Now {
            mono,
            wall_ms: 1_700_000_000_000 + mono as i64,
            live_timeout: timeout,
            conn_open: unknown_conn,
        }
    }

    // Connections 100..199 are open, 200.. closed (or held by a dead worker), others unknown.
    fn conns(clientid: u64) -> Option<bool> {
        match clientid {
            100..200 => Some(true),
            200.. => Some(false),
            _ => None,
        }
    }

    #[test]
    fn an_open_connection_is_live_without_heartbeats() {
        let mut slots = vec![StreamSlot::default(); 32];
        let mut r = reg(&mut slots);
        let a = NameKey::new("alice").unwrap();
        let t = Some(30_000);
        let at = |mono| Now {
            conn_open: conns,
            ..now(mono, t)
        };
        r.publish(&a, 150, false, &at(0));
        // No update for far longer than the timeout: still live, its connection is open.
        assert_eq!(live_names(&r, &at(600_000)), ["alice"]);
        assert_eq!(r.publish(&a, 151, false, &at(600_000)), Publish::Busy);
    }

    #[test]
    fn a_closed_connection_frees_the_name_at_once() {
        let mut slots = vec![StreamSlot::default(); 32];
        let mut r = reg(&mut slots);
        let a = NameKey::new("alice").unwrap();
        let at = |mono| Now {
            conn_open: conns,
            ..now(mono, Some(30_000))
        };
        // Its worker was killed: no publish_done ever comes.
        r.publish(&a, 250, false, &at(0));
        assert!(live_names(&r, &at(100)).is_empty());
        assert_eq!(r.publish(&a, 150, false, &at(200)), Publish::Live);
        assert_eq!(live_names(&r, &at(300)), ["alice"]);
    }

    fn reg(slots: &mut [StreamSlot]) -> Registry<'_> {
        Registry {
            slots,
            seed: [3, 4],
        }
    }

    fn live_names(r: &Registry<'_>, n: &Now) -> Vec<String> {
        list(r.slots, n)
            .into_iter()
            .filter(|e| e.live)
            .map(|e| e.name.as_str().to_string())
            .collect()
    }

    #[test]
    fn publish_then_done() {
        let mut slots = vec![StreamSlot::default(); 32];
        let mut r = reg(&mut slots);
        let alice = NameKey::new("alice").unwrap();
        assert_eq!(r.publish(&alice, 7, false, &now(1000, None)), Publish::Live);
        assert_eq!(live_names(&r, &now(2000, None)), ["alice"]);
        // A second publisher for a live name is refused; the first stays live.
        assert_eq!(r.publish(&alice, 8, false, &now(3000, None)), Publish::Busy);
        // A stale done from another client changes nothing.
        assert!(!r.done(&alice, 8, &now(3000, None)));
        assert!(r.done(&alice, 7, &now(4000, None)));
        assert!(live_names(&r, &now(5000, None)).is_empty());
        let all = list(r.slots, &now(5000, None));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].since, 1_700_000_004_000);
        assert_eq!(r.publish(&alice, 9, false, &now(6000, None)), Publish::Live);
    }

    #[test]
    fn an_audience_belongs_to_one_broadcast() {
        let mut slots = vec![StreamSlot::default(); 32];
        let mut r = reg(&mut slots);
        let alice = NameKey::new("alice").unwrap();
        let like = |r: &mut Registry<'_>, t| {
            r.audience("alice", None, &now(t, None), |a| {
                a.like();
            })
        };
        assert_eq!(like(&mut r, 0), None, "never live");
        r.publish(&alice, 7, false, &now(1000, None));
        let since = 1_700_000_001_000;
        let step = crate::audience::Step { from: None, to: 0 };
        r.player("alice", since, step, &now(1000, None));
        // A step made for an earlier broadcast is not counted in this one.
        r.player("alice", since - 1, step, &now(1000, None));
        like(&mut r, 1100);
        let f = like(&mut r, 1200).unwrap();
        assert_eq!((f.now, f.total, f.likes), (1, 1, 2));
        r.done(&alice, 7, &now(2000, None));
        assert_eq!(like(&mut r, 2100), None, "offline");
        // The last broadcast's figures stay listed until the next publish.
        assert_eq!(list(r.slots, &now(2100, None))[0].audience.likes, 2);
        r.publish(&alice, 8, false, &now(3000, None));
        assert_eq!(
            list(r.slots, &now(3000, None))[0].audience,
            Figures::default()
        );
    }

    #[test]
    fn heartbeat_keeps_alive_and_silence_ends() {
        let mut slots = vec![StreamSlot::default(); 32];
        let mut r = reg(&mut slots);
        let bob = NameKey::new("bob").unwrap();
        let t = Some(30_000);
        r.publish(&bob, 1, false, &now(0, t));
        r.update(&bob, 1, None, &now(20_000, t));
        assert_eq!(live_names(&r, &now(45_000, t)), ["bob"]);
        assert!(live_names(&r, &now(50_000, t)).is_empty());
        // The silent publisher no longer blocks the name.
        assert_eq!(r.publish(&bob, 2, false, &now(50_000, t)), Publish::Live);
    }

    #[test]
    fn update_for_an_unknown_stream_restores_it() {
        let mut slots = vec![StreamSlot::default(); 8];
        let mut r = reg(&mut slots);
        let c = NameKey::new("carol").unwrap();
        r.update(&c, 5, None, &now(100, None));
        assert_eq!(live_names(&r, &now(200, None)), ["carol"]);
        // Seen again without knowing its key: private until an update says otherwise.
        let known = |r: &Registry<'_>, t| {
            lookup(r.slots, r.seed, "carol", &now(t, None)).map(|k| (k.live, k.private))
        };
        assert_eq!(known(&r, 200), Some((true, true)));
        r.update(&c, 5, Some(false), &now(300, None));
        assert_eq!(known(&r, 300), Some((true, false)));
        assert_eq!(lookup(r.slots, r.seed, "nobody", &now(300, None)), None);
    }

    #[test]
    fn only_a_playlist_written_since_the_publish_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.m3u8");
        assert!(!playlist_is_current(&p, 0), "no playlist yet");
        std::fs::write(&p, "#EXTM3U\n").unwrap();
        let written = std::fs::metadata(&p)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(playlist_is_current(&p, written));
        assert!(playlist_is_current(&p, written - 60_000));
        assert!(
            !playlist_is_current(&p, written + 1),
            "the previous broadcast's"
        );
    }

    #[test]
    fn name_keys() {
        assert_eq!(NameKey::new("abc").unwrap().as_str(), "abc");
        assert!(NameKey::new(&"x".repeat(65)).is_none());
    }
}
