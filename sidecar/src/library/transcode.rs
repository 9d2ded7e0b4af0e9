//! From a media file to a library item: ffprobe for what it is, then ONE ffmpeg process that
//! decodes once and encodes every rendition of an adaptive ladder (aligned 2 s keyframes,
//! HLS VOD, fMP4 segments, a master playlist), or for audio an AAC HLS rendition and an MP3
//! for download. The item is built in a scratch folder and moved into `DATA/vod/<id>/` only
//! when complete, `meta.json` included, so the library never shows half an item.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::proc::{self, Exit};

/// The error of a build stopped on request, told apart from failures with `is::<Cancelled>()`.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Segment container of the HLS output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Segments {
    /// fMP4 (CMAF): what current players prefer; the default.
    #[default]
    Fmp4,
    /// MPEG-TS, for old set-top players.
    Ts,
}

/// How an item is built.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub audio_only: bool,
    /// The item plays only through signed links from the moment it is published.
    pub private: bool,
    /// No rendition above this height.
    pub max_height: Option<u32>,
    pub segments: Segments,
    /// Where the build's processes add up what they cost (a fetch job's record).
    pub tally: Option<crate::costs::Tally>,
}

/// Progress of a build: percent done and seconds left, when known.
pub type Progress<'a> = &'a mut (dyn FnMut(f64, Option<u64>) + Send);

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

/// The full ladder, top down.
pub const LADDER: [Rung; 4] = [
    Rung {
        height: 1080,
        video_kbps: 5000,
        audio_kbps: 128,
    },
    Rung {
        height: 720,
        video_kbps: 2800,
        audio_kbps: 128,
    },
    Rung {
        height: 480,
        video_kbps: 1400,
        audio_kbps: 96,
    },
    Rung {
        height: 360,
        video_kbps: 800,
        audio_kbps: 96,
    },
];

/// Keyframe and segment interval, seconds: every rendition cuts at the same instants.
pub const SEGMENT_SECONDS: u32 = 2;

/// The rungs for a source `height` high: never above the source (nor `max_height`); a source
/// smaller than the lowest rung gets one rendition at its own height.
pub fn ladder(height: u32, max_height: Option<u32>) -> Vec<Rung> {
    let top = height.min(max_height.unwrap_or(u32::MAX));
    let rungs: Vec<Rung> = LADDER.iter().copied().filter(|r| r.height <= top).collect();
    if rungs.is_empty() {
        let low = LADDER[LADDER.len() - 1];
        // Even heights only: H.264 in 4:2:0 needs them.
        return vec![Rung {
            height: top.max(2) & !1,
            ..low
        }];
    }
    rungs
}

/// What ffprobe says about the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub duration: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub size: u64,
}

/// Reads ffprobe's JSON (`-show_format -show_streams`).
pub fn parse_probe(json: &str) -> Result<Probe> {
    let v: serde_json::Value = serde_json::from_str(json).context("unexpected ffprobe output")?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1);
    // nginx-rtmp's fragments of a stream without sound still declare an AAC stream, with no
    // channels: nothing to map, and ffmpeg would wait for its packets forever.
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio" && s["channels"].as_u64().is_none_or(|c| c > 0));
    let fps = video
        .and_then(|s| s["avg_frame_rate"].as_str())
        .and_then(|r| {
            let (n, d) = r.split_once('/')?;
            let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
            // `f64::from_str` takes "inf" and "NaN", which JSON cannot hold: meta.json would
            // say `null` and the item would drop out of the library list.
            Some(n / d).filter(|r| d > 0.0 && n > 0.0 && r.is_finite())
        });
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .filter(|d: &f64| d.is_finite() && *d >= 0.0)
        .unwrap_or(0.0);
    if video.is_none() && audio.is_none() {
        bail!("the file has neither video nor audio");
    }
    Ok(Probe {
        duration,
        width: video.and_then(|s| s["width"].as_u64()).map(|w| w as u32),
        height: video.and_then(|s| s["height"].as_u64()).map(|h| h as u32),
        fps,
        video_codec: video
            .and_then(|s| s["codec_name"].as_str())
            .map(String::from),
        audio_codec: audio
            .and_then(|s| s["codec_name"].as_str())
            .map(String::from),
        size: v["format"]["size"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    })
}

pub async fn probe(input: &Path) -> Result<Probe> {
    let mut cmd = Command::new("ffprobe");
    proc::prepare(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    let out = cmd
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(input)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run ffprobe")?;
    if !out.status.success() {
        bail!("{}", explain(&String::from_utf8_lossy(&out.stderr)));
    }
    parse_probe(&String::from_utf8_lossy(&out.stdout))
}

/// The ffmpeg arguments (after `-i INPUT`) for the video ladder, written into the current
/// folder: `<height>p/index.m3u8` and fMP4 segments per rung, `master.m3u8`.
pub fn video_args(rungs: &[Rung], fps: f64, has_audio: bool, segments: Segments) -> Vec<String> {
    let (mut a, map) = encode_args(rungs, fps, has_audio, f64::from(SEGMENT_SECONDS), false);
    a.extend(hls_output(&map, segments));
    a
}

/// The ladder's encoding (decode once, scale once per rung, keyframes at the same instants
/// in every rung, every `segment` seconds) and the matching `-var_stream_map`, each rung
/// named `<height>p`. With `short_start` the first two keyframes are half a segment apart
/// (then every `segment`, on the same instants): a live ladder's first segment, and so its
/// first playlist, comes half a segment sooner.
pub fn encode_args(
    rungs: &[Rung],
    fps: f64,
    has_audio: bool,
    segment: f64,
    short_start: bool,
) -> (Vec<String>, String) {
    let gop = ((fps.clamp(1.0, 120.0) * segment).round() as u32).max(1);
    let n = rungs.len();
    // Each rung is scaled from the one above it (1080 -> 720 -> 480 ...), not every one
    // from the source: the same pictures for about a tenth less CPU (bench/RESULTS.md).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rungs[i].height));
    let mut filter = String::new();
    let mut from = "[0:v]".to_string();
    for (k, &i) in order.iter().enumerate() {
        filter.push_str(&format!("{from}scale=-2:{}", rungs[i].height));
        if k + 1 == n {
            filter.push_str(&format!("[v{i}]"));
        } else {
            filter.push_str(&format!(",split=2[v{i}][c{k}];"));
            from = format!("[c{k}]");
        }
    }
    let mut a: Vec<String> = vec!["-filter_complex".into(), filter];
    for i in 0..n {
        a.extend(["-map".into(), format!("[v{i}]")]);
        if has_audio {
            a.extend(["-map".into(), "0:a:0".into()]);
        }
    }
    a.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "main",
            "-pix_fmt",
            "yuv420p",
            "-sc_threshold",
            "0",
        ]
        .map(String::from),
    );
    // Keyframes at the same instants in every rendition, so players can switch at any segment.
    a.extend([
        "-g".into(),
        gop.to_string(),
        "-keyint_min".into(),
        gop.to_string(),
    ]);
    a.extend([
        // The first frame, then the frame nearest each `segment` after the last forced one:
        // with the source's timestamps (a live ladder started mid-stream, t = 600 s) a count
        // from zero would force every frame until it caught up.
        "-force_key_frames".into(),
        format!(
            "expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+{step}-{:.4}))",
            0.5 / fps.clamp(1.0, 120.0),
            step = if short_start {
                format!("if(lt(n_forced,3),{},{segment})", segment / 2.0)
            } else {
                segment.to_string()
            }
        ),
    ]);
    for (i, r) in rungs.iter().enumerate() {
        a.extend([format!("-b:v:{i}"), format!("{}k", r.video_kbps)]);
        a.extend([
            format!("-maxrate:v:{i}"),
            format!("{}k", r.video_kbps * 107 / 100),
        ]);
        a.extend([
            format!("-bufsize:v:{i}"),
            format!("{}k", r.video_kbps * 3 / 2),
        ]);
        if has_audio {
            a.extend([format!("-b:a:{i}"), format!("{}k", r.audio_kbps)]);
        }
    }
    if has_audio {
        a.extend(["-c:a", "aac", "-ac", "2", "-ar", "48000"].map(String::from));
    }
    let map: Vec<String> = rungs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if has_audio {
                format!("v:{i},a:{i},name:{}p", r.height)
            } else {
                format!("v:{i},name:{}p", r.height)
            }
        })
        .collect();
    (a, map.join(" "))
}

/// The ffmpeg arguments (after `-i INPUT`) for an audio item: AAC HLS in `audio/` and
/// `audio.mp3` for download.
pub fn audio_args(segments: Segments) -> Vec<String> {
    let mut a: Vec<String> = [
        "-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
    ]
    .map(String::from)
    .to_vec();
    // A one-entry stream map puts master.m3u8 at the item's root, as for video.
    a.extend(hls_output("a:0,name:audio", segments));
    a.extend(
        [
            "-map",
            "0:a:0",
            "-vn",
            "-c:a",
            "libmp3lame",
            "-q:a",
            "2",
            "audio.mp3",
        ]
        .map(String::from),
    );
    a
}

/// HLS VOD output in segments of `SEGMENT_SECONDS`: `<name>/index.m3u8` per entry of
/// `stream_map`, and `master.m3u8` beside them.
fn hls_output(stream_map: &str, segments: Segments) -> Vec<String> {
    let time = SEGMENT_SECONDS.to_string();
    let mut a: Vec<String> = ["-f", "hls", "-hls_time", &time, "-hls_playlist_type", "vod"]
        .map(String::from)
        .to_vec();
    let container: &[&str] = match segments {
        Segments::Fmp4 => &[
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-hls_segment_filename",
            "%v/seg_%03d.m4s",
        ],
        Segments::Ts => &[
            "-hls_segment_type",
            "mpegts",
            "-hls_segment_filename",
            "%v/seg_%03d.ts",
        ],
    };
    a.extend(container.iter().map(|s| s.to_string()));
    a.extend(
        [
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            stream_map,
            "%v/index.m3u8",
        ]
        .map(String::from),
    );
    a
}

/// What ffmpeg's last lines mean to a person.
pub fn explain(stderr: &str) -> String {
    let lower = stderr.to_lowercase();
    let known = [
        ("no space left on device", "the disk is full"),
        (
            "invalid data found when processing input",
            "the file is not a media file ffmpeg can read (corrupt or unsupported)",
        ),
        ("no such file or directory", "the file does not exist"),
        ("permission denied", "permission denied"),
        (
            "does not contain any stream",
            "the file has neither video nor audio",
        ),
    ];
    if let Some((_, words)) = known.iter().find(|(k, _)| lower.contains(k)) {
        return (*words).to_string();
    }
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(2)
        .collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

pub use streamedge_formats::library::Meta;

/// ffmpeg's `-progress` output: the position reached, in seconds.
pub fn progress_position(line: &str) -> Option<f64> {
    let us: i64 = line.strip_prefix("out_time_us=")?.trim().parse().ok()?;
    (us >= 0).then(|| us as f64 / 1e6)
}

/// Runs ffmpeg with `args` in `dir`, reporting how far it got through `duration` seconds of
/// input, failing with its words, or stopping when `cancel` fires.
async fn ffmpeg(
    role: proc::Role,
    dir: &Path,
    input: &Path,
    args: &[String],
    duration: f64,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<()> {
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(dir)
        .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error"])
        .args(["-progress", "pipe:1", "-y", "-i"])
        .arg(input)
        .args(args);
    let start = std::time::Instant::now();
    let exit = proc::run(cmd, role, cancel, |line| {
        let Some(pos) = progress_position(line) else {
            return;
        };
        if duration > 0.0 {
            let done = (pos / duration).clamp(0.0, 1.0);
            let spent = start.elapsed().as_secs_f64();
            let eta = (done > 0.02).then(|| (spent / done - spent).max(0.0).round() as u64);
            progress(done * 100.0, eta);
        }
    })
    .await?;
    match exit {
        Exit::Success => Ok(()),
        Exit::Cancelled => Err(Cancelled.into()),
        Exit::Failed(stderr) => bail!("{}", explain(&stderr)),
    }
}

/// What is known of an item's origin, for its `meta.json`.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The item's id: its folder's name in `DATA/vod/`.
    pub id: &'a str,
    pub title: &'a str,
    /// The file or URL it came from.
    pub source: &'a str,
}

/// Builds an item from `input` in `work` (which must not exist), `meta.json` last; `publish`
/// then moves it into the library. `progress` hears about the encoding; `cancel` stops it
/// (the error is then `Cancelled`). A failed build removes `work`.
pub async fn build_item(
    input: &Path,
    work: &Path,
    origin: Origin<'_>,
    opts: Options,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<Meta> {
    let input = std::path::absolute(input)?;
    let info = probe(&input).await?;
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let d = info.duration;
    let role = |what| {
        let r = proc::Role::new(what, origin.id);
        match &opts.tally {
            Some(t) => r.tallied(t),
            None => r,
        }
    };
    let result = async {
        let (kind, renditions, poster, download) = match (
            opts.audio_only || info.height.is_none(),
            info.audio_codec.is_some(),
        ) {
            (true, false) => bail!("the file has no audio to keep"),
            (true, true) => {
                std::fs::create_dir_all(work.join("audio"))?;
                let args = audio_args(opts.segments);
                ffmpeg(role("transcode"), work, &input, &args, d, cancel, progress).await?;
                (
                    "audio",
                    vec!["audio".to_string()],
                    None,
                    Some("audio.mp3".to_string()),
                )
            }
            (false, has_audio) => {
                let rungs = ladder(info.height.unwrap_or(360), opts.max_height);
                for r in &rungs {
                    std::fs::create_dir_all(work.join(format!("{}p", r.height)))?;
                }
                let fps = info.fps.unwrap_or(30.0);
                let args = video_args(&rungs, fps, has_audio, opts.segments);
                ffmpeg(role("transcode"), work, &input, &args, d, cancel, progress).await?;
                let at = format!("{:.2}", (info.duration / 10.0).min(5.0));
                let poster = [
                    "-ss",
                    &at,
                    "-frames:v",
                    "1",
                    "-vf",
                    "scale=-2:360",
                    "poster.jpg",
                ]
                .map(String::from);
                let nothing = &mut |_, _| {};
                ffmpeg(role("poster"), work, &input, &poster, 0.0, cancel, nothing).await?;
                (
                    "video",
                    rungs.iter().map(|r| format!("{}p", r.height)).collect(),
                    Some("poster.jpg".into()),
                    None,
                )
            }
        };
        let meta = Meta {
            id: origin.id.to_string(),
            title: origin.title.to_string(),
            description: String::new(),
            source: origin.source.to_string(),
            kind: kind.into(),
            duration: info.duration,
            codecs: [&info.video_codec, &info.audio_codec]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            source_size: info.size,
            source_resolution: info.width.zip(info.height).map(|(w, h)| format!("{w}x{h}")),
            renditions,
            poster,
            thumbnails: vec![],
            download,
            created: crate::clock::now_rfc3339(),
            private: opts.private,
        };
        let text = serde_json::to_string_pretty(&meta)? + "\n";
        crate::fsutil::write_atomic(
            &work.join(streamedge_formats::layout::META_JSON),
            text.as_bytes(),
            0o644,
            None,
        )?;
        Ok(meta)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(work);
    }
    result
}

/// Whole or not at all: one rename makes a built item appear in the library.
pub fn publish(work: &Path, dest: &Path) -> Result<()> {
    std::fs::rename(work, dest)
        .with_context(|| format!("cannot move the item into {}", dest.display()))
}

/// A new item id: time-ordered and unguessable enough for URLs (signed links protect private
/// items; ids only have to be unique).
pub fn new_id() -> Result<String> {
    let r = crate::clock::random_bytes::<4>()?;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Ok(format!(
        "{t:x}-{:02x}{:02x}{:02x}{:02x}",
        r[0], r[1], r[2], r[3]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_never_goes_above_the_source() {
        let heights = |h, max| ladder(h, max).iter().map(|r| r.height).collect::<Vec<_>>();
        assert_eq!(heights(1080, None), [1080, 720, 480, 360]);
        assert_eq!(heights(720, None), [720, 480, 360]);
        assert_eq!(heights(1080, Some(480)), [480, 360]);
        assert_eq!(heights(500, None), [480, 360]);
        assert_eq!(heights(241, None), [240]);
    }

    #[test]
    fn one_process_for_the_whole_ladder() {
        let a = video_args(&ladder(720, None), 30.0, true, Segments::Fmp4).join(" ");
        assert!(a.contains("[0:v]scale=-2:720,split=2[v0][c0];[c0]scale=-2:480,split=2[v1][c1];[c1]scale=-2:360[v2]"), "{a}");
        assert!(
            a.contains("-g 60 -keyint_min 60")
                && a.contains("expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+2-0.0167))")
        );
        assert!(a.contains("-b:v:0 2800k") && a.contains("-b:v:2 800k"));
        assert!(a.contains("-hls_playlist_type vod -hls_segment_type fmp4"));
        assert!(a.ends_with("v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p %v/index.m3u8"));
        // Rungs in any order: each is still scaled from the next taller one.
        let upside_down: Vec<Rung> = ladder(720, None).into_iter().rev().collect();
        let a = video_args(&upside_down, 30.0, true, Segments::Fmp4).join(" ");
        assert!(a.contains("[0:v]scale=-2:720,split=2[v2][c0];[c0]scale=-2:480,split=2[v1][c1];[c1]scale=-2:360[v0]"), "{a}");
        let silent = video_args(&ladder(360, None), 25.0, false, Segments::Ts).join(" ");
        assert!(
            !silent.contains("0:a") && silent.contains("v:0,name:360p") && silent.contains("-g 50")
        );
        assert!(silent.contains("-hls_segment_type mpegts -hls_segment_filename %v/seg_%03d.ts"));
        assert!(audio_args(Segments::Fmp4)
            .join(" ")
            .contains("a:0,name:audio %v/index.m3u8"));
    }

    #[test]
    fn probe_output() {
        let json = r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":1280,"height":720,"avg_frame_rate":"30000/1001"},
            {"codec_type":"audio","codec_name":"aac"}],"format":{"duration":"12.5","size":"1000"}}"#;
        let p = parse_probe(json).unwrap();
        assert_eq!(
            (p.width, p.height, p.duration, p.size),
            (Some(1280), Some(720), 12.5, 1000)
        );
        assert!((p.fps.unwrap() - 29.97).abs() < 0.01);
        assert_eq!(p.audio_codec.as_deref(), Some("aac"));
        assert!(parse_probe(r#"{"streams":[],"format":{}}"#).is_err());
        // Found by props: a duration or frame rate JSON cannot hold counts as unknown.
        let odd = r#"{"streams":[{"codec_type":"video","avg_frame_rate":"inf/1"}],"format":{"duration":"NaN"}}"#;
        let p = parse_probe(odd).unwrap();
        assert_eq!((p.duration, p.fps), (0.0, None));
        assert!(parse_probe("nope").is_err());
        // What nginx-rtmp writes for a stream without sound: an AAC stream of no channels.
        let silent = r#"{"streams":[{"codec_type":"video","height":720},{"codec_type":"audio","codec_name":"aac","channels":0}],"format":{}}"#;
        assert_eq!(parse_probe(silent).unwrap().audio_codec, None);
    }

    #[test]
    fn progress_lines() {
        assert_eq!(progress_position("out_time_us=2500000"), Some(2.5));
        assert_eq!(progress_position("out_time_us=N/A"), None);
        assert_eq!(progress_position("out_time_us=-9223372036854775807"), None);
        assert_eq!(progress_position("frame=12"), None);
    }

    #[test]
    fn ffmpeg_errors_in_words() {
        assert_eq!(
            explain("x.mp4: Invalid data found when processing input\n"),
            "the file is not a media file ffmpeg can read (corrupt or unsupported)"
        );
        assert_eq!(
            explain("[hls] error writing: No space left on device"),
            "the disk is full"
        );
        assert_eq!(
            explain("line one\n\nsomething odd\n"),
            "line one / something odd"
        );
    }
}
