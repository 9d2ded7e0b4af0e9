//! yt-dlp: the arguments streamedge gives it, and what its output means.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::Kind;

/// Options every run gets: no user or system configuration, one item never a playlist, no
/// cache, progress on its own lines.
const COMMON: [&str; 6] = [
    "--ignore-config",
    "--no-playlist",
    "--no-cache-dir",
    "--newline",
    "--socket-timeout",
    "30",
];

/// Where, inside the download folder, yt-dlp writes the path of what it downloaded.
pub const FILEPATH: &str = "filepath.txt";

/// Marks progress lines among yt-dlp's others.
const PROGRESS: &str = "streamedge-progress";

/// Where the yt-dlp to run is: the configured path, else the project's virtual environment
/// (next to a built or installed streamedge), else `yt-dlp` on PATH.
pub fn locate(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let exe = std::env::current_exe().ok();
    let beside = exe.as_deref().and_then(Path::parent).map(|d| {
        [
            // target/release/streamedge in a clone: the clone's .venv
            d.join("../../.venv/bin/yt-dlp"),
            // /usr/local/bin/streamedge from `make install`, and the Docker image
            PathBuf::from("/opt/streamedge/venv/bin/yt-dlp"),
        ]
    });
    beside
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("yt-dlp"))
}

/// Arguments that print the metadata as JSON (`-J`), downloading nothing.
pub fn probe_args(url: &str) -> Vec<String> {
    let mut a: Vec<String> = COMMON.map(String::from).to_vec();
    a.extend(["-J", "--", url].map(String::from));
    a
}

/// Arguments that print what is live at `url` as JSON: one stream with picture and sound
/// (`-f b`, what a relay copies), its URL and title.
pub fn live_args(url: &str) -> Vec<String> {
    let mut a: Vec<String> = COMMON.map(String::from).to_vec();
    a.extend(["--no-warnings", "-J", "-f", "b", "--", url].map(String::from));
    a
}

/// yt-dlp's format choice: for video the best video and audio within the height limit
/// (heights unknown to yt-dlp, as for direct links, do not exclude a format), for audio the
/// best audio (or the best file, whose sound is kept).
pub fn format(kind: Kind, max_height: Option<u32>) -> String {
    match (kind, max_height) {
        (Kind::Audio, _) => "ba/b".into(),
        (Kind::Video, None) => "bv*+ba/b".into(),
        (Kind::Video, Some(h)) => format!("bv*[height<=?{h}]+ba/b[height<=?{h}]/bv*+ba/b"),
    }
}

/// Arguments that download into `dir` as `media.<ext>`, with progress lines.
pub fn download_args(url: &str, dir: &Path, kind: Kind, max_height: Option<u32>) -> Vec<String> {
    let mut a: Vec<String> = COMMON.map(String::from).to_vec();
    a.extend(
        [
            "--no-mtime",
            "--no-part",
            "--continue",
            "--retries",
            "3",
            "--progress-template",
        ]
        .map(String::from),
    );
    a.push(format!(
        "download:{PROGRESS} %(progress.downloaded_bytes)s %(progress.total_bytes)s \
         %(progress.total_bytes_estimate)s %(progress.eta)s"
    ));
    a.extend(["-f".into(), format(kind, max_height)]);
    a.extend(["--merge-output-format".into(), "mkv".into()]);
    a.extend(["-P".into(), dir.display().to_string()]);
    // The final file's path, written when yt-dlp is done with it (merged or not).
    a.extend(["--print-to-file", "after_move:filepath", FILEPATH].map(String::from));
    a.extend(["-o", "media.%(ext)s", "--", url].map(String::from));
    a
}

/// A progress line: percent done and seconds left, when known.
pub fn parse_progress(line: &str) -> Option<(Option<f64>, Option<u64>)> {
    let rest = line.strip_prefix(PROGRESS)?;
    let f: Vec<Option<f64>> = rest
        .split_whitespace()
        .map(|v| v.parse::<f64>().ok())
        .collect();
    let [done, total, estimate, eta] = f.as_slice() else {
        return None;
    };
    let total = total.or(*estimate).filter(|t| *t > 0.0);
    let percent = match (done, total) {
        (Some(d), Some(t)) => Some((d / t * 100.0).clamp(0.0, 100.0)),
        _ => None,
    };
    Some((percent, eta.map(|e| e.max(0.0) as u64)))
}

/// What `-J` says that streamedge uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub title: String,
    pub duration: Option<f64>,
    /// Every URL yt-dlp would fetch from, redirects followed: the page and the media.
    pub urls: Vec<String>,
}

pub fn parse_info(json: &str) -> Result<Info> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("yt-dlp printed something other than JSON")?;
    if v.is_null() {
        bail!("yt-dlp found nothing to download");
    }
    if v["_type"] == "playlist" {
        bail!("the URL is a playlist; fetch its videos one by one");
    }
    if v["is_live"] == true {
        bail!("the URL is a live stream, which cannot be fetched into the library");
    }
    let title = v["title"]
        .as_str()
        .or(v["id"].as_str())
        .unwrap_or("untitled")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let mut urls: Vec<String> = Vec::new();
    let mut add = |u: &serde_json::Value| {
        if let Some(u) = u.as_str() {
            if !urls.iter().any(|x| x == u) {
                urls.push(u.to_string());
            }
        }
    };
    add(&v["webpage_url"]);
    add(&v["url"]);
    for list in ["formats", "requested_formats", "requested_downloads"] {
        for f in v[list].as_array().into_iter().flatten() {
            add(&f["url"]);
        }
    }
    Ok(Info {
        title,
        duration: v["duration"].as_f64(),
        urls,
    })
}

/// yt-dlp's last words, in the words of a person.
pub fn explain(stderr: &str) -> String {
    let error = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ERROR: "))
        .unwrap_or_else(|| {
            stderr
                .lines()
                .last()
                .unwrap_or("yt-dlp failed without a message")
        });
    let lower = error.to_lowercase();
    if lower.contains("no space left on device") {
        return "the disk is full".into();
    }
    if lower.contains("unsupported url") {
        return "unsupported URL: yt-dlp finds no video or audio there".into();
    }
    if let Some(i) = lower.find("http error ") {
        let rest = &error[i + "http error ".len()..];
        let status: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let reason = rest[status.len()..]
            .trim_start_matches(':')
            .split(" (")
            .next()
            .unwrap_or_default()
            .trim();
        return match reason {
            "" => format!("the server answered {status}"),
            r => format!("the server answered {status} ({r})"),
        };
    }
    if lower.contains("connection refused") {
        return "cannot connect to the server (connection refused)".into();
    }
    if lower.contains("name or service not known")
        || lower.contains("failed to resolve")
        || lower.contains("nodename nor servname")
    {
        return "the server's name does not resolve".into();
    }
    if lower.contains("timed out") {
        return "the server did not answer in time".into();
    }
    if lower.contains("requested format is not available") {
        return "no format of this media matches the preset".into();
    }
    let e: String = error.chars().take(300).collect();
    e.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_comes_last_after_double_dash() {
        let a = download_args("-x", Path::new("/w"), Kind::Video, Some(720));
        assert_eq!(a[a.len() - 2..], ["--", "-x"]);
        for opt in ["--ignore-config", "--no-playlist", "--newline"] {
            assert!(a.contains(&opt.to_string()), "{opt}");
        }
        let i = a.iter().position(|x| x == "-f").unwrap();
        assert_eq!(a[i + 1], "bv*[height<=?720]+ba/b[height<=?720]/bv*+ba/b");
        assert_eq!(probe_args("u")[COMMON.len()..], ["-J", "--", "u"]);
        assert_eq!(format(Kind::Audio, Some(720)), "ba/b");
    }

    #[test]
    fn progress() {
        assert_eq!(
            parse_progress("streamedge-progress 512 1024 NA 3"),
            Some((Some(50.0), Some(3)))
        );
        assert_eq!(
            parse_progress("streamedge-progress 512 NA 2048 NA"),
            Some((Some(25.0), None))
        );
        assert_eq!(
            parse_progress("streamedge-progress 512 NA NA NA"),
            Some((None, None))
        );
        assert_eq!(parse_progress("[download] Destination: x"), None);
    }

    #[test]
    fn info() {
        let i = parse_info(r#"{"id":"clip","title":"A\nclip","duration":6.0}"#).unwrap();
        assert_eq!(
            i,
            Info {
                title: "Aclip".into(),
                duration: Some(6.0),
                urls: vec![],
            }
        );
        // Where a redirect led: yt-dlp reports the final URLs, which are checked again.
        let i = parse_info(
            r#"{"title":"t","webpage_url":"http://10.0.0.5/a.mp4","url":"http://10.0.0.5/a.mp4",
                "formats":[{"url":"http://10.0.0.5/a.mp4"},{"url":"https://cdn.example/v"}]}"#,
        )
        .unwrap();
        assert_eq!(i.urls, ["http://10.0.0.5/a.mp4", "https://cdn.example/v"]);
        assert!(parse_info("null").is_err());
        assert!(parse_info(r#"{"_type":"playlist"}"#)
            .unwrap_err()
            .to_string()
            .contains("playlist"));
        assert!(parse_info(r#"{"is_live":true}"#).is_err());
    }

    #[test]
    fn errors_in_words() {
        let cases = [
            ("ERROR: [generic] missing: Unable to download webpage: HTTP Error 404: File not found (caused by <HTTPError 404: File not found>)", "the server answered 404 (File not found)"),
            ("ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused (caused by TransportError('[Errno 111] Connection refused'))", "cannot connect to the server (connection refused)"),
            ("WARNING: x\nERROR: Unsupported URL: http://example.org/", "unsupported URL: yt-dlp finds no video or audio there"),
            ("ERROR: unable to write data: [Errno 28] No space left on device", "the disk is full"),
            ("ERROR: something new", "something new"),
        ];
        for (stderr, want) in cases {
            assert_eq!(explain(stderr), want);
        }
    }
}
