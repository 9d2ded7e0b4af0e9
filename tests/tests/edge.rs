//! An edge in front of the home server, on loopback: a second real nginx with the module,
//! configured by `streamedge init --edge --origin URL`, caching the origin's HLS. Segments
//! are asked of the origin once and shared, playlists at most about once a second, signed
//! links are checked at the edge (bad ones never reach the origin) and share one cached
//! copy whatever the token, and private content is never served from the public cache.

use std::time::{Duration, Instant};

use streamedge_tests::*;

/// An edge of `origin`, running, with a copy of the origin's signing secrets.
fn edge_of(origin: &Server) -> Server {
    edge_in_front_of(origin, origin, &[])
}

/// An edge asking `upstream` (the origin, or a shield), with `home`'s signing secrets.
fn edge_in_front_of(upstream: &Server, home: &Server, more: &[&str]) -> Server {
    let mut init_args = vec![
        "--edge".to_string(),
        "--origin".into(),
        format!("http://127.0.0.1:{}", upstream.http),
    ];
    init_args.extend(more.iter().map(|a| a.to_string()));
    let mut e = Server::init(Options {
        init_args,
        ..Options::default()
    });
    std::fs::copy(home.data("sign.keys"), e.data("sign.keys")).unwrap();
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
    assert_eq!(first.header_all("access-control-allow-origin"), ["*"]);
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
    // Hostile paths stop at the edge: the origin hears nothing of them.
    let logged = origin.read("logs/access.log").lines().count();
    for hostile in [
        &b"/live/al!ce/index.m3u8"[..],
        b"/live/alice/.hidden.ts",
        b"/live/alice/x.exe",
    ] {
        let status = raw_get(edge.http, hostile).map(|r| r.0);
        assert!(matches!(status, Some(400 | 404)), "{status:?}");
    }
    // Arguments other than a token do not make a cache miss of their own (a way past the
    // cache to the home uplink): the same cached segment answers.
    for n in 0..5 {
        let r = http_get(&edge.url(&format!("{path}?n={n}"))).unwrap();
        assert_eq!(r.header("x-cache-status"), Some("HIT"), "?n={n}");
    }
    assert_eq!(origin_hits(&origin, &path), 1);
    let since: Vec<String> = origin
        .read("logs/access.log")
        .lines()
        .skip(logged)
        .filter(|l| !l.contains(" /live/alice/index.m3u8 "))
        .map(String::from)
        .collect();
    assert!(since.is_empty(), "reached the origin: {since:?}");

    // Many players asking at once for a segment nobody has yet: one request goes home, the
    // others wait for it (proxy_cache_lock).
    let fresh = wait_for(
        "a segment not asked for yet",
        Duration::from_secs(30),
        || {
            let r = http_get(&edge.url("/live/alice/index.m3u8")).ok()?;
            segments(&r.text())
                .into_iter()
                .find(|s| origin_hits(&origin, &format!("/live/alice/{s}")) == 0)
        },
    );
    let fresh_path = format!("/live/alice/{fresh}");
    let url = edge.url(&fresh_path);
    let players: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || http_get(&url).map(|r| r.status).ok())
        })
        .collect();
    for p in players {
        assert_eq!(p.join().unwrap(), Some(200));
    }
    assert_eq!(origin_hits(&origin, &fresh_path), 1, "12 players at once");
    // The edge's sidecar has nothing to complain of (no RTMP, no streams of its own).
    let log = edge.read("run.log");
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no media sequence in {playlist}"))
}

/// Files in a folder tree.
fn files_below(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_below(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// After a quiet spell (nobody watching through the edge), the first viewer gets a fresh
/// playlist, not the one cached before, whose segments the origin has since deleted: an
/// edge must never serve a stale live playlist of any age while it fetches a new one.
#[test]
fn the_first_viewer_after_a_quiet_spell_gets_a_fresh_playlist() {
    let origin = Server::start(Options::default());
    let edge = edge_of(&origin);
    let key = origin.key("add", "erin");
    let _p = Publisher::start(&key.url(), 120);
    origin.wait_live("erin", true);
    let url = edge.url("/live/erin/index.m3u8");
    let before = media_sequence(&wait_segments(&url));
    wait_for(
        "the origin's playlist to move on",
        Duration::from_secs(60),
        || {
            let now = std::fs::read_to_string(origin.data("live/erin/index.m3u8")).ok()?;
            (media_sequence(&now) >= before + 4).then_some(())
        },
    );
    // Nobody asked for 5 s: the edge forgets the playlist.
    wait_for(
        "the edge to drop the quiet playlist",
        Duration::from_secs(30),
        || (files_below(&edge.path("cache/playlists")) == 0).then_some(()),
    );
    let r = http_get(&url).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache-status"), Some("MISS"));
    let text = r.text();
    assert!(media_sequence(&text) >= before + 4, "{text}");
    for seg in segments(&text) {
        let got = http_get(&edge.url(&format!("/live/erin/{seg}"))).unwrap();
        assert_eq!(got.status, 200, "{seg} of the playlist the edge gave");
    }
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
    // The origin was asked once.
    let public = format!("/live/carol/{seg}");
    assert_eq!(origin_hits(&origin, &public), 1);

    // A signed link with a query token of its own (a viewer trying to have the origin
    // redirect everyone sharing the cached playlist): the playlist still plays for others.
    let poisoned = format!("{one}?st=junk");
    assert_eq!(http_get(&edge.url(&poisoned)).unwrap().status, 200);
    let r = http_get(&edge.url(&two)).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("#EXTM3U"), "{}", r.text());

    // Tampered and expired tokens are refused at the edge: the origin hears nothing.
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
    assert_eq!(
        origin_hits(&origin, &public),
        1,
        "a tampered token reached the origin"
    );
    let short = sign("1s");
    wait_for("the short link to expire", Duration::from_secs(10), || {
        (http_get(&edge.url(&short)).unwrap().status == 404).then_some(())
    });
    // A segment nobody asked for, with the expired link: refused here, unknown there.
    let unasked = wait_for(
        "a segment not asked for yet",
        Duration::from_secs(30),
        || {
            let r = http_get(&edge.url(&two)).ok()?;
            segments(&r.text())
                .into_iter()
                .find(|s| origin_hits(&origin, &format!("/live/carol/{s}")) == 0)
        },
    );
    let expired = format!("{}{unasked}", base(&short));
    assert_eq!(http_get(&edge.url(&expired)).unwrap().status, 404);
    assert_eq!(origin_hits(&origin, &format!("/live/carol/{unasked}")), 0);
    // Without a token, nothing private: not from the cache the signed viewers filled, and
    // not from the origin.
    for path in ["/live/carol/index.m3u8", public.as_str()] {
        assert_eq!(http_get(&edge.url(path)).unwrap().status, 404, "{path}");
    }
    // Not even for a viewer who holds the edge's credential: the edge sends it only with
    // the requests whose token it checked.
    let text = std::fs::read_to_string(origin.data("sign.keys")).unwrap();
    let secrets = streamedge_formats::token::Secrets::parse(&text).unwrap();
    let credential = streamedge_formats::token::edge_credential(&secrets[0]);
    let request = format!(
        "GET /live/carol/index.m3u8 HTTP/1.0\r\nHost: x\r\nX-Streamedge-Edge: {credential}\r\n\r\n"
    );
    let (status, _) = raw_exchange(edge.http, request.as_bytes()).unwrap();
    assert_eq!(status, 404);
}

/// More edges than the uplink carries: two edges in front of a shield in front of the
/// origin. The origin is asked for a segment once, by the shield, and each edge asks the
/// shield once; a private stream plays through both edges, while a viewer at the shield
/// without an edge's credential gets nothing private.
#[test]
fn a_shield_carries_each_segment_home_once_for_the_edges_behind_it() {
    let origin = Server::start(Options::default());
    let shield = edge_in_front_of(&origin, &origin, &["--shield"]);
    assert!(shield
        .read("site.conf")
        .contains("streamedge_hls signed shield;"));
    let a = edge_in_front_of(&shield, &origin, &[]);
    let b = edge_in_front_of(&shield, &origin, &[]);
    let key = origin.key("add", "dave");
    assert!(origin.cli(&["keys", "private", "dave"]).status.success());
    let _p = Publisher::start(&key.url(), 120);
    wait_for("dave's playlist", Duration::from_secs(30), || {
        std::fs::read_to_string(origin.data("live/dave/index.m3u8"))
            .ok()
            .filter(|p| segments(p).len() >= 2)
    });
    let out = origin.cli(&["sign", "/live/dave/index.m3u8", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed = v["path"].as_str().unwrap().to_string();
    let base = signed.trim_end_matches("index.m3u8");

    let playlist = wait_segments(&a.url(&signed));
    let seg = segments(&playlist)[0].clone();
    let from_a = http_get(&a.url(&format!("{base}{seg}"))).unwrap();
    let from_b = http_get(&b.url(&format!("{base}{seg}"))).unwrap();
    assert_eq!((from_a.status, from_b.status), (200, 200));
    assert_eq!(from_a.body, from_b.body);
    // Each edge's own cache status, not the shield's behind it as well.
    assert_eq!(from_b.header_all("x-cache-status"), ["MISS"]);
    assert_eq!(
        from_a.body,
        std::fs::read(origin.data(&format!("live/dave/{seg}"))).unwrap()
    );
    let public = format!("/live/dave/{seg}");
    wait_for("the shield's log", Duration::from_secs(5), || {
        (origin_hits(&shield, &public) == 2).then_some(())
    });
    assert_eq!(
        origin_hits(&origin, &public),
        1,
        "asked of the origin again"
    );
    // Both edges play the stream through the shield.
    assert!(wait_segments(&b.url(&signed)).starts_with("#EXTM3U"));

    // The shield is an edge like the others for viewers: the signed link plays, the public
    // path without a credential is nothing, and a wrong credential is no credential.
    assert_eq!(http_get(&shield.url(&signed)).unwrap().status, 200);
    assert_eq!(http_get(&shield.url(&public)).unwrap().status, 404);
    let request = format!(
        "GET {public} HTTP/1.0\r\nHost: x\r\nX-Streamedge-Edge: bm90LXRoZS1jcmVkZW50aWFs\r\n\r\n"
    );
    let (status, _) = raw_exchange(shield.http, request.as_bytes()).unwrap();
    assert_eq!(status, 404);
}

/// nginx-rtmp numbers segments from 0 again when a publisher comes back to a wiped folder:
/// behind a cache that would hand out the old broadcast under the new one's names. Every
/// segment the edge serves, across a restart and a wiped folder, is the origin's file of
/// that name, and a name always means the same bytes.
#[test]
fn a_publisher_back_after_a_restart_or_a_wiped_folder_never_gets_an_old_segment_served() {
    let origin = Server::start(Options::default());
    let edge = edge_of(&origin);
    let key = origin.key("add", "alice");
    let playlist = edge.url("/live/alice/index.m3u8");
    let mut served: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for round in ["first", "restarted", "wiped"] {
        if round == "wiped" {
            std::fs::remove_dir_all(origin.data("live/alice")).unwrap();
        }
        let publisher = Publisher::start(&key.url(), 120);
        origin.wait_live("alice", true);
        let mut fresh = 0;
        wait_for(
            "three new segments through the edge",
            Duration::from_secs(40),
            || {
                let r = http_get(&playlist).ok().filter(|r| r.status == 200)?;
                for seg in segments(&r.text()) {
                    let got = http_get(&edge.url(&format!("/live/alice/{seg}"))).ok()?;
                    if got.status != 200 {
                        continue;
                    }
                    let file = std::fs::read(origin.data(&format!("live/alice/{seg}")));
                    if let Ok(file) = file {
                        assert!(file == got.body, "{round}: {seg} is not the origin's");
                    }
                    match served.get(&seg) {
                        Some(before) => assert!(before == &got.body, "{round}: {seg} changed"),
                        None => {
                            fresh += 1;
                            served.insert(seg, got.body);
                        }
                    }
                }
                (fresh >= 3).then_some(())
            },
        );
        drop(publisher);
        origin.wait_live("alice", false);
    }
    assert!(served.len() >= 9, "{:?}", served.keys());
}

/// A CA, and a certificate it issued for `name` (PEM: CA, chain, key).
fn ca_and_certificate(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "streamedge test origin CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// An origin serving `chain` and `key` over HTTPS (in place of its placeholder).
fn origin_at(bind: &'static str, https: Option<u16>, chain: &str, key: &str) -> Server {
    let mut s = Server::init(Options {
        bind,
        ..Options::default()
    });
    if let Some(port) = https {
        s.edit_config(|c| {
            c["ports"].as_table_mut().unwrap()["https"] = (port as i64).into();
        });
        s.https = port;
    }
    let dir = s.data("certs/placeholder");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fullchain.pem"), chain).unwrap();
    std::fs::write(dir.join("privkey.pem"), key).unwrap();
    s.run();
    s
}

/// Page requests (`GET /`, served as `/index.html`) an origin has answered.
fn page_hits(s: &Server) -> usize {
    s.read("logs/access.log")
        .lines()
        .filter(|l| l.contains("\"GET /index.html HTTP/1.1\" 200"))
        .count()
}

#[test]
fn an_edge_follows_the_home_to_its_new_address() {
    const NAME: &str = "home.streamedge.test";
    let dns = TestDns::start();
    dns.set(NAME, false, &["127.0.0.1"]);
    let (ca, chain, key) = ca_and_certificate(NAME);
    // The home at its first address, and at its next one (another loopback address, the
    // same port), each with a certificate for the name from a CA the edge trusts.
    let first = origin_at("127.0.0.1", None, &chain, &key);
    let next = origin_at("127.0.0.2", Some(first.https), &chain, &key);
    let mut edge = Server::init(Options {
        init_args: vec![
            "--edge".into(),
            "--origin".into(),
            format!("https://{NAME}:{}", first.https),
        ],
        ..Options::default()
    });
    std::fs::copy(first.data("sign.keys"), edge.data("sign.keys")).unwrap();
    std::fs::write(edge.path("origin-ca.pem"), &ca).unwrap();
    let ns = dns.addr();
    edge.edit_config(|c| {
        let e = c["edge"].as_table_mut().unwrap();
        e.insert("origin_ca".into(), "origin-ca.pem".into());
        e.insert("nameservers".into(), vec![toml::Value::from(ns)].into());
        e.insert("resolve_every".into(), "1s".into());
    });
    edge.run();
    assert!(edge
        .read("nginx.conf")
        .contains(&format!("server 127.0.0.1:{};", first.https)));
    let page = http_get(&edge.url("/")).unwrap();
    assert_eq!(page.status, 200, "{}", edge.read("logs/error.log"));
    assert_eq!((page_hits(&first), page_hits(&next)), (1, 0));

    // The home's address changes: within a lookup or two the edge asks the new one, with
    // no restart, and no request failed meanwhile.
    dns.set(NAME, false, &["127.0.0.2"]);
    wait_for(
        "the edge to ask the new address",
        Duration::from_secs(30),
        || {
            let r = http_get(&edge.url("/")).ok()?;
            assert_eq!(r.status, 200);
            (page_hits(&next) > 0).then_some(())
        },
    );
    assert!(edge
        .read("nginx.conf")
        .contains(&format!("server 127.0.0.2:{};", first.https)));
    assert!(edge.read("run.log").contains(&format!(
        "the origin {NAME} is at 127.0.0.2 now (was 127.0.0.1)"
    )));
    // A lookup that fails keeps the last address.
    dns.set(NAME, false, &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(http_get(&edge.url("/")).unwrap().status, 200);
    assert!(edge.read("nginx.conf").contains("server 127.0.0.2:"));
    edge.stop();
}
