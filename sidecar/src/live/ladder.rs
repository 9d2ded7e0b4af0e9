//! The live ladder: ONE ffmpeg per live stream reads the stream as nginx-rtmp pushes it to
//! the sidecar (`feed`, from the newest keyframe on), decodes it once, scales it once per
//! rung and writes each rung beside nginx-rtmp's source rendition
//! (`DATA/live/NAME/<height>p/index.m3u8`, MPEG-TS segments of `live.fragment` with
//! keyframes at the same instants in every rung). `master.m3u8` names the source, copied as
//! nginx-rtmp wrote it, and the rungs; it is written once every rung has a playlist and
//! rewritten every few seconds (nginx-rtmp's cleanup removes playlists that stop changing),
//! and removed when the stream ends. Without a feed (nginx's configuration from before
//! `live.feed`), ffmpeg reads the source's HLS playlist instead, once the stream plays.
//!
//! The ladder fits the source and the machine: no rung as tall as the source, and when
//! ffmpeg runs below real time for `SLOW_FOR`, the top rung is dropped and the ladder starts
//! again without it, with a log line that says so. A ladder that dies is started again with
//! backoff (1 s doubling to 30 s), and after five quick failures in a row gives up until the
//! next broadcast; viewers meanwhile have the source.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use streamedge_formats::layout::{LIVE_MASTER, LIVE_PLAYLIST};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::feed::{Feeds, Reader};
use super::Board;
use crate::config::Config;
use crate::library::transcode::{self, Rung, LADDER};
use crate::proc::{self, Exit};

/// Below real time for this long, the top rung goes.
const SLOW_FOR: Duration = Duration::from_secs(10);
/// What counts as below real time: the speed of the last seconds (media time written per
/// second of wall time), which wobbles around 1.0 when ffmpeg keeps up.
const SLOW_SPEED: f64 = 0.95;
/// ffmpeg's first seconds (probing, the first segment) say nothing about its speed.
const WARM_UP: Duration = Duration::from_secs(5);
/// How much each rung's playlist lists: as much as the source's.
const LIST_SECONDS: f64 = 12.0;
/// What nginx-rtmp adds to RTMP timestamps in its HLS (`NGX_RTMP_HLS_DELAY`, 63000 at
/// 90 kHz), seconds.
const NGINX_RTMP_HLS_DELAY: &str = "0.7";
/// How long a ladder waits for nginx-rtmp's push before it reads the source's playlist.
const FEED_WAIT: Duration = Duration::from_secs(3);
/// How often the master playlist is written again while the ladder runs.
const MASTER_EVERY: Duration = Duration::from_secs(2);

/// How one run of the ladder ended.
enum Ended {
    Stopped,
    TooSlow(f64),
    /// The feed ended (nginx's push closed: the stream ending, or a publisher silent for
    /// seconds): no failure, the next run takes the next feed.
    FeedClosed,
    /// No rung to make (the source is no taller than any, has no video, or every rung was
    /// dropped): the source alone plays.
    NothingToEncode(&'static str),
}

/// Quick failures in a row after which the ladder gives up for this broadcast.
const GIVE_UP_AFTER: u32 = 5;

/// Runs the ladder of stream `name` until `stop` fires, then removes its master playlist.
pub async fn supervise(
    config: &Config,
    board: &Board,
    feeds: &Feeds,
    name: &str,
    mut playable: tokio::sync::watch::Receiver<bool>,
    stop: &CancellationToken,
) {
    let dir = config.layout().live().join(name);
    // The pipeline starts at the publish: a source playlist older than this is the previous
    // broadcast's.
    let since = std::time::SystemTime::now();
    let mut dropped = 0;
    let mut backoff = Duration::from_secs(1);
    let mut quick_failures = 0;
    loop {
        let started = Instant::now();
        // Whatever a previous run left must not be played: players go to the source until
        // this run's rungs have playlists of their own.
        remove_master(&dir);
        let mut input = Input {
            feeds,
            playable: &mut playable,
            since,
        };
        match run(config, board, &mut input, name, &dir, dropped, stop).await {
            Ok(Ended::Stopped) => break,
            Ok(Ended::FeedClosed) => {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Ok(Ended::TooSlow(speed)) => {
                dropped += 1;
                board.update(name, |s| {
                    if !s.rungs.is_empty() {
                        let top = s.rungs.remove(0);
                        s.dropped.push(format!("{top} (at {speed:.2}x)"));
                    }
                });
                tracing::warn!(
                    "live \"{name}\": the ladder ran at {speed:.2}x real time for {}s, so its \
                     top rung is dropped",
                    SLOW_FOR.as_secs()
                );
            }
            Ok(Ended::NothingToEncode(why)) => {
                tracing::info!("live \"{name}\": {why}: the source plays alone");
                board.update(name, |s| {
                    (s.state, s.speed) = ("source only", None);
                    s.last_error = Some(why.to_string());
                });
                stop.cancelled().await;
                break;
            }
            Err(e) => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                    quick_failures = 0;
                }
                quick_failures += 1;
                if quick_failures >= GIVE_UP_AFTER {
                    tracing::error!(
                        "live \"{name}\": the ladder failed {quick_failures} times in a row \
                         ({e:#}): the source plays alone until the stream starts again"
                    );
                    board.update(name, |s| {
                        (s.state, s.speed) = ("source only", None);
                        s.last_error = Some(format!("{e:#}"));
                    });
                    stop.cancelled().await;
                    break;
                }
                tracing::error!(
                    "live \"{name}\": the ladder stopped: {e:#}; starting it again in {}s",
                    backoff.as_secs()
                );
                board.update(name, |s| {
                    (s.state, s.speed) = ("restarting", None);
                    s.restarts += 1;
                    s.last_error = Some(format!("{e:#}"));
                });
                remove_master(&dir);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    remove_master(&dir);
}

/// Removes a stream's master playlist (players fall back to the source), if it is there.
pub(super) fn remove_master(dir: &Path) {
    match std::fs::remove_file(dir.join(LIVE_MASTER)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", dir.join(LIVE_MASTER).display()),
    }
}

/// Where a run finds the stream: the feed, or once the broadcast plays, its playlist.
struct Input<'a> {
    feeds: &'a Feeds,
    playable: &'a mut tokio::sync::watch::Receiver<bool>,
    /// When the broadcast started (about: when its pipeline did).
    since: std::time::SystemTime,
}

/// What the source rendition is, from its newest segment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Source {
    width: u32,
    height: u32,
    fps: f64,
    has_audio: bool,
}

async fn run(
    config: &Config,
    board: &Board,
    input: &mut Input<'_>,
    name: &str,
    dir: &Path,
    dropped: usize,
    stop: &CancellationToken,
) -> Result<Ended> {
    let (feeds, playable) = (input.feeds, &mut *input.playable);
    let mut feed = feeds.wait(name, FEED_WAIT, stop).await;
    let from_feed = feed.is_some();
    if stop.is_cancelled() {
        return Ok(Ended::Stopped);
    }
    let source = match feed.as_ref().and_then(source_of) {
        Some(s) => Some(s),
        // Without a feed, or one whose metadata does not say the size: the source's segment,
        // once the playlist is this broadcast's (it plays).
        None => {
            let plays = tokio::select! {
                r = playable.wait_for(|p| *p) => r.is_ok(),
                _ = stop.cancelled() => false,
            };
            if !plays {
                return Ok(Ended::Stopped);
            }
            probe_source(dir).await?
        }
    };
    let Some(source) = source else {
        return Ok(Ended::NothingToEncode("the source has no video"));
    };
    let rungs = rungs_for(config.live.ladder_for(name), source.height, dropped);
    if rungs.is_empty() {
        return Ok(Ended::NothingToEncode(if dropped > 0 {
            "every rung was dropped"
        } else {
            "no rung below the source's height"
        }));
    }
    for r in &rungs {
        let rung = dir.join(rung_name(r));
        crate::fsutil::ensure_dir(&rung, 0o755, None)?;
        // A previous run's playlist would be listed before this run writes its own.
        let _ = std::fs::remove_file(rung.join("index.m3u8"));
    }
    let run_start = std::time::SystemTime::now();
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(dir)
        .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-progress", "pipe:1"]);
    if from_feed {
        // The feed starts with the codecs' configurations and a keyframe: little to probe.
        cmd.args(["-analyzeduration", "100000", "-fpsprobesize", "0"])
            .args(["-f", "flv", "-i", "pipe:0"])
            // The frames as they come: a frame rate guessed without probing is never made up
            // with duplicates.
            .args(["-fps_mode", "passthrough"]);
    } else {
        // From the newest segment: the ladder is as close to the live edge as the source.
        cmd.args(["-live_start_index", "-1", "-i", LIVE_PLAYLIST]);
    }
    // The source's timestamps, so every rung's segments line up with the source's: nothing
    // added by the muxer, and for the feed the offset nginx-rtmp gives its HLS.
    cmd.args(["-copyts", "-muxdelay", "0"]);
    if from_feed {
        cmd.args(["-output_ts_offset", NGINX_RTMP_HLS_DELAY]);
    }
    cmd.args(args(&rungs, source, config.live.fragment.0.as_secs_f64()));
    board.update(name, |s| {
        s.input = if from_feed { "feed" } else { "source playlist" };
        s.rungs = rungs.iter().map(rung_name).collect();
        s.state = "starting";
    });
    let run_stop = stop.child_token();
    let mut watch = SpeedWatch::new(Instant::now());
    let mut meter = RateMeter::default();
    let mut slow = None;
    let running = || {
        board.update(name, |s| {
            s.state = "running";
            s.started = Some(crate::clock::now_rfc3339());
        })
    };
    // The feed written into ffmpeg's stdin: aborted when this run ends.
    let mut copy = None;
    let started = |stdin| {
        running();
        if let Some(feed) = feed.take() {
            copy = Some(AbortOnDropHandle::new(tokio::spawn(feed_ffmpeg(
                feed, stdin,
            ))));
        }
    };
    let role = proc::Role::new("ladder", name);
    let ffmpeg = proc::run_watched(cmd, role, &run_stop, started, |line| {
        if let Some(speed) = out_time(line).and_then(|t| meter.observe(t, Instant::now())) {
            board.update(name, |s| s.speed = Some((speed * 100.0).round() / 100.0));
            if watch.observe(speed, Instant::now()) && slow.is_none() {
                slow = Some(speed);
                run_stop.cancel();
            }
        }
    });
    let exit = tokio::select! {
        exit = ffmpeg => exit?.0,
        e = keep_master(dir, &rungs, source, input.since, run_start, stop) => return Err(e),
    };
    match exit {
        Exit::Cancelled if stop.is_cancelled() => Ok(Ended::Stopped),
        Exit::Cancelled => Ok(Ended::TooSlow(slow.unwrap_or(0.0))),
        // ffmpeg ends well only at the end of its input.
        Exit::Success if from_feed => Ok(Ended::FeedClosed),
        Exit::Success => bail!("ffmpeg ended"),
        Exit::Failed(stderr) => bail!("{}", transcode::explain(&stderr)),
    }
}

/// Writes the feed to ffmpeg until either ends; an ffmpeg gone is its own error.
async fn feed_ffmpeg(feed: Reader, mut stdin: tokio::process::ChildStdin) {
    let _ = feed.copy_to(&mut stdin).await;
}

/// What the source is, from the feed's metadata, when it says the size.
fn source_of(feed: &Reader) -> Option<Source> {
    let m = feed.meta;
    Some(Source {
        width: m.width?,
        height: m.height?,
        fps: m.fps.unwrap_or(30.0),
        has_audio: m.audio,
    })
}

/// What the source's newest segment is, as ffprobe says; `None` without video (an audio
/// stream: nothing to scale).
async fn probe_source(dir: &Path) -> Result<Option<Source>> {
    let playlist = std::fs::read_to_string(dir.join(LIVE_PLAYLIST))
        .with_context(|| format!("cannot read {}", dir.join(LIVE_PLAYLIST).display()))?;
    let newest = segments(&playlist)
        .last()
        .map(|(file, _)| dir.join(file))
        .context("the source playlist has no segment yet")?;
    let p = transcode::probe(&newest).await?;
    let (Some(width), Some(height)) = (p.width, p.height) else {
        return Ok(None);
    };
    Ok(Some(Source {
        width,
        height,
        fps: p.fps.unwrap_or(30.0),
        has_audio: p.audio_codec.is_some(),
    }))
}

/// The segments of a media playlist, with their durations.
pub(super) fn segments(playlist: &str) -> Vec<(&str, f64)> {
    let mut out = Vec::new();
    let mut duration = None;
    for line in playlist.lines().map(str::trim) {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push((line, duration.take().unwrap_or(0.0)));
        }
    }
    out
}

/// The rung name, and its folder: `720p`.
fn rung_name(r: &Rung) -> String {
    format!("{}p", r.height)
}

/// The encoded rungs for a source `source_height` tall: the configured heights below it,
/// top down, without the `dropped` tallest; bitrates as for the library's ladder.
fn rungs_for(heights: &[u32], source_height: u32, dropped: usize) -> Vec<Rung> {
    let mut heights: Vec<u32> = heights
        .iter()
        .copied()
        .filter(|h| *h < source_height)
        .collect();
    heights.sort_unstable_by(|a, b| b.cmp(a));
    heights.dedup();
    heights
        .into_iter()
        .skip(dropped)
        .map(|height| {
            // The library rung of that height, or the nearest below it.
            let like = LADDER
                .iter()
                .find(|r| r.height <= height)
                .unwrap_or(&LADDER[LADDER.len() - 1]);
            Rung { height, ..*like }
        })
        .collect()
}

/// ffmpeg's arguments after the input: the ladder's encoding and a live HLS output per rung.
/// Segments are `segment` seconds long, as nginx-rtmp's are at most.
fn args(rungs: &[Rung], source: Source, segment: f64) -> Vec<String> {
    let (mut a, map) = transcode::encode_args(rungs, source.fps, source.has_audio, segment, true);
    // No look-ahead or B-frame delay: the ladder keeps to the source's live edge.
    a.extend(["-tune", "zerolatency"].map(String::from));
    let (time, half) = (segment.to_string(), (segment / 2.0).to_string());
    let size = ((LIST_SECONDS / segment).ceil() as u32).to_string();
    a.extend(
        [
            "-f",
            "hls",
            "-hls_time",
            &time,
            // The first segments end at the keyframe half a segment in (see encode_args).
            "-hls_init_time",
            &half,
            "-hls_list_size",
            &size,
            "-hls_flags",
            // No ENDLIST when ffmpeg stops: a restarted ladder goes on in the same playlist
            // names, and players must not take the pause for the end of the stream.
            "delete_segments+independent_segments+temp_file+omit_endlist",
            // Segment numbers from the clock: a name is never used twice, across restarts.
            "-hls_start_number_source",
            "epoch_us",
            "-hls_segment_type",
            "mpegts",
            "-hls_segment_filename",
            "%v/%d.ts",
            "-var_stream_map",
            &map,
            "%v/index.m3u8",
        ]
        .map(String::from),
    );
    a
}

/// Writes `master.m3u8` once the source has a playlist written by this broadcast (after
/// `since`) and every rung one written by this run (after `run_start`), then again every
/// `MASTER_EVERY`; never once `stop` has fired (ffmpeg may still be finishing). Returns only
/// on an error.
async fn keep_master(
    dir: &Path,
    rungs: &[Rung],
    source: Source,
    since: std::time::SystemTime,
    run_start: std::time::SystemTime,
    stop: &CancellationToken,
) -> anyhow::Error {
    let path = dir.join(LIVE_MASTER);
    loop {
        // Every playlist it names, new: the feed starts the ladder before nginx-rtmp's first
        // fragment, and a restarted ladder's rungs start over.
        let written_since = |p: std::path::PathBuf, t: std::time::SystemTime| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= t)
        };
        let ready = !stop.is_cancelled()
            && written_since(dir.join(LIVE_PLAYLIST), since)
            && rungs
                .iter()
                .all(|r| written_since(dir.join(rung_name(r)).join("index.m3u8"), run_start));
        if ready {
            let text = master(source, source_bandwidth(dir), rungs);
            if let Err(e) = crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644, None) {
                return e;
            }
        }
        tokio::time::sleep(if ready {
            MASTER_EVERY
        } else {
            Duration::from_millis(50)
        })
        .await;
    }
}

/// The source's bits per second, from the sizes of the segments its playlist lists.
fn source_bandwidth(dir: &Path) -> Option<u64> {
    let playlist = std::fs::read_to_string(dir.join(LIVE_PLAYLIST)).ok()?;
    let (mut bytes, mut seconds) = (0u64, 0f64);
    for (file, duration) in segments(&playlist) {
        bytes += std::fs::metadata(dir.join(file)).ok()?.len();
        seconds += duration;
    }
    (seconds > 0.5).then(|| (bytes as f64 * 8.0 / seconds) as u64)
}

/// The master playlist: the source first (as nginx-rtmp writes it), then the rungs.
fn master(source: Source, source_bps: Option<u64>, rungs: &[Rung]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let top = rungs
        .first()
        .map(|r| r.video_kbps + r.audio_kbps)
        .unwrap_or(0);
    // Without segment sizes yet, the source counts as half again the top rung.
    let bps = source_bps.unwrap_or(u64::from(top) * 1500);
    out.push_str(&format!(
        "#EXT-X-STREAM-INF:BANDWIDTH={bps},RESOLUTION={}x{},NAME=\"source\"\n{LIVE_PLAYLIST}\n",
        source.width, source.height
    ));
    for r in rungs {
        let width =
            (u64::from(source.width) * u64::from(r.height) / u64::from(source.height.max(1)) + 1)
                & !1;
        // The peak an encoder at this rate reaches (maxrate is 107% of it), with the audio.
        let bps = u64::from(r.video_kbps * 107 / 100 + r.audio_kbps) * 1000;
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={bps},RESOLUTION={width}x{},NAME=\"{}\"\n{}/index.m3u8\n",
            r.height,
            rung_name(r),
            rung_name(r)
        ));
    }
    out
}

/// ffmpeg's `-progress` position in the output, seconds: `out_time_us=12345678`.
fn out_time(line: &str) -> Option<f64> {
    let us: i64 = line.strip_prefix("out_time_us=")?.trim().parse().ok()?;
    (us >= 0).then(|| us as f64 / 1e6)
}

/// The speed of the last few seconds, × real time: ffmpeg's own `speed=` is the average since
/// it started, which hides a slowdown after a long good run.
#[derive(Default)]
struct RateMeter {
    last: Option<(Instant, f64)>,
}

impl RateMeter {
    /// Media time `t` written by `now`; a speed once at least 2 s have passed since the last.
    fn observe(&mut self, t: f64, now: Instant) -> Option<f64> {
        let Some((at, was)) = self.last else {
            self.last = Some((now, t));
            return None;
        };
        let wall = now.duration_since(at).as_secs_f64();
        if wall < 2.0 {
            return None;
        }
        self.last = Some((now, t));
        Some(((t - was) / wall).max(0.0))
    }
}

/// Tells when ffmpeg has been below real time for `SLOW_FOR`, after its warm-up.
struct SpeedWatch {
    started: Instant,
    slow_since: Option<Instant>,
}

impl SpeedWatch {
    fn new(started: Instant) -> Self {
        SpeedWatch {
            started,
            slow_since: None,
        }
    }

    /// True once the speed has stayed below `SLOW_SPEED` for `SLOW_FOR`.
    fn observe(&mut self, speed: f64, now: Instant) -> bool {
        if now.duration_since(self.started) < WARM_UP || speed >= SLOW_SPEED {
            self.slow_since = None;
            return false;
        }
        let since = *self.slow_since.get_or_insert(now);
        now.duration_since(since) >= SLOW_FOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_fit_the_source_and_drop_from_the_top() {
        let heights = |r: Vec<Rung>| r.iter().map(|r| r.height).collect::<Vec<_>>();
        assert_eq!(
            heights(rungs_for(&[720, 480, 360], 1080, 0)),
            [720, 480, 360]
        );
        assert_eq!(heights(rungs_for(&[720, 480, 360], 720, 0)), [480, 360]);
        assert_eq!(heights(rungs_for(&[360, 720, 480], 480, 0)), [360]);
        assert_eq!(heights(rungs_for(&[720, 480, 360], 1080, 1)), [480, 360]);
        assert!(rungs_for(&[720, 480, 360], 360, 0).is_empty());
        assert!(rungs_for(&[], 1080, 0).is_empty());
        // Bitrates of the library's rung of that height, or the one below.
        assert_eq!(rungs_for(&[540], 720, 0)[0].video_kbps, 1400);
    }

    #[test]
    fn the_master_lists_the_source_then_the_rungs() {
        let source = Source {
            width: 854,
            height: 480,
            fps: 30.0,
            has_audio: true,
        };
        let text = master(source, Some(2_000_000), &rungs_for(&[360], 480, 0));
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=854x480,NAME=\"source\"\nindex.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=952000,RESOLUTION=640x360,NAME=\"360p\"\n360p/index.m3u8\n"
        );
    }

    #[test]
    fn one_ffmpeg_writes_every_rung_as_live_hls() {
        let source = Source {
            width: 1920,
            height: 1080,
            fps: 30.0,
            has_audio: true,
        };
        let a = args(&rungs_for(&[720, 480], 1080, 0), source, 1.0).join(" ");
        assert!(
            a.contains("[0:v]scale=-2:720,split=2[v0][c0];[c0]scale=-2:480[v1]"),
            "{a}"
        );
        assert!(
            a.contains("-var_stream_map v:0,a:0,name:720p v:1,a:1,name:480p"),
            "{a}"
        );
        assert!(
            a.contains("-hls_time 1 -hls_init_time 0.5 -hls_list_size 12") && !a.contains("vod"),
            "{a}"
        );
        // Keyframes at 0, 0.5 and 1 s, then every second: the first segment is half as long.
        assert!(a.contains("-g 30 -keyint_min 30 -force_key_frames expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+if(lt(n_forced,3),0.5,1)-0.0167))"), "{a}");
        assert!(a.ends_with("%v/index.m3u8"), "{a}");
    }

    #[test]
    fn playlists_speeds_and_slowness() {
        let p = "#EXTM3U\n#EXTINF:2.000,\n1.ts\n#EXTINF:1.5,\n2.ts\n";
        assert_eq!(segments(p), [("1.ts", 2.0), ("2.ts", 1.5)]);
        assert_eq!(out_time("out_time_us=1500000"), Some(1.5));
        assert_eq!(out_time("out_time_us=N/A"), None);
        assert_eq!(out_time("speed=1.0x"), None);
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.observe(10.0, t0), None);
        assert_eq!(
            m.observe(10.5, t0 + Duration::from_secs(1)),
            None,
            "too soon"
        );
        let v = m.observe(11.6, t0 + Duration::from_secs(2)).unwrap();
        assert!((v - 0.8).abs() < 1e-9, "{v}");
        let t0 = Instant::now();
        let mut w = SpeedWatch::new(t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!w.observe(0.5, at(1)), "warming up");
        assert!(!w.observe(0.5, at(6)));
        assert!(!w.observe(1.0, at(10)), "caught up: the clock starts again");
        assert!(!w.observe(0.8, at(11)));
        assert!(!w.observe(0.8, at(20)));
        assert!(w.observe(0.8, at(21)));
    }
}
