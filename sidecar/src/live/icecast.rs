//! Icecast sources: DJ software (Mixxx, butt, liquidsoap, ffmpeg's `icecast://`) goes live
//! the way it does to an Icecast server, and the audio becomes a live stream like any other.
//!
//! The source connects to `ports.icecast` and sends `PUT /NAME` (Icecast 2.4) or
//! `SOURCE /NAME` (older clients) with basic auth: any user name, the stream key's secret
//! as the password (or the whole stream key, `NAME?key=SECRET`). The module decides, as for
//! an RTMP publish (`call=check_publish` on nginx's internal server): a wrong key is
//! refused and counted towards the address's publisher ban. Once accepted, ffmpeg turns
//! whatever the source sends (MP3, AAC, Ogg Vorbis or Opus) into AAC in FLV and
//! `streamedge push` publishes it to nginx-rtmp with the key, from this machine: from
//! there on it is a live stream with audio only, in HLS, recordings, restreams and
//! `/listen/NAME`. The source's `ice-name` is the broadcast's title.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use streamedge_formats::name::check_name;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::costs::{Meter, Role};

/// Sources live at once (each runs an ffmpeg and a push).
const MAX_SOURCES: usize = 16;
/// Connections not yet past their key, in all and from one address: idle sockets cannot
/// keep a DJ out.
const MAX_PENDING: usize = 64;
const MAX_PENDING_PER_ADDRESS: usize = 4;
/// The request head: at most this long, within this time.
const MAX_HEAD: usize = 16 * 1024;
const HEAD_WITHIN: Duration = Duration::from_secs(5);
/// A source that sends nothing for this long is gone.
const SOURCE_IDLE: Duration = Duration::from_secs(20);
/// The AAC the stream carries.
const AUDIO_KBPS: &str = "160k";

/// Opens `ports.icecast` (on `ports.bind`); `None` when it is 0 or cannot be opened (said
/// in the log: the rest of the server runs without it).
pub async fn bind(config: &Config) -> Option<TcpListener> {
    if config.ports.icecast == 0 {
        return None;
    }
    let addr = format!("{}:{}", config.ports.bind, config.ports.icecast);
    match TcpListener::bind(&addr).await {
        Ok(l) => {
            tracing::info!("Icecast sources on {addr}");
            Some(l)
        }
        Err(e) => {
            tracing::error!(
                "cannot listen on {addr} (ports.icecast): {e}; Icecast sources are off until `streamedge run` starts again"
            );
            None
        }
    }
}

/// Connections not yet past their key, by address.
#[derive(Clone, Default)]
struct Pending(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// A connection counted in [`Pending`] until it is dropped.
struct PendingSeat(Pending, std::net::IpAddr);

impl Pending {
    fn seat(&self, ip: std::net::IpAddr) -> Option<PendingSeat> {
        let mut all = self.0.lock().expect("not poisoned");
        let total: usize = all.values().sum();
        let mine = all.entry(ip).or_default();
        if total >= MAX_PENDING || *mine >= MAX_PENDING_PER_ADDRESS {
            if *mine == 0 {
                all.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        Some(PendingSeat(self.clone(), ip))
    }
}

impl Drop for PendingSeat {
    fn drop(&mut self) {
        let mut all = self.0 .0.lock().expect("not poisoned");
        if let Some(n) = all.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.1);
            }
        }
    }
}

/// Takes sources until `stop`.
pub async fn serve(config: Config, listener: TcpListener, stop: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SOURCES));
    let pending = Pending::default();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("icecast: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let Some(seat) = pending.seat(peer.ip().to_canonical()) else {
            // Too many connections waiting: closed at once, read by no one.
            drop(socket);
            continue;
        };
        let (config, stop, slots) = (config.clone(), stop.clone(), slots.clone());
        tokio::spawn(async move {
            source(&config, socket, peer, seat, &slots, &stop).await;
        });
    }
}

/// What a source asked for, from its request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub secret: String,
    /// ffmpeg's name for the input format, from `Content-Type`; `None`: let it look.
    pub format: Option<&'static str>,
    /// The `ice-name` header, as a title.
    pub title: Option<String>,
    /// `Expect: 100-continue` (PUT): answered with 100, else with 200.
    pub expect_continue: bool,
}

/// Why a request head was refused, with the status the source gets.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub u16, pub &'static str);

/// Reads a request head (`buf`, complete up to its blank line).
pub fn parse(buf: &[u8]) -> Result<Request, Refused> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Refused(400, "Bad Request")),
    }
    if !matches!(req.method, Some("PUT" | "SOURCE")) {
        return Err(Refused(405, "Method Not Allowed"));
    }
    let path = req.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let mount = path.strip_prefix('/').unwrap_or(path);
    // A mount named like a file (`/alice.mp3`) is the stream without its extension.
    let name = [".mp3", ".aac", ".ogg", ".opus", ".m4a"]
        .iter()
        .find_map(|ext| mount.strip_suffix(ext))
        .unwrap_or(mount);
    if check_name(name.as_bytes()).is_err() {
        return Err(Refused(404, "Not Found"));
    }
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let password = header("authorization")
        .and_then(|a| {
            let (scheme, value) = a.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(value.trim())
        })
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|userpass| userpass.split_once(':').map(|(_, p)| p.to_string()));
    // No password is a wrong one: the module refuses it and counts it, like any.
    let password = password.unwrap_or_default();
    // The whole stream key works too, as OBS shows it: `NAME?key=SECRET`.
    let secret = match password.split_once("?key=") {
        Some((n, s)) if n == name => s.to_string(),
        _ => password,
    };
    let format = header("content-type").and_then(|t| {
        match t
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "audio/mpeg" | "audio/mp3" => Some("mp3"),
            "audio/aac" | "audio/aacp" => Some("aac"),
            "audio/ogg" | "application/ogg" | "audio/opus" => Some("ogg"),
            "audio/webm" => Some("webm"),
            "audio/flac" => Some("flac"),
            _ => None,
        }
    });
    Ok(Request {
        name: name.to_string(),
        secret,
        format,
        title: header("ice-name").and_then(streamedge_formats::streams::clean_title),
        expect_continue: header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")),
    })
}

async fn answer(
    w: &mut (impl AsyncWrite + Unpin),
    status: u16,
    reason: &str,
) -> std::io::Result<()> {
    let extra = if status == 401 {
        "WWW-Authenticate: Basic realm=\"streamedge\"\r\n"
    } else {
        ""
    };
    let body = format!("{reason}\n");
    let text = format!(
        "HTTP/1.0 {status} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(text.as_bytes()).await?;
    w.shutdown().await
}

/// The request head and whatever of the body came with it.
async fn read_head(socket: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let read = async {
        loop {
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = buf.split_off(end + 4);
                return Some((std::mem::take(&mut buf), rest));
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(HEAD_WITHIN, read).await.ok().flatten()
}

/// The module's word on a source's key, from nginx's internal server.
async fn check(config: &Config, req: &Request, peer: SocketAddr) -> Result<(), Refused> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("call", "check_publish")
        .append_pair("addr", &peer.ip().to_canonical().to_string())
        .append_pair("clientid", "0")
        .append_pair("name", &req.name)
        .append_pair("key", &req.secret)
        .finish();
    let answer = reqwest::Client::new()
        .post(format!("{}/rtmp/auth", config.internal_http()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .await;
    match answer.map(|r| r.status().as_u16()) {
        Ok(200) => Ok(()),
        // 400: a key no key could be (too long), counted like a wrong one.
        Ok(400 | 403) => Err(Refused(401, "Authentication Required")),
        Ok(409) => Err(Refused(403, "Mountpoint in use")),
        Ok(429) => Err(Refused(403, "Too many attempts: try again later")),
        Ok(_) | Err(_) => Err(Refused(503, "Service Unavailable")),
    }
}

/// One source connection, from its request to its end.
/// (`seat` counts it as waiting until its key is accepted; then one of `slots` is its
/// while it is live.)
async fn source(
    config: &Config,
    mut socket: TcpStream,
    peer: SocketAddr,
    seat: PendingSeat,
    slots: &Arc<tokio::sync::Semaphore>,
    stop: &CancellationToken,
) {
    let Some((head, rest)) = read_head(&mut socket).await else {
        let _ = answer(&mut socket, 400, "Bad Request").await;
        return;
    };
    let req = match parse(&head) {
        Ok(r) => r,
        Err(Refused(status, reason)) => {
            tracing::info!(
                "icecast: refused a source from {}: {status} {reason}",
                peer.ip()
            );
            let _ = answer(&mut socket, status, reason).await;
            return;
        }
    };
    drop(head);
    if let Err(Refused(status, reason)) = check(config, &req, peer).await {
        // The module logged why (never the key).
        let _ = answer(&mut socket, status, reason).await;
        return;
    }
    let Ok(_live) = slots.clone().try_acquire_owned() else {
        let _ = answer(&mut socket, 503, "Too many sources").await;
        return;
    };
    drop(seat);
    let ok: &[u8] = if req.expect_continue {
        b"HTTP/1.1 100 Continue\r\n\r\n"
    } else {
        b"HTTP/1.0 200 OK\r\n\r\n"
    };
    if socket.write_all(ok).await.is_err() {
        return;
    }
    tracing::info!("icecast: source \"{}\" from {}", req.name, peer.ip());
    match publish(config, &req, rest, socket, stop).await {
        Ok(why) => tracing::info!("icecast: source \"{}\" ended: {why}", req.name),
        Err(e) => tracing::warn!("icecast: source \"{}\" failed: {e}", req.name),
    }
}

fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::proc::prepare(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    cmd.spawn()
}

/// The audio on to nginx-rtmp until the source ends (`Ok`, with how), fails or `stop`.
async fn publish(
    config: &Config,
    req: &Request,
    first: Vec<u8>,
    socket: TcpStream,
    stop: &CancellationToken,
) -> Result<&'static str, String> {
    let name = &req.name;
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    // Nothing but the pipe: a source cannot make ffmpeg open anything.
    ffmpeg.args(["-protocol_whitelist", "pipe"]);
    if let Some(f) = req.format {
        ffmpeg.args(["-f", f]);
    }
    ffmpeg
        .args(["-i", "pipe:0", "-vn", "-map", "0:a:0"])
        .args([
            "-c:a", "aac", "-b:a", AUDIO_KBPS, "-ar", "44100", "-ac", "2",
        ])
        .args(["-f", "flv", "pipe:1"]);
    let mut ffmpeg = spawn(ffmpeg).map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let mut push = spawn({
        let mut c = Command::new(crate::proc::own_binary());
        c.arg("push");
        c
    })
    .map_err(|e| format!("cannot run streamedge push: {e}"))?;
    let role = || Role::new("icecast", name.clone());
    let mut meters = [
        Meter::start(role(), "ffmpeg", ffmpeg.id().unwrap_or(0)),
        Meter::start(role(), "streamedge", push.id().unwrap_or(0)),
    ];
    let mut push_in = push.stdin.take().expect("piped");
    let url = format!("{}/{}?key={}\n", config.local_rtmp(), name, req.secret);
    // The key goes down the pipe, on no command line.
    push_in
        .write_all(url.as_bytes())
        .await
        .map_err(|e| format!("streamedge push: {e}"))?;
    let ff_in = ffmpeg.stdin.take().expect("piped");
    let ff_out = ffmpeg.stdout.take().expect("piped");
    let ff_err = tokio::spawn(crate::proc::tail(ffmpeg.stderr.take().expect("piped")));
    let push_err = tokio::spawn(crate::proc::tail(push.stderr.take().expect("piped")));
    let mut push_out = BufReader::new(push.stdout.take().expect("piped")).lines();

    let feed = feed(first, socket, ff_in);
    let pump = async move {
        let mut ff_out = ff_out;
        let _ = tokio::io::copy(&mut ff_out, &mut push_in).await;
        let _ = push_in.shutdown().await;
    };
    let titled = CancellationToken::new();
    let title = req.title.clone().map(|t| {
        let dir = config.layout().live().join(name);
        tokio::spawn(super::keep_title(dir, t, titled.clone()))
    });
    // Whether this source's publish went live: only then is the title file its to remove.
    let went_live = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                line = push_out.next_line() => match line {
                    Ok(Some(l)) if l == "publishing" => {
                        went_live.store(true, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!("icecast: \"{name}\" is live");
                    }
                    Ok(Some(_)) => {}
                    _ => return,
                },
                _ = tick.tick() => meters.iter_mut().for_each(Meter::sample),
            }
        }
    };
    let outcome = tokio::select! {
        (how, _, _) = async { tokio::join!(feed, pump, watch) } => Ok(how),
        _ = stop.cancelled() => Ok("the server is stopping"),
    };
    titled.cancel();
    if let Some(t) = title {
        let _ = t.await;
    }
    if went_live.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = std::fs::remove_file(
            config
                .layout()
                .live()
                .join(name)
                .join(streamedge_formats::layout::LIVE_TITLE),
        );
    }
    // ffmpeg has had its input's end; push has had ffmpeg's. Each gets a moment to finish.
    let ff_status = tokio::time::timeout(Duration::from_secs(5), ffmpeg.wait()).await;
    let push_status = tokio::time::timeout(Duration::from_secs(5), push.wait()).await;
    let _ = ffmpeg.start_kill();
    let _ = push.start_kill();
    let [a, b] = meters;
    let failed = |s: &Result<std::io::Result<std::process::ExitStatus>, _>| !matches!(s, Ok(Ok(st)) if st.success());
    let (ff_failed, push_failed) = (failed(&ff_status), failed(&push_status));
    a.finish(if ff_failed { "failed" } else { "done" });
    b.finish(if push_failed { "failed" } else { "done" });
    let last = |tail: String| crate::proc::last_words(&tail);
    if push_failed {
        if let Some(l) = last(push_err.await.unwrap_or_default()) {
            return Err(l);
        }
    }
    if ff_failed {
        if let Some(l) = last(ff_err.await.unwrap_or_default()) {
            return Err(format!("the audio: {l}"));
        }
    }
    outcome
}

/// Copies the source's audio into ffmpeg until the source ends or goes silent.
async fn feed(
    first: Vec<u8>,
    socket: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> &'static str {
    let mut socket = socket;
    if to.write_all(&first).await.is_err() {
        return "ffmpeg stopped reading";
    }
    let mut buf = vec![0u8; 32 * 1024];
    let how = loop {
        match tokio::time::timeout(SOURCE_IDLE, socket.read(&mut buf)).await {
            Err(_) => break "the source sent nothing for 20 s",
            Ok(Ok(0)) => break "the source disconnected",
            Ok(Err(_)) => break "the source's connection broke",
            Ok(Ok(n)) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break "ffmpeg stopped reading";
                }
            }
        }
    };
    let _ = to.shutdown().await;
    how
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str, auth: Option<&str>, extra: &str) -> Vec<u8> {
        let auth = auth
            .map(|a| {
                format!(
                    "Authorization: Basic {}\r\n",
                    base64::engine::general_purpose::STANDARD.encode(a)
                )
            })
            .unwrap_or_default();
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}{extra}\r\n").into_bytes()
    }

    #[test]
    fn put_and_source_requests_with_a_key() {
        let r = parse(&head(
            "PUT",
            "/alice",
            Some("source:S3CRET"),
            "Content-Type: audio/mpeg\r\nExpect: 100-continue\r\nIce-Name: Friday Mix\r\n",
        ))
        .unwrap();
        assert_eq!(
            r,
            Request {
                name: "alice".into(),
                secret: "S3CRET".into(),
                format: Some("mp3"),
                title: Some("Friday Mix".into()),
                expect_continue: true,
            }
        );
        let r = parse(&head(
            "SOURCE",
            "/alice.ogg",
            Some("dj:alice?key=S3CRET"),
            "Content-Type: application/ogg\r\n",
        ))
        .unwrap();
        assert_eq!(
            (
                r.name.as_str(),
                r.secret.as_str(),
                r.format,
                r.expect_continue
            ),
            ("alice", "S3CRET", Some("ogg"), false)
        );
        // A password that is a password with a colon in it.
        assert_eq!(
            parse(&head("PUT", "/a", Some("source:x:y"), ""))
                .unwrap()
                .secret,
            "x:y"
        );
    }

    #[test]
    fn waiting_connections_are_capped_per_address_and_in_all() {
        let pending = Pending::default();
        let ip = |n: u8| std::net::IpAddr::from([192, 0, 2, n]);
        let mine: Vec<_> = (0..10).filter_map(|_| pending.seat(ip(1))).collect();
        assert_eq!(mine.len(), MAX_PENDING_PER_ADDRESS);
        // Another address still gets in; a seat given back is free again.
        assert!(pending.seat(ip(2)).is_some());
        drop(mine);
        assert!(pending.seat(ip(1)).is_some());
        let many: Vec<_> = (0..=255u8).filter_map(|n| pending.seat(ip(n))).collect();
        assert_eq!(many.len(), MAX_PENDING);
        assert!(pending.0.lock().unwrap().len() <= MAX_PENDING);
    }

    #[test]
    fn bad_requests_get_the_status_icecast_would_give() {
        let refused = |h: Vec<u8>| parse(&h).unwrap_err().0;
        assert_eq!(refused(head("GET", "/alice", Some("s:k"), "")), 405);
        assert_eq!(refused(head("PUT", "/../etc", Some("s:k"), "")), 404);
        assert_eq!(refused(head("PUT", "/", Some("s:k"), "")), 404);
        // No password, or another stream's key: wrong keys, for the module to refuse and count.
        assert_eq!(parse(&head("PUT", "/alice", None, "")).unwrap().secret, "");
        assert_eq!(
            parse(&head("PUT", "/alice", Some("source:"), ""))
                .unwrap()
                .secret,
            ""
        );
        assert_eq!(
            parse(&head("PUT", "/alice", Some("s:bob?key=S"), ""))
                .unwrap()
                .secret,
            "bob?key=S"
        );
        assert_eq!(refused(b"\x16\x03\x01 not http\r\n\r\n".to_vec()), 400);
    }
}
