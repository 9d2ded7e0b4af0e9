//! Fetch jobs end to end: real yt-dlp downloading from a loopback web server, real ffmpeg
//! transcoding, the control API through nginx's `/api/`, the `fetch` and `jobs` commands,
//! and the library items played back through `/vod/`.

use std::time::Duration;

use serde_json::{json, Value};
use streamedge_tests::*;

const LONG: Duration = Duration::from_secs(120);

/// Fetching from this machine and its network refused, as `init` writes it.
fn as_installed() -> Options {
    Options {
        allow_private_addresses: false,
        ..Options::default()
    }
}

/// Keyframe times (s) of the video of a local HLS playlist.
fn keyframes(playlist: &std::path::Path) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
        ])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(playlist)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// ffprobe's duration of a file or playlist.
fn duration(path: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

fn no_leftovers(s: &Server, id: &str) {
    let scratch: Vec<String> = s
        .entries(".work")
        .into_iter()
        .filter(|e| e.contains(id))
        .collect();
    assert!(scratch.is_empty(), "scratch left behind: {scratch:?}");
    let procs = processes_mentioning(&format!("job-{id}"));
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
}

#[test]
fn a_video_url_becomes_an_adaptive_hls_item() {
    let media = MediaServer::start();
    let s = Server::start(Options::default());
    let url = media.url("/clip.mp4");
    let out = s.cli(&["fetch", &url, "--wait"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a terminal: plain lines for each state it saw, in order, then where to watch it.
    // (A loopback download can be over between two looks: "downloading" may not show.)
    let at = |state: &str| stdout.lines().position(|l| l.starts_with(state));
    assert!(
        at("probing").is_some() && at("probing") < at("transcoding"),
        "{stdout}"
    );
    if let Some(d) = at("downloading") {
        assert!(
            at("probing") < Some(d) && Some(d) < at("transcoding"),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("done: \"clip\" is in the library"),
        "{stdout}"
    );

    let (status, jobs) = s.api("GET", "/api/jobs", None, true);
    assert_eq!(status, 200);
    let job = &jobs[0];
    assert_eq!(job["state"], "done");
    assert_eq!(job["url"], url.as_str());
    let id = job["item"].as_str().unwrap();
    let item = s.data(&format!("vod/{id}"));

    // Renditions: never above the 720p source, one ffmpeg process for all.
    let master = std::fs::read_to_string(item.join("master.m3u8")).unwrap();
    let variants: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF"))
        .collect();
    assert_eq!(variants.len(), 3, "{master}");
    for (v, res) in variants.iter().zip(["1280x720", "854x480", "640x360"]) {
        assert!(
            v.contains("BANDWIDTH=") && v.contains(&format!("RESOLUTION={res}")),
            "{v}"
        );
        assert!(
            v.contains("CODECS=\"avc1.") && v.contains("mp4a.40.2"),
            "{v}"
        );
    }
    let source = duration(&media_dir().join("clip.mp4"));
    let mut first_keys: Option<Vec<f64>> = None;
    for r in ["720p", "480p", "360p"] {
        let playlist = item.join(r).join("index.m3u8");
        let text = std::fs::read_to_string(&playlist).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"));
        assert!(
            text.contains("#EXT-X-MAP:URI=\"init_") && text.contains(".m4s"),
            "fMP4: {text}"
        );
        let d = duration(&playlist);
        assert!((d - source).abs() < 0.5, "{r}: {d} s against {source} s");
        // Keyframes every 2 s, at the same instants in every rendition.
        let keys = keyframes(&playlist);
        assert!(keys.len() >= 4, "{r}: {keys:?}");
        for w in keys.windows(2) {
            assert!((w[1] - w[0] - 2.0).abs() < 0.05, "{r}: {keys:?}");
        }
        match &first_keys {
            None => first_keys = Some(keys),
            Some(k) => assert_eq!(k, &keys, "{r} cuts elsewhere"),
        }
    }

    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(item.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["id"], id);
    assert_eq!(meta["title"], "clip");
    assert_eq!(meta["source"], url.as_str());
    assert_eq!(meta["kind"], "video");
    assert_eq!(meta["renditions"], json!(["720p", "480p", "360p"]));
    assert_eq!(meta["codecs"], json!(["h264", "aac"]));
    assert_eq!(meta["source_resolution"], "1280x720");
    let size = std::fs::metadata(media_dir().join("clip.mp4"))
        .unwrap()
        .len();
    assert_eq!(meta["source_size"].as_u64(), Some(size));
    assert!((meta["duration"].as_f64().unwrap() - 8.0).abs() < 0.5);
    assert!(meta["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        ffprobe_streams(&s.url(&format!("/vod/{id}/poster.jpg"))),
        ["video"]
    );

    // Listed, and playable through /vod/ by anyone.
    let (status, lib) = s.api("GET", "/api/library", None, false);
    assert_eq!(status, 200);
    assert_eq!(lib[0]["id"], id);
    assert_eq!(lib[0]["playlist"], format!("/vod/{id}/master.m3u8"));
    let (ok, log) = ffmpeg_decodes(&s.url(&format!("/vod/{id}/master.m3u8")), 3);
    assert!(ok, "{log}");
    no_leftovers(&s, id);
    // Records are the sidecar's own.
    let rec = s.data(&format!("jobs/{id}.json"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(rec).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn audio_jobs_keep_the_sound_and_presets_choose_height_and_segments() {
    let media = MediaServer::start();
    let s = Server::start(Options::default());
    let audio =
        s.submit(&json!({"url": media.url("/song.m4a"), "kind": "audio", "title": "A song"}));
    let small = s.submit(&json!({"url": media.url("/clip.mp4"), "preset": "360p,ts"}));
    // One job at a time (fetch.concurrency = 1): the second waits its turn.
    let (_, second) = s.api("GET", &format!("/api/jobs/{small}"), None, true);
    assert_eq!(second["state"], "queued", "{second}");
    for id in [&audio, &small] {
        s.wait_job(id, "the job to finish", LONG, |j| j["state"] == "done");
    }

    let item = s.data(&format!("vod/{audio}"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(item.join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        (meta["kind"].as_str(), meta["title"].as_str()),
        (Some("audio"), Some("A song"))
    );
    assert_eq!(meta["download"], "audio.mp3");
    let streams = ffprobe_streams(&s.url(&format!("/vod/{audio}/master.m3u8")));
    assert!(
        !streams.is_empty() && streams.iter().all(|t| t == "audio"),
        "{streams:?}"
    );
    let mp3 = http_get(&s.url(&format!("/vod/{audio}/audio.mp3"))).unwrap();
    assert_eq!(
        (mp3.status, mp3.header("content-type")),
        (200, Some("audio/mpeg"))
    );
    assert!((duration(&item.join("audio.mp3")) - 8.0).abs() < 0.5);

    let item = s.data(&format!("vod/{small}"));
    assert_eq!(
        s.entries(&format!("vod/{small}")),
        ["360p", "master.m3u8", "meta.json", "poster.jpg"]
    );
    let playlist = std::fs::read_to_string(item.join("360p/index.m3u8")).unwrap();
    assert!(
        playlist.contains("seg_000.ts") && !playlist.contains("EXT-X-MAP"),
        "{playlist}"
    );
    let (ok, log) = ffmpeg_decodes(&s.url(&format!("/vod/{small}/master.m3u8")), 3);
    assert!(ok, "{log}");
}

#[test]
fn bad_requests_are_refused_before_anything_runs() {
    let media = MediaServer::start();
    // As installed: no fetching from this machine or its network.
    let s = Server::start(as_installed());
    let refused = |body: Value, want: u16, words: &str| {
        let (status, v) = s.api("POST", "/api/jobs", Some(&body.to_string()), true);
        assert_eq!(status, want, "{body}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(words), "{body}: {msg}");
    };
    refused(json!({"url": "-o x"}), 400, "starts with '-'");
    refused(
        json!({"url": "file:///etc/passwd"}),
        400,
        "only http and https",
    );
    refused(
        json!({"url": "ftp://example.org/a.mp4"}),
        400,
        "only http and https",
    );
    refused(
        json!({"url": media.url("/clip.mp4")}),
        400,
        "private address (127.0.0.1)",
    );
    refused(
        json!({"url": format!("http://localhost:{}/clip.mp4", media.port)}),
        400,
        "private address",
    );
    refused(
        json!({"url": "https://example.org/a", "kind": "podcast"}),
        400,
        "unknown variant",
    );
    refused(
        json!({"url": "https://example.org/a", "preset": "huge"}),
        400,
        "unknown preset",
    );
    refused(json!({"nope": 1}), 400, "must be JSON like");
    let (status, v) = s.api("POST", "/api/jobs", Some("{\"url\": "), true);
    assert_eq!(status, 400, "{v}");
    let big = json!({"url": format!("https://example.org/{}", "a".repeat(20_000))});
    let (status, _) = s.api("POST", "/api/jobs", Some(&big.to_string()), true);
    assert_eq!(status, 413);
    // The command line says the same and exits non-zero.
    let out = s.cli(&["fetch", "--", "-o x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("starts with '-'"));

    // Writes and job details need the token; the public library list does not.
    let (status, v) = s.api(
        "POST",
        "/api/jobs",
        Some(&json!({"url": "https://example.org/a"}).to_string()),
        false,
    );
    assert_eq!(status, 401, "{v}");
    assert_eq!(s.api("GET", "/api/jobs", None, false).0, 401);
    assert_eq!(s.api("DELETE", "/api/library/x", None, false).0, 401);
    assert_eq!(s.api("GET", "/api/library", None, false), (200, json!([])));
    assert_eq!(s.api("GET", "/api/jobs/nope", None, true).0, 404);
    assert_eq!(s.api("DELETE", "/api/jobs/nope", None, true).0, 404);
    assert_eq!(s.api("DELETE", "/api/library/nope", None, true).0, 404);
    assert_eq!(s.api("DELETE", "/api/library/bad.id", None, true).0, 400);
    assert_eq!(s.api("PUT", "/api/jobs", None, true).0, 405);

    // Nothing ran: the web server saw nothing, no job was recorded, no scratch folder.
    assert_eq!(media.request_count(), 0);
    assert!(s.entries("jobs").is_empty(), "{:?}", s.entries("jobs"));
    assert!(s.entries(".work").is_empty());
    // The token never reaches a log.
    assert!(!s.all_logs().contains(&s.token()));
}

#[test]
fn failures_say_why_and_the_webhook_hears_of_them() {
    let media = MediaServer::start();
    let hook = HookReceiver::start();
    let s = Server::start(Options::default());
    let missing = s.submit(&json!({"url": media.url("/missing.mp4"), "webhook": hook.url}));
    let corrupt = s.submit(&json!({"url": media.url("/corrupt.mp4")}));
    let nobody = s.submit(&json!({"url": format!("http://127.0.0.1:{}/x.mp4", free_port())}));
    let wait_failed =
        |id: &str| s.wait_job(id, "the job to fail", LONG, |j| j["state"] == "failed");
    let j = wait_failed(&missing);
    assert_eq!(j["error"], "the server answered 404 (Not Found)", "{j}");
    let j = wait_failed(&corrupt);
    assert_eq!(
        j["error"],
        "the file is not a media file ffmpeg can read (corrupt or unsupported)"
    );
    let j = wait_failed(&nobody);
    assert_eq!(
        j["error"],
        "cannot connect to the server (connection refused)"
    );
    assert!(s.entries("vod").is_empty(), "{:?}", s.entries("vod"));
    for id in [&missing, &corrupt, &nobody] {
        no_leftovers(&s, id);
    }
    // The command line shows it, with the reason.
    let out = s.cli(&["jobs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains(&corrupt)
            && l.contains("failed")
            && l.contains("corrupt or unsupported")),
        "{text}"
    );
    // The webhook got the final JSON, without the webhook URL itself.
    let (method, path, body) = wait_for("the webhook", Duration::from_secs(10), || {
        hook.posted().first().cloned()
    });
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/hook"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["state"].as_str()),
        (Some(missing.as_str()), Some("failed"))
    );
    assert!(!body.contains("/hook"), "{body}");
    // Only the job that named it.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.posted().len(), 1);
    assert!(v["error"].as_str().unwrap().contains("404"));
}

#[test]
fn cancel_during_download_and_transcode_leaves_nothing() {
    let media = MediaServer::start();
    let s = Server::start(Options::default());
    let slow = s.submit(&json!({"url": media.url("/slow/long.mp4")}));
    s.wait_job(&slow, "the download to start", LONG, |j| {
        j["state"] == "downloading" && j["percent"].as_f64().unwrap_or(0.0) > 0.0
    });
    // A second job for the same URL while the first runs is a conflict.
    let (status, v) = s.api(
        "POST",
        "/api/jobs",
        Some(&json!({"url": media.url("/slow/long.mp4")}).to_string()),
        true,
    );
    assert_eq!(status, 409, "{v}");
    let out = s.cli(&["jobs", "cancel", &slow]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("job {slow} cancelled")
    );
    no_leftovers(&s, &slow);

    let long = s.submit(&json!({"url": media.url("/long.mp4")}));
    s.wait_job(&long, "the transcode to start", LONG, |j| {
        j["state"] == "transcoding" && j["percent"].as_f64().unwrap_or(0.0) > 0.0
    });
    assert!(
        !processes_mentioning(&format!("job-{long}")).is_empty(),
        "ffmpeg runs"
    );
    let (status, j) = s.api("DELETE", &format!("/api/jobs/{long}"), None, true);
    assert_eq!(
        (status, j["state"].as_str()),
        (200, Some("cancelled")),
        "{j}"
    );
    no_leftovers(&s, &long);
    // Still nothing a moment later: no process went on writing.
    std::thread::sleep(Duration::from_millis(500));
    no_leftovers(&s, &long);
    assert!(s.entries("vod").is_empty(), "{:?}", s.entries("vod"));
    // A job that ended cannot be cancelled again.
    assert_eq!(
        s.api("DELETE", &format!("/api/jobs/{long}"), None, true).0,
        409
    );
}

#[test]
fn a_job_interrupted_by_a_crash_finishes_after_the_restart() {
    let media = MediaServer::start();
    let mut s = Server::start(Options::default());
    let id = s.submit(&json!({"url": media.url("/long.mp4")}));
    s.wait_job(&id, "the transcode to start", LONG, |j| {
        j["state"] == "transcoding" && j["percent"].as_f64().unwrap_or(0.0) > 0.0
    });
    let nginx = s.nginx_pid().unwrap();
    s.kill_run();
    // Its tools die with it (and nginx stops), rather than writing on.
    wait_for("the job's ffmpeg to die", Duration::from_secs(10), || {
        processes_mentioning(&format!("job-{id}"))
            .is_empty()
            .then_some(())
    });
    wait_for("nginx to stop", Duration::from_secs(10), || {
        (!std::path::Path::new(&format!("/proc/{nginx}")).exists()).then_some(())
    });
    assert!(
        s.entries("vod").is_empty(),
        "half an item: {:?}",
        s.entries("vod")
    );
    let downloads = media.request_count();

    s.run();
    let j = s.wait_job(&id, "the job to finish", LONG, |j| j["state"] == "done");
    assert_eq!(j["item"], id.as_str());
    // Taken up at the transcode: the completed download was kept.
    assert_eq!(media.request_count(), downloads);
    assert_eq!(s.entries("vod"), std::slice::from_ref(&id));
    assert!(s.data(&format!("vod/{id}/meta.json")).exists());
    no_leftovers(&s, &id);
    assert!(s
        .read("run.log")
        .contains(&format!("job {id}: taking it up again after a restart")));
}

/// A data directory on a small tmpfs: a nearly full disk refuses new jobs (507), a disk that
/// fills during a job fails it with the reason and removes its scratch files, and a job is
/// stopped before free space falls below `fetch.min_free_mb`.
#[test]
fn a_full_disk_fails_the_job_cleanly() {
    let media = MediaServer::start();
    let mut s = Server::init(Options::default());
    let disk = streamedge_tests::SmallDisk::mount(&s.path("small"), "6m");
    let data = disk.path().join("data");
    let empty = |rel: &str| std::fs::read_dir(data.join(rel)).unwrap().next().is_none();
    s.edit_config(|c| {
        c.insert("data_dir".into(), data.display().to_string().into());
        c["fetch"]
            .as_table_mut()
            .unwrap()
            .insert("min_free_mb".into(), 100.into());
    });
    s.run();
    let (status, v) = s.api(
        "POST",
        "/api/jobs",
        Some(&json!({"url": media.url("/clip.mp4")}).to_string()),
        true,
    );
    assert_eq!(status, 507, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("fetching needs at least 100 MiB"),
        "{v}"
    );
    s.stop();

    s.edit_config(|c| {
        c["fetch"]
            .as_table_mut()
            .unwrap()
            .insert("min_free_mb".into(), 0.into());
    });
    s.run();
    let id = s.submit(&json!({"url": media.url("/clip.mp4")}));
    let j = s.wait_job(&id, "the job to fail", LONG, |j| j["state"] == "failed");
    assert_eq!(j["error"], "the disk is full", "{j}");
    assert!(empty("vod"));
    assert!(empty(".work"), "scratch left behind");
    // The job's record was kept: the disk was not too full for that.
    assert!(data.join(format!("jobs/{id}.json")).exists());
    s.stop();

    // A floor a little below what is free: a job that would cross it is stopped while it
    // downloads (slowly, so the floor is met before the disk is full), and everything else
    // stays as it was.
    let mib = |path: &std::path::Path| {
        let st = nix::sys::statvfs::statvfs(path).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64 / (1024 * 1024)
    };
    let floor = mib(&data) - 2;
    s.edit_config(|c| {
        c["fetch"]
            .as_table_mut()
            .unwrap()
            .insert("min_free_mb".into(), (floor as i64).into());
    });
    let keep = data.join("notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let before = std::fs::read(data.join(format!("jobs/{id}.json"))).unwrap();
    s.run();
    let big = s.submit(&json!({"url": media.url("/slow/long.mp4")}));
    let j = s.wait_job(&big, "the job to fail", LONG, |j| j["state"] == "failed");
    assert_eq!(
        j["error"],
        format!(
            "stopped: less than {floor} MiB free in {} (fetch.min_free_mb)",
            data.display()
        ),
        "{j}"
    );
    no_leftovers(&s, &big);
    assert!(empty(".work"), "scratch left behind");
    assert!(mib(&data) >= floor, "{} MiB free", mib(&data));
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
    assert_eq!(
        std::fs::read(data.join(format!("jobs/{id}.json"))).unwrap(),
        before
    );
    s.stop();
}

/// A public URL that redirects into this machine's network is refused once yt-dlp has
/// followed the redirect, before anything is downloaded. "Public" here is a
/// `PublicStandIn`: an address outside every private range, in a network namespace of the
/// test's own, where the whole test runs.
#[test]
fn a_redirect_into_the_private_network_is_refused() {
    PublicStandIn::new().run(a_redirect_into_the_private_network_is_refused_inside);
}

fn a_redirect_into_the_private_network_is_refused_inside() {
    let media = MediaServer::start();
    let public = PublicStandIn::IP;
    // The "public" site answers every request with a redirect to the LAN (here loopback).
    let site = tiny_http::Server::http((public, 0)).unwrap();
    let site_url = format!("http://{}/watch", site.server_addr().to_ip().unwrap());
    let target = media.url("/song.m4a");
    std::thread::spawn(move || {
        for req in site.incoming_requests() {
            let location = format!("Location: {target}")
                .parse::<tiny_http::Header>()
                .unwrap();
            let _ = req.respond(tiny_http::Response::empty(302).with_header(location));
        }
    });

    let s = Server::start(as_installed());
    let id = s.submit(&json!({"url": site_url, "kind": "audio"}));
    let j = s.wait_job(&id, "the job to fail", LONG, |j| j["state"] == "failed");
    let error = j["error"].as_str().unwrap();
    assert!(
        error.starts_with("the URL leads elsewhere: \"127.0.0.1\" is a private address"),
        "{j}"
    );
    // A redirect is only known once followed: yt-dlp's probe did reach the LAN server (it
    // reads the start of the answer to see what it is), but the job stopped there, so
    // nothing from it was downloaded or published.
    assert!(media.request_count() >= 1);
    assert!(s.entries("vod").is_empty());
    no_leftovers(&s, &id);
}

/// A job's webhook is a URL the sidecar calls: one on this machine or its network is
/// refused (400) like a fetch URL, in every spelling, and nothing runs, so it is never
/// called. The job's own URL is a `PublicStandIn` (where nothing listens): it passes the
/// check, so only the webhook can be the reason. The whole test runs in its namespace.
#[test]
fn a_webhook_into_the_private_network_is_refused() {
    PublicStandIn::new().run(a_webhook_into_the_private_network_is_refused_inside);
}

fn a_webhook_into_the_private_network_is_refused_inside() {
    let hook = HookReceiver::start();
    let url = format!("http://{}:{}/a.mp4", PublicStandIn::IP, free_port());
    let s = Server::start(as_installed());
    for webhook in [
        hook.url.clone(),
        format!("http://[::ffff:127.0.0.1]:{}/hook", hook.port),
        format!("http://localhost:{}/hook", hook.port),
    ] {
        let body = json!({"url": url, "webhook": webhook});
        let (status, v) = s.api("POST", "/api/jobs", Some(&body.to_string()), true);
        assert_eq!(status, 400, "{webhook}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with("webhook: \"") && msg.contains("is a private address"),
            "{webhook}: {msg}"
        );
        assert!(msg.contains("(fetch.allow_private_addresses)"), "{msg}");
    }
    assert!(s.entries("jobs").is_empty(), "{:?}", s.entries("jobs"));
    // A job for that URL runs and ends (nothing listens there): one refused job taken anyway
    // would have ended before it, and called its webhook.
    let id = s.submit(&json!({"url": url}));
    s.wait_job(&id, "the job to fail", LONG, |j| j["state"] == "failed");
    assert!(hook.posted().is_empty(), "{:?}", hook.posted());
}
