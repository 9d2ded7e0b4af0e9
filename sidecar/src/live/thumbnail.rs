//! A live thumbnail per stream: every `EVERY`, the first frame of the source's newest
//! segment (a keyframe: one frame decoded, never the whole stream) becomes
//! `DATA/live/NAME/thumb.jpg`, at most `HEIGHT` pixels high. nginx serves it at
//! `/live/NAME/thumb.jpg`, signed like the stream when the stream is private. Removed when
//! the stream ends.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use streamedge_formats::layout::{LIVE_PLAYLIST, LIVE_THUMBNAIL};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::proc::{self, Exit};

/// How often the thumbnail is made again.
pub const EVERY: Duration = Duration::from_secs(10);
/// Its height at most (smaller sources keep theirs).
const HEIGHT: u32 = 240;

/// Keeps the thumbnail of the stream in `dir` fresh until `stop` fires, then removes it.
pub async fn keep(dir: &Path, name: &str, stop: &CancellationToken) {
    let mut failing = false;
    loop {
        let wait = match make(dir, stop).await {
            Ok(()) => {
                failing = false;
                EVERY
            }
            // No segment yet: look again soon.
            Err(e) if e.downcast_ref::<NoSegment>().is_some() => Duration::from_millis(500),
            Err(_) if stop.is_cancelled() => break,
            Err(e) => {
                if !failing {
                    tracing::warn!("live \"{name}\": no thumbnail: {e:#}");
                }
                failing = true;
                EVERY
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let _ = std::fs::remove_file(dir.join(LIVE_THUMBNAIL));
}

#[derive(Debug, thiserror::Error)]
#[error("the source has no segment yet")]
struct NoSegment;

/// One thumbnail from the newest segment, written whole (a reader never sees half a file).
async fn make(dir: &Path, stop: &CancellationToken) -> Result<()> {
    let playlist = std::fs::read_to_string(dir.join(LIVE_PLAYLIST)).map_err(|_| NoSegment)?;
    let newest = super::ladder::segments(&playlist)
        .last()
        .map(|(file, _)| file.to_string())
        .ok_or(NoSegment)?;
    let part = dir.join(format!(".{LIVE_THUMBNAIL}.part"));
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(dir)
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y", "-i"])
        .arg(&newest)
        .args(["-frames:v", "1", "-vf"])
        .arg(format!("scale=-2:'min({HEIGHT},ih)'"))
        .args(["-q:v", "5", "-f", "mjpeg"])
        .arg(&part);
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let exit = proc::run(cmd, proc::Role::new("thumbnail", name), stop, |_| {}).await;
    if !matches!(exit, Ok(Exit::Success)) {
        let _ = std::fs::remove_file(&part);
    }
    match exit? {
        Exit::Success => {}
        Exit::Cancelled => bail!("stopped"),
        Exit::Failed(stderr) => bail!("{}", crate::library::transcode::explain(&stderr)),
    }
    std::fs::rename(&part, dir.join(LIVE_THUMBNAIL))
        .with_context(|| format!("cannot write {}", dir.join(LIVE_THUMBNAIL).display()))
}
