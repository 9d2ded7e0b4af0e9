//! Live audio: an Icecast source client (ffmpeg's `icecast://` output, as Mixxx or butt
//! would connect) with the right and wrong keys, the audio-only HLS it becomes, and an
//! audio-only RTMP publish (OBS with audio only).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use streamedge_tests::{
    ffprobe_streams, http_get, http_get_once, icecast_source, wait_for, Options, Server,
};

/// ffmpeg as a DJ's source client, to this server.
fn source(s: &Server, mount: &str, password: &str, secs: u32) -> Child {
    icecast_source(s.icecast, mount, password, secs, "Friday Mix")
}

/// Waits for a source client to give up; returns whether it succeeded and what it said.
fn ended(mut c: Child) -> (bool, String) {
    let status = wait_for("the source client to end", Duration::from_secs(30), || {
        c.try_wait().unwrap()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status.success(), err)
}

fn secret(stream_key: &str) -> String {
    stream_key.split_once("?key=").unwrap().1.to_string()
}

/// The first segment of a playlist below a live stream's folder, as a URL.
fn first_segment(s: &Server, name: &str, playlist: &str) -> String {
    let text = wait_for("a playlist with a segment", Duration::from_secs(20), || {
        let r = http_get(&s.url(&format!("/live/{name}/{playlist}"))).ok()?;
        let text = r.text();
        (r.status == 200 && text.contains(".ts")).then_some(text)
    });
    let seg = text.lines().find(|l| l.ends_with(".ts")).unwrap();
    let dir = playlist
        .rsplit_once('/')
        .map(|(d, _)| format!("{d}/"))
        .unwrap_or_default();
    s.url(&format!("/live/{name}/{dir}{seg}"))
}

/// What a player of `/live/NAME/` gets: the stream's entry leads to its master playlist,
/// whose one rendition is audio only.
fn plays_audio_only(s: &Server, name: &str) {
    let location = wait_for(
        "the entry to lead to the master playlist",
        Duration::from_secs(20),
        || {
            let r = http_get_once(&s.url(&format!("/live/{name}/"))).ok()?;
            r.header("location")
                .filter(|l| *l == "master.m3u8")
                .map(String::from)
        },
    );
    assert_eq!(location, "master.m3u8");
    let master = http_get(&s.url(&format!("/live/{name}/master.m3u8")))
        .unwrap()
        .text();
    assert!(
        master.contains("CODECS=\"mp4a.40.2\"") && master.contains("audio/index.m3u8"),
        "{master}"
    );
    assert!(!master.contains("RESOLUTION"), "{master}");
    let seg = first_segment(s, name, "audio/index.m3u8");
    // (ffprobe lists a stream of an MPEG-TS program twice: in its program and on its own.)
    let kinds: std::collections::BTreeSet<String> = ffprobe_streams(&seg).into_iter().collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["audio"], "{seg}");
    // nginx-rtmp's own rendition declares an empty video track: the master does not name it.
    let source = first_segment(s, name, "index.m3u8");
    assert!(
        ffprobe_streams(&source).contains(&"video".to_string()),
        "{source}"
    );
}

#[test]
fn an_icecast_source_goes_live_with_audio_only_and_wrong_keys_are_banned() {
    let s = Server::start(Options {
        ban_attempts: 3,
        ..Options::default()
    });
    let key = s.key("add", "dj");
    let right = secret(&key.stream_key);

    // The DJ goes live: audio only, in HLS, with the source's name as the title.
    let dj = source(&s, "dj", &right, 120);
    s.wait_live("dj", true);
    plays_audio_only(&s, "dj");
    assert_eq!(s.stream_entry("dj")["live"], true);
    wait_for("the title", Duration::from_secs(20), || {
        (s.stream_entry("dj")["title"] == "Friday Mix").then_some(())
    });
    // A second source for the same mount is turned away while the first plays.
    let (ok, err) = ended(source(&s, "dj", &right, 5));
    assert!(!ok && err.contains("403"), "{err}");
    // The key never reaches a log or a command line.
    assert!(!s.all_logs().contains(&right));
    // (But the test's own source client, which has it in its URL.)
    let mentioning: Vec<String> = streamedge_tests::processes_mentioning(&right)
        .into_iter()
        .filter(|p| !p.contains("icecast://"))
        .collect();
    assert_eq!(mentioning, Vec::<String>::new());

    // Radio apps and VLC listen at /listen/NAME: AAC frames, from the first byte.
    let total = |s: &Server| s.stream_entry("dj")["audience"]["total"].as_u64().unwrap();
    let before = total(&s);
    let mut radio = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(s.url("/listen/dj"))
        .send()
        .unwrap();
    assert_eq!(radio.status(), 200);
    assert_eq!(radio.headers()["content-type"], "audio/aac");
    let mut heard = vec![0u8; 48 * 1024];
    std::io::Read::read_exact(&mut radio, &mut heard).unwrap();
    assert_eq!(
        (heard[0], heard[1] & 0xF0),
        (0xFF, 0xF0),
        "an ADTS frame first"
    );
    let file = s.dir.path().join("heard.aac");
    std::fs::write(&file, &heard).unwrap();
    let codec = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&codec.stdout).trim(), "aac");
    // The listener counts with the players.
    wait_for("the listener counted", Duration::from_secs(10), || {
        (total(&s) == before + 1).then_some(())
    });
    let listening = s.stream_entry("dj")["audience"]["viewers"]
        .as_u64()
        .unwrap();
    assert!(listening >= 1);
    drop(radio);
    wait_for("the listener gone", Duration::from_secs(10), || {
        (s.stream_entry("dj")["audience"]["viewers"]
            .as_u64()
            .unwrap()
            < listening)
            .then_some(())
    });
    for path in ["/listen/nobody", "/listen/..%2Fetc", "/listen/"] {
        let r = http_get(&s.url(path)).unwrap();
        assert_eq!(r.status, 404, "{path}");
    }

    // The DJ stops: the stream goes offline.
    let mut dj = dj;
    dj.kill().unwrap();
    dj.wait().unwrap();
    s.wait_live("dj", false);
    assert!(
        s.read("run.log").contains("icecast: source \"dj\" ended"),
        "{}",
        s.read("run.log")
    );

    // Wrong passwords: refused as Icecast refuses (401), and counted towards the ban...
    for wrong in ["nope", "dj-key-nope", ""] {
        let (ok, err) = ended(source(&s, "dj", wrong, 5));
        assert!(
            !ok && (err.contains("401") || err.contains("Unauthorized")),
            "{wrong}: {err}"
        );
    }
    assert!(!s.is_live("dj"));
    let log = s.read("logs/error.log");
    assert!(
        log.contains("source refused for \"dj\" from 127.0.0.1"),
        "{log}"
    );
    // ...which then turns away even the right key, as for RTMP publishers.
    let (ok, err) = ended(source(&s, "dj", &right, 5));
    assert!(!ok && err.contains("403"), "{err}");
    assert!(s.read("logs/error.log").contains("by zone \"publishers\""));
    assert!(!s.is_live("dj"));
}

#[test]
fn an_audio_only_rtmp_publish_plays_as_audio_only_hls() {
    let s = Server::start(Options::default());
    let key = s.key("add", "radio");
    let mut obs = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000"])
        .args(["-t", "60", "-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(key.url())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.wait_live("radio", true);
    plays_audio_only(&s, "radio");
    let _ = obs.kill();
    let _ = obs.wait();
}

/// A DJ's set, recorded: it becomes an audio item of the library (not a video without a
/// picture), with the broadcast's figures.
#[test]
fn a_recorded_audio_stream_becomes_an_audio_item() {
    let mut s = Server::init(Options::default());
    s.edit_config(|c| {
        c["live"]
            .as_table_mut()
            .unwrap()
            .insert("record_grace".into(), "2s".into());
    });
    s.run();
    let out = s.cli(&["keys", "add", "set", "--record", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = secret(v["stream_key"].as_str().unwrap());
    let (ok, err) = ended(source(&s, "set", &secret, 8));
    assert!(ok, "{err}");
    let item = wait_for(
        "the recording in the library",
        Duration::from_secs(120),
        || {
            let (_, list) = s.api("GET", "/api/library", None, true);
            list.as_array()?
                .iter()
                .find(|i| {
                    i["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Friday Mix (set, live"))
                })
                .cloned()
        },
    );
    assert_eq!(item["kind"], "audio", "{item}");
    assert!(item["duration"].as_f64().unwrap() >= 5.0, "{item}");
}
