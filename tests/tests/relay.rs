//! Relays: a watched channel (a loopback page yt-dlp reads, whose live HLS is made by
//! ffmpeg) relayed into a local stream while it is live, with its title, recorded into the
//! library; an RTMP source pulled at once; bad input.

use std::time::{Duration, Instant};

use serde_json::Value;
use streamedge_tests::{
    ffprobe_streams, free_port, http_get, processes_mentioning, wait_for, LiveChannel, Options,
    Publisher, RtmpSink, Server, CHANNEL_TITLE,
};

/// The relay of `stream` as `GET /api/relays` shows it.
fn relay(s: &Server, stream: &str) -> Option<Value> {
    let (status, v) = s.api("GET", "/api/relays", None, true);
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["stream"] == stream)
        .cloned()
}

/// Waits until the relay's status satisfies `f`, and returns it.
fn wait_status(s: &Server, stream: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, Duration::from_secs(90), || {
        let r = relay(s, stream)?;
        f(&r["status"]).then_some(r)
    })
}

/// The public streams list's entry for `name`.
fn listed(s: &Server, name: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(&http_get(&s.url("/api/streams")).ok()?.text()).ok()?;
    v.as_array()?.iter().find(|x| x["name"] == name).cloned()
}

/// What ffprobe finds at `url`: "codec,type,width,height" per stream.
fn shape(url: &str) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,width,height",
        ])
        .args(["-of", "csv=p=0", url])
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The relay's stream key, from the restreams file (which only its owner may read).
fn relay_secret(s: &Server, stream: &str) -> String {
    let path = s.data("restreams.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the restreams file is the sidecar's alone"
    );
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["relay"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stream"].as_str() == Some(stream))
        .and_then(|r| r["key"].as_str())
        .expect("the relay's key is kept")
        .to_string()
}

/// A channel watched every 5 s: nothing while it is offline; relayed, with the page's title,
/// while it is live (the stream plays, the title is in the public list); when it ends, the
/// stream ends, the relay watches again and the recording becomes a library item named
/// after the broadcast; meanwhile it is restreamed like any stream. The page is asked politely, the relay's key shows nowhere.
#[test]
fn a_watched_channel_is_relayed_while_it_is_live_with_its_title() {
    let mut ch = LiveChannel::start();
    let mut s = Server::init(Options::default());
    s.edit_config(|c| {
        c["live"]
            .as_table_mut()
            .expect("init writes [live]")
            .insert("record_grace".into(), "2s".into());
    });
    s.run();
    let began = Instant::now();
    let out = s.cli(&[
        "relay",
        "add",
        "dj",
        "--from",
        &ch.url(),
        "--watch",
        "5s",
        "--record",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "relay add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["stream"], "dj");
    assert_eq!(added["watch_seconds"], 5);
    let secret = relay_secret(&s, "dj");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
    // Sent on like any stream.
    let sink = RtmpSink::start();
    let out = s.cli(&["restream", "add", "dj", &sink.url("dj-out-key")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Offline: checked, not live, nothing published.
    let r = wait_status(&s, "dj", "the first check", |st| {
        st["last_check"]
            .as_str()
            .is_some_and(|c| c.starts_with("not live"))
    });
    assert_eq!(r["status"]["state"], "watching", "{r}");
    assert!(r["status"]["last_check_at"].is_string(), "{r}");
    assert!(r["status"]["next_check_at"].is_string(), "{r}");
    assert!(!s.is_live("dj"));
    // The relay made the name's key: the name is known, offline.
    assert_eq!(listed(&s, "dj").unwrap()["live"], false);

    // Live: relayed within a check or two, with the page's title.
    ch.go_live();
    wait_for("dj to play", Duration::from_secs(60), || {
        s.is_live("dj").then_some(())
    });
    let entry = wait_for(
        "the title in the streams list",
        Duration::from_secs(30),
        || listed(&s, "dj").filter(|e| e["title"] == CHANNEL_TITLE),
    );
    assert_eq!(entry["live"], true, "{entry}");
    let r = wait_status(&s, "dj", "the relay live with a bitrate", |st| {
        st["state"] == "live" && st["bitrate_kbps"].as_f64().is_some_and(|b| b > 0.0)
    });
    assert_eq!(r["status"]["title"], CHANNEL_TITLE, "{r}");
    assert!(r["status"]["live_since"].is_string(), "{r}");
    let streams = shape(&s.url("/live/dj/index.m3u8"));
    assert!(
        streams.iter().any(|l| l == "h264,video,320,240"),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|l| l.starts_with("aac,audio")),
        "{streams:?}"
    );
    wait_for("the restream of the relay", Duration::from_secs(30), || {
        (sink.bytes("dj-out-key") > 100_000).then_some(())
    });
    // The key is on no command line (every local user reads them) and in no log.
    assert!(
        processes_mentioning(&secret).is_empty(),
        "{:?}",
        processes_mentioning(&secret)
    );
    assert!(
        !processes_mentioning("streamedge push --from").is_empty(),
        "the relay publishes by a push of its own"
    );

    // The broadcast ends: so does the stream; the relay watches again.
    ch.end();
    s.wait_live("dj", false);
    let r = wait_status(&s, "dj", "the relay watching again", |st| {
        st["state"] == "watching"
    });
    assert!(r["status"]["title"].is_null(), "{r}");
    assert!(listed(&s, "dj").unwrap()["title"].is_null());
    // Recorded under the broadcast's title.
    let item = wait_for(
        "the recording in the library",
        Duration::from_secs(90),
        || {
            let (_, v) = s.api("GET", "/api/library", None, true);
            v.as_array()?
                .iter()
                .find(|i| {
                    i["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&format!("{CHANNEL_TITLE} (dj, live ")))
                })
                .cloned()
        },
    );
    assert!(item["duration"].as_f64().unwrap_or(0.0) > 1.0, "{item}");

    // Politely: one check each 5 s (give or take a tenth), never more.
    let checks = ch.page_requests();
    let most = (began.elapsed().as_secs_f64() / 4.5).ceil() as usize + 2;
    assert!(
        checks >= 2 && checks <= most,
        "{checks} checks, at most {most}"
    );
    let logs = s.all_logs();
    assert!(!logs.contains(&secret), "the relay's key is in a log");

    // Removed: the relay and the name's key are gone.
    let out = s.cli(&["relay", "remove", "dj"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(relay(&s, "dj").is_none());
    let keys = String::from_utf8_lossy(&s.cli(&["keys", "list"]).stdout).into_owned();
    assert!(!keys.contains("dj"), "{keys}");
    assert!(!s.read("data/restreams.toml").contains(&secret));
}

/// An RTMP source (nginx-rtmp, with a publisher on it) relayed at once, without watching:
/// the local stream plays it; when its publisher stops, the relay ends and is idle.
#[test]
fn an_rtmp_source_is_pulled_at_once_and_idles_when_it_ends() {
    let sink = RtmpSink::start();
    let mut s = Server::start(Options::default());
    let source = sink.url("show");
    let publisher = Publisher::start(&source, 15);
    let out = s.cli(&["relay", "add", "tv", "--from", &source]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("relay \"tv\" from"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_for("tv to play", Duration::from_secs(60), || {
        s.is_live("tv").then_some(())
    });
    let streams = ffprobe_streams(&s.url("/live/tv/index.m3u8"));
    assert!(streams.iter().any(|l| l == "video"), "{streams:?}");
    let r = relay(&s, "tv").unwrap();
    assert_eq!(r["status"]["state"], "live", "{r}");
    assert!(r["watch_seconds"].is_null());
    let (ok, log) = publisher.finish(Duration::from_secs(60));
    assert!(ok, "{log}");
    let r = wait_status(&s, "tv", "the relay idle", |st| st["state"] == "idle");
    assert!(r["status"]["next_check_at"].is_null(), "{r}");
    assert!(
        r["status"]["last_check"]
            .as_str()
            .is_some_and(|c| c.starts_with("not live: no stream there")),
        "{r}"
    );
    s.wait_live("tv", false);
    s.stop();
}

/// A hostile live page whose playlist names a file on this machine: ffmpeg may read only
/// web addresses for it, so the file never goes out as the stream; the relay says why.
#[test]
fn a_playlist_naming_local_files_relays_nothing() {
    let mut ch = LiveChannel::start();
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("private.ts");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25",
            "-t",
            "2",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts"])
        .arg(&secret)
        .status()
        .unwrap();
    assert!(made.success());
    let segment = format!("#EXTINF:2.0,\nfile://{}\n", secret.display());
    ch.go_live_with(&format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n{}",
        segment.repeat(3)
    ));
    let mut s = Server::start(Options::default());
    let out = s.cli(&["relay", "add", "leak", "--from", &ch.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pull fails (and is tried again, and fails again): each time, the reason.
    let r = wait_status(&s, "leak", "the refused pull", |st| {
        st["restarts"].as_u64().is_some_and(|n| n >= 1)
            && st["last_check"]
                .as_str()
                .is_some_and(|c| c.starts_with("failed: "))
    });
    assert!(
        r["status"]["last_check"]
            .as_str()
            .is_some_and(|c| c.starts_with("failed: ") && c.contains("ffmpeg")),
        "{r}"
    );
    assert_eq!(r["status"]["live_since"], Value::Null, "{r}");
    assert!(!s.is_live("leak"));
    assert!(
        !s.data("live/leak/index.m3u8").exists(),
        "nothing was published"
    );
    s.stop();
}

/// Bad relays are refused with the reason; an unreachable source is an error tried again.
#[test]
fn bad_relays_are_refused_and_an_unreachable_source_is_an_error() {
    let mut s = Server::start(Options::default());
    let refused = |args: &[&str], why: &str| {
        let out = s.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    };
    refused(
        &["relay", "add", "x", "--from", "ftp://127.0.0.1/x"],
        "a relay reads http://, https://, rtmp://, rtmps:// or srt:// URLs, not ftp://",
    );
    refused(
        &["relay", "add", "x", "--from", "file:///etc/passwd"],
        "not file://",
    );
    refused(
        &["relay", "add", "x", "--from", "http:///x"],
        "the URL has no host",
    );
    refused(
        &[
            "relay",
            "add",
            "x",
            "--from",
            "http://127.0.0.1/x",
            "--watch",
            "1s",
        ],
        "--watch is from 5s to 1day, not 1s",
    );
    refused(
        &["relay", "add", "../x", "--from", "http://127.0.0.1/x"],
        "invalid stream name",
    );
    let _alice = s.key("add", "alice");
    refused(
        &["relay", "add", "alice", "--from", "http://127.0.0.1/x"],
        "stream name \"alice\" already has a key: a relay publishes under a name of its own",
    );
    refused(&["relay", "remove", "nobody"], "no relay for \"nobody\"");

    // The API: the owner's only, with the same reasons.
    let body = r#"{"stream":"y","from":"http://127.0.0.1/x"}"#;
    let (status, _) = s.api("POST", "/api/relays", Some(body), false);
    assert_eq!(status, 401);
    let (status, v) = s.api(
        "POST",
        "/api/relays",
        Some(r#"{"stream":"y","from":"http://127.0.0.1/x","watch":"often"}"#),
        true,
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not a duration"),
        "{v}"
    );
    let (status, v) = s.api("DELETE", "/api/relays/nobody", None, true);
    assert_eq!(status, 404, "{v}");
    assert!(listed(&s, "y").is_none(), "a refused relay makes no key");

    // Nothing listens there: an error, tried again (1 s, doubling), with the reason.
    let gone = format!("http://127.0.0.1:{}/channel", free_port());
    let (status, v) = s.api(
        "POST",
        "/api/relays",
        Some(&format!(r#"{{"stream":"gone","from":"{gone}"}}"#)),
        true,
    );
    assert_eq!(status, 201, "{v}");
    let r = wait_status(&s, "gone", "the failed check", |st| st["state"] == "error");
    assert_eq!(
        r["status"]["last_check"], "failed: cannot connect to the server (connection refused)",
        "{r}"
    );
    assert!(r["status"]["next_check_at"].is_string(), "{r}");
    let out = s.cli(&["relay", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("gone") && text.contains("error") && text.contains("connection refused"),
        "{text}"
    );
    s.stop();
}
