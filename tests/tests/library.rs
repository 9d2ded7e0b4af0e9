//! Library import: real ffmpeg transcodes a file into an adaptive HLS item, played back
//! through the module's /vod/ routes.

use std::process::Command;

use streamedge_tests::{ffmpeg_decodes, http_get, Options, Server};

fn clip(
    dir: &std::path::Path,
    name: &str,
    size: &str,
    audio: bool,
    video: bool,
) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-v", "error", "-y"]);
    if video {
        c.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=duration=6:size={size}:rate=30"),
        ]);
    }
    if audio {
        c.args(["-f", "lavfi", "-i", "sine=duration=6:frequency=440"]);
    }
    if video {
        c.args(["-c:v", "libx264", "-preset", "ultrafast"]);
    }
    assert!(c.arg(&path).status().unwrap().success());
    path
}

fn import(s: &Server, file: &std::path::Path, extra: &[&str]) -> (bool, serde_json::Value, String) {
    let mut args = vec!["library", "import", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = s.cli(&args);
    let meta = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.success(),
        meta,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The non-empty lines ffprobe prints for `args` on `url` (HLS shows a stream once per
/// program, with blank lines between).
fn ffprobe(url: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Key frame times of the first video stream.
fn key_frames(url: &str) -> Vec<f64> {
    let args = [
        "-select_streams",
        "v:0",
        "-skip_frame",
        "nokey",
        "-show_entries",
        "frame=pts_time",
    ];
    ffprobe(url, &args)
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn height(url: &str) -> u32 {
    ffprobe(
        url,
        &["-select_streams", "v:0", "-show_entries", "stream=height"],
    )[0]
    .parse()
    .unwrap()
}

#[test]
fn a_video_becomes_an_adaptive_ladder_playable_through_vod() {
    let s = Server::start(Options::default());
    let file = clip(s.dir.path(), "holiday.mp4", "1280x720", true, true);
    let (ok, meta, err) = import(&s, &file, &["--title", "Holiday"]);
    assert!(ok, "{err}");
    let id = meta["id"].as_str().unwrap().to_string();
    assert_eq!(meta["title"], "Holiday");
    assert_eq!(meta["kind"], "video");
    assert_eq!(
        meta["renditions"],
        serde_json::json!(["720p", "480p", "360p"])
    );
    assert!((meta["duration"].as_f64().unwrap() - 6.0).abs() < 0.2);

    let master = http_get(&s.url(&format!("/vod/{id}/master.m3u8"))).unwrap();
    assert_eq!(master.status, 200);
    let text = master.text();
    let mut all_keys: Option<Vec<f64>> = None;
    for (res, dir) in [
        ("1280x720", "720p"),
        ("854x480", "480p"),
        ("640x360", "360p"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("RESOLUTION={res}")))
            .unwrap_or_else(|| panic!("{res} in {text}"));
        assert!(
            line.contains("BANDWIDTH=")
                && line.contains("CODECS=\"avc1.")
                && line.contains("mp4a.40.2"),
            "{line}"
        );
        let url = s.url(&format!("/vod/{id}/{dir}/index.m3u8"));
        let media = http_get(&url).unwrap().text();
        assert!(
            media.contains("#EXT-X-PLAYLIST-TYPE:VOD") && media.contains("#EXT-X-ENDLIST"),
            "{media}"
        );
        assert!(
            media.contains("#EXT-X-MAP:URI="),
            "fMP4 segments have an init segment"
        );
        assert_eq!(
            height(&url),
            res.split('x').nth(1).unwrap().parse::<u32>().unwrap()
        );
        // Keyframes every 2 s, at the same instants in every rendition: players can switch
        // at any segment.
        let keys = key_frames(&url);
        assert_eq!(keys.len(), 3, "{dir}: {keys:?}");
        assert!(
            keys.windows(2).all(|w| (w[1] - w[0] - 2.0).abs() < 0.05),
            "{dir}: {keys:?}"
        );
        let first = all_keys.get_or_insert_with(|| keys.clone());
        assert!(
            first.iter().zip(&keys).all(|(a, b)| (a - b).abs() < 0.01),
            "{dir}: {keys:?} vs {first:?}"
        );
    }
    let poster = http_get(&s.url(&format!("/vod/{id}/poster.jpg"))).unwrap();
    assert_eq!(
        (poster.status, poster.header("content-type")),
        (200, Some("image/jpeg"))
    );
    assert_eq!(&poster.body[..2], &[0xff, 0xd8]);
    let (ok, err) = ffmpeg_decodes(&s.url(&format!("/vod/{id}/master.m3u8")), 4);
    assert!(ok, "{err}");
    // Nothing is left in the scratch space, and the list shows the item.
    assert_eq!(std::fs::read_dir(s.data(".work")).unwrap().count(), 0);
    let list = s.cli(&["library", "list", "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(items[0]["id"], id.as_str());
    // Removing it takes it off the air at once.
    assert!(s.cli(&["library", "remove", &id]).status.success());
    assert_eq!(
        http_get(&s.url(&format!("/vod/{id}/master.m3u8")))
            .unwrap()
            .status,
        404
    );
    assert!(!s.data(&format!("vod/{id}")).exists());
}

#[test]
fn audio_small_video_and_broken_files() {
    let s = Server::start(Options::default());
    // Audio: AAC HLS plus an MP3 for download.
    let song = clip(s.dir.path(), "song.m4a", "", true, false);
    let (ok, meta, err) = import(&s, &song, &[]);
    assert!(ok, "{err}");
    assert_eq!(
        (meta["kind"].as_str(), meta["download"].as_str()),
        (Some("audio"), Some("audio.mp3"))
    );
    let id = meta["id"].as_str().unwrap();
    let mp3 = http_get(&s.url(&format!("/vod/{id}/audio.mp3"))).unwrap();
    assert_eq!(
        (mp3.status, mp3.header("content-type")),
        (200, Some("audio/mpeg"))
    );
    let kinds = streamedge_tests::ffprobe_streams(&s.url(&format!("/vod/{id}/master.m3u8")));
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| k == "audio"),
        "{kinds:?}"
    );

    // A video smaller than the ladder: one rendition at its own height, never upscaled.
    // Imported private: it is never public, not even for a moment.
    let small = clip(s.dir.path(), "small.mp4", "320x180", true, true);
    let (ok, meta, err) = import(&s, &small, &["--private"]);
    assert!(ok, "{err}");
    assert_eq!(meta["renditions"], serde_json::json!(["180p"]));
    assert_eq!(meta["private"], true);
    let small_id = meta["id"].as_str().unwrap();
    let r = http_get(&s.url(&format!("/vod/{small_id}/master.m3u8"))).unwrap();
    assert_eq!(r.status, 404);

    // A corrupt file fails with a reason and leaves nothing behind.
    let broken = s.path("broken.mp4");
    std::fs::write(&broken, b"this is not a video").unwrap();
    let before = std::fs::read_dir(s.data("vod")).unwrap().count();
    let (ok, _, err) = import(&s, &broken, &[]);
    assert!(!ok);
    assert!(err.contains("not a media file ffmpeg can read"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_dir(s.data("vod")).unwrap().count(), before);
    assert_eq!(std::fs::read_dir(s.data(".work")).unwrap().count(), 0);
}
