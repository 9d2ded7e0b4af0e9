//! Test media and players: clips made with ffmpeg, library (VOD) items, a loopback web
//! server for fetch tests, and ffprobe/ffmpeg checks of what a player would get.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::paths::target_dir;
use crate::ports::tiny_server;

/// Test media made with ffmpeg once per test binary: `clip.mp4` (720p, 8 s, with sound),
/// `long.mp4` (720p, 30 s), `song.m4a` (audio only, 8 s), `corrupt.mp4` (random bytes).
/// Made once into the build folder and kept, since every run would make the same files.
pub fn media_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let done = target_dir().join("test-media-1");
        if done.is_dir() {
            return done;
        }
        let dir = tempfile::Builder::new()
            .prefix("test-media-")
            .tempdir_in(target_dir())
            .unwrap();
        let make = |name: &str, args: &[&str]| {
            let out = Command::new("ffmpeg")
                .args(["-v", "error", "-y"])
                .args(args)
                .arg(dir.path().join(name))
                .output()
                .expect("run ffmpeg");
            assert!(
                out.status.success(),
                "make {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let video = |secs: &str| {
            [
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                secs,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "30",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ]
            .map(String::from)
        };
        make(
            "clip.mp4",
            &video("8").iter().map(String::as_str).collect::<Vec<_>>(),
        );
        make(
            "long.mp4",
            &video("30").iter().map(String::as_str).collect::<Vec<_>>(),
        );
        make(
            "song.m4a",
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=330:sample_rate=44100",
                "-t",
                "8",
                "-c:a",
                "aac",
            ],
        );
        let mut junk = vec![0u8; 300_000];
        for (i, b) in junk.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
        }
        std::fs::write(dir.path().join("corrupt.mp4"), junk).unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        // Another test binary may have made them meanwhile: either copy will do.
        let made = dir.keep();
        if std::fs::rename(&made, &done).is_err() {
            let _ = std::fs::remove_dir_all(&made);
        }
        done
    })
}

/// A loopback web server for fetch tests: files of `media_dir()` at `/NAME`, the same
/// slowly (about 256 KB/s) at `/slow/NAME`, 404 for anything else. Counts requests.
pub struct MediaServer {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

struct Slow<R>(R);

impl<R: Read> Read for Slow<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(60));
        let n = buf.len().min(16 * 1024);
        self.0.read(&mut buf[..n])
    }
}

impl MediaServer {
    pub fn start() -> MediaServer {
        let dir = media_dir().to_path_buf();
        let (port, server) = tiny_server("the media server");
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let url = req.url().to_string();
                    let (slow, name) = match url.strip_prefix("/slow/") {
                        Some(n) => (true, n.to_string()),
                        None => (false, url.trim_start_matches('/').to_string()),
                    };
                    let path = dir.join(&name);
                    let file = (!name.contains('/') && !name.is_empty())
                        .then(|| std::fs::File::open(&path).ok())
                        .flatten();
                    let Some(file) = file else {
                        let _ = req.respond(
                            tiny_http::Response::from_string("not found").with_status_code(404),
                        );
                        return;
                    };
                    let len = file.metadata().unwrap().len() as usize;
                    let ctype = if name.ends_with(".m4a") {
                        "audio/mp4"
                    } else {
                        "video/mp4"
                    };
                    let header = format!("Content-Type: {ctype}")
                        .parse::<tiny_http::Header>()
                        .unwrap();
                    let reader: Box<dyn Read + Send> = if slow {
                        Box::new(Slow(file))
                    } else {
                        Box::new(file)
                    };
                    let resp =
                        tiny_http::Response::new(200.into(), vec![header], reader, Some(len), None)
                            // With a length, as file servers send them (not chunked).
                            .with_chunked_threshold(usize::MAX);
                    let _ = req.respond(resp);
                });
            }
        });
        MediaServer { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Makes a library item as the sidecar publishes one: two renditions of a short test clip
/// in fMP4 HLS (VOD playlists, a master playlist) and a meta.json.
pub fn make_vod_item(vod_dir: &Path, id: &str, meta: &str) {
    let dir = vod_dir.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("ffmpeg")
        .current_dir(&dir)
        .args(["-nostdin", "-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=4:size=320x180:rate=15",
        ])
        .args(["-f", "lavfi", "-i", "sine=duration=4:frequency=440"])
        .args(["-filter_complex", "[0:v]split=2[a][b];[b]scale=160:90[c]"])
        .args(["-map", "[a]", "-map", "[c]", "-map", "1:a", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-c:a",
            "aac",
        ])
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-master_pl_name",
            "master.m3u8",
        ])
        .args(["-var_stream_map", "v:0,a:0 v:1,a:1", "v%v/index.m3u8"])
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the VOD fixture");
    std::fs::write(dir.join("meta.json"), meta).unwrap();
}

/// `ffprobe` on a URL: the codec types of the streams it could decode, in order.
pub fn ffprobe_streams(url: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Decodes `secs` seconds of video and audio from `url` with ffmpeg; both must be present.
/// Returns whether it worked and what ffmpeg said.
pub fn ffmpeg_decodes(url: &str, secs: u32) -> (bool, String) {
    let out = Command::new("timeout")
        .args([
            "60",
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            url,
            "-t",
            &secs.to_string(),
        ])
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
