//! A stand-in for a channel's live page, on loopback: what yt-dlp sees of a channel. While
//! the channel is offline its page has no player ("Unsupported URL" to yt-dlp's generic
//! extractor); while it is live the page names a live HLS playlist (made by a real ffmpeg,
//! no `#EXT-X-ENDLIST`) in `og:video`, which yt-dlp reports as live, with the page's title.
//! Ending the broadcast stops ffmpeg, which ends the playlist, and the page is offline again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ports::tiny_server;
use crate::wait::wait_for;

pub struct LiveChannel {
    pub port: u16,
    dir: tempfile::TempDir,
    live: Arc<AtomicBool>,
    page_requests: Arc<AtomicUsize>,
    ffmpeg: Option<Child>,
}

/// The page's title, which a relay gives its stream.
pub const CHANNEL_TITLE: &str = "Night Set";

impl LiveChannel {
    pub fn start() -> LiveChannel {
        let dir = tempfile::tempdir().unwrap();
        let (port, server) = tiny_server("the channel stand-in");
        let live = Arc::new(AtomicBool::new(false));
        let page_requests = Arc::new(AtomicUsize::new(0));
        let (root, on, count) = (
            dir.path().to_path_buf(),
            live.clone(),
            page_requests.clone(),
        );
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                let url = req.url().to_string();
                let resp = if url == "/" || url == "/channel" {
                    count.fetch_add(1, Ordering::SeqCst);
                    page(port, on.load(Ordering::SeqCst))
                } else {
                    file(&root, &url)
                };
                let _ = req.respond(resp);
            }
        });
        LiveChannel {
            port,
            dir,
            live,
            page_requests,
            ffmpeg: None,
        }
    }

    /// The channel's page, as a user copies it from the browser.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/channel", self.port)
    }

    /// The live playlist itself, for a relay that reads HLS.
    pub fn playlist_url(&self) -> String {
        format!("http://127.0.0.1:{}/live/index.m3u8", self.port)
    }

    /// How many times the page was asked for.
    pub fn page_requests(&self) -> usize {
        self.page_requests.load(Ordering::SeqCst)
    }

    /// Goes live: ffmpeg makes the live playlist in real time (320x240, 1 s segments), and
    /// once it lists a few segments the page shows the player.
    pub fn go_live(&mut self) {
        let live = self.dir.path().join("live");
        let _ = std::fs::remove_dir_all(&live);
        std::fs::create_dir_all(&live).unwrap();
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k"])
            .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
            .args(["-hls_flags", "delete_segments"])
            .arg(live.join("index.m3u8"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ffmpeg");
        self.ffmpeg = Some(child);
        wait_for(
            "the channel's live playlist",
            Duration::from_secs(30),
            || {
                let text = std::fs::read_to_string(live.join("index.m3u8")).ok()?;
                (text.matches("#EXTINF").count() >= 3).then_some(())
            },
        );
        self.live.store(true, Ordering::SeqCst);
    }

    /// Goes live with a playlist of one's own (a hostile page's), no ffmpeg behind it.
    pub fn go_live_with(&mut self, playlist: &str) {
        let live = self.dir.path().join("live");
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(live.join("index.m3u8"), playlist).unwrap();
        self.live.store(true, Ordering::SeqCst);
    }

    /// Ends the broadcast: ffmpeg stops (and writes `#EXT-X-ENDLIST`), the page is offline.
    pub fn end(&mut self) {
        if let Some(mut c) = self.ffmpeg.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = c.wait();
        }
        self.live.store(false, Ordering::SeqCst);
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for LiveChannel {
    fn drop(&mut self) {
        if let Some(mut c) = self.ffmpeg.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn html(body: String) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let header = "Content-Type: text/html; charset=utf-8"
        .parse::<tiny_http::Header>()
        .unwrap();
    tiny_http::Response::from_string(body).with_header(header)
}

fn page(port: u16, live: bool) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let player = if live {
        format!("<meta property=\"og:video\" content=\"http://127.0.0.1:{port}/live/index.m3u8\">")
    } else {
        String::new()
    };
    let state = if live { "Live now" } else { "Offline" };
    html(format!(
        "<!doctype html><html><head><title>{CHANNEL_TITLE}</title>\
         <meta property=\"og:title\" content=\"{CHANNEL_TITLE}\">{player}</head>\
         <body><h1>{CHANNEL_TITLE}</h1><p>{state}</p></body></html>"
    ))
}

fn file(root: &Path, url: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let name = url.trim_start_matches('/');
    let ok = name
        .split('/')
        .all(|p| !p.is_empty() && p != ".." && !p.starts_with('.'));
    let bytes = ok.then(|| std::fs::read(root.join(name)).ok()).flatten();
    let Some(bytes) = bytes else {
        return tiny_http::Response::from_string("not found").with_status_code(404);
    };
    let ctype = if name.ends_with(".m3u8") {
        "application/vnd.apple.mpegurl"
    } else {
        "video/mp2t"
    };
    let header = format!("Content-Type: {ctype}")
        .parse::<tiny_http::Header>()
        .unwrap();
    tiny_http::Response::from_data(bytes).with_header(header)
}
