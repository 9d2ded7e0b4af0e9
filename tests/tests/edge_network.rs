//! Edges on a network of the test's own: the home server (the origin) behind an uplink
//! shaped to 20 Mbit/s (`tc tbf`), two edges and the viewers each on a host of their own
//! (network namespaces cabled to a router namespace), nothing sent anywhere else.
//! 40 players of a 2.5 Mbit/s stream, twice what that uplink could carry, play through the
//! edges for a minute, through a 5 s freeze of the origin; a control run with nginx's
//! default cache settings shows the duplicates the edges' settings remove.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use streamedge_tests::*;

const UPLINK: &str = "20mbit";
const STREAM_KBIT: u32 = 2500;

/// The home server on a host with a shaped uplink, publishing a 2.5 Mbit/s stream in 4 s
/// segments (with edges in front, a playlist kept 1 to 2 s is at most half a segment).
struct Home {
    host: Host,
    server: Server,
    _publisher: Publisher,
}

fn home(net: &mut Network) -> Home {
    let host = net.host();
    host.shape_uplink(UPLINK);
    let (server, publisher) = host.ns.run(|| {
        let mut s = Server::init(Options {
            bind: "0.0.0.0",
            ..Options::default()
        });
        s.edit_config(|c| {
            c["live"]
                .as_table_mut()
                .unwrap()
                .insert("fragment".into(), "4s".into());
        });
        s.run();
        let key = s.key("add", "alice");
        let p = Publisher::start_bitrate(&key.url(), 600, STREAM_KBIT);
        s.wait_live("alice", true);
        (s, p)
    });
    Home {
        host,
        server,
        _publisher: publisher,
    }
}

/// An edge of `home` on a host of its own, as `streamedge init --edge` makes it.
fn edge(net: &mut Network, home: &Home) -> (Host, Server) {
    let host = net.host();
    let origin = home.host.url(home.server.http, "");
    let server = host.ns.run(|| {
        let mut e = Server::init(Options {
            bind: "0.0.0.0",
            init_args: vec!["--edge".into(), "--origin".into(), origin],
            ..Options::default()
        });
        std::fs::copy(home.server.data("sign.keys"), e.data("sign.keys")).unwrap();
        e.run();
        e
    });
    (host, server)
}

/// The origin's answers to `from` (an edge's address), by path.
fn asked_by(home: &Home, from: &str) -> BTreeMap<String, usize> {
    let mut paths = BTreeMap::new();
    for line in home.server.read("logs/access.log").lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some(from) {
            continue;
        }
        if let Some(path) = line.split('"').nth(1).and_then(|r| r.split(' ').nth(1)) {
            *paths.entry(path.to_string()).or_default() += 1;
        }
    }
    paths
}

fn segment_requests(asked: &BTreeMap<String, usize>) -> Vec<(&String, &usize)> {
    asked.iter().filter(|(p, _)| p.ends_with(".ts")).collect()
}

/// Waits until `url` (from the viewers' host) lists its full 12 s, as a stream that has been
/// on for a while does when viewers come.
fn wait_playable(viewers: &Host, url: &str) {
    viewers.ns.run(|| {
        wait_for(
            "a playlist of three segments",
            Duration::from_secs(60),
            || {
                http_get(url)
                    .ok()
                    .filter(|r| r.status == 200 && r.text().matches(".ts").count() >= 3)
            },
        )
    });
}

/// `players` players of each URL at once, from the viewers' host, for `time`.
fn audience(viewers: &Host, urls: &[String], players: usize, time: Duration) -> Vec<Watched> {
    viewers.ns.run(|| {
        let all: Vec<_> = urls
            .iter()
            .flat_map(|u| std::iter::repeat_n(u.clone(), players))
            .enumerate()
            .map(|(i, url)| {
                std::thread::spawn(move || {
                    // Players arrive over a few seconds, not in one instant.
                    std::thread::sleep(Duration::from_millis(97 * i as u64 % 4000));
                    play_live(&url, time)
                })
            })
            .collect();
        all.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn forty_players_through_two_edges_behind_a_20_mbit_uplink() {
    let mut net = Network::new();
    let home = home(&mut net);
    let edges = [edge(&mut net, &home), edge(&mut net, &home)];
    let viewers = net.host();
    let urls: Vec<String> = edges
        .iter()
        .map(|(h, e)| h.url(e.http, "/live/alice/index.m3u8"))
        .collect();
    for u in &urls {
        wait_playable(&viewers, u);
    }
    let sent_before = home.host.sent_bytes();
    let started = Instant::now();
    // Half a minute in, the origin stops answering for 5 s.
    let (watched, frozen) = std::thread::scope(|scope| {
        let frozen = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(30));
            let from = Instant::now();
            home.server.freeze_nginx(Duration::from_secs(5));
            from..Instant::now()
        });
        let watched = audience(&viewers, &urls, 20, Duration::from_secs(60));
        (watched, frozen.join().unwrap())
    });
    let elapsed = started.elapsed().as_secs_f64();
    let sent = home.host.sent_bytes() - sent_before;

    // What every viewer saw: no failed request, no stall, the origin's freeze included; each
    // segment faster than its length but those the freeze held up.
    let mut distinct = BTreeMap::new();
    for (i, w) in watched.iter().enumerate() {
        assert!(w.failures.is_empty(), "player {i}: {:?}", w.failures);
        assert!(
            w.stalls.is_empty(),
            "player {i} stalled (when, how long): {:?}\n{:#?}",
            w.stalls,
            w.segments
        );
        assert!(
            w.segments.len() >= 10,
            "player {i}: {} segments",
            w.segments.len()
        );
        for s in &w.segments {
            let (asked, arrived) = w.fetched(s);
            let held_up = asked < frozen.end && arrived > frozen.start;
            assert!(held_up || s.pace() < 1.0, "player {i}: {s:?}");
            distinct.insert(s.uri.clone(), s.bytes);
        }
    }
    let stream_bytes: usize = distinct.values().sum();
    let viewer_bytes: usize = watched.iter().map(Watched::bytes).sum();
    // It was the stream asked for: about 2.5 Mbit/s.
    let rate = stream_bytes as f64 * 8.0 / (distinct.len() as f64 * 4.0) / 1000.0;
    assert!((2000.0..3300.0).contains(&rate), "{rate} kbit/s");

    // The origin: each segment at most once per edge, playlists about once a second.
    for (h, _) in &edges {
        let asked = asked_by(&home, &h.address);
        let segments = segment_requests(&asked);
        let twice: Vec<_> = segments.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "asked again by {}: {twice:?}", h.address);
        let playlists = asked.get("/live/alice/index.m3u8").copied().unwrap_or(0);
        assert!(
            playlists as f64 <= elapsed + 2.0,
            "{playlists} playlists in {elapsed:.0} s from {}",
            h.address
        );
    }
    // The uplink carried the stream once per edge, not once per viewer.
    let edges_share = (2 * stream_bytes) as f64;
    assert!(
        sent as f64 >= 0.95 * edges_share && (sent as f64) < 1.3 * edges_share,
        "{sent} bytes on the uplink for {stream_bytes} bytes of stream"
    );
    assert!(
        viewer_bytes as f64 > 12.0 * sent as f64,
        "viewers got {viewer_bytes} bytes, the uplink carried {sent}"
    );
    eprintln!(
        "40 players, {elapsed:.0} s, {rate:.0} kbit/s: uplink {sent} bytes, viewers {viewer_bytes} \
         bytes ({:.1}x)",
        viewer_bytes as f64 / sent as f64
    );
}

/// The same audience behind caches configured the way nginx's defaults have it (no cache
/// lock, no stale answers while updating): the same segment crosses the uplink many times.
#[test]
fn behind_nginx_default_cache_settings_segments_cross_the_uplink_many_times() {
    let mut net = Network::new();
    let home = home(&mut net);
    let origin = home.host.url(home.server.http, "");
    let caches: Vec<(Host, Nginx)> = (0..2)
        .map(|_| {
            let host = net.host();
            let cache = host.ns.run(|| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("cache");
                let conf = format!(
                    "proxy_cache_path {} keys_zone=plain:8m;
                     server {{
                         listen 0.0.0.0:{{port}};
                         location = / {{ return 200; }}
                         location /live/ {{
                             proxy_pass {origin};
                             proxy_cache plain;
                             proxy_cache_valid 200 10m;
                             location ~ \\.m3u8$ {{
                                 proxy_pass {origin};
                                 proxy_cache plain;
                                 proxy_cache_valid 200 1s;
                             }}
                         }}
                     }}",
                    path.display()
                );
                std::mem::forget(dir);
                Nginx::start(&conf)
            });
            (host, cache)
        })
        .collect();
    let viewers = net.host();
    let urls: Vec<String> = caches
        .iter()
        .map(|(h, n)| h.url(n.port, "/live/alice/index.m3u8"))
        .collect();
    for u in &urls {
        wait_playable(&viewers, u);
    }
    let sent_before = home.host.sent_bytes();
    let watched = audience(&viewers, &urls, 20, Duration::from_secs(30));
    let sent = home.host.sent_bytes() - sent_before;
    let mut distinct = BTreeMap::new();
    for w in &watched {
        for s in &w.segments {
            distinct.insert(s.uri.clone(), s.bytes);
        }
    }
    let stream_bytes: usize = distinct.values().sum();
    let mut repeated = 0;
    for (h, _) in &caches {
        let asked = asked_by(&home, &h.address);
        repeated += segment_requests(&asked)
            .iter()
            .filter(|(_, &n)| n > 1)
            .count();
    }
    assert!(
        repeated > 0,
        "no segment was asked twice by the same cache: {sent} bytes for {stream_bytes}"
    );
    assert!(
        sent as f64 > 1.3 * (2 * stream_bytes) as f64,
        "{sent} bytes on the uplink for {stream_bytes} bytes of stream"
    );
    eprintln!(
        "nginx defaults: {repeated} segments asked again, uplink {sent} bytes for 2 x {stream_bytes}"
    );
}
