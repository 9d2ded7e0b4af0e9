//! HLS delivery through the module's routes: live streams from nginx-rtmp, library items,
//! hostile paths, private content and signed links. Real nginx, real ffmpeg and ffprobe.

use std::time::Duration;

use streamedge_tests::{
    ffmpeg_decodes, http_get, make_vod_item, raw_get, raw_request, wait_for, Options, Publisher,
    Server,
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
    // A shared cache keeps a live playlist a second; a browser asks again each time.
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=0, s-maxage=1")
    );
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
        // Segment names never come back: any cache may keep them.
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
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

/// A new private name's publishing URL (`keys add NAME --private`).
fn private_key(s: &Server, name: &str) -> String {
    let out = s.cli(&["keys", "add", name, "--private", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    format!(
        "{}/{}",
        v["server_url"].as_str().unwrap(),
        v["stream_key"].as_str().unwrap()
    )
}

/// The token of a signed path `/s/TOKEN/...`.
fn token_in(path: &str) -> &str {
    path.strip_prefix("/s/").unwrap().split('/').next().unwrap()
}

/// The body nginx answers for a name that does not exist: private names without a valid
/// token must look exactly like it.
fn unknown_answer(s: &Server) -> (u16, String) {
    let r = http_get(&s.url("/live/nosuchname/index.m3u8")).unwrap();
    (r.status, r.text())
}

#[test]
fn a_private_live_stream_plays_only_from_a_signed_link() {
    let s = Server::start(Options::default());
    let key = private_key(&s, "carol");
    let _p = Publisher::start(&key, 40);
    wait_playlist(&s, "carol");
    // Not listed, not playable without a token, and answered like a name that does not
    // exist, so names cannot be guessed.
    let unknown = unknown_answer(&s);
    assert_eq!(unknown.0, 404);
    assert!(s.streams().iter().all(|(n, _)| n != "carol"));
    for path in ["/live/carol/index.m3u8", "/live/carol/0.ts"] {
        let r = http_get(&s.url(path)).unwrap();
        assert_eq!((r.status, r.text()), unknown, "{path}");
    }

    let signed = token_of(&s, &["/live/carol", "--ttl", "10m"]);
    assert!(
        signed.starts_with("/s/") && signed.ends_with("/live/carol/"),
        "{signed}"
    );
    let token = token_in(&signed).to_string();
    let r = http_get(&s.url(&signed)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    // The playlist is nginx-rtmp's file as it is: relative segment URIs inherit the token
    // from the path.
    let playlist = r.text();
    let base = signed.trim_end_matches("index.m3u8");
    for seg in lines(&playlist) {
        assert!(seg.ends_with(".ts") && !seg.contains(['?', '/']), "{seg}");
        let r = http_get(&s.url(&format!("{base}{seg}"))).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        assert_eq!(
            r.header("cache-control"),
            Some("private, max-age=31536000, immutable")
        );
        assert_eq!(r.header("content-type"), Some("video/mp2t"));
    }
    let (ok, err) = ffmpeg_decodes(&s.url(&signed), 2);
    assert!(ok, "ffmpeg could not play the signed link: {err}");

    // Links of the older form keep working: the playlist moves to the signed path, and
    // segments with the token in the query are still served.
    let old = format!("/live/carol/index.m3u8?st={token}");
    let r = raw_get(s.http, old.as_bytes()).unwrap();
    let head = String::from_utf8_lossy(&r.1);
    assert_eq!(r.0, 302, "{head}");
    assert!(
        head.contains(&format!("Location: {signed}index.m3u8\r\n")),
        "{head}"
    );
    let (ok, err) = ffmpeg_decodes(&s.url(&old), 2);
    assert!(ok, "ffmpeg could not play the older link: {err}");
    let seg = lines(&playlist)[0];
    let r = http_get(&s.url(&format!("/live/carol/{seg}?st={token}"))).unwrap();
    assert_eq!(r.status, 200);

    // Tampered, for another stream, for another address, expired: like an unknown name.
    let tampered = signed.replacen("/s/", "/s/1", 1);
    let other = token_of(&s, &["/live/dave"]);
    let other_here = format!("/s/{}/live/carol/index.m3u8", token_in(&other));
    let elsewhere = token_of(&s, &["/live/carol", "--ip", "192.0.2.44"]);
    let short = token_of(&s, &["/live/carol", "--ttl", "1s"]);
    let expired_at = std::time::Instant::now() + Duration::from_millis(2100);
    for bad in [&tampered, &other_here, &elsewhere] {
        let r = http_get(&s.url(bad)).unwrap();
        assert_eq!((r.status, r.text()), unknown, "{bad}");
    }
    let here = token_of(&s, &["/live/carol", "--ip", "127.0.0.1"]);
    assert_eq!(http_get(&s.url(&here)).unwrap().status, 200);
    std::thread::sleep(expired_at.saturating_duration_since(std::time::Instant::now()));
    let r = http_get(&s.url(&short)).unwrap();
    assert_eq!((r.status, r.text()), unknown, "expired");
    // An expiry in another spelling of the same number is another token: refused.
    let (exp, mac) = token.split_once('.').unwrap();
    let r = http_get(&s.url(&format!("/s/0{exp}.{mac}/live/carol/index.m3u8"))).unwrap();
    assert_eq!((r.status, r.text()), unknown, "a leading zero");
    // '+' is not in the token alphabet at all: a malformed path, whatever the name.
    let r = http_get(&s.url(&format!("/s/+{exp}.{mac}/live/carol/index.m3u8"))).unwrap();
    assert_eq!(r.status, 400, "a plus sign");

    // RTMP play follows the same rule, as nginx-rtmp asks the module (its play callback):
    // without a valid token, a private name is refused like one that does not exist.
    let play = |name: &str, st: Option<&str>| {
        let st = st.map(|t| format!("&st={t}")).unwrap_or_default();
        let body = format!("app=live&addr=127.0.0.1&clientid=900&call=play&name={name}{st}");
        streamedge_tests::callback(s.internal, body.as_bytes())
    };
    let unknown_play = play("nosuchname", None);
    assert_eq!(unknown_play, Some(403));
    assert_eq!(play("carol", None), unknown_play);
    assert_eq!(play("carol", Some(token_in(&other))), unknown_play);
    assert_eq!(play("carol", Some(token_in(&elsewhere))), unknown_play);
    assert_eq!(play("carol", Some(&token)), Some(200));

    // The secret never appears in a log; the access log has no tokens either.
    let secrets = std::fs::read_to_string(s.data("sign.keys")).unwrap();
    let secret = secrets.split('"').nth(1).unwrap();
    assert!(!s.all_logs().contains(secret));
    assert!(!s.read("logs/access.log").contains(&token));
}

/// Whether ffmpeg reads a second of a live stream over RTMP.
fn rtmp_plays(url: &str) -> (bool, String) {
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtmp_live",
            "live",
        ])
        .args(["-i", url, "-t", "1", "-f", "null", "-"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rtmp_players_need_a_token_for_private_streams() {
    // One worker: with several, nginx-rtmp plays a stream only to players that reach the
    // publisher's worker, which is chance (the callbacks are tested with two, above).
    let mut s = Server::init(Options::default());
    s.edit_config(|c| {
        c["nginx"]["worker_processes"] = "1".into();
    });
    s.run();
    let public = s.key("add", "pubcam");
    let private = private_key(&s, "privcam");
    let _p1 = Publisher::start(&public.url(), 40);
    let _p2 = Publisher::start(&private, 40);
    wait_playlist(&s, "pubcam");
    wait_playlist(&s, "privcam");
    let url = |name: &str| format!("rtmp://127.0.0.1:{}/live/{name}", s.rtmp);
    let (ok, err) = rtmp_plays(&url("pubcam"));
    assert!(ok, "a public stream did not play over RTMP: {err}");
    let (ok, _) = rtmp_plays(&url("privcam"));
    assert!(!ok, "a private stream played over RTMP without a token");
    let (ok, _) = rtmp_plays(&url("nosuchname"));
    assert!(!ok);
    // `streamedge sign` prints the RTMP address that plays it.
    let out = s.cli(&["sign", "/live/privcam", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed = v["rtmp"].as_str().unwrap().to_string();
    assert!(
        signed.starts_with(&url("privcam")) && signed.contains("?st="),
        "{signed}"
    );
    let (ok, err) = rtmp_plays(&signed);
    assert!(ok, "the signed RTMP link did not play: {err}");
    assert!(!s.read("logs/access.log").contains("st="));
}

#[test]
fn signed_paths_serve_files_only_never_links_fifos_or_devices() {
    let s = Server::start(Options::default());
    s.key("add", "someone");
    make_vod_item(
        &s.data("vod"),
        "priv2",
        "{\"id\":\"priv2\",\"private\":true}",
    );
    let item = s.data("vod/priv2");
    std::os::unix::fs::symlink("/etc/passwd", item.join("evil.m3u8")).unwrap();
    std::os::unix::fs::symlink("../../keys.toml", item.join("keys.m3u8")).unwrap();
    std::os::unix::fs::symlink("/etc", item.join("etc")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", item.join("zero.ts")).unwrap();
    std::os::unix::fs::symlink(&item, s.data("vod/linked")).unwrap();
    nix::unistd::mkfifo(
        &item.join("x.m3u8"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let signed = token_of(&s, &["/vod/priv2"]);
    let base = signed.trim_end_matches("master.m3u8");
    assert_eq!(http_get(&s.url(&signed)).unwrap().status, 200);
    let keys = std::fs::read_to_string(s.data("keys.toml")).unwrap();
    for file in [
        "evil.m3u8",
        "keys.m3u8",
        "etc/passwd.ts",
        "zero.ts",
        "x.m3u8",
    ] {
        let r = http_get(&s.url(&format!("{base}{file}"))).unwrap();
        assert!([403, 404].contains(&r.status), "{file}: {}", r.status);
        let text = r.text();
        assert!(
            !text.contains("root:x:0:0") && !text.contains(&keys),
            "{file}"
        );
    }
    // The FIFO did not hold a worker (nobody ever writes to it): each request above was
    // answered within http_get's 5 s timeout, and the server still answers.
    assert_eq!(http_get(&s.url(&signed)).unwrap().status, 200);
    let linked = format!("/s/{}/vod/linked/master.m3u8", token_in(&signed));
    assert_eq!(http_get(&s.url(&linked)).unwrap().status, 404);
    // A linked meta.json is not read: the item is refused, not exposed.
    make_vod_item(&s.data("vod"), "pub3", "{\"id\":\"pub3\"}");
    make_vod_item(&s.data("vod"), "odd4", "{\"id\":\"odd4\"}");
    std::fs::remove_file(s.data("vod/odd4/meta.json")).unwrap();
    std::os::unix::fs::symlink(s.data("vod/pub3/meta.json"), s.data("vod/odd4/meta.json")).unwrap();
    assert_eq!(
        http_get(&s.url("/vod/pub3/master.m3u8")).unwrap().status,
        200
    );
    assert_eq!(
        http_get(&s.url("/vod/odd4/master.m3u8")).unwrap().status,
        404
    );
    // ACME challenges: a link is not followed either.
    let challenges = s.data("acme/challenge/.well-known/acme-challenge");
    std::os::unix::fs::symlink(s.data("keys.toml"), challenges.join("tok1")).unwrap();
    std::fs::write(challenges.join("tok2"), "tok2.thumbprint").unwrap();
    let r = http_get(&s.url("/.well-known/acme-challenge/tok1")).unwrap();
    assert!(
        [403, 404].contains(&r.status) && !r.text().contains(&keys),
        "{}",
        r.status
    );
    let r = http_get(&s.url("/.well-known/acme-challenge/tok2")).unwrap();
    assert_eq!((r.status, r.text()), (200, "tok2.thumbprint".to_string()));
    assert!(s.crashes().is_empty());
}

/// A GET of `path` carrying `X-Streamedge-Edge: credential`: the status.
fn as_edge(s: &Server, path: &str, credential: &str) -> u16 {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Streamedge-Edge: {credential}\r\nConnection: close\r\n\r\n"
    );
    raw_request(s.http, request.as_bytes()).expect("an answer")
}

/// The edge credential of the server's signing secrets, first first.
fn edge_credentials(s: &Server) -> Vec<String> {
    let text = std::fs::read_to_string(s.data("sign.keys")).unwrap();
    streamedge_formats::token::Secrets::parse(&text)
        .unwrap()
        .iter()
        .map(|secret| streamedge_formats::token::edge_credential(secret))
        .collect()
}

#[test]
fn an_edge_with_the_shared_credential_gets_private_content_and_nobody_else() {
    let s = Server::start(Options::default());
    make_vod_item(
        &s.data("vod"),
        "home2",
        r#"{"id":"home2","title":"Holiday","source":"holiday.mp4","kind":"video","duration":4.0,
            "renditions":["v0","v1"],"poster":null,"download":null,"created":"2026-12-02T06:00:00Z","private":true}"#,
    );
    let path = "/vod/home2/master.m3u8";
    assert_eq!(http_get(&s.url(path)).unwrap().status, 404);
    let credential = edge_credentials(&s)[0].clone();
    // An edge has checked its viewer's token: the origin answers it the file.
    assert_eq!(as_edge(&s, path, &credential), 200);
    assert_eq!(as_edge(&s, "/vod/home2/v0/index.m3u8", &credential), 200);
    // Anyone else, with a guess, a truncated or a tampered credential: as if there were none.
    let mut tampered = credential.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    for wrong in [
        "guess".to_string(),
        credential[..credential.len() - 1].to_string(),
        String::from_utf8(tampered).unwrap(),
    ] {
        assert_eq!(as_edge(&s, path, &wrong), 404, "{wrong}");
    }
    // A signed path's token is checked even from an edge.
    assert_eq!(
        as_edge(
            &s,
            "/s/1.AAAAAAAAAAAAAAAAAAAAAA/vod/home2/master.m3u8",
            &credential
        ),
        404
    );
    // A rotated secret: the edge's credential of the previous one keeps working until the
    // next rotation, as links do.
    assert!(s.cli(&["sign", "--rotate-secret"]).status.success());
    wait_for(
        "nginx to load the new secret",
        Duration::from_secs(10),
        || {
            let fresh = edge_credentials(&s)[0].clone();
            (as_edge(&s, path, &fresh) == 200).then_some(())
        },
    );
    assert_eq!(as_edge(&s, path, &credential), 200);
    assert!(
        !s.all_logs().contains(&credential),
        "the credential was logged"
    );
}

#[test]
fn private_library_items_and_secret_rotation() {
    let s = Server::start(Options::default());
    make_vod_item(
        &s.data("vod"),
        "home1",
        // Whole, as the library writes it: the command line changes only whole items.
        r#"{"id":"home1","title":"Holiday","source":"holiday.mp4","kind":"video","duration":4.0,
            "renditions":["v0","v1"],"poster":null,"download":null,"created":"2026-12-02T06:00:00Z"}"#,
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
    for path in ["/vod/home1/master.m3u8", "/vod/home1/v0/index.m3u8"] {
        assert_eq!(http_get(&s.url(path)).unwrap().status, 404, "{path}");
    }

    let first = token_of(&s, &["/vod/home1"]);
    let r = http_get(&s.url(&first)).unwrap();
    assert_eq!(r.status, 200);
    // Served as the file it is.
    assert_eq!(
        r.text(),
        std::fs::read_to_string(s.data("vod/home1/master.m3u8")).unwrap()
    );
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
        || (http_get(&s.url(&first)).unwrap().status == 404).then_some(()),
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
    // Offline and private: not "offline": nothing is said about it, as for no name at all.
    let r = http_get(&s.url("/live/erin/index.m3u8")).unwrap();
    assert_eq!((r.status, r.text()), unknown_answer(&s));
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

/// A stream is listed as live only once it plays: a page that waits for "live" and then
/// loads the playlist gets it at once, never the 404 that hls.js takes as fatal. Before
/// that, the playlist answers 404 from the module itself: nginx never tries to open a
/// playlist that is not there (no "open() failed" line per poll in the error log).
#[test]
fn a_stream_is_listed_live_only_once_its_playlist_plays() {
    let s = Server::start(Options::default());
    let key = s.key("add", "alice");
    let _p = Publisher::start(&key.url(), 30);
    let mut early = Vec::new();
    let playlist = wait_for("alice to be listed live", Duration::from_secs(30), || {
        if s.is_live("alice") {
            let r = http_get(&s.url("/live/alice/index.m3u8")).unwrap();
            assert_eq!(
                r.status, 200,
                "listed live, yet the playlist is {}",
                r.status
            );
            return Some(r.text());
        }
        early.push(http_get(&s.url("/live/alice/index.m3u8")).unwrap().status);
        None
    });
    assert!(early.iter().all(|&st| st == 404), "{early:?}");
    let segments = lines(&playlist);
    assert!(!segments.is_empty(), "{playlist}");
    let r = http_get(&s.url(&format!("/live/alice/{}", segments[0]))).unwrap();
    assert_eq!(r.status, 200);
    let logs = s.all_logs();
    assert!(!logs.contains("index.m3u8\" failed"), "{logs}");
}

/// A name published again serves only the new broadcast: never the previous one's playlist
/// (left on disk until nginx-rtmp writes the new one), nor its segments in the new one.
#[test]
fn a_republished_name_never_serves_the_previous_broadcast() {
    let s = Server::start(Options::default());
    let key = s.key("add", "alice");
    let first = Publisher::start(&key.url(), 6);
    let (ok, err) = first.finish(Duration::from_secs(30));
    assert!(ok, "{err}");
    let old_playlist = std::fs::read_to_string(s.data("live/alice/index.m3u8")).unwrap();
    let old: std::collections::HashSet<String> =
        lines(&old_playlist).into_iter().map(String::from).collect();
    assert!(!old.is_empty(), "{old_playlist}");
    s.wait_live("alice", false);
    let _second = Publisher::start(&key.url(), 30);
    let mut served = 0;
    wait_for("the new broadcast to play", Duration::from_secs(30), || {
        let r = http_get(&s.url("/live/alice/index.m3u8")).unwrap();
        if r.status != 200 {
            return None;
        }
        served += 1;
        let text = r.text();
        let stale: Vec<&str> = lines(&text)
            .into_iter()
            .filter(|seg| old.contains(*seg))
            .collect();
        assert!(
            stale.is_empty(),
            "the previous broadcast's {stale:?} in\n{text}"
        );
        (served >= 3 && s.is_live("alice")).then_some(())
    });
}
