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

#[test]
fn an_item_is_edited_and_gets_stills_at_chosen_times() {
    let s = Server::start(Options::default());
    let file = clip(s.dir.path(), "trip.mp4", "640x360", true, true);
    let (ok, meta, err) = import(&s, &file, &[]);
    assert!(ok, "{err}");
    let id = meta["id"].as_str().unwrap().to_string();
    let public_entry = || {
        let (status, list) = s.api("GET", "/api/library", None, false);
        assert_eq!(status, 200);
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id.as_str())
            .cloned()
    };

    // Title and description from the command line; the page's list shows both.
    let out = s.cli(&[
        "library",
        "edit",
        &id,
        "--title",
        " Our trip ",
        "--description",
        "Day one\nDay two\n",
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("is \"Our trip\", with a description of 2 lines"),
        "{said}"
    );
    let e = public_entry().unwrap();
    assert_eq!(
        (e["title"].as_str(), e["description"].as_str()),
        (Some("Our trip"), Some("Day one\nDay two"))
    );

    // And through the API: the owner's alone, checked before anything is written.
    let patch =
        |body: &str, auth: bool| s.api("PATCH", &format!("/api/library/{id}"), Some(body), auth);
    assert_eq!(patch(r#"{"title":"x"}"#, false).0, 401);
    for (body, says) in [
        (r#"{"title":"  "}"#, "the title is empty"),
        (r#"{"title":"a\u0007b"}"#, "control character"),
        (r#"{"colour":"red"}"#, "unknown field"),
        (r#"{}"#, "nothing to change"),
        ("not json", "must be JSON"),
    ] {
        let (status, v) = patch(body, true);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let long = format!(r#"{{"description":"{}"}}"#, "x".repeat(5001));
    assert_eq!(patch(&long, true).0, 400);
    assert_eq!(public_entry().unwrap()["title"], "Our trip");
    let (status, v) = patch(r#"{"title":"Trip","description":""}"#, true);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["title"], "Trip");
    assert!(v.get("description").is_none(), "{v}");
    let missing = s.api("PATCH", "/api/library/nope", Some(r#"{"title":"x"}"#), true);
    assert_eq!(missing.0, 404);

    // Stills at chosen times, served beside the item as JPEG; different times, different
    // pictures.
    let out = s.cli(&["library", "thumbnails", &id, "--at", "1s,4500ms"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("/vod/{id}/thumb-1000.jpg (1 s)")),
        "{said}"
    );
    let mut pictures = Vec::new();
    for file in ["thumb-1000.jpg", "thumb-4500.jpg"] {
        let r = http_get(&s.url(&format!("/vod/{id}/{file}"))).unwrap();
        assert_eq!(
            (r.status, r.header("content-type")),
            (200, Some("image/jpeg"))
        );
        assert_eq!(&r.body[..2], &[0xff, 0xd8]);
        pictures.push(r.body);
    }
    assert_ne!(pictures[0], pictures[1]);
    let stills = &public_entry().unwrap()["thumbnails"];
    assert_eq!(stills[0]["at"], 1.0);
    assert_eq!(stills[1]["url"], format!("/vod/{id}/thumb-4500.jpg"));
    for (at, says) in [
        ("10s", "past the end"),
        ("5x", "is not a time"),
        ("", "is not a time"),
    ] {
        let out = s.cli(&["library", "thumbnails", &id, "--at", at]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{at}: {err}");
    }

    // A poster at a chosen time; the API takes times too.
    let out = s.cli(&["library", "poster", &id, "--at", "4.5"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        public_entry().unwrap()["poster"],
        format!("/vod/{id}/thumb-4500.jpg")
    );
    let (status, v) = s.api(
        "POST",
        &format!("/api/library/{id}/poster"),
        Some(r#"{"at":[2]}"#),
        true,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["poster"], format!("/vod/{id}/thumb-2000.jpg"));
    assert_eq!(v["thumbnails"].as_array().unwrap().len(), 3);
    let (status, _) = s.api(
        "POST",
        &format!("/api/library/{id}/thumbnails"),
        Some(r#"{"at":"1s"}"#),
        false,
    );
    assert_eq!(status, 401);

    // Private: the stills are signed like the item, and refused without the token.
    assert!(s.cli(&["library", "private", &id]).status.success());
    assert!(public_entry().is_none());
    let (_, list) = s.api("GET", "/api/library", None, true);
    let e = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap()
        .clone();
    let signed = e["thumbnails"][0]["url"].as_str().unwrap();
    assert!(signed.starts_with("/s/"), "{signed}");
    assert_eq!(http_get(&s.url(signed)).unwrap().status, 200);
    let bare = http_get(&s.url(&format!("/vod/{id}/thumb-1000.jpg"))).unwrap();
    assert_eq!(bare.status, 404);
    // Nothing half-written is left beside the item.
    let leftovers: Vec<_> = std::fs::read_dir(s.data(&format!("vod/{id}")))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
