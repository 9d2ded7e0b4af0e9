//! `streamedge push`: the process that sends one stream to one destination. It reads the
//! destination's URL as the first line of its stdin (so the stream key is on no command line:
//! /proc/PID/cmdline is every local user's to read), then the stream as FLV, and publishes it
//! over RTMP, or RTMPS with the system's roots (and `--ca-file`'s), with rml_rtmp's client
//! session: no re-encode, no second copy of the stream in memory.
//!
//! It says what it does on stdout for the sidecar: `publishing` once the destination accepts
//! the stream, `sent BYTES` every second. Errors go to stderr and name the server
//! (`HOST:PORT/APP`), never the key. It ends, status 0, when its stdin ends (the broadcast is
//! over: it unpublishes first), and status 1 when the destination refuses or drops it.
//!
//! A relay's push (`--from URL`) reads the stream from its own ffmpeg instead, which copies
//! the source to FLV with only the source's protocols allowed; it ends with the source, and
//! says why when ffmpeg failed or the source went silent.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::RtmpUrl;
use crate::live::feed::{read_flv_header, read_flv_tag, Kind, Tag};

/// How long the destination has to answer the TCP connect, and then to accept the publish.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
const PUBLISH_WITHIN: Duration = Duration::from_secs(15);
/// A destination that takes no bytes for this long is gone.
const STALLED: Duration = Duration::from_secs(20);

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Where a push reads the stream from when it is not its stdin: a relay's source, which
/// ffmpeg reads (`--from`).
#[derive(Debug, Default)]
pub struct Source {
    pub url: String,
    /// HTTP request headers for it ("Name: value"), as yt-dlp says the site wants them.
    pub headers: Vec<String>,
}

/// How long a source may send nothing before ffmpeg gives up on it, in microseconds.
const SOURCE_TIMEOUT_US: &str = "15000000";
/// How long a source may send no media (while ffmpeg waits on, say, a playlist whose
/// segments never load) before the push gives up on it.
const SOURCE_IDLE: Duration = Duration::from_secs(20);

type Input = BufReader<tokio::net::unix::pipe::Receiver>;

/// Runs the push on this process's stdin and stdout: the stream is what follows the
/// destination on stdin, or with `source` what ffmpeg reads from there (copied, never
/// encoded again).
pub async fn run(ca_file: Option<&Path>, source: Option<&Source>) -> Result<()> {
    // The pipe from the sidecar, read through the runtime's poller (tokio's `stdin()` reads
    // on a thread of its blocking pool, a hand-over per read).
    let stdin = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("stdin")?,
    );
    let pipe =
        tokio::net::unix::pipe::Receiver::from_file(stdin).context("stdin must be a pipe")?;
    let mut input = BufReader::with_capacity(256 << 10, pipe);
    let mut line = String::new();
    (&mut input)
        .take(4096)
        .read_line(&mut line)
        .await
        .context("cannot read the destination from stdin")?;
    let url =
        RtmpUrl::parse(line.trim_end_matches(['\n', '\r'])).context("the destination on stdin")?;
    drop(line);
    let Some(source) = source else {
        return publish(&url, input, ca_file, None).await;
    };
    let mut ffmpeg = pull(source)?;
    let fd = ffmpeg
        .child
        .stdout
        .take()
        .expect("piped")
        .into_owned_fd()
        .context("ffmpeg's output")?;
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).context("ffmpeg's output")?;
    let input = BufReader::with_capacity(256 << 10, pipe);
    let result = publish(&url, input, ca_file, Some(SOURCE_IDLE)).await;
    // The source's end says more than the pipe's: ffmpeg's own last words when it failed.
    let status = match &result {
        Ok(()) => tokio::time::timeout(Duration::from_secs(5), ffmpeg.child.wait())
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => ffmpeg.child.try_wait().ok().flatten(),
    };
    let _ = ffmpeg.child.start_kill();
    // Its stderr ends with it.
    let tail = ffmpeg.stderr.await.unwrap_or_default();
    let last = tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    match (status, result, last) {
        (Some(s), _, last) if !s.success() => {
            bail!(
                "the source: {}",
                last.unwrap_or_else(|| format!("ffmpeg ended with {s}"))
            )
        }
        (_, Err(e), Some(last)) => bail!("{e:#} (ffmpeg: {last})"),
        (_, result, _) => result,
    }
}

/// ffmpeg reading a relay's source and writing it as FLV on its stdout, and the end of its
/// stderr.
struct Pull {
    child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
}

fn pull(source: &Source) -> Result<Pull> {
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"])
        .args(["-rw_timeout", SOURCE_TIMEOUT_US]);
    let http = source.url.starts_with("http://") || source.url.starts_with("https://");
    if http && !source.headers.is_empty() {
        let headers: String = source.headers.iter().map(|h| format!("{h}\r\n")).collect();
        cmd.arg("-headers").arg(headers);
    }
    // Only the source's own protocols: a playlist from the web may name file: or other
    // local segments, which would send this machine's files out as the stream.
    cmd.args(["-protocol_whitelist", protocols(&source.url)]);
    cmd.arg("-i")
        .arg(&source.url)
        // The first picture and the first sound; FLV carries one of each.
        .args(["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy"])
        .args(["-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // Gone with this process, whatever ends it.
    crate::proc::prepare(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    let mut child = cmd.spawn().context("cannot run ffmpeg")?;
    let stderr = tokio::spawn(crate::proc::tail(child.stderr.take().expect("piped")));
    Ok(Pull { child, stderr })
}

/// The protocols ffmpeg may use for a source at `url` (and what it leads to: an HLS
/// playlist's segments and keys).
pub fn protocols(url: &str) -> &'static str {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("srt") => "srt,udp",
        Some("rtmp") | Some("rtmps") => "rtmp,rtmps,tcp,tls",
        _ => "http,https,tls,tcp,crypto,data",
    }
}

/// Publishes the FLV stream `input` until it ends; with `idle`, an input that sends
/// nothing for that long is given up on (a source that answers but plays nothing: a live
/// playlist whose segments never load).
async fn publish(
    url: &RtmpUrl,
    mut input: Input,
    ca_file: Option<&Path>,
    idle: Option<Duration>,
) -> Result<()> {
    let server = format!("{}/{}", url.server(), url.app);
    let what = if idle.is_some() {
        "the source"
    } else {
        "the stream on stdin"
    };
    let silent = || {
        anyhow::anyhow!(
            "the source sent nothing for {}s",
            idle.unwrap_or_default().as_secs()
        )
    };
    match idle {
        Some(d) => tokio::time::timeout(d, read_flv_header(&mut input))
            .await
            .map_err(|_| silent())?,
        None => read_flv_header(&mut input).await,
    }
    .context(what)?;
    let mut last_input = std::time::Instant::now();

    let conn = connect(url, ca_file)
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let mut session = tokio::time::timeout(PUBLISH_WITHIN, start(url, &mut rd, &mut wr))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{server} did not accept the stream within {}s",
                PUBLISH_WITHIN.as_secs()
            )
        })?
        .with_context(|| server.clone())?;
    say("publishing").await;

    let mut sent: u64 = 0;
    let mut first: Option<u32> = None;
    let mut buf = vec![0u8; 16 << 10];
    // The packets of the tags read so far, written once no whole tag waits in the input:
    // one system call for what came in one read, not one a tag.
    let mut pending: Vec<u8> = Vec::with_capacity(256 << 10);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            tag = read_flv_tag(&mut input) => {
                last_input = std::time::Instant::now();
                let Some(tag) = tag.context(what)? else {
                    // The broadcast is over: unpublish, then close.
                    let _ = wr.write_all(&pending).await;
                    let results = session.stop_publishing().unwrap_or_default();
                    let _ = send(&mut wr, results).await;
                    let _ = wr.shutdown().await;
                    return Ok(());
                };
                // Each connection starts at 0: the stream may be joined at any keyframe.
                let start = *first.get_or_insert(tag.timestamp);
                let ts = RtmpTimestamp::new(tag.timestamp.wrapping_sub(start));
                let result = match tag.kind {
                    Kind::Video => session.publish_video_data(tag.data, ts, false),
                    Kind::Audio => session.publish_audio_data(tag.data, ts, false),
                    Kind::Script => match stream_metadata(&tag) {
                        Some(m) => session.publish_metadata(&m),
                        None => continue,
                    },
                };
                let ClientSessionResult::OutboundResponse(packet) =
                    result.map_err(|e| anyhow::anyhow!("{server}: {e}"))?
                else {
                    continue;
                };
                pending.extend_from_slice(&packet.bytes);
                if input.buffer().is_empty() || pending.len() >= 256 << 10 {
                    tokio::time::timeout(STALLED, wr.write_all(&pending))
                        .await
                        .map_err(|_| anyhow::anyhow!("{server} took nothing for {}s", STALLED.as_secs()))?
                        .with_context(|| format!("{server} dropped the connection"))?;
                    sent += pending.len() as u64;
                    pending.clear();
                }
            }
            n = rd.read(&mut buf) => {
                let n = n.with_context(|| format!("{server} dropped the connection"))?;
                if n == 0 {
                    bail!("{server} closed the connection");
                }
                let results = session
                    .handle_input(&buf[..n])
                    .map_err(|e| anyhow::anyhow!("{server}: {e}"))?;
                // The session's answers go after the media it has serialized already.
                wr.write_all(&std::mem::take(&mut pending)).await?;
                send(&mut wr, results).await?;
            }
            _ = tick.tick() => {
                if idle.is_some_and(|d| last_input.elapsed() >= d) {
                    bail!(silent());
                }
                say(&format!("sent {sent}")).await
            }
        }
    }
}

/// A line on stdout for the sidecar (a few bytes a second: written as they come).
async fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn connect(url: &RtmpUrl, ca_file: Option<&Path>) -> Result<Box<dyn Conn>> {
    let tcp = tokio::time::timeout(
        CONNECT_WITHIN,
        tokio::net::TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {}s", CONNECT_WITHIN.as_secs()))??;
    // Frames go out as they come: a live stream, not a file.
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return Ok(Box::new(tcp));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS")?
    .with_root_certificates(roots(ca_file)?)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .context("the host is not a name TLS can check")?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .context("TLS")?;
    Ok(Box::new(tls))
}

/// The system's roots, and `ca_file`'s.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not PEM certificates", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!("{} has no certificate", path.display());
        }
    }
    if roots.is_empty() {
        bail!("no trusted certificates: install ca-certificates, or set restream.ca_file");
    }
    Ok(roots)
}

/// The RTMP handshake, `connect` and `publish`: the session once the destination takes the
/// stream.
async fn start(
    url: &RtmpUrl,
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
) -> Result<ClientSession> {
    let mut handshake = Handshake::new(PeerType::Client);
    let p0p1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
    wr.write_all(&p0p1).await?;
    let mut buf = vec![0u8; 16 << 10];
    let leftover = loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            bail!("closed the connection during the RTMP handshake");
        }
        match handshake
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow::anyhow!("handshake: {e}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                wr.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                wr.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(url.tc_url());
    config.flash_version = "FMLE/3.0 (compatible; streamedge)".into();
    let (mut session, results) = ClientSession::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    send(wr, results).await?;
    let connect = session
        .request_connection(url.app.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    send(wr, vec![connect]).await?;
    let mut input = leftover;
    loop {
        let results = session
            .handle_input(&input)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => wr.write_all(&p.bytes).await?,
                ClientSessionResult::RaisedEvent(event) => match event {
                    ClientSessionEvent::ConnectionRequestAccepted => {
                        let publish = session
                            .request_publishing(url.key.clone(), PublishRequestType::Live)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        send(wr, vec![publish]).await?;
                    }
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        bail!("refused the connection: {}", description.escape_debug())
                    }
                    ClientSessionEvent::PublishRequestAccepted => return Ok(session),
                    // NetStream.Publish.BadName and the like: the key was not taken.
                    ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                        bail!("refused the stream: {}", code.escape_debug())
                    }
                    _ => {}
                },
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        wr.flush().await?;
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            bail!("closed the connection before taking the stream (a wrong stream key?)");
        }
        input = buf[..n].to_vec();
    }
}

/// Writes what the session wants sent.
async fn send(wr: &mut (impl AsyncWrite + Unpin), results: Vec<ClientSessionResult>) -> Result<()> {
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            wr.write_all(&p.bytes).await?;
        }
    }
    wr.flush().await?;
    Ok(())
}

/// What an `onMetaData` tag says, as rml_rtmp sends it on.
fn stream_metadata(tag: &Tag) -> Option<StreamMetadata> {
    use scuffle_amf0::decoder::Amf0Decoder;
    use scuffle_amf0::Amf0Value;
    let mut values = Amf0Decoder::from_slice(&tag.data);
    let mut first = values.decode_value().ok()?;
    if matches!(&first, Amf0Value::String(s) if s.as_str() == "@setDataFrame") {
        first = values.decode_value().ok()?;
    }
    if !matches!(&first, Amf0Value::String(s) if s.as_str() == "onMetaData") {
        return None;
    }
    let mut m = StreamMetadata::new();
    let Ok(Amf0Value::Object(fields)) = values.decode_value() else {
        return Some(m);
    };
    for (key, value) in fields.iter() {
        let number = match value {
            Amf0Value::Number(n) if n.is_finite() && *n >= 0.0 && *n < 1e9 => Some(*n),
            _ => None,
        };
        let whole = number.map(|n| n as u32);
        match key.as_str() {
            "width" => m.video_width = whole,
            "height" => m.video_height = whole,
            "videocodecid" => m.video_codec_id = whole,
            "framerate" => m.video_frame_rate = number.map(|n| n as f32),
            "videodatarate" => m.video_bitrate_kbps = whole,
            "audiocodecid" => m.audio_codec_id = whole,
            "audiodatarate" => m.audio_bitrate_kbps = whole,
            "audiosamplerate" => m.audio_sample_rate = whole,
            "audiochannels" => m.audio_channels = whole,
            "stereo" => {
                if let Amf0Value::Boolean(b) = value {
                    m.audio_is_stereo = Some(*b);
                }
            }
            "encoder" => {
                if let Amf0Value::String(s) = value {
                    m.encoder = Some(s.to_string());
                }
            }
            _ => {}
        }
    }
    Some(m)
}
