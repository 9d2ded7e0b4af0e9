//! `/listen/NAME`: a live stream's sound as one endless AAC stream over plain HTTP, for radio
//! apps, VLC and anything else that plays an Icecast-style URL.
//!
//! Per stream with listeners, one ffmpeg copies the audio of the feed (nginx-rtmp's push)
//! into ADTS, and the sidecar hands each listener whole ADTS frames from there on, so a
//! player that joins late starts on a frame. It stops a few seconds after the last listener
//! leaves. A listener that cannot keep up misses what it could not take rather than holding
//! the others back. The module counts these listeners with the HLS players: the sidecar
//! reports how many it serves, every two seconds (`streamedge_listeners`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::feed::Feeds;
use crate::config::Config;
use crate::costs::{Meter, Role};

/// Frames a listener may fall behind by before it skips (about 20 s of audio).
const BACKLOG: usize = 1024;
/// How long a station waits for a listener after the last one left.
const LINGER: Duration = Duration::from_secs(5);
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Listeners of all streams at once; more are told to come back later.
pub const MAX_LISTENERS: u32 = 10_000;

/// One station's counts, shared with its listeners: each leaves its own station, even when
/// a newer one has taken the name meanwhile.
#[derive(Default)]
struct Counts {
    listeners: AtomicU32,
    /// Joined since the last report to the module.
    joined: AtomicU32,
}

struct Station {
    frames: broadcast::Sender<Bytes>,
    counts: Arc<Counts>,
    stop: CancellationToken,
}

/// Every stream with listeners.
#[derive(Clone, Default)]
pub struct Stations {
    all: Arc<Mutex<HashMap<String, Station>>>,
    everyone: Arc<AtomicU32>,
}

/// A listener; its drop is its leaving.
pub struct Listener {
    counts: Arc<Counts>,
    everyone: Arc<AtomicU32>,
    pub frames: broadcast::Receiver<Bytes>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.counts.listeners.fetch_sub(1, Ordering::Relaxed);
        self.everyone.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why there is no listener.
#[derive(Debug, PartialEq, Eq)]
pub enum NoListener {
    NotLive,
    Full,
}

impl Stations {
    /// A new listener of stream `name`, whose feed must be there (it is live).
    pub fn listen(&self, feeds: &Feeds, name: &str) -> Result<Listener, NoListener> {
        if self.everyone.fetch_add(1, Ordering::Relaxed) >= MAX_LISTENERS {
            self.everyone.fetch_sub(1, Ordering::Relaxed);
            return Err(NoListener::Full);
        }
        let listener = self.join(feeds, name);
        if listener.is_none() {
            self.everyone.fetch_sub(1, Ordering::Relaxed);
        }
        listener.ok_or(NoListener::NotLive)
    }

    fn join(&self, feeds: &Feeds, name: &str) -> Option<Listener> {
        let mut all = self.all.lock().expect("not poisoned");
        let gone = all.get(name).is_some_and(|s| s.stop.is_cancelled());
        if gone {
            all.remove(name);
        }
        if !all.contains_key(name) {
            feeds.read(name)?;
            let (frames, _) = broadcast::channel(BACKLOG);
            let stop = CancellationToken::new();
            let counts = Arc::<Counts>::default();
            tokio::spawn(run(
                feeds.clone(),
                self.clone(),
                name.to_string(),
                (frames.clone(), counts.clone()),
                stop.clone(),
            ));
            all.insert(
                name.to_string(),
                Station {
                    frames,
                    counts,
                    stop,
                },
            );
        }
        let s = all.get(name).expect("inserted above");
        s.counts.listeners.fetch_add(1, Ordering::Relaxed);
        s.counts.joined.fetch_add(1, Ordering::Relaxed);
        Some(Listener {
            counts: s.counts.clone(),
            everyone: self.everyone.clone(),
            frames: s.frames.subscribe(),
        })
    }

    /// Until `stop`: tells the module how many listen to each stream.
    pub async fn report(self, config: Config, stop: CancellationToken) {
        let http = reqwest::Client::new();
        // Streams reported, to report them once more at 0 when their station is gone.
        let mut reported: std::collections::HashSet<String> = Default::default();
        loop {
            let now: Vec<(String, u32, u32)> = {
                let all = self.all.lock().expect("not poisoned");
                all.iter()
                    .map(|(n, s)| {
                        let c = &s.counts;
                        let joined = c.joined.swap(0, Ordering::Relaxed);
                        (n.clone(), c.listeners.load(Ordering::Relaxed), joined)
                    })
                    .collect()
            };
            let mut next = std::collections::HashSet::new();
            for (name, listeners, joined) in now {
                next.insert(name.clone());
                post(&http, &config, &name, listeners, joined).await;
            }
            for name in reported.drain() {
                if !next.contains(&name) {
                    post(&http, &config, &name, 0, 0).await;
                }
            }
            reported = next;
            tokio::select! {
                _ = tokio::time::sleep(REPORT_EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

async fn post(http: &reqwest::Client, config: &Config, name: &str, now: u32, joined: u32) {
    let url = format!(
        "{}/api/listeners?name={name}&now={now}&joined={joined}",
        config.internal_http()
    );
    // A stream that ended is a 404: nothing to count any more.
    let _ = http.post(url).timeout(Duration::from_secs(5)).send().await;
}

/// One station: ffmpeg from the feed to ADTS frames, until the feed ends, `stop`, or no one
/// has listened for [`LINGER`].
async fn run(
    feeds: Feeds,
    stations: Stations,
    name: String,
    (frames, counts): (broadcast::Sender<Bytes>, Arc<Counts>),
    stop: CancellationToken,
) {
    let result = station(&feeds, &counts, &name, &frames, &stop).await;
    stop.cancel();
    if let Err(e) = result {
        tracing::warn!("listen \"{name}\": {e}");
    }
    // Listeners see the end of the stream.
    drop(frames);
    let mut all = stations.all.lock().expect("not poisoned");
    if all.get(&name).is_some_and(|s| s.stop.is_cancelled()) {
        all.remove(&name);
    }
}

async fn station(
    feeds: &Feeds,
    counts: &Counts,
    name: &str,
    frames: &broadcast::Sender<Bytes>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let Some(mut feed) = feeds.read(name) else {
        return Ok(());
    };
    if !feed.has_video() {
        feed.header[4] = 4;
    }
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-protocol_whitelist", "pipe"])
        .args(["-analyzeduration", "500000", "-f", "flv", "-i", "pipe:0"])
        .args(["-map", "0:a:0", "-c:a", "copy", "-f", "adts", "pipe:1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::proc::prepare(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let mut meter = Meter::start(Role::new("listen", name), "ffmpeg", child.id().unwrap_or(0));
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = tokio::spawn(crate::proc::tail(child.stderr.take().expect("piped")));
    let copy = tokio::spawn(async move {
        let _ = feed.copy_to(&mut stdin).await;
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ended = loop {
        tokio::select! {
            read = stdout.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break "the stream ended",
                Ok(_) => {
                    for frame in split_frames(&mut buf) {
                        // No receiver at this moment is fine: one may come back.
                        let _ = frames.send(frame);
                    }
                }
            },
            _ = tick.tick() => {
                meter.sample();
                // Its own listeners: a newer station may have the name by now.
                if counts.listeners.load(Ordering::Relaxed) == 0 {
                    let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= LINGER {
                        break "no one listens";
                    }
                } else {
                    idle_since = None;
                }
            }
            _ = stop.cancelled() => break "stopped",
        }
    };
    copy.abort();
    let _ = child.start_kill();
    let status = child.wait().await;
    let failed = ended == "the stream ended" && !matches!(&status, Ok(s) if s.success());
    meter.finish(if failed { "failed" } else { "done" });
    tracing::debug!("listen \"{name}\": {ended}");
    if failed {
        let tail = stderr.await.unwrap_or_default();
        if let Some(last) = crate::proc::last_words(&tail) {
            return Err(format!("ffmpeg: {last}"));
        }
    }
    Ok(())
}

/// Takes the whole ADTS frames off the front of `buf`; bytes before a sync word are dropped.
pub fn split_frames(buf: &mut BytesMut) -> Vec<Bytes> {
    let mut out = Vec::new();
    loop {
        // Find a sync word: 12 bits of ones.
        let Some(start) = buf
            .windows(2)
            .position(|w| w[0] == 0xFF && w[1] & 0xF0 == 0xF0)
        else {
            let keep = usize::from(buf.last() == Some(&0xFF));
            let drop = buf.len() - keep;
            let _ = buf.split_to(drop);
            return out;
        };
        let _ = buf.split_to(start);
        if buf.len() < 7 {
            return out;
        }
        let len = (usize::from(buf[3] & 0x03) << 11)
            | (usize::from(buf[4]) << 3)
            | (usize::from(buf[5]) >> 5);
        if len < 7 {
            // Not a frame: skip the false sync word.
            let _ = buf.split_to(1);
            continue;
        }
        if buf.len() < len {
            return out;
        }
        out.push(buf.split_to(len).freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; len];
        f[0] = 0xFF;
        f[1] = 0xF1;
        f[2] = 0x50;
        f[3] = 0x80 | ((len >> 11) & 0x03) as u8;
        f[4] = ((len >> 3) & 0xFF) as u8;
        f[5] = (((len & 0x07) << 5) | 0x1F) as u8;
        f[6] = 0xFC;
        f
    }

    #[test]
    fn whole_frames_only_wherever_the_reads_cut() {
        let stream: Vec<u8> =
            [b"junk".to_vec(), frame(300, 1), frame(17, 2), frame(400, 3)].concat();
        for cut in [1, 5, 10, 304, 320, 700] {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                buf.extend_from_slice(piece);
                got.extend(split_frames(&mut buf));
            }
            let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
            assert_eq!(lens, [300, 17, 400], "cut {cut}");
            assert_eq!(got[1][7], 2);
            assert!(buf.is_empty());
        }
    }
}
