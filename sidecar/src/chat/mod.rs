//! A chat per stream: viewers talk over a WebSocket that nginx hands to the sidecar
//! (`GET /api/chat/NAME/ws`), and each message reaches every viewer of that stream at once.
//!
//! A room exists for every public stream name with an active key, checked again at each
//! use (a name made private or revoked loses its chat at once). It keeps its last
//! [`HISTORY`] messages in `DATA/chat/rooms/NAME.json` (0600: they name the address each
//! came from, for the owner's bans), written at most once a second (at once for a
//! deletion), so they survive a restart and greet a newcomer. Safe by default: a message is
//! plain text (the page never reads it as HTML), at most [`MAX_TEXT`] characters from a
//! nickname of at most [`MAX_NICK`]; each client (an address, over all its connections)
//! may send one a second with a burst of five (`ws::Limiter`), and one that keeps on past
//! that is banned for ten minutes. The owner deletes messages and bans nicknames or
//! addresses (`DATA/chat/bans.json`); a banned client is refused at its next message.
//! nginx's limit zone on the upgrade keeps connection floods out before they get here, and
//! at most [`MAX_SOCKETS`] viewers are connected at once.
//!
//! Beside the messages each room hears its stream's audience (viewers, likes) as the
//! module's registry counts it, within a second of a change.

pub mod ws;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamedge_formats::name::check_name;
use streamedge_formats::streams::{is_format, Stream};
use tokio::sync::{broadcast, watch};

use crate::error::Error;
use crate::fsutil::write_atomic;

/// Messages a room keeps.
pub const HISTORY: usize = 100;
/// The longest message, in characters.
pub const MAX_TEXT: usize = 500;
/// The longest nickname, in characters.
pub const MAX_NICK: usize = 24;
/// How long a client that flooded is banned.
pub const FLOOD_BAN: Duration = Duration::from_secs(600);
/// Events a room buffers for a viewer that reads slowly before it skips some.
const BACKLOG: usize = 256;
/// Viewers connected to all chats at once; more are told the chat is full.
pub const MAX_SOCKETS: usize = 10_000;

/// One message, as kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    pub id: u64,
    pub nick: String,
    pub text: String,
    /// When it was sent (RFC 3339).
    pub at: String,
    /// Who sent it: an IPv4 address or an IPv6 /64. The owner's to see, never the public's.
    pub client: String,
}

/// One message, as viewers see it: no address.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Shown<'a> {
    pub id: u64,
    pub nick: &'a str,
    pub text: &'a str,
    pub at: &'a str,
}

impl Stored {
    pub fn shown(&self) -> Shown<'_> {
        Shown {
            id: self.id,
            nick: &self.nick,
            text: &self.text,
            at: &self.at,
        }
    }
}

/// A room's file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RoomFile {
    next_id: u64,
    messages: VecDeque<Stored>,
}

/// The owner's bans: nicknames (compared without case) and clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bans {
    #[serde(default)]
    pub nicks: BTreeSet<String>,
    #[serde(default)]
    pub clients: BTreeSet<String>,
}

struct Room {
    file: RoomFile,
    dirty: bool,
    events: broadcast::Sender<Arc<str>>,
    /// The audience event last sent, to send only changes.
    audience: Option<String>,
}

/// What a newcomer gets: the history, the room's events from now on, the audience event
/// last sent.
pub struct Joined {
    pub history: Vec<Stored>,
    pub events: broadcast::Receiver<Arc<str>>,
    pub audience: Option<String>,
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you are banned from this chat")]
    Banned,
    #[error("choose a nickname (at most {MAX_NICK} characters)")]
    BadNick,
    #[error("the message is empty")]
    Empty,
    #[error("the message is too long ({0} characters, at most {MAX_TEXT})")]
    TooLong(usize),
    #[error("slow down: at most one message a second")]
    TooFast,
}

struct Inner {
    dir: PathBuf,
    keys_file: PathBuf,
    rooms: Mutex<HashMap<String, Room>>,
    bans: Mutex<Bans>,
    /// Clients banned for flooding, until when.
    flooders: Mutex<HashMap<String, Instant>>,
    /// Each client's message limit, over all its connections, and when it last spoke.
    limits: Mutex<HashMap<String, (ws::Limiter, Instant)>>,
    sockets: Arc<tokio::sync::Semaphore>,
}

/// Every room, shared by the API and the WebSocket tasks.
#[derive(Clone)]
pub struct Chat(Arc<Inner>);

/// Text as shown: no control or invisible formatting characters, line breaks and tabs as
/// spaces, no spaces around it.
pub fn clean(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_format(*c))
        .collect();
    text.trim().to_string()
}

fn nick_key(nick: &str) -> String {
    clean(nick).to_lowercase()
}

impl Chat {
    /// Opens the chat folder (made 0700 if missing) and the owner's bans.
    pub fn open(layout: &streamedge_formats::layout::Layout) -> Result<Chat> {
        let dir = layout.root().join("chat");
        crate::fsutil::ensure_dir(&dir.join("rooms"), 0o700, None)?;
        crate::fsutil::ensure_dir(&dir, 0o700, None)?;
        let bans = match std::fs::read_to_string(dir.join("bans.json")) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!("invalid chat bans {}", dir.join("bans.json").display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Bans::default(),
            Err(e) => return Err(e).context("cannot read the chat bans"),
        };
        Ok(Chat(Arc::new(Inner {
            dir,
            keys_file: layout.keys_file(),
            rooms: Mutex::new(HashMap::new()),
            bans: Mutex::new(bans),
            flooders: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            sockets: Arc::new(tokio::sync::Semaphore::new(MAX_SOCKETS)),
        })))
    }

    /// A seat for one more viewer, if the chats are not full.
    pub fn seat(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.sockets.clone().try_acquire_owned().ok()
    }

    /// The message limit of `client`, over all its connections.
    pub fn limit(&self, client: &str) -> ws::Verdict {
        let now = Instant::now();
        let mut limits = self.0.limits.lock().expect("not poisoned");
        if limits.len() > 10_000 {
            // Clients quiet for two minutes start afresh.
            limits.retain(|_, (_, last)| now.duration_since(*last) < Duration::from_secs(120));
        }
        let (limiter, last) = limits
            .entry(client.to_string())
            .or_insert_with(|| (ws::Limiter::new(), now));
        *last = now;
        limiter.check(now)
    }

    fn room_file(&self, name: &str) -> PathBuf {
        // A folder of their own: no stream name can be the bans file's.
        self.0.dir.join("rooms").join(format!("{name}.json"))
    }

    /// Whether `name` is a public stream with an active key now.
    fn is_public(&self, name: &str) -> Result<bool, Error> {
        Ok(crate::keys::is_public(
            &crate::keys::load(&self.0.keys_file)?,
            name,
        ))
    }

    /// Runs `f` on room `name`, opened from its file the first time. Only public names
    /// with an active key have a room: anything else is "not found", as for a player.
    fn with_room<R>(&self, name: &str, f: impl FnOnce(&mut Room) -> R) -> Result<R, Error> {
        let missing = || {
            Error::NotFound(format!(
                "no stream \"{}\" to chat about",
                name.escape_debug()
            ))
        };
        check_name(name.as_bytes()).map_err(|_| missing())?;
        // Outside the rooms' lock: a disk read holds up no other room.
        if !self.is_public(name)? {
            self.0.rooms.lock().expect("not poisoned").remove(name);
            return Err(missing());
        }
        let loaded = {
            let rooms = self.0.rooms.lock().expect("not poisoned");
            rooms.contains_key(name)
        };
        let file = if loaded {
            None
        } else {
            Some(read_room(&self.room_file(name))?)
        };
        let mut rooms = self.0.rooms.lock().expect("not poisoned");
        if !rooms.contains_key(name) {
            // Dropped meanwhile (rare): read under the lock after all.
            let file = match file {
                Some(f) => f,
                None => read_room(&self.room_file(name))?,
            };
            rooms.insert(
                name.to_string(),
                Room {
                    file,
                    dirty: false,
                    events: broadcast::channel(BACKLOG).0,
                    audience: None,
                },
            );
        }
        Ok(f(rooms.get_mut(name).expect("inserted above")))
    }

    /// A newcomer's view of room `name`.
    pub fn join(&self, name: &str) -> Result<Joined, Error> {
        self.with_room(name, |room| Joined {
            history: room.file.messages.iter().cloned().collect(),
            events: room.events.subscribe(),
            audience: room.audience.clone(),
        })
    }

    /// The history of `name` as viewers see it.
    pub fn history(&self, name: &str) -> Result<Vec<Stored>, Error> {
        self.with_room(name, |room| room.file.messages.iter().cloned().collect())
    }

    pub fn is_banned(&self, client: &str, nick: &str) -> bool {
        let banned = {
            let bans = self.0.bans.lock().expect("not poisoned");
            bans.clients.contains(client) || bans.nicks.contains(&nick_key(nick))
        };
        banned || {
            let mut flooders = self.0.flooders.lock().expect("not poisoned");
            let now = Instant::now();
            flooders.retain(|_, until| *until > now);
            flooders.contains_key(client)
        }
    }

    /// Bans a client that flooded the chat, for [`FLOOD_BAN`].
    pub fn ban_flooder(&self, client: &str) {
        tracing::warn!(
            "chat: banning {client} for {}s: too many messages",
            FLOOD_BAN.as_secs()
        );
        self.0
            .flooders
            .lock()
            .expect("not poisoned")
            .insert(client.to_string(), Instant::now() + FLOOD_BAN);
    }

    /// Takes a message from `client` into room `name` and sends it to every viewer.
    pub fn post(
        &self,
        name: &str,
        client: &str,
        nick: &str,
        text: &str,
    ) -> Result<Result<u64, Refusal>, Error> {
        let nick = clean(nick);
        let text = clean(text);
        if self.is_banned(client, &nick) {
            return Ok(Err(Refusal::Banned));
        }
        if nick.is_empty() || nick.chars().count() > MAX_NICK {
            return Ok(Err(Refusal::BadNick));
        }
        let len = text.chars().count();
        if len == 0 {
            return Ok(Err(Refusal::Empty));
        }
        if len > MAX_TEXT {
            return Ok(Err(Refusal::TooLong(len)));
        }
        self.with_room(name, |room| {
            room.file.next_id += 1;
            let m = Stored {
                id: room.file.next_id,
                nick,
                text,
                at: streamedge_formats::time::rfc3339(std::time::SystemTime::now()),
                client: client.to_string(),
            };
            let event = json!({"type": "message", "message": m.shown()}).to_string();
            room.file.messages.push_back(m);
            while room.file.messages.len() > HISTORY {
                room.file.messages.pop_front();
            }
            room.dirty = true;
            // Nobody listening is fine: the message is kept for the next viewer.
            let _ = room.events.send(event.into());
            Ok(room.file.next_id)
        })
    }

    /// The owner removes message `id` from room `name`; viewers are told to drop it.
    pub fn delete(&self, name: &str, id: u64) -> Result<Stored, Error> {
        self.with_room(name, |room| {
            let i = room
                .file
                .messages
                .iter()
                .position(|m| m.id == id)
                .ok_or_else(|| Error::NotFound(format!("no message {id} in this chat")))?;
            let m = room.file.messages.remove(i).expect("found above");
            room.dirty = true;
            let _ = room
                .events
                .send(json!({"type": "deleted", "id": id}).to_string().into());
            Ok(m)
        })?
        .inspect(|_| {
            // Gone from the disk at once too: a crash now does not bring it back.
            self.flush();
        })
    }

    pub fn bans(&self) -> Bans {
        self.0.bans.lock().expect("not poisoned").clone()
    }

    /// Adds (or with `add` false, lifts) a ban; returns the bans as they are now.
    pub fn set_ban(&self, ban: &Ban, add: bool) -> Result<Bans, Error> {
        let mut bans = self.0.bans.lock().expect("not poisoned");
        let mut next = bans.clone();
        let changed = match ban {
            Ban::Nick(n) => {
                let key = nick_key(n);
                if key.is_empty() {
                    return Err(Error::Invalid("a nickname to ban is not empty".into()));
                }
                if add {
                    next.nicks.insert(key)
                } else {
                    next.nicks.remove(&key)
                }
            }
            Ban::Client(c) => {
                let c = client_text(c).ok_or_else(|| {
                    Error::Invalid(format!("\"{}\" is not an IP address", c.escape_debug()))
                })?;
                if add {
                    next.clients.insert(c)
                } else {
                    next.clients.remove(&c)
                }
            }
        };
        if !changed && !add {
            return Err(Error::NotFound("no such ban".into()));
        }
        let text = serde_json::to_string_pretty(&next).expect("plain data serializes");
        write_atomic(&self.0.dir.join("bans.json"), text.as_bytes(), 0o600, None)?;
        if !add {
            if let Ban::Client(c) = ban {
                if let Some(c) = client_text(c) {
                    self.0.flooders.lock().expect("not poisoned").remove(&c);
                }
            }
        }
        *bans = next.clone();
        Ok(next)
    }

    /// Who sent message `id` of room `name`.
    pub fn sender(&self, name: &str, id: u64) -> Result<String, Error> {
        self.with_room(name, |room| {
            room.file
                .messages
                .iter()
                .find(|m| m.id == id)
                .map(|m| m.client.clone())
                .ok_or_else(|| Error::NotFound(format!("no message {id} in this chat")))
        })?
    }

    /// Writes every room changed since the last call.
    pub fn flush(&self) {
        let dirty: Vec<(String, String)> = {
            let mut rooms = self.0.rooms.lock().expect("not poisoned");
            rooms
                .iter_mut()
                .filter(|(_, r)| r.dirty)
                .map(|(name, r)| {
                    r.dirty = false;
                    let text = serde_json::to_string(&r.file).expect("plain data serializes");
                    (name.clone(), text)
                })
                .collect()
        };
        for (name, text) in dirty {
            if let Err(e) = write_atomic(&self.room_file(&name), text.as_bytes(), 0o600, None) {
                tracing::warn!("chat: cannot keep the messages of {name}: {e:#}");
                // Tried again at the next flush.
                if let Some(r) = self.0.rooms.lock().expect("not poisoned").get_mut(&name) {
                    r.dirty = true;
                }
            }
        }
    }

    /// Tells each room with viewers its stream's audience, when it changed (rooms of names
    /// no longer public hear nothing, and are closed at their next use).
    fn announce(&self, streams: &[Stream]) {
        let keys = crate::keys::load(&self.0.keys_file).unwrap_or_default();
        let mut rooms = self.0.rooms.lock().expect("not poisoned");
        for (name, room) in rooms.iter_mut() {
            let public = crate::keys::is_public(&keys, name);
            if room.events.receiver_count() == 0 || !public {
                continue;
            }
            let s = streams.iter().find(|s| s.name == *name);
            let event = audience_event(s);
            if room.audience.as_deref() != Some(event.as_str()) {
                let _ = room.events.send(event.clone().into());
                room.audience = Some(event);
            }
        }
    }

    /// Until `stop`: keeps the rooms' files and tells viewers the audience; flushes at the end.
    pub async fn run(
        self,
        mut streams: watch::Receiver<Arc<Vec<Stream>>>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(),
                changed = streams.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let list = streams.borrow_and_update().clone();
                    self.announce(&list);
                }
                _ = stop.cancelled() => break,
            }
        }
        self.flush();
    }
}

/// `{"type":"audience","live":…,"viewers":…,"likes":…,…}` for a stream, or offline.
fn audience_event(s: Option<&Stream>) -> String {
    let live = s.is_some_and(|s| s.live);
    let a = s
        .and_then(|s| s.audience)
        .filter(|_| live)
        .unwrap_or_default();
    json!({
        "type": "audience",
        "live": live,
        "since": s.filter(|_| live).and_then(|s| s.since.clone()),
        "viewers": a.viewers,
        "peak": a.peak,
        "total": a.total,
        "likes": a.likes,
    })
    .to_string()
}

fn read_room(path: &Path) -> Result<RoomFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<RoomFile>(&text) {
            Ok(mut f) => {
                while f.messages.len() > HISTORY {
                    f.messages.pop_front();
                }
                f.next_id = f.next_id.max(f.messages.back().map_or(0, |m| m.id));
                Ok(f)
            }
            Err(e) => {
                // A damaged file loses its history, not the chat: kept aside for a look.
                let aside = path.with_extension("json.damaged");
                tracing::warn!(
                    "chat: {} is damaged ({e}); starting afresh, the old file is {}",
                    path.display(),
                    aside.display()
                );
                let _ = std::fs::rename(path, &aside);
                Ok(RoomFile::default())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RoomFile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// What the owner bans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ban {
    Nick(String),
    /// An address; an IPv6 address bans its /64.
    Client(String),
}

/// A client as bans and limits know it: an IPv4 address, or the /64 of an IPv6 one
/// (`2001:db8:1:2::/64`); IPv4-mapped addresses as the IPv4 address.
pub fn client_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// An address as the owner writes it (`203.0.113.7`, `2001:db8::1`, `2001:db8::/64`), as
/// a client; `None` if it is none.
pub fn client_text(text: &str) -> Option<String> {
    let text = text.trim();
    let ip = text.strip_suffix("/64").unwrap_or(text);
    ip.parse().ok().map(client_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamedge_formats::layout::Layout;

    fn chat_with(names: &[(&str, bool)]) -> (tempfile::TempDir, Chat) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let mut keys = String::new();
        for (name, private) in names {
            keys.push_str(&format!(
                "[[key]]\nname = \"{name}\"\nhash = \"sha256:{}\"\ncreated = \"2026-12-04T18:00:00Z\"\nprivate = {private}\n\n",
                "00".repeat(32)
            ));
        }
        std::fs::write(layout.keys_file(), keys).unwrap();
        let chat = Chat::open(&layout).unwrap();
        (dir, chat)
    }

    #[test]
    fn messages_reach_viewers_and_survive_a_restart() {
        let (dir, chat) = chat_with(&[("alice", false)]);
        let (history, mut rx) = {
            let j = chat.join("alice").unwrap();
            (j.history, j.events)
        };
        assert!(history.is_empty());
        assert_eq!(
            chat.post("alice", "192.0.2.1", " Bo ", "hi\nthere")
                .unwrap(),
            Ok(1)
        );
        let event: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(event["type"], "message");
        assert_eq!(event["message"]["nick"], "Bo");
        assert_eq!(event["message"]["text"], "hi there");
        assert!(
            event["message"].get("client").is_none(),
            "no address for viewers"
        );
        chat.flush();
        let file = dir.path().join("chat/rooms/alice.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A new sidecar reads them back and goes on counting.
        let again = Chat::open(&Layout::new(dir.path())).unwrap();
        let history = again.history("alice").unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].client, "192.0.2.1");
        assert_eq!(
            again.post("alice", "192.0.2.1", "Bo", "again").unwrap(),
            Ok(2)
        );
    }

    #[test]
    fn only_the_last_hundred_are_kept() {
        let (_dir, chat) = chat_with(&[("alice", false)]);
        for i in 0..150 {
            chat.post("alice", "192.0.2.1", "n", &format!("m{i}"))
                .unwrap()
                .unwrap();
        }
        let h = chat.history("alice").unwrap();
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0].text, "m50");
    }

    #[test]
    fn rooms_only_for_public_names_with_a_key() {
        let (_dir, chat) = chat_with(&[("alice", false), ("secret", true)]);
        for name in ["secret", "nobody", "../etc", ""] {
            assert!(
                matches!(chat.history(name), Err(Error::NotFound(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_messages_are_refused_and_nothing_is_kept() {
        let (_dir, chat) = chat_with(&[("alice", false)]);
        let post = |nick: &str, text: &str| chat.post("alice", "192.0.2.1", nick, text).unwrap();
        assert_eq!(post("", "hi"), Err(Refusal::BadNick));
        assert_eq!(post("\u{202E}\u{200B}", "hi"), Err(Refusal::BadNick));
        assert_eq!(post(&"n".repeat(25), "hi"), Err(Refusal::BadNick));
        assert_eq!(post("n", " \u{7} "), Err(Refusal::Empty));
        assert_eq!(post("n", &"é".repeat(501)), Err(Refusal::TooLong(501)));
        assert!(post("n", &"é".repeat(500)).is_ok());
        assert_eq!(chat.history("alice").unwrap().len(), 1);
    }

    #[test]
    fn bans_by_nick_and_address_and_deletes() {
        let (dir, chat) = chat_with(&[("alice", false)]);
        let id = chat
            .post("alice", "2001:db8:1:2::/64", "Troll", "spam")
            .unwrap()
            .unwrap();
        let mut rx = chat.join("alice").unwrap().events;
        chat.delete("alice", id).unwrap();
        let deleted: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(deleted, json!({"type": "deleted", "id": 1}));
        assert!(chat.history("alice").unwrap().is_empty());
        assert!(matches!(chat.delete("alice", id), Err(Error::NotFound(_))));

        chat.set_ban(&Ban::Nick("TROLL ".into()), true).unwrap();
        assert_eq!(
            chat.post("alice", "192.0.2.9", "troll", "x").unwrap(),
            Err(Refusal::Banned)
        );
        // Any address of the /64.
        chat.set_ban(&Ban::Client("2001:db8:1:2:aaaa::1".into()), true)
            .unwrap();
        assert_eq!(
            chat.post("alice", "2001:db8:1:2::/64", "other", "x")
                .unwrap(),
            Err(Refusal::Banned)
        );
        assert!(chat
            .post("alice", "192.0.2.9", "friend", "x")
            .unwrap()
            .is_ok());
        // Kept across restarts, and lifted.
        let again = Chat::open(&Layout::new(dir.path())).unwrap();
        assert_eq!(
            again.bans().clients.iter().collect::<Vec<_>>(),
            ["2001:db8:1:2::/64"]
        );
        again.set_ban(&Ban::Nick("troll".into()), false).unwrap();
        assert!(again
            .post("alice", "192.0.2.9", "troll", "x")
            .unwrap()
            .is_ok());
        assert!(matches!(
            again.set_ban(&Ban::Nick("troll".into()), false),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            again.set_ban(&Ban::Client("nope".into()), true),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn a_flooder_is_banned_for_a_while() {
        let (_dir, chat) = chat_with(&[("alice", false)]);
        chat.ban_flooder("192.0.2.7");
        assert_eq!(
            chat.post("alice", "192.0.2.7", "n", "x").unwrap(),
            Err(Refusal::Banned)
        );
        // The owner lifts it.
        chat.set_ban(&Ban::Client("192.0.2.7".into()), true)
            .unwrap();
        chat.set_ban(&Ban::Client("192.0.2.7".into()), false)
            .unwrap();
        assert!(chat.post("alice", "192.0.2.7", "n", "x").unwrap().is_ok());
    }

    #[test]
    fn a_name_made_private_loses_its_chat_and_no_name_is_the_bans_file() {
        let (dir, chat) = chat_with(&[("alice", false), ("bans", false)]);
        chat.set_ban(&Ban::Nick("troll".into()), true).unwrap();
        // A stream called "bans" has a room of its own, and the owner's bans stay.
        chat.post("bans", "192.0.2.1", "n", "hi").unwrap().unwrap();
        chat.flush();
        let again = Chat::open(&Layout::new(dir.path())).unwrap();
        assert_eq!(again.bans().nicks.len(), 1);
        assert_eq!(again.history("bans").unwrap().len(), 1);
        // The owner makes alice private: her chat is gone at once, for everyone.
        assert!(chat.history("alice").is_ok());
        let keys = std::fs::read_to_string(dir.path().join("keys.toml")).unwrap();
        let private = keys.replacen("private = false", "private = true", 1);
        std::fs::write(dir.path().join("keys.toml"), private).unwrap();
        assert!(matches!(chat.history("alice"), Err(Error::NotFound(_))));
        assert!(matches!(
            chat.post("alice", "192.0.2.1", "n", "x"),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn the_limit_is_the_clients_over_all_its_connections() {
        let (_dir, chat) = chat_with(&[("alice", false)]);
        let passed = (0..20)
            .filter(|_| chat.limit("192.0.2.1") == ws::Verdict::Pass)
            .count();
        assert_eq!(passed, 5);
        assert_eq!(chat.limit("192.0.2.2"), ws::Verdict::Pass);
    }

    #[test]
    fn a_damaged_file_is_put_aside() {
        let (dir, chat) = chat_with(&[("alice", false)]);
        std::fs::write(dir.path().join("chat/rooms/alice.json"), "{not json").unwrap();
        assert!(chat.history("alice").unwrap().is_empty());
        assert!(dir.path().join("chat/rooms/alice.json.damaged").exists());
    }

    #[test]
    fn audience_events_only_when_they_change() {
        let (_dir, chat) = chat_with(&[("alice", false)]);
        let mut rx = chat.join("alice").unwrap().events;
        let s = |likes| Stream {
            name: "alice".into(),
            live: true,
            publishing: true,
            since: Some("2026-12-04T18:00:00Z".into()),
            thumbnail: None,
            title: None,
            audience: Some(streamedge_formats::streams::Audience {
                viewers: 3,
                peak: 4,
                total: 5,
                likes,
            }),
        };
        chat.announce(&[s(1)]);
        chat.announce(&[s(1)]);
        chat.announce(&[s(2)]);
        let a: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            (a["viewers"].as_u64(), a["likes"].as_u64()),
            (Some(3), Some(1))
        );
        let b: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(b["likes"], 2);
        assert!(rx.try_recv().is_err());
        chat.announce(&[]);
        let c: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            (c["live"].as_bool(), c["viewers"].as_u64()),
            (Some(false), Some(0))
        );
    }

    #[test]
    fn clients_and_addresses() {
        assert_eq!(client_of("192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(client_of("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(
            client_of("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_text(" 2001:db8:1:2::/64").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(client_text("host.example"), None);
    }
}
