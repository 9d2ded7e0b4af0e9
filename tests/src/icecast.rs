//! A DJ's Icecast source client: ffmpeg's `icecast://` output, as Mixxx or butt connect.

use std::process::{Child, Command, Stdio};

/// A tone as MP3 to `icecast://source:PASSWORD@127.0.0.1:PORT/MOUNT` for `secs` seconds,
/// in real time, named `title` (`ice-name`). Its stderr is piped, for what it said.
pub fn icecast_source(port: u16, mount: &str, password: &str, secs: u32, title: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            &secs.to_string(),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
        ])
        .args([
            "-content_type",
            "audio/mpeg",
            "-ice_name",
            title,
            "-f",
            "mp3",
        ])
        .arg(format!(
            "icecast://source:{password}@127.0.0.1:{port}/{mount}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg")
}
