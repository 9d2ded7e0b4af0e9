//! An edge in front of the home server, on loopback: a second real nginx with the module,
//! configured by `streamedge init --edge --origin URL`, caching the origin's HLS. Segments
//! are asked of the origin once and shared, playlists at most about once a second, signed
//! links are checked at the edge (bad ones never reach the origin) and share one cached
//! copy whatever the token, and private content is never served from the public cache.

use std::time::{Duration, Instant};

use streamedge_tests::*;

/// An edge of `origin`, running, with a copy of the origin's signing secrets.
fn edge_of(origin: &Server) -> Server {
    let mut e = Server::init(Options {
        init_args: vec![
            "--edge".into(),
            "--origin".into(),
            format!("http://127.0.0.1:{}", origin.http),
        ],
        ..Options::default()
    });
    std::fs::copy(origin.data("sign.keys"), e.data("sign.keys")).unwrap();
    e.run();
    e
}

/// Requests of `path` the origin has answered (its access log, written as each ends).
fn origin_hits(origin: &Server, path: &str) -> usize {
    origin
        .read("logs/access.log")
        .lines()
        .filter(|l| l.contains(&format!(" {path} ")))
        .count()
}

fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(String::from)
        .collect()
}

fn wait_segments(url: &str) -> String {
    wait_for("a playlist with segments", Duration::from_secs(30), || {
        http_get(url)
            .ok()
            .filter(|r| r.status == 200 && segments(&r.text()).len() >= 2)
            .map(|r| r.text())
    })
}

#[test]
fn live_hls_through_an_edge_is_asked_of_the_origin_once() {
    let origin = Server::start(Options::default());
    let edge = edge_of(&origin);
    assert!(edge
        .read("nginx.conf")
        .contains("proxy_cache_lock_timeout 30s"));
    let key = origin.key("add", "alice");
    let _p = Publisher::start(&key.url(), 120);
    origin.wait_live("alice", true);

    let playlist = wait_segments(&edge.url("/live/alice/index.m3u8"));
    let seg = segments(&playlist)[0].clone();
    let path = format!("/live/alice/{seg}");
    let first = http_get(&edge.url(&path)).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    assert_eq!(
        first.body,
        std::fs::read(origin.data(&format!("live/alice/{seg}"))).unwrap()
    );
    // What any cache may do with it, from the origin; one CORS header; nothing that splits
    // a cache.
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(first.header("access-control-allow-origin"), Some("*"));
    assert!(first.header("set-cookie").is_none() && first.header("vary").is_none());
    for _ in 0..5 {
        let again = http_get(&edge.url(&path)).unwrap();
        assert_eq!(again.header("x-cache-status"), Some("HIT"));
        assert_eq!(again.body, first.body);
    }
    assert_eq!(origin_hits(&origin, &path), 1);

    // Playlists: however many viewers ask, the origin is asked about once a second.
    let before = origin_hits(&origin, "/live/alice/index.m3u8");
    let start = Instant::now();
    for _ in 0..40 {
        let r = http_get(&edge.url("/live/alice/index.m3u8")).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.header("x-cache-status").is_some());
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = origin_hits(&origin, "/live/alice/index.m3u8") - before;
    let seconds = start.elapsed().as_secs() as usize + 1;
    assert!(
        asked <= seconds + 1,
        "40 playlist requests over {seconds} s reached the origin {asked} times"
    );
    // A player through the edge plays it.
    let (ok, err) = ffmpeg_decodes(&edge.url("/live/alice/index.m3u8"), 2);
    assert!(ok, "ffmpeg could not play through the edge: {err}");
    // Hostile paths stop at the edge.
    let hostile = raw_get(edge.http, b"/live/alice/..%2f..%2fsign.keys").map(|r| r.0);
    assert!(matches!(hostile, Some(400 | 404)), "{hostile:?}");
    // The edge's sidecar has nothing to complain of (no RTMP, no streams of its own).
    let log = edge.read("run.log");
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
}

#[test]
fn private_streams_are_checked_at_the_edge_and_shared_there() {
    let origin = Server::start(Options::default());
    let edge = edge_of(&origin);
    let key = origin.key("add", "carol");
    assert!(origin.cli(&["keys", "private", "carol"]).status.success());
    let _p = Publisher::start(&key.url(), 120);
    // Private names are not listed: the playlist on disk says it plays.
    wait_for("carol's playlist", Duration::from_secs(30), || {
        std::fs::read_to_string(origin.data("live/carol/index.m3u8"))
            .ok()
            .filter(|p| segments(p).len() >= 2)
    });
    let sign = |ttl: &str| {
        let out = origin.cli(&["sign", "/live/carol/index.m3u8", "--ttl", ttl, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["path"].as_str().unwrap().to_string()
    };
    let one = sign("10m");
    let two = sign("20m");
    assert_ne!(one, two);
    let playlist = wait_segments(&edge.url(&one));
    let seg = segments(&playlist)[0].clone();
    let base = |signed: &str| signed.trim_end_matches("index.m3u8").to_string();
    let first = http_get(&edge.url(&format!("{}{seg}", base(&one)))).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    // Another viewer, another token: the same cached copy.
    let second = http_get(&edge.url(&format!("{}{seg}", base(&two)))).unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-cache-status"), Some("HIT"));
    assert_eq!(second.body, first.body);
    // The origin was asked for the public path (no token), once.
    let public = format!("/live/carol/{seg}");
    assert_eq!(origin_hits(&origin, &public), 1);
    assert!(!origin.read("logs/access.log").contains("/s/"));

    // Tampered and expired tokens are refused at the edge: the origin hears nothing.
    let logged = origin.read("logs/access.log").lines().count();
    let mut tampered = one.clone().into_bytes();
    let at = one.find('.').unwrap() + 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        http_get(&edge.url(&format!("{}{seg}", base(&tampered))))
            .unwrap()
            .status,
        404
    );
    let short = sign("1s");
    wait_for("the short link to expire", Duration::from_secs(10), || {
        (http_get(&edge.url(&short)).unwrap().status == 404).then_some(())
    });
    assert_eq!(origin.read("logs/access.log").lines().count(), logged);
    // Without a token, nothing private: not from the cache the signed viewers filled, and
    // not from the origin.
    for path in ["/live/carol/index.m3u8", public.as_str()] {
        assert_eq!(http_get(&edge.url(path)).unwrap().status, 404, "{path}");
    }
}
