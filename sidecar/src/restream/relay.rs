//! Relays: `streamedge relay add NAME --from URL [--watch EVERY]` pulls a live source into
//! the local stream NAME, which is then watched, recorded and restreamed like a stream from
//! OBS. A web page (a YouTube channel's `/live`, any page yt-dlp reads) is asked of yt-dlp
//! for its live stream and title; an HLS, RTMP or SRT URL is read by ffmpeg directly.
//!
//! The relay publishes through nginx like any publisher, with a stream key of its own: `add`
//! makes the name's key and keeps its secret in the restreams file (mode 0600, the sidecar's
//! alone); the `push` process that publishes reads it on its stdin, never on a command line.
//!
//! Without `--watch` a relay pulls the source at once, and again after a failure (1 s
//! doubling to 60 s); when the source ends it is idle until the sidecar starts again. With
//! `--watch` the source is checked every EVERY (2 minutes by default, give or take a tenth,
//! longer after errors, one check at a time over all relays): the relay starts when it is
//! live and stops when it ends, and the checks go on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use streamedge_formats::layout::LIVE_TITLE;
use streamedge_formats::name::check_name;
use streamedge_formats::streams::clean_title;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{load, lock, save};
use crate::config::Config;
use crate::error::Error;
use crate::proc::{self, Exit, Role};

/// How often a watched source is checked unless told otherwise.
pub const DEFAULT_WATCH: Duration = Duration::from_secs(120);
/// Checks no closer together than this: sites are asked politely.
const MIN_WATCH: Duration = Duration::from_secs(5);
const MAX_WATCH: Duration = Duration::from_secs(24 * 3600);
/// After errors a watched source is checked less often, up to this.
const MAX_ERROR_WAIT: Duration = Duration::from_secs(1800);
/// The longest wait between two pulls of an unwatched source that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A pull that ran this long was no quick failure: the next wait starts at 1 s again.
const HEALTHY: Duration = Duration::from_secs(60);
/// How long one check may take.
const CHECK_WITHIN: Duration = Duration::from_secs(90);
/// Relays at most.
const MAX_RELAYS: usize = 50;
/// How often the restreams file is read again for added and removed relays.
const RELOAD: Duration = Duration::from_secs(1);

/// One relay as the restreams file keeps it.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// The local stream it publishes.
    pub stream: String,
    /// The source: a page for yt-dlp, or an HLS, RTMP or SRT URL.
    pub from: String,
    /// With `--watch`: seconds between two checks of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_seconds: Option<u64>,
    /// The secret of the stream's key, which the relay publishes with.
    pub key: String,
    pub created: String,
}

impl std::fmt::Debug for Relay {
    // Never the key, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("stream", &self.stream)
            .field("from", &self.from)
            .field("watch_seconds", &self.watch_seconds)
            .finish_non_exhaustive()
    }
}

/// A relay as `relay list --json` and the API show it: no key.
#[derive(Debug, Clone, Serialize)]
pub struct RelayInfo {
    pub stream: String,
    pub from: String,
    pub watch_seconds: Option<u64>,
    pub created: String,
}

impl From<&Relay> for RelayInfo {
    fn from(r: &Relay) -> Self {
        RelayInfo {
            stream: r.stream.clone(),
            from: masked_source(&r.from),
            watch_seconds: r.watch_seconds,
            created: r.created.clone(),
        }
    }
}

/// How a source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A page (or a playlist) yt-dlp reads: it says whether it is live and where the stream
    /// is.
    YtDlp,
    /// A stream ffmpeg reads itself: RTMP, RTMPS, SRT.
    Ffmpeg,
}

/// Whether `url` is a source a relay can read, and how.
fn via(url: &str) -> Result<Via, String> {
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the URL has a space or a control character".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the URL must start with http://, https://, rtmp://, rtmps:// or srt://")?;
    let via = match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Via::YtDlp,
        "rtmp" | "rtmps" | "srt" => Via::Ffmpeg,
        _ => {
            return Err(format!(
                "a relay reads http://, https://, rtmp://, rtmps:// or srt:// URLs, not {scheme}://"
            ))
        }
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host".into());
    }
    Ok(via)
}

/// The source URL as lists, logs and the API show it: a password (`user:pass@`, an SRT
/// `passphrase=`, a `token=`) masked. (ffmpeg's command line, which only this machine's
/// users can read, still has it.)
pub fn masked_source(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("****@{host}"),
        None => authority.to_string(),
    };
    let (tail, fragment) = match tail.split_once('#') {
        Some((t, f)) => (t, format!("#{f}")),
        None => (tail, String::new()),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if secret_name(k) => format!("{k}=****"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}{fragment}"),
        None => format!("{scheme}://{authority}{path}{fragment}"),
    }
}

fn secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["pass", "key", "token", "secret", "auth", "sig"]
        .iter()
        .any(|w| k.contains(w))
}

/// Whether an entry of the file (which a person may have edited) is one a relay can run.
fn runnable(r: &Relay) -> Result<(), String> {
    check_name(r.stream.as_bytes()).map_err(|e| format!("invalid stream name: {e}"))?;
    via(&r.from).map_err(|e| format!("invalid source URL: {e}"))?;
    if let Some(w) = r.watch_seconds.map(Duration::from_secs) {
        if w < MIN_WATCH || w > MAX_WATCH {
            return Err(format!(
                "watch_seconds is from {} to {}",
                MIN_WATCH.as_secs(),
                MAX_WATCH.as_secs()
            ));
        }
    }
    if r.key.is_empty() {
        return Err("it has no key".into());
    }
    Ok(())
}

/// What `relay add` is asked for.
pub struct NewRelay<'a> {
    pub stream: &'a str,
    pub from: &'a str,
    pub watch: Option<Duration>,
    /// The stream plays through signed links only.
    pub private: bool,
    /// The stream is recorded into the library.
    pub record: bool,
}

/// `relay add`: the stream's key (the name must have none yet: OBS and a relay do not share
/// a name) and the relay, which starts within a second or two.
pub fn add(config: &Config, new: &NewRelay) -> Result<RelayInfo, Error> {
    check_name(new.stream.as_bytes()).map_err(|e| {
        Error::Invalid(format!(
            "invalid stream name \"{}\": {e}",
            new.stream.escape_debug()
        ))
    })?;
    via(new.from).map_err(|e| Error::Invalid(format!("invalid source URL: {e}")))?;
    if let Some(w) = new.watch {
        if w < MIN_WATCH || w > MAX_WATCH {
            return Err(Error::Invalid(format!(
                "--watch is from {} to {}, not {}",
                humantime::format_duration(MIN_WATCH),
                humantime::format_duration(MAX_WATCH),
                humantime::format_duration(w)
            )));
        }
    }
    let mut locked = lock(config)?;
    let file = &mut locked.file;
    if file.relays.iter().any(|r| r.stream == new.stream) {
        return Err(Error::Conflict(format!(
            "\"{}\" is relayed already (`streamedge relay remove {}` first)",
            new.stream, new.stream
        )));
    }
    if file.relays.len() >= MAX_RELAYS {
        return Err(Error::Conflict(format!(
            "there are {MAX_RELAYS} relays already"
        )));
    }
    let key = crate::keys::add(config, new.stream, new.private, new.record).map_err(|e| {
        let e = format!("{e:#}");
        if e.contains("already has a key") {
            Error::Conflict(format!(
                "stream name \"{}\" already has a key: a relay publishes under a name of its own \
                 (pick another, or `streamedge keys remove {}` first)",
                new.stream, new.stream
            ))
        } else {
            Error::Other(anyhow::anyhow!(e))
        }
    })?;
    let secret = key
        .stream_key
        .split_once("?key=")
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    let r = Relay {
        stream: new.stream.to_string(),
        from: new.from.to_string(),
        watch_seconds: new.watch.map(|w| w.as_secs()),
        key: secret,
        created: crate::clock::now_rfc3339(),
    };
    file.relays.push(r.clone());
    if let Err(e) = save(config, file) {
        // No key without its relay.
        let _ = crate::keys::remove(config, new.stream);
        return Err(e.into());
    }
    Ok((&r).into())
}

/// `relay remove NAME`: the relay stops within a second, and the name's key is gone (a
/// broadcast still on ends at its next update callback); recordings stay in the library.
pub fn remove(config: &Config, stream: &str) -> Result<RelayInfo, Error> {
    let mut locked = lock(config)?;
    let file = &mut locked.file;
    let Some(i) = file.relays.iter().position(|r| r.stream == stream) else {
        return Err(Error::NotFound(format!(
            "no relay for \"{}\" (`streamedge relay list` shows them)",
            stream.escape_debug()
        )));
    };
    let r = file.relays.remove(i);
    save(config, file)?;
    if let Err(e) = crate::keys::remove(config, stream) {
        tracing::warn!("relay \"{stream}\" removed, its key not: {e:#}");
    }
    Ok((&r).into())
}

/// `relay list`: every relay.
pub fn list(config: &Config) -> Result<Vec<RelayInfo>> {
    Ok(load(&config.layout().restreams_file())?
        .relays
        .iter()
        .map(RelayInfo::from)
        .collect())
}

/// A relay and what it does (`GET /api/relays`).
#[derive(Debug, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub relay: RelayInfo,
    pub status: Option<RelayStatus>,
}

/// Every relay with its status from `board`.
pub fn listed(config: &Config, board: &Board) -> Result<Vec<Listed>> {
    let mut status = board.snapshot();
    Ok(list(config)?
        .into_iter()
        .map(|r| Listed {
            status: status.remove(&r.stream),
            relay: r,
        })
        .collect())
}

/// What a relay does now.
#[derive(Debug, Clone, Serialize)]
pub struct RelayStatus {
    /// "watching" (for the source to go live), "live", "idle" (the source is not live and is
    /// not watched) or "error" (the last check or pull failed; tried again later).
    pub state: &'static str,
    /// The source's title, while live.
    pub title: Option<String>,
    /// When the relay went live, this time.
    pub live_since: Option<String>,
    /// Over the last second, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// When the source was last checked, and what was found.
    pub last_check_at: Option<String>,
    pub last_check: Option<String>,
    /// When it is checked (or pulled) again.
    pub next_check_at: Option<String>,
    /// Pulls started again after one failed.
    pub restarts: u32,
}

/// Every relay's status, by stream name.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<BTreeMap<String, RelayStatus>>>);

impl Board {
    fn update(&self, stream: &str, f: impl FnOnce(&mut RelayStatus)) {
        let mut all = self.0.lock().expect("not poisoned");
        let s = all.entry(stream.to_string()).or_insert(RelayStatus {
            state: "watching",
            title: None,
            live_since: None,
            bitrate_kbps: None,
            last_check_at: None,
            last_check: None,
            next_check_at: None,
            restarts: 0,
        });
        f(s);
    }

    fn remove(&self, stream: &str) {
        self.0.lock().expect("not poisoned").remove(stream);
    }

    pub fn snapshot(&self) -> BTreeMap<String, RelayStatus> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// Runs every relay in the restreams file, for as long as `streamedge run` runs: a relay
/// added starts within a second, one removed or changed stops.
pub async fn run_loop(config: Config, board: Board, shutdown: CancellationToken) {
    // One check at a time, over all relays.
    let checks = Arc::new(Semaphore::new(1));
    let mut running: HashMap<String, (Relay, CancellationToken)> = HashMap::new();
    let mut unreadable = false;
    let mut refused: Vec<Relay> = Vec::new();
    loop {
        let relays = match load(&config.layout().restreams_file()) {
            Ok(f) => {
                unreadable = false;
                Some(f.relays)
            }
            Err(e) => {
                if !unreadable {
                    tracing::error!("relay: {e:#}");
                }
                unreadable = true;
                // An unreadable file stops nothing: it may be in the middle of an edit.
                None
            }
        };
        if let Some(relays) = relays {
            running.retain(|stream, (r, stop)| {
                let keep = relays.contains(r);
                if !keep {
                    stop.cancel();
                    board.remove(stream);
                }
                keep
            });
            refused.retain(|r| relays.contains(r));
            for r in relays {
                if running.contains_key(&r.stream) || refused.contains(&r) {
                    continue;
                }
                if let Err(why) = runnable(&r) {
                    tracing::error!(
                        "relay \"{}\" in {}: {why}; not started",
                        r.stream.escape_debug(),
                        config.layout().restreams_file().display()
                    );
                    refused.push(r);
                    continue;
                }
                let stop = shutdown.child_token();
                tokio::spawn(relay(
                    config.clone(),
                    board.clone(),
                    r.clone(),
                    checks.clone(),
                    stop.clone(),
                ));
                running.insert(r.stream.clone(), (r, stop));
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RELOAD) => {}
        }
    }
}

/// What a check of the source found.
#[derive(Debug, PartialEq)]
enum Check {
    Live(Live),
    /// Not live now, and why one thinks so.
    NotLive(String),
    /// The check itself failed: the site is down, the URL is wrong.
    Failed(String),
}

/// A live source as a relay pulls it.
#[derive(Debug, PartialEq)]
struct Live {
    url: String,
    headers: Vec<String>,
    title: Option<String>,
}

/// One relay, until `stop` fires.
async fn relay(
    config: Config,
    board: Board,
    r: Relay,
    checks: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let watch = r.watch_seconds.map(Duration::from_secs);
    let name = r.stream.clone();
    let shown = masked_source(&r.from);
    let mut errors = 0u32;
    let mut backoff = Duration::from_secs(1);
    // "watching" until the first check says more: the source is being looked at.
    board.update(&name, |s| s.state = "watching");
    loop {
        let found = {
            let permit = tokio::select! {
                p = checks.acquire() => p,
                _ = stop.cancelled() => return,
            };
            let Ok(_permit) = permit else {
                return;
            };
            tokio::select! {
                c = check(&config, &r.from, &stop) => c,
                _ = stop.cancelled() => return,
            }
        };
        let result = match &found {
            Check::Live(l) => match &l.title {
                Some(t) => format!("live: \"{t}\""),
                None => "live".to_string(),
            },
            Check::NotLive(why) => format!("not live: {}", why.replace(&r.from, &shown)),
            Check::Failed(why) => format!("failed: {}", why.replace(&r.from, &shown)),
        };
        board.update(&name, |s| {
            s.last_check_at = Some(crate::clock::now_rfc3339());
            s.last_check = Some(result.clone());
        });
        // How long until the next check, and in what state.
        let (state, wait) = match found {
            Check::Live(live) => {
                errors = 0;
                let started = Instant::now();
                let outcome = pull(&config, &board, &r, &live, &stop).await;
                if stop.is_cancelled() {
                    return;
                }
                if started.elapsed() >= HEALTHY {
                    backoff = Duration::from_secs(1);
                }
                match outcome {
                    // ffmpeg also ends well when a playlist stops loading (a network drop,
                    // a site's stream URL expiring after hours): the source is checked again
                    // at once to tell, and only a quick end again waits longer.
                    Ok(()) => {
                        tracing::info!("relay \"{name}\": the source ended");
                        board.update(&name, |s| s.last_check = Some("the source ended".into()));
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        ("watching", Some(wait))
                    }
                    Err(why) => {
                        let why = why.replace(&r.from, &shown);
                        tracing::warn!(
                            "relay \"{name}\": {why}; trying again in {}s",
                            backoff.as_secs()
                        );
                        board.update(&name, |s| {
                            s.restarts += 1;
                            s.last_check = Some(format!("failed: {why}"));
                        });
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        ("error", Some(wait))
                    }
                }
            }
            Check::NotLive(why) => {
                errors = 0;
                match watch {
                    Some(every) => ("watching", Some(jittered(every))),
                    None => {
                        let why = why.replace(&r.from, &shown);
                        tracing::info!("relay \"{name}\": the source is not live ({why}); idle");
                        ("idle", None)
                    }
                }
            }
            Check::Failed(why) => {
                errors += 1;
                let wait = match watch {
                    // Politely: the interval doubles with each error in a row.
                    Some(every) => jittered(
                        every
                            .saturating_mul(1 << errors.min(10))
                            .min(MAX_ERROR_WAIT.max(every)),
                    ),
                    None => {
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    }
                };
                if errors == 1 {
                    let why = why.replace(&r.from, &shown);
                    tracing::warn!("relay \"{name}\": cannot check the source: {why}");
                }
                ("error", Some(wait))
            }
        };
        board.update(&name, |s| {
            s.state = state;
            s.title = None;
            s.live_since = None;
            s.bitrate_kbps = None;
            s.next_check_at = wait.map(|w| crate::clock::rfc3339(std::time::SystemTime::now() + w));
        });
        match wait {
            Some(w) => tokio::select! {
                _ = tokio::time::sleep(w) => {}
                _ = stop.cancelled() => return,
            },
            None => {
                stop.cancelled().await;
                return;
            }
        }
    }
}

/// `every`, give or take a tenth, so that relays and restarts spread out.
fn jittered(every: Duration) -> Duration {
    let r = crate::clock::random_bytes::<2>()
        .map(u16::from_le_bytes)
        .unwrap_or(u16::MAX / 2);
    let factor = 0.9 + 0.2 * f64::from(r) / f64::from(u16::MAX);
    every.mul_f64(factor)
}

/// Asks yt-dlp or ffprobe whether the source is live.
async fn check(config: &Config, from: &str, stop: &CancellationToken) -> Check {
    let Ok(via) = via(from) else {
        return Check::Failed("not a URL a relay reads".into());
    };
    let mut cmd = match via {
        Via::YtDlp => {
            let mut c = Command::new(crate::fetch::ytdlp::locate(config.fetch.ytdlp.as_deref()));
            c.args(crate::fetch::ytdlp::live_args(from));
            c
        }
        Via::Ffmpeg => {
            let mut c = Command::new("ffprobe");
            c.args(["-v", "error", "-rw_timeout", "10000000"])
                .args(["-protocol_whitelist", super::push::protocols(from)])
                .args(["-show_entries", "format_tags=title", "-of", "json", "-i"])
                .arg(from);
            c
        }
    };
    cmd.kill_on_drop(true);
    let mut out = String::new();
    let ran = tokio::time::timeout(
        CHECK_WITHIN,
        proc::run(
            cmd,
            Role::new("relay check", masked_source(from)),
            stop,
            |l| {
                out.push_str(l);
                out.push('\n');
            },
        ),
    )
    .await;
    match (via, ran) {
        (_, Err(_)) => Check::Failed(format!("no answer within {}s", CHECK_WITHIN.as_secs())),
        (_, Ok(Err(e))) => Check::Failed(format!("{e:#}")),
        (_, Ok(Ok(Exit::Cancelled))) => Check::Failed("stopped".into()),
        (Via::YtDlp, Ok(Ok(Exit::Success))) => parse_live(&out),
        (Via::YtDlp, Ok(Ok(Exit::Failed(stderr)))) => ytdlp_failure(&stderr),
        (Via::Ffmpeg, Ok(Ok(Exit::Success))) => Check::Live(Live {
            url: from.to_string(),
            headers: Vec::new(),
            title: serde_json::from_str::<serde_json::Value>(&out)
                .ok()
                .and_then(|v| v["format"]["tags"]["title"].as_str().and_then(clean_title)),
        }),
        // Nothing published there (or nothing reachable): for a stream URL, the same thing.
        (Via::Ffmpeg, Ok(Ok(Exit::Failed(stderr)))) => Check::NotLive(format!(
            "no stream there ({})",
            crate::library::transcode::explain(&stderr)
        )),
    }
}

/// yt-dlp's JSON for the source: live, with its stream's URL, or not.
fn parse_live(json: &str) -> Check {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Check::Failed("yt-dlp said something that is not JSON".into());
    };
    // A channel's page may be a list: its live video, if any.
    let v = match v["entries"].as_array() {
        Some(entries) if v["_type"] == "playlist" => match entries.iter().find(|e| is_live(e)) {
            Some(e) => e.clone(),
            None => return Check::NotLive(format!("none of its {} videos is live", entries.len())),
        },
        _ => v,
    };
    if !is_live(&v) {
        return Check::NotLive(
            match v["live_status"].as_str() {
                Some("is_upcoming") => "it has not started yet",
                Some("was_live") | Some("post_live") => "the live event has ended",
                _ => "a recording, not a live stream",
            }
            .into(),
        );
    }
    let Some(url) = v["url"].as_str() else {
        return Check::Failed("yt-dlp found no single stream with picture and sound".into());
    };
    if via(url) != Ok(Via::YtDlp) {
        return Check::Failed("yt-dlp's stream is not at an http(s) URL".into());
    }
    let headers = v["http_headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some(format!("{k}: {}", v.as_str()?)))
                .filter(|h| !h.chars().any(char::is_control))
                .collect()
        })
        .unwrap_or_default();
    // `fulltitle`: the title without the date yt-dlp adds to a live one.
    let title = v["fulltitle"]
        .as_str()
        .or(v["title"].as_str())
        .and_then(clean_title);
    Check::Live(Live {
        url: url.to_string(),
        headers,
        title,
    })
}

fn is_live(v: &serde_json::Value) -> bool {
    v["live_status"] == "is_live" || v["is_live"] == true
}

/// A failed yt-dlp run: a source that is not live (a channel between broadcasts, a page with
/// no player yet), or a check that failed.
fn ytdlp_failure(stderr: &str) -> Check {
    let lower = stderr.to_lowercase();
    if lower.contains("requested format is not available") {
        return Check::Failed(
            "no single stream with picture and sound: the source sends them apart, which a relay \
             does not join"
                .into(),
        );
    }
    let why = crate::fetch::ytdlp::explain(stderr);
    let not_live = [
        "not currently live",
        "is not live",
        "is offline",
        "will begin",
        "premieres in",
        "live event has ended",
        "unsupported url",
        "no video formats found",
    ];
    if not_live.iter().any(|p| lower.contains(p)) {
        Check::NotLive(why)
    } else {
        Check::Failed(why)
    }
}

/// Publishes the live source into the local stream until it ends (`Ok`), fails or `stop`
/// fires; the title goes beside the stream's playlists meanwhile.
async fn pull(
    config: &Config,
    board: &Board,
    r: &Relay,
    live: &Live,
    stop: &CancellationToken,
) -> Result<(), String> {
    let name = &r.stream;
    let mut cmd = Command::new(crate::proc::own_binary());
    // `--x=VALUE`: a value that starts with "-" stays a value.
    cmd.arg("push").arg(format!("--from={}", live.url));
    for h in &live.headers {
        cmd.arg(format!("--header={h}"));
    }
    let url = format!("{}/{}?key={}", config.local_rtmp(), name, r.key);
    let title = live.title.clone();
    let ended = CancellationToken::new();
    let mut titler: Option<tokio::task::JoinHandle<()>> = None;
    let dir = config.layout().live().join(name);
    let mut last: Option<(Instant, u64)> = None;
    let result = proc::run_watched(
        cmd,
        Role::new("relay", name.clone()),
        stop,
        move |mut stdin| {
            // Where to publish, key and all, goes down the pipe.
            tokio::spawn(async move {
                let _ = stdin.write_all(format!("{url}\n").as_bytes()).await;
            });
        },
        |line| {
            let now = Instant::now();
            if line == "publishing" {
                tracing::info!("relay \"{name}\": live");
                board.update(name, |s| {
                    s.state = "live";
                    s.title = title.clone();
                    s.live_since = Some(crate::clock::now_rfc3339());
                    s.next_check_at = None;
                });
                if let (Some(t), None) = (&title, &titler) {
                    titler = Some(tokio::spawn(crate::live::keep_title(
                        dir.clone(),
                        t.clone(),
                        ended.clone(),
                    )));
                }
            } else if let Some(n) = line
                .strip_prefix("sent ")
                .and_then(|n| n.parse::<u64>().ok())
            {
                let rate = super::session::kbps(last, now, n);
                last = Some((now, n));
                board.update(name, |s| s.bitrate_kbps = rate.or(s.bitrate_kbps));
            }
        },
    )
    .await;
    ended.cancel();
    if let Some(t) = titler {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(dir.join(LIVE_TITLE));
    match result {
        Ok((Exit::Success, _)) | Ok((Exit::Cancelled, _)) => Ok(()),
        Ok((Exit::Failed(tail), _)) => Err(super::session::last_line(&tail)),
        Err(e) => Err(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_by_scheme() {
        assert_eq!(via("https://www.youtube.com/@chan/live"), Ok(Via::YtDlp));
        assert_eq!(via("http://127.0.0.1:8080/live.m3u8"), Ok(Via::YtDlp));
        assert_eq!(via("rtmp://example.net/live/x"), Ok(Via::Ffmpeg));
        assert_eq!(via("SRT://example.net:9000?streamid=x"), Ok(Via::Ffmpeg));
        for bad in [
            "file:///etc/passwd",
            "ftp://example.net/x",
            "example.net/x",
            "-i",
            "http:///x",
            "http://:80/x",
            "http://a b",
            "http://a\n",
        ] {
            assert!(via(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn live_and_not_live_from_ytdlp() {
        let live = parse_live(
            r#"{"_type":"video","title":"Night Set 2026-12-03 18:56","fulltitle":"Night Set",
                "live_status":"is_live","url":"http://127.0.0.1:1/live/index.m3u8",
                "http_headers":{"User-Agent":"Mozilla/5.0","Referer":"http://127.0.0.1:1/"}}"#,
        );
        assert_eq!(
            live,
            Check::Live(Live {
                url: "http://127.0.0.1:1/live/index.m3u8".into(),
                headers: vec![
                    "Referer: http://127.0.0.1:1/".into(),
                    "User-Agent: Mozilla/5.0".into(),
                ],
                title: Some("Night Set".into()),
            })
        );
        assert_eq!(
            parse_live(r#"{"title":"x","live_status":null,"url":"http://h/v.mp4"}"#),
            Check::NotLive("a recording, not a live stream".into())
        );
        assert_eq!(
            parse_live(r#"{"title":"x","live_status":"is_upcoming"}"#),
            Check::NotLive("it has not started yet".into())
        );
        assert!(matches!(
            parse_live(r#"{"_type":"playlist","entries":[{"live_status":"was_live"},
                {"live_status":"is_live","title":"B","url":"https://h/b.m3u8"}]}"#),
            Check::Live(Live { ref url, .. }) if url == "https://h/b.m3u8"
        ));
        assert!(matches!(
            parse_live(r#"{"live_status":"is_live","url":"file:///etc/passwd"}"#),
            Check::Failed(_)
        ));
        assert!(matches!(parse_live("null"), Check::NotLive(_)));
    }

    #[test]
    fn a_channel_between_broadcasts_is_not_live_a_down_site_is_an_error() {
        assert!(matches!(
            ytdlp_failure("ERROR: [youtube:tab] @chan: The channel is not currently live"),
            Check::NotLive(_)
        ));
        assert!(matches!(
            ytdlp_failure("WARNING: x\nERROR: Unsupported URL: http://127.0.0.1:1/"),
            Check::NotLive(_)
        ));
        assert_eq!(
            ytdlp_failure(
                "ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused"
            ),
            Check::Failed("cannot connect to the server (connection refused)".into())
        );
    }

    #[test]
    fn passwords_in_sources_are_masked() {
        assert_eq!(
            masked_source("srt://h:9000?streamid=live&passphrase=hunter22hunter"),
            "srt://h:9000?streamid=live&passphrase=****"
        );
        assert_eq!(
            masked_source("https://u:p@h.example/live.m3u8?token=abc&x=1#t"),
            "https://****@h.example/live.m3u8?token=****&x=1#t"
        );
        assert_eq!(
            masked_source("https://www.youtube.com/watch?v=abc"),
            "https://www.youtube.com/watch?v=abc"
        );
        assert_eq!(masked_source("rtmp://h/app/x"), "rtmp://h/app/x");
    }

    #[test]
    fn hand_edited_entries_that_cannot_run_are_refused() {
        let ok = Relay {
            stream: "dj".into(),
            from: "https://example.net/live".into(),
            watch_seconds: Some(120),
            key: "k".into(),
            created: String::new(),
        };
        assert_eq!(runnable(&ok), Ok(()));
        for bad in [
            Relay {
                watch_seconds: Some(0),
                ..ok.clone()
            },
            Relay {
                watch_seconds: Some(u64::MAX),
                ..ok.clone()
            },
            Relay {
                from: "file:///etc/passwd".into(),
                ..ok.clone()
            },
            Relay {
                stream: "../x".into(),
                ..ok.clone()
            },
            Relay {
                key: String::new(),
                ..ok.clone()
            },
        ] {
            assert!(runnable(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(120));
            assert!(j >= Duration::from_secs(108) && j <= Duration::from_secs(132));
        }
    }

    #[test]
    fn the_key_is_not_in_a_debug_print() {
        let r = Relay {
            stream: "dj".into(),
            from: "https://example.net/live".into(),
            watch_seconds: Some(120),
            key: "s3cret-key-value".into(),
            created: "2026-12-03T00:00:00Z".into(),
        };
        assert!(!format!("{r:?}").contains("s3cret"));
    }
}
