//! The live feed: nginx-rtmp pushes every live stream to the sidecar over RTMP on loopback
//! (`push rtmp://127.0.0.1:PORT/feed;` in `application live`, from the publisher's worker),
//! and what the sidecar runs for a stream (the ladder; restreams) reads it from here as FLV,
//! from the newest keyframe, the moment the stream is published: no waiting for nginx-rtmp's
//! first HLS fragment, no polling of playlists.
//!
//! Each stream has one feed. A reader that joins gets the stream's header (FLV header,
//! metadata, codec configurations) and the tags since the last keyframe, then every tag as it
//! comes. A reader that falls behind (a stalled ffmpeg) skips to the next keyframe: it never
//! holds back the feed or the other readers. nginx-rtmp reconnects a push that fails every
//! `push_reconnect`, so a sidecar started mid-broadcast gets the feed within a second.
//!
//! Loopback is trusted here as it is for nginx-rtmp's callbacks (the internal port): any
//! local user can reach both.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use scuffle_rtmp::ServerSession;
use streamedge_formats::name::check_name;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

/// The RTMP application nginx-rtmp pushes to (`push rtmp://ADDR/feed;` in nginx.conf.in);
/// any other is refused.
pub const APP: &str = "feed";
/// Tags a reader may be behind before it skips ahead: about ten seconds of a stream.
const BACKLOG: usize = 1024;
/// What the tags since the last keyframe may hold; beyond it a reader waits for the next.
const GOP_LIMIT: usize = 16 << 20;
/// Feeds at once: nginx pushes one per live stream.
const MAX_FEEDS: usize = 256;
/// Connections at once, publishing or not yet.
const MAX_CONNECTIONS: usize = MAX_FEEDS + 32;
/// How long a connection has to say what it pushes.
const PUBLISH_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// An FLV tag: what an RTMP audio, video or data message carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub kind: Kind,
    /// Milliseconds, the publisher's clock.
    pub timestamp: u32,
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio = 8,
    Video = 9,
    Script = 18,
}

impl Tag {
    /// Appends the tag as FLV: its 11-byte header, the data, and the size of both.
    pub fn write_flv(&self, out: &mut Vec<u8>) {
        let len = self.data.len() as u32;
        out.push(self.kind as u8);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&self.timestamp.to_be_bytes()[1..]);
        out.push((self.timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&(11 + len).to_be_bytes());
    }

    /// A codec configuration (AVC or HEVC decoder record, AAC AudioSpecificConfig): what a
    /// decoder needs before any frame.
    pub fn is_config(&self) -> bool {
        let d = &self.data;
        match self.kind {
            Kind::Video => d.len() > 1 && matches!(d[0] & 0x0f, 7 | 12) && d[1] == 0,
            Kind::Audio => d.len() > 1 && d[0] >> 4 == 10 && d[1] == 0,
            Kind::Script => false,
        }
    }

    /// A video keyframe (not its configuration): where a reader can start.
    pub fn is_keyframe(&self) -> bool {
        self.kind == Kind::Video
            && !self.data.is_empty()
            && self.data[0] >> 4 == 1
            && !self.is_config()
    }
}

/// The FLV file header (audio and video flagged; [`Head::flv`] clears audio for a stream
/// without) and the zero size of "the tag before".
pub const FLV_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];

/// What the publisher's metadata says of the stream, as far as it says it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Meta {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// Audio has come (its configuration or a frame): metadata may name a codec that never
    /// sends anything.
    pub audio: bool,
}

/// The stream's metadata from an `onMetaData` data message (or `@setDataFrame` wrapping one,
/// as OBS sends it): the message as an FLV reader expects it, and what it says. `None` for
/// any other data message.
pub(crate) fn metadata(data: &Bytes) -> Option<(Bytes, Meta)> {
    use scuffle_amf0::decoder::Amf0Decoder;
    use scuffle_amf0::Amf0Value;
    // Value by value: the decoder takes the end of an ECMA array (an empty key and the
    // object-end marker) for more values, so nothing after the fields is read.
    let mut values = Amf0Decoder::from_slice(data);
    let mut first = values.decode_value().ok()?;
    let mut body = data.clone();
    if matches!(&first, Amf0Value::String(s) if s.as_str() == "@setDataFrame") {
        // The wrapper is a string: its marker, its 16-bit length, its bytes.
        body = data.slice(3 + "@setDataFrame".len()..);
        first = values.decode_value().ok()?;
    }
    if !matches!(&first, Amf0Value::String(s) if s.as_str() == "onMetaData") {
        return None;
    }
    let mut meta = Meta::default();
    let fields = match values.decode_value() {
        Ok(Amf0Value::Object(o)) => o,
        _ => Default::default(),
    };
    for (key, value) in fields.iter() {
        let Amf0Value::Number(n) = value else {
            continue;
        };
        let whole = (n.is_finite() && *n >= 1.0 && *n < 65536.0).then_some(*n as u32);
        match key.as_str() {
            "width" => meta.width = whole,
            "height" => meta.height = whole,
            "framerate" | "fps" if *n > 0.0 && *n <= 240.0 => meta.fps = Some(*n),
            _ => {}
        }
    }
    Some((body, meta))
}

/// What a reader gets before the live tags: the header and the tags since the last keyframe.
#[derive(Default)]
struct Head {
    metadata: Option<Tag>,
    meta: Meta,
    video_config: Option<Tag>,
    audio_config: Option<Tag>,
    /// From the last keyframe on; empty until the first one.
    gop: Vec<Tag>,
    gop_bytes: usize,
    audio_seen: bool,
}

impl Head {
    /// Takes in a tag; returns it as readers should get it (`None`: not for readers).
    fn take(&mut self, mut tag: Tag) -> Option<Tag> {
        match tag.kind {
            Kind::Script => {
                let (body, meta) = metadata(&tag.data)?;
                tag.data = body;
                self.meta = meta;
                self.metadata = Some(tag.clone());
                return Some(tag);
            }
            _ if tag.is_config() => {
                let slot = if tag.kind == Kind::Video {
                    &mut self.video_config
                } else {
                    &mut self.audio_config
                };
                // New codec settings (another size): the frames kept are for the old ones.
                if slot.as_ref().is_some_and(|old| old.data != tag.data) {
                    self.gop.clear();
                    self.gop_bytes = 0;
                }
                *slot = Some(tag.clone());
                return Some(tag);
            }
            Kind::Audio => self.audio_seen = true,
            Kind::Video => {}
        }
        if tag.is_keyframe() {
            self.gop.clear();
            self.gop_bytes = 0;
        }
        if !self.gop.is_empty() || tag.is_keyframe() {
            self.gop_bytes += tag.data.len();
            if self.gop_bytes > GOP_LIMIT {
                self.gop.clear();
                self.gop_bytes = 0;
            } else {
                self.gop.push(tag.clone());
            }
        }
        Some(tag)
    }

    /// Audio has come: its configuration or a frame.
    fn has_audio(&self) -> bool {
        self.audio_seen || self.audio_config.is_some()
    }

    /// The FLV file header for this stream.
    fn header(&self) -> [u8; 13] {
        let mut out = FLV_HEADER;
        if !self.has_audio() {
            out[4] = 1; // video only
        }
        out
    }

    /// The tags a reader starts with.
    fn tags(&self) -> Vec<Tag> {
        let start = self.gop.first().map_or(0, |t| t.timestamp);
        [&self.metadata, &self.video_config, &self.audio_config]
            .into_iter()
            .flatten()
            // Configurations at the time the reader starts: an FLV reader takes a jump back
            // in time for a new start.
            .map(|tag| Tag {
                timestamp: start,
                ..tag.clone()
            })
            .chain(self.gop.iter().cloned())
            .collect()
    }

    /// The FLV a reader starts with.
    #[cfg(test)]
    fn flv(&self) -> Vec<u8> {
        let mut out = self.header().to_vec();
        for tag in self.tags() {
            tag.write_flv(&mut out);
        }
        out
    }
}

pub(crate) struct Feed {
    /// Tells this feed from a later one of the same name.
    pub(crate) id: u64,
    head: Mutex<Head>,
    tx: broadcast::Sender<Tag>,
}

/// Every stream's feed, by name.
#[derive(Clone, Default)]
pub struct Feeds {
    all: Arc<Mutex<HashMap<String, Arc<Feed>>>>,
    /// Fires when a feed starts or ends.
    changed: Arc<Notify>,
}

/// A reader of one feed.
pub struct Reader {
    /// The FLV file header for the stream.
    pub header: [u8; 13],
    /// The tags it starts with (metadata, configurations, the newest keyframe's group).
    head: std::collections::VecDeque<Tag>,
    /// The metadata, and whether audio has come, when the reader joined.
    pub meta: Meta,
    /// The newest keyframe has come: the reader starts with a picture.
    pub started: bool,
    /// Skipping to the next keyframe: it fell behind, or joined before the first.
    skipping: bool,
    /// The stream has video: skipping waits for a keyframe (audio alone never skips).
    video: bool,
    rx: broadcast::Receiver<Tag>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Reader {
    /// Whether the stream has sent a video configuration: it has a picture.
    pub fn has_video(&self) -> bool {
        self.video
    }
}

impl Feeds {
    /// A reader of stream `name`'s feed, if nginx pushes it now.
    pub fn read(&self, name: &str) -> Option<Reader> {
        let feed = self.all.lock().expect("not poisoned").get(name).cloned()?;
        // Under the head's lock nothing is sent: the reader has every tag once.
        let head = feed.head.lock().expect("not poisoned");
        Some(Reader {
            header: head.header(),
            head: head.tags().into(),
            meta: Meta {
                audio: head.has_audio(),
                ..head.meta
            },
            started: !head.gop.is_empty(),
            skipping: head.gop.is_empty(),
            video: head.video_config.is_some(),
            rx: feed.tx.subscribe(),
        })
    }

    /// Waits until stream `name` has a feed with a keyframe, or `stop` fires or `within`
    /// passes (`None`).
    pub async fn wait(
        &self,
        name: &str,
        within: std::time::Duration,
        stop: &CancellationToken,
    ) -> Option<Reader> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            match self.read(name) {
                Some(r) if r.started => return Some(r),
                _ => {}
            }
            tokio::select! {
                _ = changed => {}
                // A feed's first keyframe is not a change: look again soon.
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => return None,
                _ = stop.cancelled() => return None,
            }
        }
    }

    /// Waits until a feed starts or ends.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Whether stream `name` has a feed now.
    pub fn contains(&self, name: &str) -> bool {
        self.all.lock().expect("not poisoned").contains_key(name)
    }

    /// Whether stream `name` has a feed with a keyframe now: a reader would start with a
    /// picture.
    pub fn started(&self, name: &str) -> bool {
        let feed = self.all.lock().expect("not poisoned").get(name).cloned();
        feed.is_some_and(|f| !f.head.lock().expect("not poisoned").gop.is_empty())
    }

    /// The names that have a feed now.
    pub fn names(&self) -> Vec<String> {
        self.all
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Starts stream `name`'s feed, which readers can read until [`Feeds::end`]; `None` if
    /// the name has one already (or too many names do).
    pub(crate) fn start(&self, name: &str) -> Option<Arc<Feed>> {
        let mut all = self.all.lock().expect("not poisoned");
        // One push per name: nginx pushes a stream again only once its previous push has
        // ended, so a second one while a feed is live is someone else's.
        if all.len() >= MAX_FEEDS || all.contains_key(name) {
            return None;
        }
        let feed = Arc::new(Feed {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            head: Mutex::new(Head::default()),
            tx: broadcast::channel(BACKLOG).0,
        });
        all.insert(name.to_string(), feed.clone());
        drop(all);
        self.changed.notify_waiters();
        Some(feed)
    }

    /// Ends stream `name`'s feed `id` (not a later one of the same name): its readers get
    /// the end once they have read what came before.
    pub(crate) fn end(&self, name: &str, id: u64) {
        let mut all = self.all.lock().expect("not poisoned");
        if all.get(name).is_some_and(|f| f.id == id) {
            all.remove(name);
        }
        drop(all);
        self.changed.notify_waiters();
    }
}

impl Feed {
    /// Sends `tag` to every reader.
    pub(crate) fn push(&self, tag: Tag) {
        let mut head = self.head.lock().expect("not poisoned");
        if let Some(tag) = head.take(tag) {
            // No reader is no error.
            let _ = self.tx.send(tag);
        }
    }
}

impl Reader {
    /// The next tag: those it started with, then the feed's as they come; `None` once the
    /// feed has ended. Behind by more than the backlog, it skips to the next keyframe.
    pub async fn next(&mut self) -> Option<Tag> {
        if let Some(tag) = self.head.pop_front() {
            return Some(tag);
        }
        loop {
            let tag = match self.rx.recv().await {
                Ok(tag) => tag,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.skipping = true;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if self.passes(&tag) {
                return Some(tag);
            }
        }
    }

    /// The next tag if one is there already (see [`Reader::next`]).
    fn ready(&mut self) -> Option<Tag> {
        if let Some(tag) = self.head.pop_front() {
            return Some(tag);
        }
        loop {
            let tag = match self.rx.try_recv() {
                Ok(tag) => tag,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.skipping = true;
                    continue;
                }
                Err(_) => return None,
            };
            if self.passes(&tag) {
                return Some(tag);
            }
        }
    }

    /// Whether the reader takes `tag`, skipping to a keyframe as it may be.
    fn passes(&mut self, tag: &Tag) -> bool {
        self.video |= tag.kind == Kind::Video;
        if self.skipping
            && self.video
            && !tag.is_keyframe()
            && !tag.is_config()
            && tag.kind != Kind::Script
        {
            return false;
        }
        self.skipping = false;
        true
    }

    /// Writes the feed to `out` (an ffmpeg's stdin) as FLV until the feed ends (`Ok`) or
    /// `out` is closed (`Err`).
    pub async fn copy_to(mut self, out: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        out.write_all(&self.header).await?;
        let mut buf = Vec::with_capacity(64 << 10);
        while let Some(tag) = self.next().await {
            buf.clear();
            tag.write_flv(&mut buf);
            // What has come meanwhile goes in the same write: one system call, not one a tag.
            while buf.len() < 256 << 10 {
                match self.ready() {
                    Some(tag) => tag.write_flv(&mut buf),
                    None => break,
                }
            }
            out.write_all(&buf).await?;
        }
        out.flush().await
    }
}

/// Reads an FLV stream's file header (and the zero size after it); whether it says the
/// stream has audio.
pub async fn read_flv_header(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<bool> {
    let mut header = [0u8; 13];
    r.read_exact(&mut header).await?;
    if &header[..3] != b"FLV"
        || header[3] != 1
        || u32::from_be_bytes(header[5..9].try_into().expect("4 bytes")) < 9
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an FLV stream",
        ));
    }
    Ok(header[4] & 4 != 0)
}

/// Reads the next FLV tag (after [`read_flv_header`]); `None` at the end of the stream.
/// Tags of other kinds (encrypted ones) are skipped; a tag over `MAX_TAG` is an error.
pub async fn read_flv_tag(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Tag>> {
    const MAX_TAG: usize = 16 << 20;
    loop {
        let mut h = [0u8; 11];
        match r.read_exact(&mut h[..1]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        r.read_exact(&mut h[1..]).await?;
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        if len > MAX_TAG {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("an FLV tag of {len} bytes"),
            ));
        }
        let mut data = vec![0u8; len + 4];
        r.read_exact(&mut data).await?;
        data.truncate(len);
        let kind = match h[0] & 0x1f {
            8 => Kind::Audio,
            9 => Kind::Video,
            18 => Kind::Script,
            _ => continue,
        };
        return Ok(Some(Tag {
            kind,
            timestamp,
            data: Bytes::from(data),
        }));
    }
}

/// Accepts nginx-rtmp's pushes on `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, feeds: Feeds, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("live feed: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        if !peer.ip().is_loopback() {
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                "live feed: {MAX_CONNECTIONS} connections at once already; {peer} refused"
            );
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let feeds = feeds.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (refused, published) = (CancellationToken::new(), CancellationToken::new());
            let pusher = Pusher {
                feeds,
                peer,
                feed: None,
                refused: refused.clone(),
                published: published.clone(),
            };
            let publish_late = async {
                tokio::time::sleep(PUBLISH_WITHIN).await;
                if published.is_cancelled() {
                    std::future::pending::<()>().await;
                }
            };
            // Dropping the session (and the pusher in it) ends the feed and the connection.
            let session = ServerSession::new(quick_ack(tcp, published.clone()), pusher);
            tokio::select! {
                r = session.run() => if let Err(e) = r {
                    tracing::debug!("live feed from {peer}: {e}");
                },
                _ = refused.cancelled() => {}
                _ = publish_late => tracing::debug!("live feed from {peer}: no publish"),
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// The connection, acknowledging what it reads at once until `until` fires (the push has
/// started). nginx sends the RTMP handshake's last part and its `connect` in separate writes
/// with Nagle's algorithm on: `connect` waits for the acknowledgement of the handshake, which
/// Linux would delay by 40 ms (the server has nothing to answer yet). Until the push is up,
/// the publisher's frames do not reach the feed; the sooner it is, the likelier the feed
/// holds the stream's very first keyframe (nginx-rtmp keeps none for late joiners).
fn quick_ack(
    tcp: tokio::net::TcpStream,
    until: CancellationToken,
) -> impl tokio::io::AsyncRead + AsyncWrite + Unpin {
    // The same socket through a second descriptor, for the option while the stream reads.
    let fd = tcp.as_fd().try_clone_to_owned().ok();
    tokio_util::io::InspectReader::new(tcp, move |_| {
        if let Some(fd) = fd.as_ref().filter(|_| !until.is_cancelled()) {
            // Sends the acknowledgement now if one is pending (Linux resets the flag).
            let _ = socket2::SockRef::from(fd).set_tcp_quickack(true);
        }
    })
}

/// One push connection from nginx-rtmp.
struct Pusher {
    feeds: Feeds,
    peer: SocketAddr,
    /// The stream it pushes, once it has said which.
    feed: Option<(String, Arc<Feed>)>,
    /// Fired to close a connection that is not nginx's push.
    refused: CancellationToken,
    /// Fired once it pushes a stream.
    published: CancellationToken,
}

impl Pusher {
    fn finish(&mut self) {
        if let Some((name, feed)) = self.feed.take() {
            tracing::debug!("live feed \"{name}\" ended");
            self.feeds.end(&name, feed.id);
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.finish();
    }
}

impl SessionHandler for Pusher {
    async fn on_publish(
        &mut self,
        _stream_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<(), ServerSessionError> {
        // nginx-rtmp pushes the bare name (the publisher's query, its key, stays behind);
        // anything else is not from nginx and is not repeated in a log.
        if app_name != APP || check_name(stream_name.as_bytes()).is_err() || self.feed.is_some() {
            tracing::warn!(
                "live feed from {}: refused a publish that is not nginx's push",
                self.peer
            );
            self.refused.cancel();
            return Ok(());
        }
        let Some(feed) = self.feeds.start(stream_name) else {
            tracing::warn!(
                "live feed from {}: refused \"{stream_name}\": it has a feed already, or \
                 {MAX_FEEDS} streams do",
                self.peer
            );
            self.refused.cancel();
            return Ok(());
        };
        tracing::debug!("live feed \"{stream_name}\" from {}", self.peer);
        self.published.cancel();
        self.feed = Some((stream_name.to_string(), feed));
        Ok(())
    }

    async fn on_unpublish(&mut self, _stream_id: u32) -> Result<(), ServerSessionError> {
        self.finish();
        Ok(())
    }

    async fn on_data(
        &mut self,
        _stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        let Some((_, feed)) = &self.feed else {
            return Ok(());
        };
        let tag = match data {
            SessionData::Audio { timestamp, data } => Tag {
                kind: Kind::Audio,
                timestamp,
                data,
            },
            SessionData::Video { timestamp, data } => Tag {
                kind: Kind::Video,
                timestamp,
                data,
            },
            SessionData::Amf0 { timestamp, data } => Tag {
                kind: Kind::Script,
                timestamp,
                data,
            },
        };
        feed.push(tag);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(key: bool, config: bool, ts: u32) -> Tag {
        let first = if key { 0x17 } else { 0x27 };
        Tag {
            kind: Kind::Video,
            timestamp: ts,
            data: Bytes::from(vec![first, u8::from(!config), 0, 0, 0, 0xAA]),
        }
    }

    fn audio(ts: u32) -> Tag {
        Tag {
            kind: Kind::Audio,
            timestamp: ts,
            data: Bytes::from_static(&[0xAF, 1, 0x21]),
        }
    }

    /// AMF0 as a publisher sends it: strings, then an ECMA array of numbers.
    fn amf_metadata(wrapped: bool, fields: &[(&str, f64)]) -> Bytes {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.push(2);
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        if wrapped {
            string(&mut out, "@setDataFrame");
        }
        string(&mut out, "onMetaData");
        out.push(8);
        out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        for (k, v) in fields {
            out.extend_from_slice(&(k.len() as u16).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[0, 0, 9]);
        Bytes::from(out)
    }

    #[test]
    fn a_tag_is_written_as_flv() {
        let mut out = Vec::new();
        Tag {
            kind: Kind::Video,
            timestamp: 0x0123_4567,
            data: Bytes::from_static(b"abc"),
        }
        .write_flv(&mut out);
        assert_eq!(
            out,
            [9, 0, 0, 3, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 14]
        );
    }

    #[test]
    fn metadata_says_size_rate_and_audio_and_loses_the_wrapper() {
        for wrapped in [false, true] {
            let data = amf_metadata(
                wrapped,
                &[
                    ("width", 1280.0),
                    ("height", 720.0),
                    ("framerate", 30.0),
                    ("audiocodecid", 10.0),
                ],
            );
            let (body, meta) = metadata(&data).expect("onMetaData");
            assert_eq!(
                body,
                amf_metadata(
                    false,
                    &[
                        ("width", 1280.0),
                        ("height", 720.0),
                        ("framerate", 30.0),
                        ("audiocodecid", 10.0)
                    ]
                )
            );
            assert_eq!(
                meta,
                Meta {
                    width: Some(1280),
                    height: Some(720),
                    fps: Some(30.0),
                    // Said, not seen: audio is what comes.
                    audio: false
                }
            );
        }
        let (_, meta) = metadata(&amf_metadata(
            false,
            &[("height", -5.0), ("fps", 1e9), ("audiocodecid", 0.0)],
        ))
        .unwrap();
        assert_eq!(meta, Meta::default());
        assert!(metadata(&Bytes::from_static(&[2, 0, 3, b'f', b'o', b'o'])).is_none());
        assert!(metadata(&Bytes::from_static(&[0xff, 1, 2])).is_none());
    }

    #[test]
    fn a_reader_starts_at_the_newest_keyframe_with_the_configurations() {
        let mut head = Head::default();
        head.take(video(true, true, 0));
        head.take(Tag {
            kind: Kind::Audio,
            timestamp: 0,
            data: Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
        });
        for t in [
            video(true, false, 0),
            audio(10),
            video(false, false, 33),
            video(true, false, 1000),
            audio(1010),
            video(false, false, 1033),
        ] {
            head.take(t);
        }
        assert_eq!(
            head.gop.iter().map(|t| t.timestamp).collect::<Vec<_>>(),
            [1000, 1010, 1033]
        );
        let flv = head.flv();
        assert_eq!(&flv[..13], &FLV_HEADER);
        // The configurations come first, moved to the keyframe's time.
        assert_eq!(flv[13], 9);
        assert_eq!(&flv[17..20], &[0, 0x03, 0xE8]);
        let audio_config = 13 + 11 + 6 + 4;
        assert_eq!(flv[audio_config], 8);
        let sizes = [6, 4, 6, 3, 6];
        assert_eq!(
            flv.len(),
            13 + sizes.iter().map(|n| 11 + n + 4).sum::<usize>()
        );
    }

    #[test]
    fn nothing_is_kept_before_the_first_keyframe_nor_past_the_limit() {
        let mut head = Head::default();
        head.take(video(false, false, 0));
        head.take(audio(5));
        assert!(head.gop.is_empty());
        head.take(video(true, false, 40));
        let big = Tag {
            kind: Kind::Video,
            timestamp: 80,
            data: Bytes::from(
                vec![0x27, 1]
                    .into_iter()
                    .chain(std::iter::repeat_n(0, GOP_LIMIT))
                    .collect::<Vec<u8>>(),
            ),
        };
        head.take(big);
        assert!(
            head.gop.is_empty(),
            "past the limit a reader waits for the next keyframe"
        );
    }

    #[tokio::test]
    async fn a_late_reader_gets_the_keyframe_then_the_live_tags_and_the_end() {
        let feeds = Feeds::default();
        let feed = feeds.start("alice").unwrap();
        feed.push(video(true, true, 0));
        feed.push(video(true, false, 0));
        feed.push(video(false, false, 33));
        let reader = feeds.read("alice").unwrap();
        assert!(reader.started);
        feed.push(video(false, false, 66));
        feeds.end("alice", feed.id);
        drop(feed);
        let mut out = Vec::new();
        reader.copy_to(&mut out).await.unwrap();
        let tags = out.len() - 13;
        assert_eq!(tags, 4 * (11 + 6 + 4));
        assert!(feeds.read("alice").is_none());
    }

    #[tokio::test]
    async fn a_second_push_of_a_live_name_is_refused() {
        let feeds = Feeds::default();
        let first = feeds.start("bob").unwrap();
        assert!(feeds.start("bob").is_none());
        feeds.end("bob", first.id);
        assert!(feeds.read("bob").is_none());
        assert!(
            feeds.start("bob").is_some(),
            "once it has ended, nginx may push again"
        );
    }

    #[tokio::test]
    async fn flv_written_is_flv_read_and_a_broken_stream_is_an_error() {
        let tags = [
            video(true, true, 0),
            audio(0x0100_0000 + 7),
            video(false, false, 33),
        ];
        let mut flv = FLV_HEADER.to_vec();
        for t in &tags {
            t.write_flv(&mut flv);
        }
        let mut r = &flv[..];
        assert!(read_flv_header(&mut r).await.unwrap(), "audio and video");
        for t in &tags {
            assert_eq!(read_flv_tag(&mut r).await.unwrap().as_ref(), Some(t));
        }
        assert_eq!(read_flv_tag(&mut r).await.unwrap(), None);
        assert!(read_flv_header(&mut &b"GIF89a-------"[..]).await.is_err());
        // Cut inside a tag: an error, not an end.
        let mut cut = &flv[13..flv.len() - 3];
        read_flv_tag(&mut cut).await.unwrap();
        read_flv_tag(&mut cut).await.unwrap();
        assert!(read_flv_tag(&mut cut).await.is_err());
    }

    #[tokio::test]
    async fn audio_alone_is_read_from_the_start() {
        let feeds = Feeds::default();
        let feed = feeds.start("radio").unwrap();
        let mut reader = feeds.read("radio").unwrap();
        assert!(!reader.started);
        feed.push(audio(0));
        feed.push(audio(23));
        feeds.end("radio", feed.id);
        drop(feed);
        assert_eq!(reader.next().await.map(|t| t.timestamp), Some(0));
        assert_eq!(reader.next().await.map(|t| t.timestamp), Some(23));
        assert_eq!(reader.next().await, None);
    }

    #[test]
    fn new_codec_settings_drop_the_frames_kept_and_audio_is_what_came() {
        let mut head = Head::default();
        head.take(video(true, true, 0));
        head.take(video(true, false, 0));
        assert_eq!(head.gop.len(), 1);
        assert_eq!(head.flv()[4], 1, "no audio has come: video only");
        let mut other = video(true, true, 500);
        other.data = Bytes::from_static(&[0x17, 0, 0, 0, 0, 0xBB]);
        head.take(other);
        assert!(head.gop.is_empty());
        head.take(audio(510));
        assert_eq!(head.flv()[4], 5);
    }
}
