//! The live pipeline: what the sidecar runs beside a stream while it is live. It learns who
//! is live from the module's registry (nginx's internal `/api/streams/all`, twice a second)
//! and never sits between nginx and a viewer: nginx-rtmp's source rendition plays whether or
//! not anything here runs.
//!
//! Per live stream: a thumbnail (`thumbnail`) and, with `live.transcode = "on"`, the
//! adaptive-bitrate ladder (`ladder`), one ffmpeg reading the stream as nginx-rtmp pushes it
//! to the sidecar (`feed`).

pub mod audio;
pub mod feed;
pub mod history;
pub mod icecast;
pub mod ladder;
pub mod listen;
pub mod recorder;
pub mod schedule;
pub mod thumbnail;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use streamedge_formats::layout::{LIVE_MASTER, LIVE_THUMBNAIL, LIVE_TITLE};
use streamedge_formats::name::check_name;
use streamedge_formats::streams::Stream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Switch};

/// How often the registry is asked who is live.
const POLL: Duration = Duration::from_millis(500);

/// What each live stream's ladder is doing and costing, for the API and `streamedge status`.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<BTreeMap<String, LadderStatus>>>);

/// One ladder, as `GET /api/live` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LadderStatus {
    /// "starting", "running", "restarting" or "source only".
    pub state: &'static str,
    /// What ffmpeg reads: "feed" (nginx-rtmp's push, from the publish on) or "source
    /// playlist" (nginx-rtmp's HLS, when no push came).
    pub input: &'static str,
    /// The rungs being made, top down ("720p").
    pub rungs: Vec<String>,
    /// Rungs dropped because the machine could not keep up, with the speed that did it.
    pub dropped: Vec<String>,
    /// ffmpeg's speed, × real time.
    pub speed: Option<f64>,
    pub restarts: u32,
    /// Why it last stopped or why it makes nothing.
    pub last_error: Option<String>,
    /// When the running process started (RFC 3339).
    pub started: Option<String>,
    /// CPU seconds and peak memory of the running process.
    pub cpu_seconds: Option<f64>,
    pub peak_memory_mib: Option<f64>,
}

impl Board {
    /// Changes stream `name`'s entry (made if missing).
    pub(crate) fn update(&self, name: &str, f: impl FnOnce(&mut LadderStatus)) {
        let mut all = self.0.lock().expect("not poisoned");
        let entry = all.entry(name.to_string()).or_insert_with(|| LadderStatus {
            state: "starting",
            input: "feed",
            rungs: Vec::new(),
            dropped: Vec::new(),
            speed: None,
            restarts: 0,
            last_error: None,
            started: None,
            cpu_seconds: None,
            peak_memory_mib: None,
        });
        f(entry);
    }

    fn remove(&self, name: &str) {
        self.0.lock().expect("not poisoned").remove(name);
    }

    /// Every ladder, with what its running process has cost so far (from the process table).
    pub fn snapshot(&self) -> BTreeMap<String, LadderStatus> {
        let mut all = self.0.lock().expect("not poisoned").clone();
        for (name, s) in all.iter_mut() {
            if let Some(c) = crate::costs::running_for(name).get("ladder") {
                s.cpu_seconds = Some((c.cpu_seconds * 100.0).round() / 100.0);
                s.peak_memory_mib =
                    Some((c.peak_memory_bytes as f64 / 1048576.0 * 10.0).round() / 10.0);
            }
        }
        all
    }
}

struct Running {
    /// The broadcast it works on (when it was published): a republish is another one.
    since: Option<String>,
    /// Whether the broadcast plays yet (nginx-rtmp has written its first playlist).
    playable: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The recording folder, when the stream is recorded.
    recording: Option<PathBuf>,
}

/// Whether stream `name` is recorded: every stream with `live.record = "on"`, else names
/// whose key says so.
fn recorded(config: &Config, name: &str) -> bool {
    config.live.record == Switch::On
        || crate::keys::load(&config.layout().keys_file())
            .ok()
            .and_then(|f| f.get(name).map(|k| k.record))
            .unwrap_or(false)
}

/// Keeps the pipeline running for every live stream, for as long as `streamedge run` runs.
/// `shutdown` stops every stream's pipeline (each cleans up after itself).
pub async fn run_loop(
    config: Config,
    board: Board,
    feeds: feed::Feeds,
    registry: tokio::sync::watch::Sender<Arc<Vec<Stream>>>,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<String, Running> = HashMap::new();
    // Recordings whose stream ended: continued by a republish before the deadline, else
    // made into library items. A previous run's leftovers first.
    let grace = config.live.record_grace;
    let mut pending: HashMap<String, (PathBuf, Instant)> = HashMap::new();
    for (name, folder) in recorder::leftovers(&config) {
        if let Some((older, _)) = pending.insert(name.clone(), (folder, Instant::now() + grace)) {
            let config = config.clone();
            tokio::spawn(async move { recorder::finish(&config, &name, &older).await });
        }
    }
    let mut unreachable = false;
    // Each publishing stream's entry as last seen, for its figures when it ends.
    let mut last_seen: HashMap<String, Stream> = HashMap::new();
    loop {
        match crate::nginx::streams_all(&config).await {
            Ok(list) => {
                unreachable = false;
                for s in &list {
                    let ended = last_seen
                        .get(&s.name)
                        .is_some_and(|was| !s.publishing || was.since != s.since);
                    if ended {
                        let mut was = last_seen.remove(&s.name).expect("checked above");
                        if !s.publishing {
                            // Not published again: the registry's figures are the ended
                            // broadcast's, final.
                            was.audience = s.audience.or(was.audience);
                        }
                        history::record(&config, &was);
                    }
                    if s.publishing {
                        last_seen.insert(s.name.clone(), s.clone());
                    }
                }
                // Gone from the registry altogether (nginx started afresh): ended too.
                last_seen.retain(|name, was| {
                    let listed = list.iter().any(|s| &s.name == name);
                    if !listed {
                        history::record(&config, was);
                    }
                    listed
                });
                // For what shows the registry to viewers (the chat rooms' audience).
                registry.send_if_modified(|old| {
                    let changed = **old != list;
                    if changed {
                        *old = Arc::new(list.clone());
                    }
                    changed
                });
                // Names become folder names: only well-formed ones, whatever nginx says. A
                // stream's pipeline starts at the publish (the ladder reads the feed), what
                // works on its playlist once it plays.
                let (live, playable): (HashMap<String, Option<String>>, HashMap<String, bool>) =
                    list.into_iter()
                        .filter(|s| s.publishing && check_name(s.name.as_bytes()).is_ok())
                        .map(|s| ((s.name.clone(), s.since), (s.name, s.live)))
                        .unzip();
                // A stream that ended, or was published again between two polls, is told to
                // stop; its entry stays until it has cleaned up, so a quick republish never
                // has two ladders in one folder (the new broadcast starts on the next poll,
                // its recording continued from `pending`).
                running.retain(|name, r| {
                    if live.get(name) != Some(&r.since) {
                        r.stop.cancel();
                    } else if playable.get(name) == Some(&true) {
                        r.playable.send_replace(true);
                    }
                    let finished = r.task.is_finished();
                    if finished {
                        if let Some(folder) = r.recording.take() {
                            pending.insert(name.clone(), (folder, Instant::now() + grace));
                        }
                    }
                    !finished
                });
                pending.retain(|name, (folder, deadline)| {
                    if live.contains_key(name) || Instant::now() < *deadline {
                        return true;
                    }
                    let (config, name, folder) = (config.clone(), name.clone(), folder.clone());
                    tokio::spawn(async move { recorder::finish(&config, &name, &folder).await });
                    false
                });
                for (name, since) in live {
                    if running.contains_key(&name) {
                        continue;
                    }
                    let stop = shutdown.child_token();
                    let recording = match pending.remove(&name) {
                        Some((folder, _)) => Some(folder),
                        None => {
                            recorded(&config, &name).then(|| recorder::new_folder(&config, &name))
                        }
                    };
                    let playable =
                        tokio::sync::watch::Sender::new(playable.get(&name) == Some(&true));
                    let task = tokio::spawn(stream(
                        config.clone(),
                        board.clone(),
                        feeds.clone(),
                        name.clone(),
                        recording.clone(),
                        playable.subscribe(),
                        stop.clone(),
                    ));
                    running.insert(
                        name,
                        Running {
                            since,
                            playable,
                            stop,
                            task,
                            recording,
                        },
                    );
                }
            }
            Err(e) if !unreachable => {
                unreachable = true;
                tracing::debug!("live pipeline: {e:#}");
            }
            Err(_) => {}
        }
        // A feed that starts is a stream just published: its pipeline starts now.
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = feeds.changed() => {}
        }
    }
}

/// What the pipeline leaves in the live folders for players (master playlists, thumbnails):
/// removed when `streamedge run` stops, so nothing points at rungs no process writes.
pub fn clean_up(config: &Config) {
    let Ok(entries) = std::fs::read_dir(config.layout().live()) else {
        return;
    };
    for e in entries.flatten() {
        for file in [LIVE_MASTER, LIVE_THUMBNAIL, LIVE_TITLE] {
            let _ = std::fs::remove_file(e.path().join(file));
        }
    }
}

/// Writes the stream's title file once nginx has made the stream's folder (at its first
/// fragment; a file left from before is written over), and again if it goes missing,
/// until `ended`.
pub(crate) async fn keep_title(dir: std::path::PathBuf, title: String, ended: CancellationToken) {
    let file = dir.join(LIVE_TITLE);
    let mut written = false;
    loop {
        if dir.is_dir() && (!written || !file.exists()) {
            match write_title(&dir, &title) {
                Ok(()) => written = true,
                Err(e) => tracing::warn!("live: cannot write {}: {e:#}", file.display()),
            }
        }
        tokio::select! {
            _ = ended.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn write_title(dir: &std::path::Path, title: &str) -> std::io::Result<()> {
    let part = dir.join(format!(".{LIVE_TITLE}.part"));
    std::fs::write(&part, format!("{title}\n"))?;
    std::fs::rename(&part, dir.join(LIVE_TITLE))?;
    Ok(())
}

/// What runs for one live stream until `stop` fires.
async fn stream(
    config: Config,
    board: Board,
    feeds: feed::Feeds,
    name: String,
    recording: Option<PathBuf>,
    mut playable: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let dir = config.layout().live().join(&name);
    let ladder_playable = playable.clone();
    // Sound without a picture gets its own rendition instead of a ladder and a thumbnail.
    let audio_only = audio::detect(&feeds, &name, &stop).await == Some(true);
    if audio_only {
        tracing::info!("live \"{name}\": audio only");
    }
    // Before the broadcast plays, the folder may still hold the previous one's playlist:
    // nothing that reads the playlist starts until then.
    let plays = async {
        tokio::select! {
            r = playable.wait_for(|p| *p) => r.is_ok(),
            _ = stop.cancelled() => false,
        }
    };
    let from_playlist = async {
        if !plays.await {
            return;
        }
        let thumbnail = async {
            if !audio_only {
                thumbnail::keep(&dir, &name, &stop).await;
            }
        };
        let record = async {
            if let Some(folder) = &recording {
                recorder::record(&config, &name, folder, &stop).await;
            }
        };
        tokio::join!(thumbnail, record);
    };
    let ladder = async {
        if audio_only {
            audio::keep(&config, &feeds, &name, &stop).await;
        } else if config.live.transcode == Switch::On {
            ladder::supervise(&config, &board, &feeds, &name, ladder_playable, &stop).await;
            board.remove(&name);
        }
    };
    tokio::join!(from_playlist, ladder);
}
