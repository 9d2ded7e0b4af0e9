//! The web player in a real browser (Debian's Chromium, headless, driven by playwright-core
//! from npm) against a real server: a stream that goes live plays without a reload, a
//! library item plays from the keyboard, the fetch form creates a job that finishes. The
//! screenshots stay in target/test-artifacts/. Also the page's headers and the plain-HTTP
//! redirect.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use streamedge_tests::*;

#[test]
fn the_player_plays_live_and_library_and_fetches() {
    let media = MediaServer::start();
    let s = Server::start(Options::default());
    let key = s.key("add", "cam");
    // Seen once, so it is listed; then offline when the page opens.
    let first = Publisher::start(&key.url(), 4);
    s.wait_live("cam", true);
    let _ = first.finish(Duration::from_secs(20));
    s.wait_live("cam", false);
    let import = Command::new(streamedge_bin())
        .arg("--config")
        .arg(s.config())
        .args(["library", "import", "--title", "Test clip", "--json"])
        .arg(media_dir().join("clip.mp4"))
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let item: Value = serde_json::from_slice(&import.stdout).unwrap();
    let item = item["id"].as_str().unwrap().to_string();

    let shots = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let mut node = Command::new("node")
        .arg(web.join("test/player.mjs"))
        .current_dir(&web)
        .env("BASE", s.url(""))
        .env("STREAM", "cam")
        .env("ITEM", &item)
        .env("TOKEN", s.token())
        .env("FETCH_URL", media.url("/song.m4a"))
        .env("SHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node (make deps installs it)");
    let mut stdin = Some(node.stdin.take().unwrap());
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut publisher = None;
    let mut report = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "offline-selected" {
            publisher = Some(Publisher::start(&key.url(), 120));
            writeln!(stdin.as_mut().unwrap(), "published").unwrap();
        } else if line == "want-signed" {
            let private = s.cli(&["library", "private", &item]);
            assert!(private.status.success());
            let signed = s.cli(&["sign", &format!("/vod/{item}"), "--ttl", "10m", "--json"]);
            let signed: Value = serde_json::from_slice(&signed.stdout).unwrap();
            // The player link exactly as printed: without a domain (so without a real
            // certificate), links are plain HTTP, which opens without a warning.
            let player = signed["player"].as_str().unwrap();
            assert!(
                player.starts_with(&format!("{}/#play=/s/", s.url(""))),
                "{player}"
            );
            writeln!(stdin.as_mut().unwrap(), "{player}").unwrap();
            stdin = None;
        } else {
            report = line;
        }
    }
    let status = node.wait().unwrap();
    drop(publisher);
    let found: Value =
        serde_json::from_str(&report).unwrap_or_else(|_| panic!("no report: {report}"));
    assert!(status.success() && found["error"].is_null(), "{found}");

    assert_eq!(
        found["mse_h264"], true,
        "this Chromium plays H.264 through MSE"
    );
    assert!(found["live_time"].as_f64().unwrap() > 1.5);
    assert!(
        found["live_meta"].as_str().unwrap().starts_with("for "),
        "{found}"
    );
    assert_eq!(found["live_thumbnail"], true, "{found}");
    assert_eq!(found["item_title"], "Test clip");
    assert_eq!(found["item_poster"], true);
    assert_eq!(found["unsigned_status"], 404, "{found}");
    assert_eq!(
        found["external"],
        serde_json::json!([]),
        "no request leaves the server"
    );
    // Nothing the page asked for was missing (a stream is listed live only once its
    // playlist plays), but the test's own unsigned request for the private item (which the
    // browser logs).
    let refused = format!("404 /vod/{item}/master.m3u8");
    for f in found["failed"].as_array().unwrap() {
        assert!(*f == refused, "{found}");
    }
    for e in found["consoleErrors"].as_array().unwrap() {
        assert!(e.as_str().unwrap().contains("status of 404"), "{found}");
    }
    assert!(found["phone_overflow"].as_i64().unwrap() <= 0, "{found}");
    // The job the form made is real.
    let job = found["job"].as_str().unwrap();
    let (status, j) = s.api("GET", &format!("/api/jobs/{job}"), None, true);
    assert_eq!(
        (status, j["kind"].as_str(), j["state"].as_str()),
        (200, Some("audio"), Some("done"))
    );
    assert!(shots.join("player.png").metadata().unwrap().len() > 10_000);
}

/// The restream and relay section, with the token only: a destination added (its key never
/// shown again), disabled and removed, a bad one's reason, a relay of a live channel whose
/// title shows on its stream's tile.
#[test]
fn the_page_manages_restreams_and_relays_with_the_token() {
    const KEY: &str = "web-SECRET-0042-wxyz";
    let sink = RtmpSink::start();
    let mut channel = LiveChannel::start();
    channel.go_live();
    let s = Server::start(Options::default());
    let _cam = s.key("add", "cam");
    let shots = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let out = Command::new("node")
        .arg(web.join("test/restream.mjs"))
        .current_dir(&web)
        .env("BASE", s.url(""))
        .env("TOKEN", s.token())
        .env("DEST_URL", sink.url(KEY))
        .env("DEST_KEY", KEY)
        .env("CHANNEL", channel.url())
        .env("TITLE", CHANNEL_TITLE)
        .env("SHOTS", &shots)
        .stdin(Stdio::null())
        .output()
        .expect("run node (make deps installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout.lines().last().unwrap_or_default();
    let found: Value = serde_json::from_str(report).unwrap_or_else(|_| {
        panic!(
            "no report: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success() && found["error"].is_null(), "{found}");
    assert_eq!(found["hidden_without_token"], true, "{found}");
    assert_eq!(found["url_field_type"], "password", "{found}");
    assert_eq!(found["url_field_after"], "", "{found}");
    assert_eq!(found["key_in_page"], false, "{found}");
    let row = found["destination_row"].as_str().unwrap();
    assert!(
        row.contains("Sink")
            && row.contains(&format!("rtmp://127.0.0.1:{}/dest/****wxyz", sink.port)),
        "{found}"
    );
    assert!(
        found["bad_status"]
            .as_str()
            .unwrap()
            .contains("the URL must start with rtmp:// or rtmps://"),
        "{found}"
    );
    assert!(
        found["relay_row"]
            .as_str()
            .unwrap()
            .contains(&channel.url()),
        "{found}"
    );
    assert_eq!(found["tile_title"], CHANNEL_TITLE, "{found}");
    assert_eq!(found["removed"], true, "{found}");
    assert!(found["phone_overflow"].as_i64().unwrap() <= 0, "{found}");
    assert_eq!(found["external"], serde_json::json!([]), "{found}");
    // But the refused destination's 400, which the browser logs.
    for e in found["consoleErrors"].as_array().unwrap() {
        assert!(e.as_str().unwrap().contains("status of 400"), "{found}");
    }
    // What the page did is real.
    let (_, list) = s.api("GET", "/api/restreams", None, true);
    assert_eq!(list, serde_json::json!([]));
    let (_, list) = s.api("GET", "/api/relays", None, true);
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn viewers_chat_like_and_are_counted_in_the_page() {
    let s = Server::start(Options::default());
    let key = s.key("add", "cam");
    let _publisher = Publisher::start(&key.url(), 300);
    s.wait_live("cam", true);
    let shots = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    // An audio stream with a broadcast announced for an hour from now.
    let dj = s.key("add", "dj");
    let secret = dj.stream_key.split_once("?key=").unwrap().1.to_string();
    let now = std::time::SystemTime::now();
    let at = |d: u64| humantime::format_rfc3339_seconds(now + Duration::from_secs(d)).to_string();
    let scheduled = s.cli(&[
        "schedule",
        "add",
        "dj",
        "--title",
        "Friday Mix",
        "--start",
        &at(3600),
        "--end",
        &at(7200),
        "--description",
        "Two hours of deep house.",
    ]);
    assert!(
        scheduled.status.success(),
        "{}",
        String::from_utf8_lossy(&scheduled.stderr)
    );
    let mut node = Command::new("node")
        .arg(web.join("test/audience.mjs"))
        .current_dir(&web)
        .env("BASE", s.url(""))
        .env("STREAM", "cam")
        .env("SCHEDULED", "dj")
        .env("SHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node (make deps installs it)");
    let mut stdin = node.stdin.take();
    let mut report = String::new();
    let mut source = None;
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "schedule-selected" {
            source = Some(icecast_source(s.icecast, "dj", &secret, 120, "Friday Mix"));
            writeln!(stdin.as_mut().unwrap(), "published").unwrap();
            stdin = None;
        } else {
            report = line;
        }
    }
    let status = node.wait().unwrap();
    if let Some(mut c) = source {
        let _ = c.kill();
        let _ = c.wait();
    }
    let found: Value =
        serde_json::from_str(&report).unwrap_or_else(|_| panic!("no report: {report}"));
    assert!(status.success() && found["error"].is_null(), "{found}");
    let listed = found["scheduled"].as_str().unwrap();
    assert!(
        listed.contains("Friday Mix") && listed.contains("dj") && listed.contains("in 59:"),
        "{found}"
    );
    assert!(
        found["waiting_status"]
            .as_str()
            .unwrap()
            .contains("“Friday Mix” starts in 59:"),
        "{found}"
    );
    assert_eq!(found["countdown_moves"], true, "{found}");
    assert_eq!(found["audio_view"], true, "{found}");
    assert_eq!(found["audio_live_bar"], true, "{found}");
    assert_eq!(found["audio_chat"], true, "{found}");
    assert_eq!(found["live_bar"], true, "{found}");
    assert_eq!(found["viewers"], "2 watching", "{found}");
    // The script payload: shown as the text it is, run nowhere.
    let payload = r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>"#;
    assert_eq!(found["bob_saw"], format!("Ann{payload}"), "{found}");
    assert_eq!(found["elements_in_chat"], 0, "{found}");
    assert!(
        found["xss"].is_null() && found["xss_sender"].is_null(),
        "{found}"
    );
    assert_eq!(found["ann_saw"], true, "{found}");
    assert_eq!(found["like_disabled"], true, "{found}");
    assert_eq!(found["bob_likes"], "1 like", "{found}");
    assert_eq!(found["like_enabled_again"], true, "{found}");
    assert_eq!(found["carol_history"], 2, "{found}");
    assert!(found["phone_overflow"].as_i64().unwrap() <= 0, "{found}");
    assert_eq!(found["external"], serde_json::json!([]), "{found}");
    assert_eq!(found["consoleErrors"], serde_json::json!([]), "{found}");
    // What the page showed is the server's count.
    let (_, list) = s.api("GET", "/api/streams", None, false);
    let cam = &list.as_array().unwrap()[0];
    assert_eq!(cam["audience"]["likes"], 1, "{cam}");
    assert!(cam["audience"]["peak"].as_u64().unwrap() >= 3, "{cam}");
}

#[test]
fn the_page_comes_with_security_headers_and_http_goes_to_https() {
    let mut s = Server::init(Options::default());
    s.run();
    let page = http_get(&s.url("/")).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<video id=\"video\""));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let hls = http_get(&s.url("/hls.min.js")).unwrap();
    assert_eq!(
        (hls.status, hls.header("content-type")),
        (200, Some("application/javascript"))
    );
    assert_eq!(http_get(&s.url("/nope.html")).unwrap().status, 404);
    // stub_status answers on the internal loopback server only; without a domain (and so
    // without a real certificate) plain HTTP serves everyone, this machine included.
    let st = http_get(&format!("http://127.0.0.1:{}/nginx_status", s.internal)).unwrap();
    assert!(
        st.text().starts_with("Active connections:"),
        "{}",
        st.text()
    );
    assert_eq!(http_get(&s.url("/nginx_status")).unwrap().status, 404);
    assert_eq!(http_get(&s.url("/")).unwrap().status, 200);

    // With a domain, every plain-HTTP visitor is sent to HTTPS, this machine's requests
    // alike, except for ACME challenges. (The CA is a closed loopback port: nothing leaves.)
    s.stop();
    s.edit_config(|c| {
        let acme = c["acme"].as_table_mut().unwrap();
        acme.insert(
            "domains".into(),
            toml::Value::Array(vec!["media.example".into()]),
        );
        acme.insert("directory".into(), "https://127.0.0.1:9/directory".into());
    });
    s.run();
    let (status, resp) = raw_exchange_to(
        "127.0.0.1",
        s.http,
        b"GET /vod/x/master.m3u8?a=1 HTTP/1.0\r\nHost: media.example\r\n\r\n",
    );
    let head = String::from_utf8_lossy(&resp);
    assert_eq!(status, 301, "{head}");
    assert!(
        head.contains(&format!(
            "Location: https://media.example:{}/vod/x/master.m3u8?a=1",
            s.https
        )),
        "{head}"
    );
    let (status, _) = raw_exchange_to(
        "127.0.0.1",
        s.http,
        b"GET /.well-known/acme-challenge/abc HTTP/1.0\r\nHost: media.example\r\n\r\n",
    );
    assert_eq!(
        status, 404,
        "challenges are answered over HTTP, not redirected"
    );
    let st = http_get(&format!("http://127.0.0.1:{}/nginx_status", s.internal)).unwrap();
    assert_eq!(st.status, 200, "the internal server is never redirected");
    // HTTPS serves the page, over HTTP/2 when asked.
    let out = Command::new("curl")
        .args([
            "-sk",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(format!("https://127.0.0.1:{}/", s.https))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
}

/// Sends raw bytes to `host:port`; the status and the whole response.
fn raw_exchange_to(host: &str, port: u16, request: &[u8]) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let status = String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf)
}
