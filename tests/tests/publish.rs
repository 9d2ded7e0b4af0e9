//! Publishing with stream keys, end to end: the sidecar's keys, nginx-rtmp's callbacks, the
//! module's decisions, and what a publisher and a viewer see.

use std::time::Duration;

use streamedge_tests::{wait_for, Options, Publisher, Server};

const FFMPEG_END: Duration = Duration::from_secs(30);

fn hls_exists(s: &Server, name: &str) -> bool {
    s.data(&format!("live/{name}/index.m3u8")).exists()
}

#[test]
fn right_key_goes_live_then_offline_and_no_secret_is_logged() {
    let s = Server::start(Options::default());
    let key = s.key("add", "alice");
    assert_eq!(key.server_url, format!("rtmp://127.0.0.1:{}/live", s.rtmp));
    let secret = key
        .stream_key
        .strip_prefix("alice?key=")
        .expect("NAME?key=SECRET")
        .to_string();
    assert!(secret.len() >= 22, "at least 128 bits of secret");

    // Known but not yet live.
    assert_eq!(s.streams(), vec![("alice".to_string(), false)]);

    let publisher = Publisher::start(&key.url(), 8);
    s.wait_live("alice", true);
    let playlist = wait_for("the HLS playlist", Duration::from_secs(20), || {
        std::fs::read_to_string(s.data("live/alice/index.m3u8"))
            .ok()
            .filter(|p| p.contains(".ts"))
    });
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    // The playlist is served over HTTP.
    let r = streamedge_tests::http_get(&s.url("/live/alice/index.m3u8")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("#EXTINF"));

    let (ok, err) = publisher.finish(FFMPEG_END);
    assert!(ok, "ffmpeg failed: {err}");
    s.wait_live("alice", false);

    // The status command agrees, and the secret is nowhere: not in the keys file, not in any log.
    let status = s.cli(&["status", "--json"]);
    assert!(status.status.success());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["nginx"]["running"], true);
    assert_eq!(v["keys"]["active"], 1);
    let keys_file = std::fs::read_to_string(s.data("keys.toml")).unwrap();
    assert!(!keys_file.contains(&secret));
    assert!(!s.all_logs().contains(&secret), "secret leaked into a log");
    assert!(s.crashes().is_empty(), "{:?}", s.crashes());
}

#[test]
fn refused_publishers_get_nothing() {
    let s = Server::start(Options::default());
    let alice = s.key("add", "alice");
    let bob = s.key("add", "bob");
    let old_bob = bob.url();
    s.key("rotate", "bob");
    let carol = s.key("add", "carol");
    let revoke = s.cli(&["keys", "revoke", "carol"]);
    assert!(revoke.status.success());

    let base = &alice.server_url;
    let cases = [
        ("wrong key", format!("{base}/alice?key=not-the-key")),
        ("missing key", format!("{base}/alice")),
        (
            "key of another name",
            format!("{base}/bob?{}", alice.stream_key.split_once('?').unwrap().1),
        ),
        ("rotated-away key", old_bob),
        ("revoked key", carol.url()),
        ("unknown name", format!("{base}/mallory?key=whatever")),
    ];
    for (what, url) in cases {
        let (ok, _) = Publisher::start(&url, 3).finish(FFMPEG_END);
        assert!(!ok, "{what}: ffmpeg should have been refused");
    }
    for name in ["alice", "bob", "carol", "mallory"] {
        assert!(!hls_exists(&s, name), "{name} produced HLS output");
        assert!(!s.is_live(name));
    }
    let log = s.read("logs/error.log");
    assert!(
        log.contains("publish refused for \"alice\" from 127.0.0.1: wrong key"),
        "{log}"
    );
    assert!(log.contains("publish refused for \"carol\" from 127.0.0.1: revoked key"));
    assert!(log.contains("publish refused for \"mallory\" from 127.0.0.1: unknown stream name"));
    assert!(!log.contains("not-the-key"));
}

#[test]
fn key_changes_apply_without_restarting_nginx() {
    let s = Server::start(Options::default());
    let pid = s.nginx_pid();
    let first = s.key("add", "dave");
    let (ok, err) = Publisher::start(&first.url(), 2).finish(FFMPEG_END);
    assert!(ok, "first key: {err}");

    let second = s.key("rotate", "dave");
    assert_ne!(first.stream_key, second.stream_key);
    assert!(
        !Publisher::start(&first.url(), 2).finish(FFMPEG_END).0,
        "old key still works"
    );
    let (ok, err) = Publisher::start(&second.url(), 2).finish(FFMPEG_END);
    assert!(ok, "rotated key: {err}");

    assert!(s.cli(&["keys", "revoke", "dave"]).status.success());
    assert!(
        !Publisher::start(&second.url(), 2).finish(FFMPEG_END).0,
        "revoked key still works"
    );
    assert_eq!(s.nginx_pid(), pid, "nginx was restarted");
}

#[test]
fn revoking_a_key_ends_its_live_stream() {
    let s = Server::start(Options::default());
    let key = s.key("add", "erin");
    let mut publisher = Publisher::start(&key.url(), 60);
    s.wait_live("erin", true);
    assert!(s.cli(&["keys", "revoke", "erin"]).status.success());
    // nginx-rtmp's next update callback (every 5 s) carries the key, which no longer passes.
    wait_for(
        "the publisher to be cut off",
        Duration::from_secs(10),
        || (!publisher.is_running()).then_some(()),
    );
    s.wait_live("erin", false);
    assert!(s
        .read("logs/error.log")
        .contains("ending publish of \"erin\" from 127.0.0.1: revoked key"));
}

#[test]
fn a_killed_worker_does_not_lock_its_publisher_out() {
    let s = Server::start(Options::default());
    let key = s.key("add", "kim");
    let mut first = Publisher::start(&key.url(), 60);
    s.wait_live("kim", true);
    // The worker holding the RTMP connection: the nginx process with it open.
    let out = std::process::Command::new("ss")
        .args([
            "-Htnp",
            "state",
            "established",
            &format!("( sport = :{} )", s.rtmp),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = text
        .split("pid=")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no nginx worker holds the publisher: {text}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("ffmpeg to notice", Duration::from_secs(20), || {
        (!first.is_running()).then_some(())
    });
    // No publish_done ever came, yet the name is free at once: well before the 35 s live
    // timeout, the same key publishes again.
    let since = std::time::Instant::now();
    s.wait_live("kim", false);
    let mut again = Publisher::start(&key.url(), 30);
    s.wait_live("kim", true);
    std::thread::sleep(Duration::from_secs(2));
    assert!(again.is_running(), "the second publish was refused");
    // Not a speed figure: after the 35 s live timeout even a stale entry would let go, so
    // only success before it shows the name was freed by the dead worker's connection.
    assert!(
        since.elapsed() < Duration::from_secs(35),
        "{:?}",
        since.elapsed()
    );
    assert!(!s.read("logs/error.log").contains("already publishing"));
}

#[test]
fn an_ipv6_client_is_its_64_for_bans() {
    let s = Server::start(Options {
        ban_attempts: 3,
        ..Options::default()
    });
    let key = s.key("add", "vera");
    let secret = key.stream_key.split("key=").nth(1).unwrap().to_string();
    let publish = |addr: &str, client: u32, secret: &str| {
        let body = format!(
            "app=live&addr={addr}&clientid={client}&call=publish&name=vera&type=live&key={secret}"
        );
        streamedge_tests::callback(s.internal, body.as_bytes())
    };
    // Three wrong keys from three addresses of one /64: one client, banned.
    for (i, a) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]
        .iter()
        .enumerate()
    {
        assert_eq!(publish(a, i as u32 + 1, "wrong"), Some(403), "{a}");
    }
    assert_eq!(publish("2001:db8:1:2::99", 10, &secret), Some(429));
    // Another /64 is another client.
    assert_eq!(publish("2001:db8:1:3::1", 11, &secret), Some(200));
    let log = s.read("logs/error.log");
    assert_eq!(
        log.matches("banning \"2001:db8:1:2::/64\"").count(),
        1,
        "{log}"
    );
}

#[test]
fn repeated_failures_ban_the_address_then_the_ban_ends() {
    let s = Server::start(Options {
        ban_attempts: 3,
        ban_window: "10m",
        ban_time: "4s",
        ..Options::default()
    });
    let key = s.key("add", "frank");
    let wrong = format!("{}/frank?key=guess", key.server_url);
    for _ in 0..3 {
        assert!(!Publisher::start(&wrong, 2).finish(FFMPEG_END).0);
    }
    // Banned: even the right key is refused.
    assert!(
        !Publisher::start(&key.url(), 2).finish(FFMPEG_END).0,
        "banned address published"
    );
    assert!(!hls_exists(&s, "frank"));
    let log = s.read("logs/error.log");
    assert_eq!(
        log.matches("banning \"127.0.0.1\" for 4s by zone \"publishers\"")
            .count(),
        1,
        "{log}"
    );
    // One line when the ban starts; refusals during the ban are not logged at notice.
    assert!(!log.contains("address banned for"));

    std::thread::sleep(Duration::from_secs(5));
    let (ok, err) = Publisher::start(&key.url(), 2).finish(FFMPEG_END);
    assert!(ok, "the ban did not end: {err}");
}

#[test]
fn the_default_configuration_bans_after_five_failures() {
    let mut s = Server::init(Options::default());
    // Back to what `streamedge init` writes: the default policy.
    s.edit_config(|c| {
        c.remove("publish");
    });
    s.run();
    assert!(s.read("nginx.conf").contains(
        "zone=publishers:1m rate=1r/s burst=10 ban_after=5 ban_window=10m ban_time=15m;"
    ));
    let key = s.key("add", "gina");
    for i in 0..5 {
        let body = format!("addr=10.9.8.7&clientid={i}&call=publish&name=gina&key=bad");
        assert_eq!(
            streamedge_tests::callback(s.internal, body.as_bytes()),
            Some(403)
        );
    }
    let secret = key.stream_key.split_once("?key=").unwrap().1;
    let right = format!("addr=10.9.8.7&clientid=9&call=publish&name=gina&key={secret}");
    assert_eq!(
        streamedge_tests::callback(s.internal, right.as_bytes()),
        Some(429)
    );
    assert!(s
        .read("logs/error.log")
        .contains("banning \"10.9.8.7\" for 900s by zone \"publishers\""));
    // Another address is not affected.
    let other = format!("addr=10.9.8.6&clientid=10&call=publish&name=gina&key={secret}");
    assert_eq!(
        streamedge_tests::callback(s.internal, other.as_bytes()),
        Some(200)
    );
}
