//! Stills of a library item at chosen times: `library thumbnails ID --at 5s,30s,1m` writes
//! `thumb-<ms>.jpg` beside the item's `meta.json`, and `library poster ID --at 30s` makes one
//! of them the item's poster. They are taken from the item's top rendition (not the file it
//! came from, which the library does not keep), one ffmpeg per still that seeks to the time
//! and decodes one frame.

use std::path::Path;

use anyhow::Context;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::Meta;
use crate::config::Config;
use crate::error::Error;
use crate::proc::{self, Exit};
use streamedge_formats::library::Thumbnail;

/// Each rendition's media playlist.
const VOD_PLAYLIST_NAME: &str = "index.m3u8";

/// Most stills one call takes.
pub const MAX_TIMES: usize = 20;

/// Times as the command line gives them: "5s,30s,1m", "1m30s", "1500ms", or plain seconds
/// ("12.5", "0").
pub fn parse_times(list: &str) -> Result<Vec<f64>, Error> {
    let mut times = Vec::new();
    for part in list.split(',').map(str::trim) {
        let t = parse_time(part).ok_or_else(|| {
            Error::Invalid(format!(
                "\"{}\" is not a time such as \"30s\", \"1m30s\" or \"12.5\"",
                part.escape_debug()
            ))
        })?;
        times.push(t);
    }
    if times.len() > MAX_TIMES {
        return Err(Error::Invalid(format!(
            "{} times given; at most {MAX_TIMES} at once",
            times.len()
        )));
    }
    times.sort_by(f64::total_cmp);
    times.dedup();
    Ok(times)
}

fn parse_time(s: &str) -> Option<f64> {
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some(secs);
    }
    let unit = s.trim_start_matches('0');
    if unit.len() < s.len() && matches!(unit, "s" | "ms" | "m" | "h") {
        // "0s", "0ms": nginx's syntax, which has no zero.
        return Some(0.0);
    }
    crate::config::NginxTime::parse(s).map(|t| t.0.as_secs_f64())
}

/// The file name of the still at `at` seconds.
pub fn file_name(at: f64) -> String {
    format!("thumb-{}.jpg", (at * 1000.0).round() as u64)
}

/// Takes the stills of item `id` at `times` (those it has already are kept) and lists them
/// in its `meta.json`.
pub async fn thumbnails(config: &Config, id: &str, times: &[f64]) -> Result<Meta, Error> {
    super::check_id(id)?;
    let dir = config.layout().item(id);
    // The item may be in the bucket: what a still needs comes back for it, held from the
    // upload that would take it away again meanwhile (and from a move to another prefix).
    let bucket = super::bucket::Bucket::of(config)?;
    let _lock = super::lock(&dir, id).await?;
    let meta = super::read_meta(config, id)?;
    let source = picture_source(&meta, times)?;
    let from = Fetch {
        bucket: bucket.as_ref(),
        id,
        private: meta.private,
        fetched: std::sync::Mutex::new(Vec::new()),
    };
    let mut made = Vec::new();
    let mut result = Ok(());
    for &at in times {
        let file = file_name(at);
        let have = dir.join(&file).exists()
            || meta.thumbnails.iter().any(|t| t.file == file) && bucket.is_some();
        if !have {
            result = take(&dir, &source, at, &file, &from).await;
            if result.is_err() {
                break;
            }
        }
        made.push(Thumbnail { at, file });
    }
    // What came back from the bucket is still there: it goes again.
    for rel in from.fetched.lock().unwrap().iter() {
        let _ = std::fs::remove_file(dir.join(rel));
    }
    result?;
    super::rewrite(config, id, |m| {
        for t in made {
            if !m.thumbnails.iter().any(|have| have.file == t.file) {
                m.thumbnails.push(t);
            }
        }
        m.thumbnails.sort_by(|a, b| a.at.total_cmp(&b.at));
        Ok(())
    })
}

/// Makes the still at `at` the item's poster (taking it first if need be).
pub async fn poster(config: &Config, id: &str, at: f64) -> Result<Meta, Error> {
    thumbnails(config, id, &[at]).await?;
    let file = file_name(at);
    super::change(config, id, |m| {
        m.poster = Some(file);
        Ok(())
    })
    .await
}

/// The item's top rendition (its folder), once the times are known to fit in the item.
fn picture_source(meta: &Meta, times: &[f64]) -> Result<String, Error> {
    if meta.kind != "video" {
        return Err(Error::Invalid(format!(
            "library item \"{}\" is {}: it has no pictures",
            meta.id, meta.kind
        )));
    }
    if let Some(late) = times
        .iter()
        .find(|&&t| meta.duration > 0.0 && t >= meta.duration)
    {
        return Err(Error::Invalid(format!(
            "{late} s is past the end of library item \"{}\" ({:.1} s long)",
            meta.id, meta.duration
        )));
    }
    let top = meta
        .renditions
        .first()
        .with_context(|| format!("library item \"{}\" lists no rendition", meta.id))?;
    Ok(top.clone())
}

/// Where second `at` of a media playlist is: the init segment (fMP4), the segment that
/// holds it, and how far into that segment it is. ffmpeg 5.1 cannot seek in an fMP4 HLS
/// playlist, so a still is taken from that one segment instead of decoding from the start.
fn segment_at(playlist: &str, at: f64) -> Option<(Option<&str>, &str, f64)> {
    let mut init = None;
    let mut start = 0.0;
    let mut duration = None;
    let mut last = None;
    for line in playlist.lines().map(str::trim) {
        if let Some(map) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = map.split('"').next();
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            let d = duration.take()?;
            if at < start + d {
                return Some((init, line, at - start));
            }
            last = Some((line, start));
            start += d;
        }
    }
    // Within the rounding of the last segment's length.
    last.map(|(seg, s)| (init, seg, (at - s).max(0.0)))
}

/// A file name our own playlist gave: safe inside ffmpeg's `concat:` list.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// One still, written under a temporary name and renamed into place: a still is whole or
/// absent.
async fn take(
    dir: &Path,
    rendition: &str,
    at: f64,
    file: &str,
    from: &Fetch<'_>,
) -> Result<(), Error> {
    let playlist = dir.join(rendition).join(VOD_PLAYLIST_NAME);
    from.local(dir, &format!("{rendition}/{VOD_PLAYLIST_NAME}"))
        .await?;
    let text = std::fs::read_to_string(&playlist)
        .with_context(|| format!("cannot read {}", playlist.display()))?;
    let (init, segment, offset) = segment_at(&text, at)
        .filter(|(i, s, _)| plain(s) && i.is_none_or(plain))
        .with_context(|| format!("{} lists no segment at {at} s", playlist.display()))?;
    if let Some(i) = init {
        from.local(dir, &format!("{rendition}/{i}")).await?;
    }
    from.local(dir, &format!("{rendition}/{segment}")).await?;
    let input = match init {
        Some(i) => format!("concat:{rendition}/{i}|{rendition}/{segment}"),
        None => format!("{rendition}/{segment}"),
    };
    let partial = format!(".{file}.partial.jpg");
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(dir)
        .args(["-nostdin", "-hide_banner", "-nostats", "-v", "error", "-y"])
        .args(["-i", &input, "-ss", &format!("{offset:.3}")])
        .args(["-frames:v", "1", "-vf", "scale=-2:360", "-q:v", "3"])
        .arg(&partial);
    let role = proc::Role::new(
        "still",
        dir.file_name().unwrap_or_default().to_string_lossy(),
    );
    let exit = proc::run(cmd, role, &CancellationToken::new(), |_| {}).await?;
    let result = match exit {
        Exit::Success if dir.join(&partial).exists() => {
            std::fs::rename(dir.join(&partial), dir.join(file))
                .with_context(|| format!("cannot write {}", dir.join(file).display()))
                .map_err(Error::from)
        }
        Exit::Success => Err(Error::Invalid(format!("no picture at {at} s"))),
        Exit::Cancelled => Err(anyhow::anyhow!("ffmpeg was stopped").into()),
        Exit::Failed(stderr) => Err(anyhow::anyhow!(
            "cannot take the still at {at} s: {}",
            super::transcode::explain(&stderr)
        )
        .into()),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(dir.join(&partial));
    }
    result
}

/// Where an item's files come from when they are not on this disk: its bucket.
struct Fetch<'a> {
    bucket: Option<&'a super::bucket::Bucket>,
    id: &'a str,
    private: bool,
    /// Files brought back, to delete afterwards.
    fetched: std::sync::Mutex<Vec<String>>,
}

impl Fetch<'_> {
    /// Makes sure file `rel` of the item is in `dir`.
    async fn local(&self, dir: &Path, rel: &str) -> Result<(), Error> {
        let (Some(bucket), false) = (self.bucket, dir.join(rel).exists()) else {
            return Ok(());
        };
        bucket
            .download(self.private, self.id, rel, &dir.join(rel))
            .await?;
        self.fetched.lock().unwrap().push(rel.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_people_write_them() {
        assert_eq!(parse_times("5s,30s,1m").unwrap(), [5.0, 30.0, 60.0]);
        assert_eq!(parse_times("1m30s, 12.5,0").unwrap(), [0.0, 12.5, 90.0]);
        assert_eq!(parse_times("1500ms,0s,1.5").unwrap(), [0.0, 1.5]);
        for bad in ["", "5 s", "-1", "1x", "inf", "NaN", "5s,", "s"] {
            assert!(parse_times(bad).is_err(), "{bad:?}");
        }
        let many = vec!["1"; MAX_TIMES + 1].join(",");
        assert!(parse_times(&many).is_err());
        assert_eq!(file_name(30.0), "thumb-30000.jpg");
        assert_eq!(file_name(1.5), "thumb-1500.jpg");
    }

    #[test]
    fn the_segment_that_holds_a_time() {
        let fmp4 = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000000,\nseg_000.m4s\n\
                    #EXTINF:2.000000,\nseg_001.m4s\n#EXTINF:1.5,\nseg_002.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(
            segment_at(fmp4, 0.0),
            Some((Some("init.mp4"), "seg_000.m4s", 0.0))
        );
        assert_eq!(
            segment_at(fmp4, 2.5),
            Some((Some("init.mp4"), "seg_001.m4s", 0.5))
        );
        assert_eq!(segment_at(fmp4, 5.4).map(|s| s.1), Some("seg_002.m4s"));
        // Past the listed end by a rounding: the last segment.
        assert_eq!(segment_at(fmp4, 5.6).map(|s| s.1), Some("seg_002.m4s"));
        let ts = "#EXTM3U\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        assert_eq!(segment_at(ts, 3.0), Some((None, "b.ts", 1.0)));
        assert_eq!(segment_at("#EXTM3U\n", 1.0), None);
        assert_eq!(segment_at("#EXTM3U\nno-duration.ts\n", 1.0), None);
        assert!(plain("seg_001.m4s") && !plain("a|b") && !plain("../x") && !plain(""));
    }
}
