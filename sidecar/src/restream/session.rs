//! What runs while a stream with destinations is live.
//!
//! The stream's *program* is what every destination receives: the publisher's stream as
//! nginx-rtmp pushes it to the sidecar (`live::feed`), on one continuous clock. When the
//! publisher drops, the program goes on for `restream.grace` with a slate (a "be right back"
//! picture and silence, encoded by one ffmpeg at the stream's size), so the destinations stay
//! connected; a publisher back in time takes over from the slate, and otherwise the program
//! ends and every push with it.
//!
//! Each enabled destination has a push of its own: a `streamedge push` process reading the
//! program on its stdin. One that stalls falls behind alone (a reader that lags skips to the
//! next keyframe), one that drops is started again after 1 s, doubling to 60 s, and the
//! restreams file is read again every second, so a destination added, disabled or removed
//! during a broadcast follows within a second or two.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{load, masked, Destination};
use crate::config::Config;
use crate::live::feed::{read_flv_header, read_flv_tag, Feed, Feeds, Kind, Reader, Tag};
use crate::proc::{self, Exit, Role};

/// How often the restreams file is read again while a stream is live.
const RELOAD: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a destination.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A push that published this long was no quick failure: the next wait starts at 1 s again.
const HEALTHY: Duration = Duration::from_secs(60);
/// Between two runs of the program's clock (the publisher, the slate), what the clock moves
/// on by: about one frame.
const GAP_MS: i64 = 40;
/// How long a stream with no keyframe yet (audio only, or just published) is waited for
/// before it is taken as it is.
const KEYFRAME_WAIT: Duration = Duration::from_secs(3);

/// Every destination's state, by id, for the API and `restream list`.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<BTreeMap<String, Entry>>>);

#[derive(Clone)]
struct Entry {
    status: DestinationStatus,
    connected: Option<Instant>,
}

/// One destination as `GET /api/restreams` shows what it does.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationStatus {
    /// "waiting" (for a picture to send), "connecting", "sending" or "retrying".
    pub state: &'static str,
    /// What it is sent: "publisher", or "slate" while the publisher is away.
    pub program: &'static str,
    /// Over the last second, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// Since the destination took the stream, this time.
    pub uptime_seconds: Option<u64>,
    /// Connections made again after one failed or dropped.
    pub reconnects: u32,
    /// Why the last one failed (the server, never the key).
    pub last_error: Option<String>,
}

impl Board {
    fn update(&self, id: &str, f: impl FnOnce(&mut Entry)) {
        let mut all = self.0.lock().expect("not poisoned");
        let entry = all.entry(id.to_string()).or_insert_with(|| Entry {
            status: DestinationStatus {
                state: "connecting",
                program: "publisher",
                bitrate_kbps: None,
                uptime_seconds: None,
                reconnects: 0,
                last_error: None,
            },
            connected: None,
        });
        f(entry);
    }

    fn remove(&self, id: &str) {
        self.0.lock().expect("not poisoned").remove(id);
    }

    /// The destinations being pushed to now, by id.
    pub fn snapshot(&self) -> BTreeMap<String, DestinationStatus> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(id, e)| {
                let mut s = e.status.clone();
                s.uptime_seconds = e.connected.map(|c| c.elapsed().as_secs());
                (id.clone(), s)
            })
            .collect()
    }
}

/// Starts a stream's restreams when it goes live with enabled destinations, for as long as
/// `streamedge run` runs.
pub async fn run_loop(config: Config, feeds: Feeds, board: Board, shutdown: CancellationToken) {
    let programs = Feeds::default();
    let mut sessions: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut unreadable = false;
    loop {
        sessions.retain(|_, t| !t.is_finished());
        let file = match load(&config.layout().restreams_file()) {
            Ok(f) => {
                unreadable = false;
                f
            }
            Err(e) => {
                if !unreadable {
                    tracing::error!("restream: {e:#}");
                }
                unreadable = true;
                Default::default()
            }
        };
        for name in feeds.names() {
            let wanted = file
                .destinations
                .iter()
                .any(|d| d.enabled && d.stream == name);
            if wanted && !sessions.contains_key(&name) {
                let task = tokio::spawn(session(
                    config.clone(),
                    feeds.clone(),
                    programs.clone(),
                    board.clone(),
                    name.clone(),
                    shutdown.child_token(),
                ));
                sessions.insert(name, task);
            }
        }
        tokio::select! {
            _ = feeds.changed() => {}
            _ = tokio::time::sleep(RELOAD) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    for (_, t) in sessions {
        let _ = t.await;
    }
}

/// The program of stream `name` and its pushes, from the publish to the end of the grace
/// period after the publisher left (or `stop`).
async fn session(
    config: Config,
    feeds: Feeds,
    programs: Feeds,
    board: Board,
    name: String,
    stop: CancellationToken,
) {
    let Some(program) = programs.start(&name) else {
        return;
    };
    let on_slate = tokio::sync::watch::Sender::new(false);
    let pushes = tokio::spawn(destinations(
        config.clone(),
        feeds.clone(),
        programs.clone(),
        board,
        name.clone(),
        on_slate.subscribe(),
        stop.clone(),
    ));
    let mut clock = Clock::default();
    let mut shape = Shape::default();
    let grace = config.restream.grace;
    loop {
        let Some(mut reader) = publisher(&feeds, &name, &stop).await else {
            break;
        };
        shape.meta = Some(reader.meta);
        loop {
            let tag = tokio::select! {
                t = reader.next() => t,
                _ = stop.cancelled() => None,
            };
            let Some(tag) = tag else { break };
            shape.see(&tag);
            program.push(clock.map(tag));
        }
        clock.cut();
        if stop.is_cancelled() || grace.is_zero() {
            break;
        }
        tracing::info!(
            "restream \"{name}\": the publisher left; its destinations get the slate for up to {}",
            humantime::format_duration(grace)
        );
        on_slate.send_replace(true);
        let back = slate(&config, &shape, &program, &mut clock, grace, &stop, || {
            feeds.started(&name)
        })
        .await;
        on_slate.send_replace(false);
        clock.cut();
        if !back {
            break;
        }
        tracing::info!("restream \"{name}\": the publisher is back");
    }
    if !stop.is_cancelled() {
        tracing::info!("restream \"{name}\": the broadcast is over; its restreams end");
    }
    programs.end(&name, program.id);
    drop(program);
    let _ = pushes.await;
}

/// A reader of the publisher's stream from its newest keyframe, once there is one (or, for
/// a stream without video, after a moment); `None` if the stream is not live.
async fn publisher(feeds: &Feeds, name: &str, stop: &CancellationToken) -> Option<Reader> {
    let deadline = Instant::now() + KEYFRAME_WAIT;
    loop {
        let changed = feeds.changed();
        let reader = feeds.read(name)?;
        if reader.started || Instant::now() >= deadline {
            return Some(reader);
        }
        drop(reader);
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.cancelled() => return None,
        }
    }
}

/// The program's one clock over the publisher's runs and the slate's: each run's time starts
/// where the previous one stopped, and never goes back for a kind of tag.
#[derive(Default)]
struct Clock {
    /// Added to this run's times.
    offset: Option<i64>,
    /// A tag has gone out.
    ticking: bool,
    last: i64,
    last_audio: i64,
    last_video: i64,
}

impl Clock {
    /// A new run starts with the next tag.
    fn cut(&mut self) {
        self.offset = None;
    }

    fn map(&mut self, mut tag: Tag) -> Tag {
        let ts = i64::from(tag.timestamp);
        let base = if self.ticking { self.last + GAP_MS } else { 0 };
        self.ticking = true;
        let offset = *self.offset.get_or_insert(base - ts);
        let floor = match tag.kind {
            Kind::Audio => &mut self.last_audio,
            Kind::Video => &mut self.last_video,
            Kind::Script => &mut self.last,
        };
        let out = (ts + offset).max(*floor).max(0);
        *floor = out;
        self.last = self.last.max(out);
        tag.timestamp = out as u32;
        tag
    }
}

/// What the slate must look like to follow the publisher's stream.
#[derive(Default)]
struct Shape {
    meta: Option<crate::live::feed::Meta>,
    /// Sample rate and channels of the publisher's AAC.
    audio: Option<(u32, u32)>,
}

impl Shape {
    fn see(&mut self, tag: &Tag) {
        if tag.kind == Kind::Audio && tag.is_config() && tag.data.len() >= 4 {
            self.audio = aac_rate_and_channels(&tag.data[2..]);
        }
    }

    /// Width, height (even, as x264 needs) and frame rate; 1280×720 at 30 when unknown.
    fn picture(&self) -> (u32, u32, u32) {
        let m = self.meta.unwrap_or_default();
        let even = |v: Option<u32>, d: u32| v.filter(|v| (16..=4096).contains(v)).unwrap_or(d) & !1;
        let fps = m
            .fps
            .map(|f| f.round() as u32)
            .filter(|f| (1..=60).contains(f))
            .unwrap_or(30);
        (even(m.width, 1280), even(m.height, 720), fps)
    }
}

/// An AudioSpecificConfig's sample rate and channel count.
fn aac_rate_and_channels(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let index = ((asc[0] & 0x07) << 1 | asc[1] >> 7) as usize;
    let channels = u32::from((asc[1] >> 3) & 0x0f);
    Some((*RATES.get(index)?, channels.clamp(1, 2)))
}

/// The slate's ffmpeg: the picture (`restream.slate`, or "Be right back" on a dark ground)
/// and silence, at the stream's size and rate, as FLV on stdout in real time.
fn slate_command(config: &Config, shape: &Shape) -> Command {
    let (w, h, fps) = shape.picture();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    let ground = "0x15181d";
    let filter = match &config.restream.slate {
        Some(image) => {
            cmd.args(["-re", "-loop", "1", "-framerate", &fps.to_string(), "-i"])
                .arg(image);
            format!(
                "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:-1:-1:color={ground},format=yuv420p"
            )
        }
        None => {
            cmd.args(["-re", "-f", "lavfi", "-i"])
                .arg(format!("color=c={ground}:s={w}x{h}:r={fps}"));
            let font = [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            ]
            .into_iter()
            .find(|f| std::path::Path::new(f).exists());
            match font {
                Some(f) => format!(
                    "drawtext=fontfile={f}:text='Be right back':fontcolor=white:fontsize={}:x=(w-text_w)/2:y=(h-text_h)/2,format=yuv420p",
                    (h / 12).max(12)
                ),
                None => "format=yuv420p".to_string(),
            }
        }
    };
    let audio = shape.meta.is_some_and(|m| m.audio) || shape.audio.is_some();
    if audio {
        let (rate, channels) = shape.audio.unwrap_or((48000, 2));
        let layout = if channels == 1 { "mono" } else { "stereo" };
        cmd.args(["-re", "-f", "lavfi", "-i"])
            .arg(format!("anullsrc=r={rate}:cl={layout}"));
    }
    cmd.args(["-vf", &filter]);
    cmd.args([
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "stillimage",
    ]);
    cmd.args(["-pix_fmt", "yuv420p", "-g", &(fps * 2).to_string()]);
    cmd.args(["-b:v", "300k", "-maxrate", "600k", "-bufsize", "1200k"]);
    if audio {
        cmd.args(["-c:a", "aac", "-b:a", "64k"]);
    }
    cmd.args(["-f", "flv", "pipe:1"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    proc::prepare(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    cmd
}

/// Puts the slate on the program until `back` says the publisher is back (`true`), the
/// grace period ends or `stop` fires (`false`).
async fn slate(
    config: &Config,
    shape: &Shape,
    program: &Feed,
    clock: &mut Clock,
    grace: Duration,
    stop: &CancellationToken,
    back: impl Fn() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    let back = async {
        while !back() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::pin!(back);
    let mut failures = 0;
    loop {
        let run = async {
            let mut child = slate_command(config, shape)
                .spawn()
                .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
            let mut out = child.stdout.take().expect("piped");
            let stderr = child.stderr.take().expect("piped");
            let tail = tokio::spawn(async move {
                let mut s = String::new();
                let _ = tokio::io::AsyncReadExt::read_to_string(
                    &mut tokio::io::AsyncReadExt::take(stderr, 4096),
                    &mut s,
                )
                .await;
                s
            });
            read_flv_header(&mut out).await.map_err(|e| e.to_string())?;
            while let Some(tag) = read_flv_tag(&mut out).await.map_err(|e| e.to_string())? {
                program.push(clock.map(tag));
            }
            let _ = child.wait().await;
            Err::<(), String>(tail.await.unwrap_or_default().trim().to_string())
        };
        tokio::select! {
            _ = &mut back => return true,
            _ = tokio::time::sleep_until(deadline) => return false,
            _ = stop.cancelled() => return false,
            r = run => {
                failures += 1;
                let why = r.err().unwrap_or_default();
                tracing::warn!("restream: the slate's ffmpeg stopped: {why}");
                clock.cut();
                if failures >= 3 {
                    // No slate: the destinations wait on a silent connection.
                    tokio::select! {
                        _ = &mut back => return true,
                        _ = tokio::time::sleep_until(deadline) => return false,
                        _ = stop.cancelled() => return false,
                    }
                }
            }
        }
    }
}

/// Keeps one push running per enabled destination of stream `name` while its program runs.
async fn destinations(
    config: Config,
    feeds: Feeds,
    programs: Feeds,
    board: Board,
    name: String,
    on_slate: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let mut running: HashMap<
        String,
        (Destination, CancellationToken, tokio::task::JoinHandle<()>),
    > = HashMap::new();
    // The programs of the ladder's rungs that destinations ask for, by rendition.
    let mut rungs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut unreadable = false;
    while programs.contains(&name) {
        match load(&config.layout().restreams_file()) {
            Ok(file) => {
                unreadable = false;
                let wanted: Vec<Destination> = file
                    .destinations
                    .into_iter()
                    .filter(|d| d.enabled && d.stream == name)
                    .collect();
                // Gone, disabled or changed: stopped (a changed one starts again below).
                running.retain(|id, (d, token, _)| {
                    let keep = wanted.contains(d);
                    if !keep {
                        token.cancel();
                        board.remove(id);
                    }
                    keep
                });
                for d in wanted {
                    if running.contains_key(&d.id) {
                        continue;
                    }
                    if let Some(r) = &d.rendition {
                        if rungs.get(r).is_none_or(|t| t.is_finished()) {
                            let task = tokio::spawn(rung_program(
                                config.clone(),
                                feeds.clone(),
                                programs.clone(),
                                name.clone(),
                                r.clone(),
                                stop.clone(),
                            ));
                            rungs.insert(r.clone(), task);
                        }
                    }
                    let token = stop.child_token();
                    let task = tokio::spawn(push_loop(
                        config.clone(),
                        programs.clone(),
                        board.clone(),
                        d.clone(),
                        on_slate.clone(),
                        token.clone(),
                    ));
                    running.insert(d.id.clone(), (d, token, task));
                }
            }
            Err(e) => {
                if !unreadable {
                    tracing::error!("restream \"{name}\": {e:#}");
                }
                unreadable = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RELOAD) => {}
            _ = stop.cancelled() => break,
        }
    }
    for (id, (_, token, task)) in running {
        // A push whose program ended finishes by itself once it has sent what was left.
        if stop.is_cancelled() {
            token.cancel();
        }
        let _ = task.await;
        board.remove(&id);
    }
    for (_, task) in rungs {
        let _ = task.await;
    }
}

/// The name of the program destination `d` gets: the stream's, or one of its rungs'.
fn program_of(d: &Destination) -> String {
    match &d.rendition {
        Some(r) => format!("{}@{r}", d.stream),
        None => d.stream.clone(),
    }
}

/// When `path` last changed, if it exists.
fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The program of rendition `r` ("720p") of stream `name`, for as long as the stream's own
/// program runs: the ladder's rung as it writes it (copied from its HLS by one ffmpeg, no
/// second encode), and the slate at the rung's size while the publisher is away.
async fn rung_program(
    config: Config,
    feeds: Feeds,
    programs: Feeds,
    name: String,
    r: String,
    stop: CancellationToken,
) {
    let key = format!("{name}@{r}");
    let Some(program) = programs.start(&key) else {
        return;
    };
    let playlist = config
        .layout()
        .live()
        .join(&name)
        .join(&r)
        .join(streamedge_formats::layout::LIVE_PLAYLIST);
    let height: u32 = r.trim_end_matches('p').parse().unwrap_or(720);
    let mut shape = Shape::default();
    let mut clock = Clock::default();
    // A playlist written before this is a previous run's of the ladder.
    let mut since = SystemTime::now();
    let poll = Duration::from_millis(200);
    while programs.contains(&name) && !stop.is_cancelled() {
        if !feeds.contains(&name) {
            // The publisher is away: the slate, at the rung's size, until the ladder writes
            // this rung again or the broadcast is over.
            let away = SystemTime::now();
            let mut rung = Shape {
                meta: shape.meta.or(Some(Default::default())),
                audio: shape.audio,
            };
            if let Some(m) = rung.meta.as_mut() {
                m.height = Some(height);
                m.width = m.width.or(Some(height * 16 / 9));
            }
            let grace = config.restream.grace;
            let back = slate(&config, &rung, &program, &mut clock, grace, &stop, || {
                feeds.contains(&name) && modified(&playlist).is_some_and(|m| m > away)
            })
            .await;
            clock.cut();
            if !back {
                break;
            }
            since = away;
            continue;
        }
        if modified(&playlist).is_none_or(|m| m < since) {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.cancelled() => {}
            }
            continue;
        }
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(["-live_start_index", "-1", "-i"])
            .arg(&playlist)
            .args([
                "-c",
                "copy",
                "-bsf:a",
                "aac_adtstoasc",
                "-f",
                "flv",
                "pipe:1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        proc::prepare(&mut cmd, nix::sys::signal::Signal::SIGKILL);
        let Ok(mut child) = cmd.spawn() else {
            tracing::warn!("restream \"{name}\" {r}: cannot run ffmpeg");
            break;
        };
        let mut out = child.stdout.take().expect("piped");
        let copy = async {
            if read_flv_header(&mut out).await.is_ok() {
                while let Ok(Some(tag)) = read_flv_tag(&mut out).await {
                    shape.see(&tag);
                    program.push(clock.map(tag));
                }
            }
        };
        let publisher_gone = async {
            while feeds.contains(&name) {
                tokio::time::sleep(poll).await;
            }
        };
        tokio::select! {
            _ = copy => {}
            _ = publisher_gone => {}
            _ = stop.cancelled() => {}
        }
        drop(child);
        clock.cut();
        since = SystemTime::now();
    }
    programs.end(&key, program.id);
}

/// Pushes the program to destination `d` until the program ends or `stop` fires, again and
/// again with backoff when the destination refuses or drops it.
async fn push_loop(
    config: Config,
    programs: Feeds,
    board: Board,
    d: Destination,
    on_slate: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let shown = masked(&d.url);
    let who = d.label.clone().unwrap_or_else(|| d.id.clone());
    let mut backoff = Duration::from_secs(1);
    let program = program_of(&d);
    loop {
        // Connected once there is a picture to send (a stream without video: after a
        // moment), not before: a platform may drop a publisher that sends nothing.
        let waiting = Instant::now();
        let reader = loop {
            if !programs.contains(&d.stream) || stop.is_cancelled() {
                break None;
            }
            let late = waiting.elapsed() >= KEYFRAME_WAIT;
            if programs.started(&program) || (late && d.rendition.is_none()) {
                break programs.read(&program);
            }
            if let (true, Some(r)) = (late, &d.rendition) {
                board.update(&d.id, |e| {
                    e.status.state = "waiting";
                    e.status.last_error = Some(format!(
                        "no {r} rung from the ladder yet (it makes only rungs below the source's height)"
                    ));
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.cancelled() => {}
            }
        };
        let Some(reader) = reader else {
            break;
        };
        board.update(&d.id, |e| {
            e.status.state = "connecting";
            e.status.bitrate_kbps = None;
            e.connected = None;
        });
        let mut cmd = Command::new(crate::proc::own_binary());
        cmd.arg("push");
        if let Some(ca) = &config.restream.ca_file {
            cmd.arg("--ca-file").arg(ca);
        }
        let url = d.url.clone();
        let (id, board2, slate) = (d.id.clone(), board.clone(), on_slate.clone());
        let mut last: Option<(Instant, u64)> = None;
        let mut published: Option<Instant> = None;
        let published_at = &mut published;
        let result = proc::run_watched(
            cmd,
            Role::new("restream", format!("{} to {who}", d.stream)),
            &stop,
            move |mut stdin| {
                // The URL, key and all, goes down the pipe; then the program.
                tokio::spawn(async move {
                    if stdin.write_all(format!("{url}\n").as_bytes()).await.is_ok() {
                        let _ = reader.copy_to(&mut stdin).await;
                    }
                });
            },
            |line| {
                let now = Instant::now();
                if line == "publishing" {
                    *published_at = Some(now);
                    board2.update(&id, |e| {
                        e.status.state = "sending";
                        e.connected = Some(now);
                    });
                } else if let Some(n) = line
                    .strip_prefix("sent ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    let rate = kbps(last, now, n);
                    last = Some((now, n));
                    let program = if *slate.borrow() {
                        "slate"
                    } else {
                        "publisher"
                    };
                    board2.update(&id, |e| {
                        e.status.bitrate_kbps = rate.or(e.status.bitrate_kbps);
                        e.status.program = program;
                    });
                }
            },
        )
        .await;
        let why = match result {
            Ok((Exit::Success, _)) | Ok((Exit::Cancelled, _)) => break,
            Ok((Exit::Failed(tail), _)) => last_line(&tail),
            Err(e) => format!("{e:#}"),
        };
        if stop.is_cancelled() || !programs.contains(&d.stream) {
            break;
        }
        if published.is_some_and(|p| p.elapsed() >= HEALTHY) {
            backoff = Duration::from_secs(1);
        }
        tracing::warn!(
            "restream \"{}\" to {shown}: {why}; trying again in {}s",
            d.stream,
            backoff.as_secs()
        );
        board.update(&d.id, |e| {
            e.status.state = "retrying";
            e.status.bitrate_kbps = None;
            e.status.reconnects += 1;
            e.status.last_error = Some(why.clone());
            e.connected = None;
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// kbit/s between a push's previous `sent BYTES` line (`last`: when, how many) and this one.
pub(super) fn kbps(last: Option<(Instant, u64)>, now: Instant, bytes: u64) -> Option<f64> {
    last.map(|(t, b)| {
        let secs = now.duration_since(t).as_secs_f64().max(0.1);
        (bytes.saturating_sub(b) as f64 * 8.0 / 1000.0 / secs).round()
    })
}

/// The reason in a push's stderr: its last line, without the program's name.
pub(super) fn last_line(tail: &str) -> String {
    crate::proc::last_words(tail).unwrap_or_else(|| "it stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tag(kind: Kind, timestamp: u32) -> Tag {
        Tag {
            kind,
            timestamp,
            data: Bytes::from_static(&[0x27, 1, 0, 0, 0]),
        }
    }

    #[test]
    fn the_clock_runs_on_across_a_publisher_slate_publisher() {
        let mut c = Clock::default();
        // The publisher's clock starts wherever it likes.
        let first: Vec<u32> = [5000, 5033, 5066]
            .into_iter()
            .map(|t| c.map(tag(Kind::Video, t)).timestamp)
            .collect();
        assert_eq!(first, [0, 33, 66]);
        c.cut();
        // The slate starts at 0 again: it follows one frame later.
        assert_eq!(c.map(tag(Kind::Video, 0)).timestamp, 106);
        assert_eq!(c.map(tag(Kind::Video, 40)).timestamp, 146);
        c.cut();
        // The publisher back, its clock at 0 or anywhere.
        assert_eq!(c.map(tag(Kind::Video, 12)).timestamp, 186);
        // A tag a little before the first of its run never goes back in time for its kind.
        assert_eq!(c.map(tag(Kind::Audio, 0)).timestamp, 174);
        assert_eq!(c.map(tag(Kind::Video, 0)).timestamp, 186);
    }

    #[test]
    fn the_slate_takes_the_streams_size_and_sound() {
        let mut s = Shape::default();
        assert_eq!(s.picture(), (1280, 720, 30));
        s.meta = Some(crate::live::feed::Meta {
            width: Some(853),
            height: Some(480),
            fps: Some(29.97),
            audio: true,
        });
        assert_eq!(s.picture(), (852, 480, 30));
        // AAC-LC, 44.1 kHz, stereo: 0x12 0x10.
        s.see(&Tag {
            kind: Kind::Audio,
            timestamp: 0,
            data: Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
        });
        assert_eq!(s.audio, Some((44100, 2)));
        // 48 kHz mono: 0x11 0x88.
        assert_eq!(aac_rate_and_channels(&[0x11, 0x88]), Some((48000, 1)));
        assert_eq!(aac_rate_and_channels(&[0x17, 0x90]), None);
    }

    #[test]
    fn a_failed_push_says_why_in_its_last_line() {
        assert_eq!(
            last_line("noise\nstreamedge: cannot connect to h:1935/app: refused\n\n"),
            "cannot connect to h:1935/app: refused"
        );
        assert_eq!(last_line(""), "it stopped");
    }
}
