//! Restreaming: a live stream sent on to destinations that are real nginx-rtmp servers on
//! loopback (one behind RTMPS: nginx's stream module with `ssl`), each by a push of its own.
//! ffprobe reads what each destination recorded.

use std::time::Duration;

use serde_json::Value;
use streamedge_tests::{processes_mentioning, wait_for, Options, Publisher, RtmpSink, Server};

/// Stream keys of the platforms: long enough that `list` shows their last four characters.
const KEY_A: &str = "plat-a-SECRET-0001-wxyz";
const KEY_B: &str = "plat-b-SECRET-0002-wxyz";
const KEY_C: &str = "plat-c-SECRET-0003-wxyz";

fn add(s: &Server, name: &str, url: &str, label: &str) -> Value {
    let out = s.cli(&["restream", "add", name, url, "--label", label, "--json"]);
    assert!(
        out.status.success(),
        "restream add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("restream add --json prints JSON")
}

/// The destination `id` as `GET /api/restreams` shows it.
fn destination(s: &Server, id: &str) -> Value {
    let (status, v) = s.api("GET", "/api/restreams", None, true);
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no destination {id} in {v}"))
}

/// The `streamedge push` processes of server `s`.
fn pushes(s: &Server) -> usize {
    let parent = s.run_pid().expect("streamedge run runs").to_string();
    processes_mentioning("streamedge push")
        .iter()
        .filter(|p| {
            let pid = p.split(':').next().unwrap();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …
            stat.rsplit(") ").next().and_then(|r| r.split(' ').nth(1)) == Some(parent.as_str())
        })
        .count()
}

/// Waits until what `sink` received for `key` has grown by `by` bytes.
fn grows(sink: &RtmpSink, key: &str, by: u64, what: &str) {
    let start = sink.bytes(key);
    wait_for(what, Duration::from_secs(30), || {
        (sink.bytes(key) >= start + by).then_some(())
    });
}

/// Three destinations get the stream, each from its own push, the key on no command line
/// and in no log; one killed, the other two keep receiving, and it gets the stream again once
/// it is back.
#[test]
fn a_live_stream_goes_to_each_destination_and_a_dead_one_comes_back() {
    let (mut a, b, c) = (RtmpSink::start(), RtmpSink::start(), RtmpSink::start_tls());
    let mut s = Server::init(Options::default());
    let ca = c.ca();
    s.edit_config(|t| {
        let mut r = toml::Table::new();
        r.insert("ca_file".into(), ca.to_string_lossy().into_owned().into());
        t.insert("restream".into(), r.into());
    });
    s.run();
    let key = s.key("add", "alice");
    let da = add(&s, "alice", &a.url(KEY_A), "A");
    let db = add(&s, "alice", &b.url(KEY_B), "B");
    let dc = add(&s, "alice", &c.tls_url(KEY_C), "C over RTMPS");
    // After `add` the key is never shown in full.
    assert_eq!(
        da["url"],
        format!("rtmp://127.0.0.1:{}/dest/****wxyz", a.port)
    );
    let file = s.data("restreams.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains(KEY_A));

    let _publisher = Publisher::start(&key.url(), 120);
    for (sink, k) in [(&a, KEY_A), (&b, KEY_B), (&c, KEY_C)] {
        grows(sink, k, 100_000, "each destination to receive the stream");
        let streams = sink.received_streams(k);
        assert!(
            streams.iter().any(|l| l.starts_with("video,160,120"))
                && streams.iter().any(|l| l.starts_with("audio")),
            "{streams:?}"
        );
    }
    for d in [&da, &db, &dc] {
        let v = destination(&s, d["id"].as_str().unwrap());
        assert_eq!(v["status"]["state"], "sending", "{v}");
        assert_eq!(v["status"]["program"], "publisher", "{v}");
        assert!(
            v["status"]["bitrate_kbps"].as_f64().unwrap_or(0.0) > 10.0,
            "{v}"
        );
    }
    // One process per destination, none with a key on its command line.
    for k in [KEY_A, KEY_B, KEY_C] {
        assert_eq!(processes_mentioning(k), Vec::<String>::new());
    }
    assert_eq!(pushes(&s), 3);
    let list = s.cli(&["restream", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("sending") && text.contains("****wxyz"),
        "{text}"
    );

    // A destination dies: the others go on, it is tried again and again.
    a.kill();
    let id_a = da["id"].as_str().unwrap();
    let failed = wait_for("the push to A to fail", Duration::from_secs(30), || {
        let v = destination(&s, id_a);
        (v["status"]["reconnects"].as_u64() >= Some(1)).then_some(v)
    });
    let error = failed["status"]["last_error"].as_str().unwrap();
    assert!(error.contains(&format!("127.0.0.1:{}", a.port)), "{error}");
    grows(&b, KEY_B, 100_000, "B to go on receiving while A is down");
    grows(&c, KEY_C, 100_000, "C to go on receiving while A is down");
    let before = a.bytes(KEY_A);
    a.run();
    wait_for(
        "A to receive the stream again",
        Duration::from_secs(40),
        || (a.bytes(KEY_A) > before + 50_000).then_some(()),
    );
    assert_eq!(destination(&s, id_a)["status"]["state"], "sending");

    let logs = s.all_logs();
    for k in [KEY_A, KEY_B, KEY_C] {
        assert!(!logs.contains(k), "a stream key in the logs");
        assert!(!logs.contains(&k[..12]), "part of a stream key in the logs");
    }
    assert!(
        logs.contains("trying again in"),
        "the failure is in the log"
    );
}

/// A publisher that drops and is back within the grace period: the destination stays on
/// the same connection and gets the slate meanwhile; once the publisher is gone for longer,
/// the push ends.
#[test]
fn a_publisher_back_within_the_grace_period_keeps_the_destinations_connected() {
    let sink = RtmpSink::start();
    let mut s = Server::init(Options::default());
    s.edit_config(|t| {
        let mut r = toml::Table::new();
        r.insert("grace".into(), "12s".into());
        t.insert("restream".into(), r.into());
    });
    s.run();
    let key = s.key("add", "bob");
    let d = add(&s, "bob", &sink.url(KEY_A), "A");
    let id = d["id"].as_str().unwrap().to_string();

    let first = Publisher::start(&key.url(), 6);
    grows(
        &sink,
        KEY_A,
        50_000,
        "the destination to receive the stream",
    );
    let (ok, err) = first.finish(Duration::from_secs(30));
    assert!(ok, "{err}");
    let away = wait_for("the slate", Duration::from_secs(10), || {
        let v = destination(&s, &id);
        (v["status"]["program"] == "slate").then_some(v)
    });
    assert_eq!(away["status"]["state"], "sending", "{away}");
    // The slate flows: bytes go on arriving with no publisher.
    grows(&sink, KEY_A, 20_000, "the slate to reach the destination");

    let second = Publisher::start(&key.url(), 6);
    wait_for(
        "the publisher to take over again",
        Duration::from_secs(15),
        || (destination(&s, &id)["status"]["program"] == "publisher").then_some(()),
    );
    grows(&sink, KEY_A, 50_000, "the stream again");
    let v = destination(&s, &id);
    assert_eq!(v["status"]["reconnects"], 0, "{v}");
    assert_eq!(sink.connections(), 1, "one connection all along");
    let (ok, err) = second.finish(Duration::from_secs(30));
    assert!(ok, "{err}");
    // Gone for longer than the grace period: the restream ends.
    wait_for("the restream to end", Duration::from_secs(40), || {
        destination(&s, &id)["status"].is_null().then_some(())
    });
    assert_eq!(pushes(&s), 0);
    let streams = sink.received_streams(KEY_A);
    assert!(
        streams.iter().any(|l| l.starts_with("video")),
        "{streams:?}"
    );
}

/// What `restream add`, `remove` and the API refuse, and say why.
#[test]
fn bad_destinations_are_refused_with_the_reason() {
    let mut s = Server::start(Options::default());
    for (args, why) in [
        (
            vec!["alice", "http://example.org/app/key"],
            "must start with rtmp://",
        ),
        (vec!["alice", "rtmp://example.org/app"], "no stream key"),
        (
            vec!["../x", "rtmp://example.org/app/key"],
            "invalid stream name",
        ),
        (
            vec!["alice", "rtmp://h/app/key", "--rendition", "720p"],
            "needs the ladder",
        ),
    ] {
        let out = s.cli(&[&["restream", "add"][..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    }
    let out = s.cli(&["restream", "remove", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no destination \"nope\""));
    // The API: the token, then the same checks.
    let body = r#"{"stream": "alice", "url": "rtmp://h/app/SECRETSECRETSECRET"}"#;
    let (status, _) = s.api("POST", "/api/restreams", Some(body), false);
    assert_eq!(status, 401);
    let (status, v) = s.api("POST", "/api/restreams", Some(body), true);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["url"], "rtmp://h:1935/app/****CRET");
    let (status, _) = s.api("POST", "/api/restreams", Some(body), true);
    assert_eq!(status, 409, "the same destination twice");
    let id = v["id"].as_str().unwrap();
    let (status, v) = s.api(
        "PATCH",
        &format!("/api/restreams/{id}"),
        Some(r#"{"enabled": false}"#),
        true,
    );
    assert_eq!((status, &v["enabled"]), (200, &Value::Bool(false)));
    let (status, v) = s.api("GET", "/api/restreams", None, true);
    assert_eq!(status, 200);
    assert!(!v.to_string().contains("SECRETSECRET"), "{v}");
    let (status, _) = s.api("DELETE", &format!("/api/restreams/{id}"), None, true);
    assert_eq!(status, 200);
    let (status, _) = s.api("DELETE", &format!("/api/restreams/{id}"), None, true);
    assert_eq!(status, 404);
    s.stop();
}

/// A destination that asks for a rung of the ladder gets that rung, copied as the ladder
/// makes it; another destination of the same stream gets the source as published.
#[test]
fn a_destination_gets_the_rung_it_asks_for() {
    let (small, full) = (RtmpSink::start(), RtmpSink::start());
    let mut s = Server::init(Options {
        transcode: true,
        ..Options::default()
    });
    s.edit_config(|t| {
        t["live"]
            .as_table_mut()
            .unwrap()
            .insert("ladder".into(), toml::Value::Array(vec![180.into()]));
    });
    s.run();
    let key = s.key("add", "carol");
    let out = s.cli(&[
        "restream",
        "add",
        "carol",
        &small.url(KEY_A),
        "--rendition",
        "180p",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&[
        "restream",
        "add",
        "carol",
        &small.url(KEY_B),
        "--rendition",
        "480p",
    ]);
    assert!(!out.status.success(), "no 480p rung in this ladder");
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no rung \"480p\" (it has 180p)"));
    add(&s, "carol", &full.url(KEY_B), "source");
    let _publisher = Publisher::start_sized(&key.url(), 120, "320x240", 15);
    grows(
        &small,
        KEY_A,
        50_000,
        "the 180p rung to reach its destination",
    );
    grows(&full, KEY_B, 50_000, "the source to reach its destination");
    let rung = small.received_streams(KEY_A);
    assert!(
        rung.iter().any(|l| l.starts_with("video,240,180")),
        "{rung:?}"
    );
    let source = full.received_streams(KEY_B);
    assert!(
        source.iter().any(|l| l.starts_with("video,320,240")),
        "{source:?}"
    );
}
