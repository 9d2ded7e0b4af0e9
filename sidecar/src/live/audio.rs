//! Streams with sound and no picture (a DJ's Icecast source, OBS with audio only, a radio
//! relay). nginx-rtmp's HLS always declares a video track, empty here, which players take
//! for a broken video; so beside it one ffmpeg copies the audio, untouched, into an
//! audio-only rendition (`audio/index.m3u8`, MPEG-TS with one AAC track), and the master
//! playlist names that alone: `/live/NAME/` plays it. No ladder runs for such a stream.

use std::path::Path;
use std::time::{Duration, SystemTime};

use streamedge_formats::layout::LIVE_MASTER;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::feed::{Feeds, Reader};
use crate::config::Config;
use crate::proc::{self, Exit, Role};

/// The rendition's folder below the stream's.
pub const FOLDER: &str = "audio";
/// How long the feed gets to show its tracks.
const LOOK: Duration = Duration::from_millis(1500);
const FEED_WAIT: Duration = Duration::from_secs(3);
/// The FLV header's flags for a file with audio and no video.
const FLV_AUDIO: u8 = 4;

/// Whether stream `name` is audio only, from its feed: audio has come and, a moment later,
/// still no video. `None` without a feed (nothing to tell from).
pub async fn detect(feeds: &Feeds, name: &str, stop: &CancellationToken) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + FEED_WAIT;
    loop {
        if let Some(r) = feeds.read(name) {
            if r.has_video() {
                return Some(false);
            }
            if r.meta.audio {
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = tokio::time::sleep_until(deadline) => return None,
            _ = stop.cancelled() => return None,
        }
    }
    tokio::select! {
        _ = tokio::time::sleep(LOOK) => {}
        _ = stop.cancelled() => return None,
    }
    feeds.read(name).map(|r| !r.has_video())
}

/// The master playlist of an audio-only stream.
pub fn master(kbps: u32) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"mp4a.40.2\",NAME=\"audio\"\n{FOLDER}/index.m3u8\n",
        kbps * 1100
    )
}

/// Keeps the audio-only rendition and its master playlist until `stop` or the feed ends,
/// starting ffmpeg again (after a pause) when it fails.
pub async fn keep(config: &Config, feeds: &Feeds, name: &str, stop: &CancellationToken) {
    let dir = config.layout().live().join(name);
    let mut backoff = Duration::from_secs(1);
    while !stop.is_cancelled() {
        let Some(feed) = feeds.read(name) else {
            break;
        };
        match run(config, feed, name, &dir, stop).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(
                    "live \"{name}\": the audio rendition stopped: {e}; again in {}s",
                    backoff.as_secs()
                );
                super::ladder::remove_master(&dir);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    super::ladder::remove_master(&dir);
}

async fn run(
    config: &Config,
    feed: Reader,
    name: &str,
    dir: &Path,
    stop: &CancellationToken,
) -> Result<(), String> {
    let out = dir.join(FOLDER);
    crate::fsutil::ensure_dir(&out, 0o755, None).map_err(|e| format!("{e:#}"))?;
    let _ = std::fs::remove_file(out.join("index.m3u8"));
    let started = SystemTime::now();
    // Names never used before, whatever is left of an earlier broadcast or run: a cache in
    // front must never hand out an old segment under a new playlist.
    let prefix = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let fragment = config.live.fragment.0.as_secs_f64();
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(dir)
        .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-protocol_whitelist", "pipe,file"])
        .args(["-analyzeduration", "500000", "-f", "flv", "-i", "pipe:0"])
        .args(["-map", "0:a:0", "-c:a", "copy"])
        .args(["-f", "hls", "-hls_time", &format!("{fragment:.3}")])
        .args([
            "-hls_list_size",
            "12",
            "-hls_flags",
            "delete_segments+independent_segments",
        ])
        .arg("-hls_segment_filename")
        .arg(format!("{FOLDER}/{prefix}-%d.ts"))
        .arg(format!("{FOLDER}/index.m3u8"));
    let role = Role::new("audio", name);
    // The FLV header says audio alone (nginx-rtmp announces both), so ffmpeg does not
    // wait for a picture that never comes.
    let mut feed = feed;
    feed.header[4] = FLV_AUDIO;
    let copy = |stdin: tokio::process::ChildStdin| {
        tokio::spawn(async move {
            let mut stdin = stdin;
            let _ = feed.copy_to(&mut stdin).await;
        });
    };
    let run_stop = stop.child_token();
    let master = keep_master(dir, started, &run_stop);
    let ffmpeg = proc::run_watched(cmd, role, &run_stop, copy, |_| {});
    let exit = tokio::select! {
        exit = ffmpeg => exit.map_err(|e| format!("{e:#}"))?.0,
        e = master => return Err(e),
    };
    match exit {
        // The feed ended: so did the broadcast.
        Exit::Success | Exit::Cancelled => Ok(()),
        Exit::Failed(tail) => {
            Err(crate::proc::last_words(&tail).unwrap_or_else(|| "ffmpeg failed".into()))
        }
    }
}

/// Writes the master playlist once this run's rendition playlist exists.
async fn keep_master(dir: &Path, started: SystemTime, stop: &CancellationToken) -> String {
    let playlist = dir.join(FOLDER).join("index.m3u8");
    loop {
        let ready = std::fs::metadata(&playlist)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= started);
        if ready {
            if let Err(e) = crate::fsutil::write_atomic(
                &dir.join(LIVE_MASTER),
                master(160).as_bytes(),
                0o644,
                None,
            ) {
                return format!("{e:#}");
            }
            // Once is enough, unless it goes missing.
            while dir.join(LIVE_MASTER).exists() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.cancelled() => std::future::pending::<()>().await,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_names_the_audio_rendition_alone() {
        let m = master(160);
        assert!(m.contains("CODECS=\"mp4a.40.2\""));
        assert!(m.ends_with("\naudio/index.m3u8\n"));
        assert!(!m.contains("RESOLUTION"));
    }
}
