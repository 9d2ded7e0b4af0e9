//! Recording into the library. While a recorded stream is live, every fragment nginx-rtmp
//! lists in the source playlist (complete MPEG-TS, never re-encoded) is hard-linked into
//! `DATA/.work/rec-NAME-START/`: no copy, no CPU, and a crash of nginx, ffmpeg or the sidecar
//! loses at most the fragment being written. When the stream ends and the grace period
//! passes without the publisher coming back (a reconnect continues the same folder), the
//! fragments are joined (`-c copy`) and imported like `library import --private`: ladder,
//! poster, `meta.json`, published whole. Folders left by a crash are taken up at the next
//! start. Below `live.record_min_free_mb`, linking pauses with a log line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use streamedge_formats::layout::{LIVE_PLAYLIST, LIVE_TITLE};
use streamedge_formats::streams::clean_title;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::fetch::space::Floor;
use crate::proc::{self, Exit};

/// How often the source playlist is looked at for new fragments.
const EVERY: Duration = Duration::from_secs(1);
/// The prefix of recording folders in the scratch space.
const PREFIX: &str = "rec-";

/// A new recording folder for stream `name`.
pub fn new_folder(config: &Config, name: &str) -> PathBuf {
    // 20261202T153000Z: no dash, so the name is everything before the last one.
    let start: String = crate::clock::now_rfc3339()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    config.layout().scratch(&format!("{PREFIX}{name}-{start}"))
}

/// "alice, live 2026-12-02 15:30 UTC" from the folder's start time.
fn title(name: &str, start: &str) -> String {
    let b = start.as_bytes();
    if start.len() == 16 && b[8] == b'T' && start.is_ascii() {
        format!(
            "{name}, live {}-{}-{} {}:{} UTC",
            &start[0..4],
            &start[4..6],
            &start[6..8],
            &start[9..11],
            &start[11..13]
        )
    } else {
        format!("{name}, live")
    }
}

/// When a recording started, from its folder's `20261202T153000Z`.
fn started_at(start: &str) -> Option<std::time::SystemTime> {
    let b = start.as_bytes();
    if start.len() != 16 || b[8] != b'T' || !start.is_ascii() {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &start[0..4],
        &start[4..6],
        &start[6..8],
        &start[9..11],
        &start[11..13],
        &start[13..15]
    );
    humantime::parse_rfc3339(&text).ok()
}

/// Recording folders a previous run left, with their stream names.
pub fn leftovers(config: &Config) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(config.layout().work()) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let rest = file.strip_prefix(PREFIX)?;
            // NAME-20261202T153000Z: the name is everything before the last dash.
            let (name, _) = rest.rsplit_once('-')?;
            Some((name.to_string(), e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Links the source's fragments into `folder` until `stop` fires.
pub async fn record(config: &Config, name: &str, folder: &Path, stop: &CancellationToken) {
    let live = config.layout().live().join(name);
    let floor = Floor::new(&config.data_dir, config.live.record_min_free_mb);
    if let Err(e) = crate::fsutil::ensure_dir(folder, 0o700, None) {
        tracing::error!("live \"{name}\": cannot record: {e:#}");
        return;
    }
    tracing::info!("live \"{name}\": recording into {}", folder.display());
    let mut linked: HashSet<String> = existing(folder);
    let mut paused = false;
    loop {
        let low = floor.below();
        if low != paused {
            paused = low;
            if low {
                tracing::warn!(
                    "live \"{name}\": recording paused: less than {} MiB free in {} \
                     (live.record_min_free_mb)",
                    config.live.record_min_free_mb,
                    config.data_dir.display()
                );
            } else {
                tracing::info!("live \"{name}\": recording goes on: there is room again");
            }
        }
        if !paused {
            link_new(&live, folder, &mut linked);
            keep_title(&live, folder);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
    // The fragments written until the end.
    if !paused {
        link_new(&live, folder, &mut linked);
    }
}

/// The broadcast's title (a relay's), kept with the recording for its library item.
fn keep_title(live: &Path, folder: &Path) {
    if let Ok(text) = std::fs::read_to_string(live.join(LIVE_TITLE)) {
        let kept = folder.join(LIVE_TITLE);
        match clean_title(&text) {
            Some(t) if std::fs::read_to_string(&kept).ok().as_deref() != Some(t.as_str()) => {
                let _ = std::fs::write(kept, t);
            }
            _ => {}
        }
    }
}

fn existing(folder: &Path) -> HashSet<String> {
    std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Links every fragment the source playlist lists that is not in `folder` yet.
fn link_new(live: &Path, folder: &Path, linked: &mut HashSet<String>) {
    let Ok(playlist) = std::fs::read_to_string(live.join(LIVE_PLAYLIST)) else {
        return;
    };
    for (file, _) in super::ladder::segments(&playlist) {
        // nginx-rtmp's own names only: digits and ".ts", nothing that leaves the folder.
        let plain = file
            .strip_suffix(".ts")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !plain || linked.contains(file) {
            continue;
        }
        let (from, to) = (live.join(file), folder.join(file));
        let done =
            std::fs::hard_link(&from, &to).or_else(|_| std::fs::copy(&from, &to).map(|_| ()));
        match done {
            Ok(()) => {
                linked.insert(file.to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                linked.insert(file.to_string());
            }
            // Cleaned up by nginx-rtmp meanwhile: gone for the recording too.
            Err(e) => tracing::debug!("cannot keep {}: {e}", from.display()),
        }
    }
}

/// Joins the fragments of `folder` into one library item (private), then removes the
/// folder. A failure keeps the folder for the next start, and says why.
pub async fn finish(config: &Config, name: &str, folder: &Path) {
    match import(config, name, folder).await {
        Ok(Some(id)) => {
            tracing::info!("live \"{name}\": the recording is library item {id} (private)");
            let _ = std::fs::remove_dir_all(folder);
        }
        Ok(None) => {
            let _ = std::fs::remove_dir_all(folder);
        }
        Err(e) => tracing::error!(
            "live \"{name}\": the recording in {} is kept, not in the library: {e:#}",
            folder.display()
        ),
    }
}

async fn import(config: &Config, name: &str, folder: &Path) -> Result<Option<String>> {
    let mut fragments: Vec<String> = existing(folder)
        .into_iter()
        .filter(|f| f.ends_with(".ts") && f.bytes().next().is_some_and(|b| b.is_ascii_digit()))
        .collect();
    if fragments.is_empty() {
        return Ok(None);
    }
    // Clock-named fragments of equal length sort in time; a shorter name is older.
    fragments.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    let list: String = fragments.iter().map(|f| format!("file '{f}'\n")).collect();
    std::fs::write(folder.join("fragments.txt"), list)?;
    let joined = folder.join("recording.ts");
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(folder)
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(["-progress", "pipe:1"])
        .args([
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            "fragments.txt",
            "-c",
            "copy",
        ])
        .arg(&joined);
    let role = proc::Role::new("recording", name);
    match proc::run(cmd, role, &CancellationToken::new(), |_| {}).await? {
        Exit::Success => {}
        Exit::Failed(e) => bail!(
            "cannot join the fragments: {}",
            crate::library::transcode::explain(&e)
        ),
        Exit::Cancelled => bail!("stopped"),
    }
    let started = folder
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.rsplit_once('-'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let mut title = title(name, &started);
    // The scheduled broadcast it was made in names it, else the broadcast's own title.
    let scheduled = started_at(&started).and_then(|at| super::schedule::during(config, name, at));
    let own = std::fs::read_to_string(folder.join(LIVE_TITLE))
        .ok()
        .and_then(|t| clean_title(&t));
    if let Some(t) = scheduled.as_ref().map(|b| b.title.clone()).or(own) {
        title = format!("{t} ({title})");
    }
    let meta = crate::library::import(config, &joined, Some(&title), false, true)
        .await
        .context("cannot import the recording")?;
    if let Some(b) = scheduled.filter(|b| !b.description.is_empty()) {
        let edit = crate::library::Edit {
            title: None,
            description: Some(b.description),
            private: None,
        };
        if let Err(e) = crate::library::edit(config, &meta.id, edit).await {
            tracing::warn!("live \"{name}\": the recording's description: {e:#}");
        }
    }
    Ok(Some(meta.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_from_folder_names() {
        assert_eq!(
            title("alice", "20261202T153000Z"),
            "alice, live 2026-12-02 15:30 UTC"
        );
        assert_eq!(title("alice", "junk"), "alice, live");
        assert_eq!(
            started_at("20261202T153000Z"),
            humantime::parse_rfc3339("2026-12-02T15:30:00Z").ok()
        );
        assert_eq!(started_at("junk"), None);
    }

    #[test]
    fn only_nginx_rtmp_fragments_are_linked_once() {
        let d = tempfile::tempdir().unwrap();
        let (live, rec) = (d.path().join("live"), d.path().join("rec"));
        std::fs::create_dir_all(&live).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        std::fs::write(live.join("100.ts"), b"a").unwrap();
        std::fs::write(live.join("101.ts"), b"b").unwrap();
        std::fs::write(
            live.join(LIVE_PLAYLIST),
            "#EXTM3U\n#EXTINF:2,\n100.ts\n#EXTINF:2,\n../../keys.toml\n#EXTINF:2,\n101.ts\n#EXTINF:2,\n102.ts\n",
        )
        .unwrap();
        let mut linked = HashSet::new();
        link_new(&live, &rec, &mut linked);
        link_new(&live, &rec, &mut linked);
        let mut got: Vec<String> = existing(&rec).into_iter().collect();
        got.sort();
        assert_eq!(got, ["100.ts", "101.ts"]);
        assert_eq!(std::fs::read(rec.join("101.ts")).unwrap(), b"b");
    }
}
