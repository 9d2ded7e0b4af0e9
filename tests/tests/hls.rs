//! HLS delivery through the module's routes: live streams from nginx-rtmp, library items,
//! hostile paths, private content and signed links. Real nginx, real ffmpeg and ffprobe.

use std::time::Duration;

use streamedge_tests::{
    ffmpeg_decodes, http_get, make_vod_item, raw_get, wait_for, Options, Publisher, Server,
};

fn wait_playlist(s: &Server, name: &str) -> String {
    wait_for("the live playlist", Duration::from_secs(25), || {
        std::fs::read_to_string(s.data(&format!("live/{name}/index.m3u8")))
            .ok()
            .filter(|p| p.matches(".ts").count() >= 2)
    })
}

fn lines(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn a_live_stream_plays_through_the_live_routes() {
    let s = Server::start(Options::default());
    let key = s.key("add", "alice");
    let _p = Publisher::start(&key.url(), 20);
    wait_playlist(&s, "alice");
    let r = http_get(&s.url("/live/alice/index.m3u8")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let playlist = r.text();
    assert!(
        !playlist.contains("#EXT-X-ENDLIST"),
        "a live playlist has no end"
    );
    for seg in lines(&playlist) {
        let r = http_get(&s.url(&format!("/live/alice/{seg}"))).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        assert_eq!(r.header("content-type"), Some("video/mp2t"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=10"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.body[0], 0x47,
            "an MPEG-TS packet starts with the sync byte"
        );
        assert_eq!(
            r.body,
            std::fs::read(s.data(&format!("live/alice/{seg}"))).unwrap()
        );
    }
    // nginx's own machinery: ranges, HEAD, conditional requests.
    let seg = lines(&playlist)[0].to_string();
    let client = reqwest::blocking::Client::new();
    let url = s.url(&format!("/live/alice/{seg}"));
    let ranged = client
        .get(&url)
        .header("Range", "bytes=0-187")
        .send()
        .unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(ranged.bytes().unwrap().len(), 188);
    let head = client.head(&url).send().unwrap();
    assert_eq!(head.status().as_u16(), 200);
    let etag = head.headers()["etag"].to_str().unwrap().to_string();
    let again = client
        .get(&url)
        .header("If-None-Match", etag)
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    // Preflight for players that send Range from another origin.
    let pre = client
        .request(reqwest::Method::OPTIONS, s.url("/live/alice/index.m3u8"))
        .send()
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Range"));
    // A real player decodes video and audio from it.
    let (ok, err) = ffmpeg_decodes(&s.url("/live/alice/index.m3u8"), 2);
    assert!(ok, "ffmpeg could not play the live stream: {err}");
}

#[test]
fn offline_and_unknown_streams_are_404_without_touching_files() {
    let s = Server::start(Options::default());
    s.key("add", "bob");
    let r = http_get(&s.url("/live/bob/index.m3u8")).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), "{\"name\":\"bob\",\"live\":false}\n");
    // Even when stale files of an old stream are still on disk.
    std::fs::create_dir_all(s.data("live/bob")).unwrap();
    std::fs::write(s.data("live/bob/index.m3u8"), "#EXTM3U\n").unwrap();
    assert_eq!(
        http_get(&s.url("/live/bob/index.m3u8")).unwrap().status,
        404
    );
    let r = http_get(&s.url("/live/nobody/index.m3u8")).unwrap();
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("live"));
    assert_eq!(
        http_get(&s.url("/live/bob/index.html")).unwrap().status,
        404
    );
    assert_eq!(http_get(&s.url("/elsewhere")).unwrap().status, 404);
}

#[test]
fn a_library_item_plays_through_the_vod_routes() {
    let s = Server::start(Options::default());
    make_vod_item(
        &s.data("vod"),
        "clip1",
        "{\"id\":\"clip1\",\"title\":\"Test clip\"}",
    );
    let master = http_get(&s.url("/vod/clip1/master.m3u8")).unwrap();
    assert_eq!(master.status, 200);
    assert_eq!(
        master.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        master.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let variants = lines(&master.text())
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    assert_eq!(variants.len(), 2, "{}", master.text());
    for v in &variants {
        let r = http_get(&s.url(&format!("/vod/clip1/{v}"))).unwrap();
        assert_eq!(r.status, 200, "{v}");
        let media = r.text();
        assert!(media.contains("#EXT-X-PLAYLIST-TYPE:VOD") && media.contains("#EXT-X-ENDLIST"));
        let dir = v.rsplit_once('/').unwrap().0;
        let init = media
            .split("URI=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        for file in lines(&media).into_iter().map(String::from).chain([init]) {
            let r = http_get(&s.url(&format!("/vod/clip1/{dir}/{file}"))).unwrap();
            assert_eq!(r.status, 200, "{dir}/{file}");
            assert_eq!(r.header("content-type"), Some("video/mp4"), "{file}");
            assert!(r.header("cache-control").unwrap().ends_with("immutable"));
        }
    }
    let (ok, err) = ffmpeg_decodes(&s.url("/vod/clip1/master.m3u8"), 3);
    assert!(ok, "ffmpeg could not play the library item: {err}");
    // meta.json is the sidecar's; an item without one is not (yet) in the library.
    assert_eq!(
        http_get(&s.url("/vod/clip1/meta.json")).unwrap().status,
        404
    );
    make_vod_item(&s.data("vod"), "half", "{}");
    std::fs::remove_file(s.data("vod/half/meta.json")).unwrap();
    assert_eq!(
        http_get(&s.url("/vod/half/master.m3u8")).unwrap().status,
        404
    );
}

#[test]
fn hostile_paths_never_reach_outside_the_data_directory() {
    let s = Server::start(Options::default());
    s.key("add", "alice");
    make_vod_item(&s.data("vod"), "clip1", "{}");
    // A symlink inside an item, to a file outside.
    std::os::unix::fs::symlink("/etc/passwd", s.data("vod/clip1/passwd.ts")).unwrap();
    std::os::unix::fs::symlink("/etc", s.data("vod/clip1/etc")).unwrap();
    let corpus: &[&[u8]] = &[
        b"/live/../etc/passwd",
        b"/live/alice/../../../../etc/passwd",
        b"/live/alice/..%2f..%2f..%2fkeys.toml",
        b"/live/%2e%2e/%2e%2e/keys.toml",
        b"/vod/clip1/%2e%2e/%2e%2e/keys.toml",
        b"/vod/clip1/%252e%252e/%252e%252e/keys.toml",
        b"/vod/%252e%252e%252fkeys.toml",
        b"/live/alice/%c0%ae%c0%ae/%c0%ae%c0%ae/keys.toml",
        b"/live/alice/%e0%80%ae%e0%80%ae/x.ts",
        b"/live/alice\\..\\..\\keys.toml",
        b"/vod/clip1/..\\..\\keys.toml",
        b"/live/alice/0.ts%00.m3u8",
        b"/vod/clip1/master.m3u8%00",
        b"//etc/passwd",
        b"/live//etc/passwd",
        b"/vod//etc/passwd",
        b"/vod/clip1//etc/passwd",
        b"/live/alice/%2fetc%2fpasswd",
        b"/vod/clip1/passwd.ts",
        b"/vod/clip1/etc/passwd.ts",
        b"/vod/clip1/../../sign.keys",
        b"/vod/../sign.keys",
        b"/keys.toml",
        b"/sign.keys",
        b"/data/keys.toml",
    ];
    let keys = std::fs::read_to_string(s.data("keys.toml")).unwrap();
    for path in corpus {
        let shown = String::from_utf8_lossy(path);
        let Some((status, response)) = raw_get(s.http, path) else {
            continue; // nginx closed the connection: nothing was read either
        };
        let text = String::from_utf8_lossy(&response);
        assert!([400, 403, 404].contains(&status), "{shown}: {status}");
        assert!(!text.contains("root:x:0:0"), "{shown} returned /etc/passwd");
        assert!(
            !text.contains("sha256:") && !text.contains(&keys),
            "{shown} returned the keys file"
        );
        assert!(
            !text.contains("secrets"),
            "{shown} returned the signing secrets"
        );
    }
    assert!(s.crashes().is_empty());
}

fn token_of(s: &Server, args: &[&str]) -> String {
    let out = s.cli(&[&["sign"], args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["path"].as_str().unwrap().to_string()
}

#[test]
fn a_private_live_stream_plays_only_from_a_signed_link() {
    let s = Server::start(Options::default());
    let key = {
        let out = s.cli(&["keys", "add", "carol", "--private", "--json"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        format!(
            "{}/{}",
            v["server_url"].as_str().unwrap(),
            v["stream_key"].as_str().unwrap()
        )
    };
    let _p = Publisher::start(&key, 30);
    wait_playlist(&s, "carol");
    // Not listed, not playable without a token.
    assert!(s.streams().iter().all(|(n, _)| n != "carol"));
    assert_eq!(
        http_get(&s.url("/live/carol/index.m3u8")).unwrap().status,
        403
    );
    assert_eq!(http_get(&s.url("/live/carol/0.ts")).unwrap().status, 403);

    let signed = token_of(&s, &["/live/carol", "--ttl", "10m"]);
    assert!(signed.starts_with("/live/carol/index.m3u8?st="), "{signed}");
    let token = signed.split_once("?st=").unwrap().1.to_string();
    let r = http_get(&s.url(&signed)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    // Every URI in the playlist carries the token, so players that drop query strings work.
    let playlist = r.text();
    for seg in lines(&playlist) {
        assert!(seg.ends_with(&format!(".ts?st={token}")), "{seg}");
        let r = http_get(&s.url(&format!("/live/carol/{seg}"))).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        assert_eq!(r.header("cache-control"), Some("private, max-age=10"));
    }
    let (ok, err) = ffmpeg_decodes(&s.url(&signed), 2);
    assert!(ok, "ffmpeg could not play the signed link: {err}");

    // Tampered, for another stream, for another address: forbidden, and nothing more said.
    let tampered = signed.replacen("?st=", "?st=1", 1);
    assert_eq!(http_get(&s.url(&tampered)).unwrap().status, 403);
    let other = token_of(&s, &["/live/dave"]);
    let other_token = other.split_once("?st=").unwrap().1;
    let r = http_get(&s.url(&format!("/live/carol/index.m3u8?st={other_token}"))).unwrap();
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("token") && !r.text().contains("expired"));
    let elsewhere = token_of(&s, &["/live/carol", "--ip", "192.0.2.44"]);
    assert_eq!(http_get(&s.url(&elsewhere)).unwrap().status, 403);
    let here = token_of(&s, &["/live/carol", "--ip", "127.0.0.1"]);
    assert_eq!(http_get(&s.url(&here)).unwrap().status, 200);
    // Expired.
    let short = token_of(&s, &["/live/carol", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(http_get(&s.url(&short)).unwrap().status, 403);
    // The secret never appears in a log.
    let secrets = std::fs::read_to_string(s.data("sign.keys")).unwrap();
    let secret = secrets.split('"').nth(1).unwrap();
    assert!(!s.all_logs().contains(secret));
    // Access logs carry no query strings, so no tokens.
    assert!(!s.read("logs/access.log").contains(&token));
}

#[test]
fn private_library_items_and_secret_rotation() {
    let s = Server::start(Options::default());
    make_vod_item(
        &s.data("vod"),
        "home1",
        "{\"id\":\"home1\",\"title\":\"Holiday\"}",
    );
    assert_eq!(
        http_get(&s.url("/vod/home1/master.m3u8")).unwrap().status,
        200
    );
    let out = s.cli(&["library", "private", "home1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        http_get(&s.url("/vod/home1/master.m3u8")).unwrap().status,
        403
    );
    assert_eq!(
        http_get(&s.url("/vod/home1/v0/index.m3u8")).unwrap().status,
        403
    );

    let first = token_of(&s, &["/vod/home1"]);
    let r = http_get(&s.url(&first)).unwrap();
    assert_eq!(r.status, 200);
    let token = first.split_once("?st=").unwrap().1;
    assert!(lines(&r.text())
        .iter()
        .all(|v| v.ends_with(&format!("index.m3u8?st={token}"))));
    let (ok, err) = ffmpeg_decodes(&s.url(&first), 2);
    assert!(ok, "ffmpeg could not play the signed library item: {err}");

    // Rotation: the new secret signs, the previous one still verifies...
    assert!(s.cli(&["sign", "--rotate-secret"]).status.success());
    let second = token_of(&s, &["/vod/home1"]);
    wait_for(
        "nginx to load the new secret",
        Duration::from_secs(10),
        || (http_get(&s.url(&second)).unwrap().status == 200).then_some(()),
    );
    assert_eq!(http_get(&s.url(&first)).unwrap().status, 200);
    // ...until the next rotation.
    assert!(s.cli(&["sign", "--rotate-secret"]).status.success());
    wait_for(
        "nginx to drop the oldest secret",
        Duration::from_secs(10),
        || (http_get(&s.url(&first)).unwrap().status == 403).then_some(()),
    );
    assert_eq!(http_get(&s.url(&second)).unwrap().status, 200);

    assert!(s.cli(&["library", "public", "home1"]).status.success());
    assert_eq!(
        http_get(&s.url("/vod/home1/master.m3u8")).unwrap().status,
        200
    );
    let bad = s.cli(&["library", "private", "nothing"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no library item \"nothing\""));
}

#[test]
fn privacy_of_a_name_can_change_and_applies_to_new_viewers_at_once() {
    let s = Server::start(Options::default());
    s.key("add", "erin");
    let r = http_get(&s.url("/live/erin/index.m3u8")).unwrap();
    assert_eq!(
        (r.status, r.header("content-type")),
        (404, Some("application/json"))
    );
    assert!(s.cli(&["keys", "private", "erin"]).status.success());
    // Offline and private: forbidden, not "offline": nothing is said about it.
    assert_eq!(
        http_get(&s.url("/live/erin/index.m3u8")).unwrap().status,
        403
    );
    assert!(s.streams().is_empty(), "a private name is not listed");
    let list = s.cli(&["keys", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("private"));
    assert!(s.cli(&["keys", "public", "erin"]).status.success());
    assert_eq!(
        http_get(&s.url("/live/erin/index.m3u8")).unwrap().status,
        404
    );
    assert_eq!(s.streams(), vec![("erin".to_string(), false)]);
}
