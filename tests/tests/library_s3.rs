//! The library in S3-compatible storage, against a real S3 server (s3s-fs, which checks
//! every signature): an imported item is uploaded (segments, playlists, master, meta.json
//! last) and then served from the bucket by nginx at the origin and at an edge that reads
//! the bucket itself; private items only through signed links; privacy changes move the
//! objects; removal deletes them; a sidecar killed mid-upload leaves no half item visible
//! and finishes at its next start.

use std::path::Path;
use std::time::Duration;

use streamedge_tests::*;

/// `[library]` in the bucket behind `endpoint`, with a credentials file of its own.
fn use_bucket(s: &Server, endpoint: &str) {
    let creds = s.path("s3.credentials");
    S3Store::write_credentials(&creds);
    let endpoint = endpoint.to_string();
    s.edit_config(move |t| {
        let mut lib = toml::Table::new();
        lib.insert("storage".into(), "s3".into());
        lib.insert("endpoint".into(), endpoint.into());
        lib.insert("region".into(), "us-east-1".into());
        lib.insert("bucket".into(), S3_BUCKET.into());
        lib.insert("credentials_file".into(), "s3.credentials".into());
        t.insert("library".into(), lib.into());
    });
}

fn origin_with_bucket(endpoint: &str) -> Server {
    let mut s = Server::init(Options::default());
    use_bucket(&s, endpoint);
    s.run();
    s
}

fn edge_with_bucket(origin: &Server, endpoint: &str) -> Server {
    let mut e = Server::init(Options {
        init_args: vec![
            "--edge".into(),
            "--origin".into(),
            format!("http://127.0.0.1:{}", origin.http),
        ],
        ..Options::default()
    });
    std::fs::copy(origin.data("sign.keys"), e.data("sign.keys")).unwrap();
    use_bucket(&e, endpoint);
    e.run();
    e
}

/// `library import FILE --json [extra]`: the new item's id.
fn import(s: &Server, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["library", "import", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = s.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["id"].as_str().unwrap().to_string()
}

/// Waits until item `id` is up whole under `prefix` and only its meta.json is left here.
fn wait_uploaded(s: &Server, s3: &S3Store, id: &str, prefix: &str) -> Vec<String> {
    wait_for("the item in the bucket", Duration::from_secs(90), || {
        let up = s3.keys(&format!("{prefix}/{id}"));
        let here = relative_files(&s.data(&format!("vod/{id}")));
        (up.iter().any(|k| k.ends_with("/meta.json")) && here == ["meta.json"]).then_some(up)
    })
}

fn sign(s: &Server, path: &str) -> String {
    let out = s.cli(&["sign", path, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["path"].as_str().unwrap().to_string()
}

/// The first segment (or init file) a rendition playlist names.
fn first_media(playlist: &str) -> String {
    playlist
        .lines()
        .find_map(|l| {
            l.strip_prefix("#EXT-X-MAP:URI=\"")
                .map(|m| m.trim_end_matches('"').to_string())
                .or_else(|| (!l.starts_with('#') && !l.is_empty()).then(|| l.to_string()))
        })
        .unwrap()
}

fn requests_for(s: &Server, needle: &str) -> usize {
    s.read("logs/access.log")
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn items_are_uploaded_whole_and_played_from_the_bucket_at_the_origin_and_at_an_edge() {
    let s3 = S3Store::start();
    let origin = origin_with_bucket(&s3.endpoint());
    assert!(origin.read("nginx.conf").contains("streamedge_hls_bucket"));
    let clip = media_dir().join("clip.mp4");
    let id = import(&origin, &clip, &["--title", "In the bucket"]);
    let keys = wait_uploaded(&origin, &s3, &id, "public");
    let rel: Vec<&str> = keys
        .iter()
        .map(|k| k.trim_start_matches(&format!("public/{id}/")))
        .collect();
    assert!(
        rel.contains(&"master.m3u8") && rel.contains(&"meta.json"),
        "{rel:?}"
    );
    assert!(
        rel.iter()
            .any(|r| r.ends_with(".m4s") || r.ends_with(".ts")),
        "{rel:?}"
    );
    // Still in the library, as its catalogue says.
    let list = origin.cli(&["library", "list", "--json"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));

    // The origin serves it from the bucket, untouched, with its own headers and no bucket's.
    let master = http_get(&origin.url(&format!("/vod/{id}/master.m3u8"))).unwrap();
    assert_eq!(master.status, 200, "{}", origin.read("logs/error.log"));
    assert_eq!(
        master.body,
        std::fs::read(s3.object(&format!("public/{id}/master.m3u8"))).unwrap()
    );
    assert_eq!(
        master.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(master.header_all("access-control-allow-origin"), ["*"]);
    assert!(
        master
            .headers
            .iter()
            .all(|(h, _)| !h.to_ascii_lowercase().starts_with("x-amz")),
        "{:?}",
        master.headers
    );
    let rendition = master
        .text()
        .lines()
        .find(|l| l.ends_with(".m3u8"))
        .unwrap()
        .to_string();
    let dir = rendition.trim_end_matches("index.m3u8").to_string();
    let playlist = http_get(&origin.url(&format!("/vod/{id}/{rendition}"))).unwrap();
    assert_eq!(playlist.status, 200);
    let media = format!("{dir}{}", first_media(&playlist.text()));
    let seg = http_get(&origin.url(&format!("/vod/{id}/{media}"))).unwrap();
    assert_eq!(seg.status, 200);
    assert_eq!(
        seg.body,
        std::fs::read(s3.object(&format!("public/{id}/{media}"))).unwrap()
    );
    let (ok, err) = ffmpeg_decodes(&origin.url(&format!("/vod/{id}/master.m3u8")), 2);
    assert!(ok, "{err}");
    // HEAD (asked of the bucket as a GET, as signed) and a CORS preflight, the module's own.
    let head =
        format!("HEAD /vod/{id}/master.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (status, bytes) = raw_exchange(origin.http, head.as_bytes()).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert!(
        String::from_utf8_lossy(&bytes).ends_with("\r\n\r\n"),
        "a body after HEAD"
    );
    let preflight = format!("OPTIONS /vod/{id}/master.m3u8 HTTP/1.1\r\nHost: x\r\nOrigin: https://elsewhere.example\r\nConnection: close\r\n\r\n");
    let (status, bytes) = raw_exchange(origin.http, preflight.as_bytes()).unwrap();
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&bytes));
    // A still of an item in the bucket: its segment comes back for it and goes again; the
    // still is uploaded like the rest, and served.
    let out = origin.cli(&["library", "thumbnails", &id, "--at", "3s", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let thumb = format!("public/{id}/thumb-3000.jpg");
    wait_for("the still in the bucket", Duration::from_secs(30), || {
        let here = relative_files(&origin.data(&format!("vod/{id}")));
        (s3.object(&thumb).exists() && here == ["meta.json"]).then_some(())
    });
    let still = http_get(&origin.url(&format!("/vod/{id}/thumb-3000.jpg"))).unwrap();
    assert_eq!(still.status, 200);
    assert_eq!(still.body, std::fs::read(s3.object(&thumb)).unwrap());
    assert!(still.body.starts_with(&[0xff, 0xd8]));
    // Nothing but library files: meta.json is not served, a missing file is a 404.
    for path in ["meta.json", "nothing.m3u8", "720p/nothing.m4s"] {
        let r = http_get(&origin.url(&format!("/vod/{id}/{path}"))).unwrap();
        assert_eq!(r.status, 404, "{path}");
    }

    // A private item: under private/, refused on the plain path, played by a signed link.
    let song = media_dir().join("song.m4a");
    let pid = import(&origin, &song, &["--private"]);
    wait_uploaded(&origin, &s3, &pid, "private");
    assert!(s3.keys(&format!("public/{pid}")).is_empty());
    let plain = format!("/vod/{pid}/master.m3u8");
    assert_eq!(http_get(&origin.url(&plain)).unwrap().status, 404);
    let signed = sign(&origin, &plain);
    assert_eq!(http_get(&origin.url(&signed)).unwrap().status, 200);
    // A link of the older form still moves to its signed path (the module answers it, not
    // the bucket).
    let token = signed.split('/').nth(2).unwrap();
    let old = http_get_once(&origin.url(&format!("{plain}?st={token}"))).unwrap();
    assert_eq!(old.status, 302);
    assert_eq!(old.header("location"), Some(signed.as_str()));

    // An edge with the same [library] reads the bucket itself: the origin is not asked.
    let asked = requests_for(&origin, &format!("/vod/{pid}/"));
    let edge = edge_with_bucket(&origin, &s3.endpoint());
    let poster = format!(
        "/vod/{id}/{}",
        rel.iter().find(|r| r.ends_with(".jpg")).unwrap()
    );
    let first = http_get(&edge.url(&poster)).unwrap();
    assert_eq!(first.status, 200, "{}", edge.read("logs/error.log"));
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    assert_eq!(first.header("content-type"), Some("image/jpeg"));
    let again = http_get(&edge.url(&poster)).unwrap();
    assert_eq!(again.header("x-cache-status"), Some("HIT"));
    assert_eq!(again.body, first.body);
    assert_eq!(requests_for(&origin, &poster), 0);
    let (ok, err) = ffmpeg_decodes(&edge.url(&format!("/vod/{id}/master.m3u8")), 2);
    assert!(ok, "{err}");
    // Private at the edge: not on the plain path; a signed one plays, whoever's token;
    // a signed link to a public item plays too; a tampered token is refused.
    assert_eq!(http_get(&edge.url(&plain)).unwrap().status, 404);
    let at_edge = http_get(&edge.url(&signed)).unwrap();
    assert_eq!(at_edge.status, 200);
    assert_eq!(
        at_edge.body,
        std::fs::read(s3.object(&format!("private/{pid}/master.m3u8"))).unwrap()
    );
    let other = sign(&origin, &plain);
    assert_eq!(
        http_get(&edge.url(&other))
            .unwrap()
            .header("x-cache-status"),
        Some("HIT")
    );
    let public_signed = sign(&origin, &format!("/vod/{id}/master.m3u8"));
    let r = http_get(&edge.url(&public_signed)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, master.body);
    assert_eq!(r.header_all("access-control-allow-origin"), ["*"]);
    // A character in the middle of the signature, another.
    let mut tampered = signed.clone().into_bytes();
    let at = signed.find("/vod/").unwrap() - 8;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(http_get(&edge.url(&tampered)).unwrap().status, 404);
    assert_eq!(requests_for(&origin, &format!("/vod/{pid}/")), asked);

    // Made public: its objects move to public/, and the plain path plays.
    let out = origin.cli(&["library", "public", &pid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s3.keys(&format!("private/{pid}")).is_empty());
    assert!(s3
        .keys(&format!("public/{pid}"))
        .iter()
        .any(|k| k.ends_with("/meta.json")));
    assert_eq!(http_get(&origin.url(&plain)).unwrap().status, 200);
    let master_a = format!("/vod/{pid}/audio/index.m3u8");
    let r = http_get(&edge.url(&master_a)).unwrap();
    assert_eq!(
        r.status,
        200,
        "{}",
        s3.keys(&format!("public/{pid}")).join(" ")
    );
    // And private again: public/ is emptied, and neither the origin nor the edge answers
    // the plain path (for what the edge had not kept).
    let out = origin.cli(&["library", "private", &pid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s3.keys(&format!("public/{pid}")).is_empty());
    assert_eq!(http_get(&origin.url(&plain)).unwrap().status, 404);
    let audio = format!("/vod/{pid}/audio/{}", first_media(&r.text()));
    assert_eq!(http_get(&edge.url(&audio)).unwrap().status, 404);
    let signed_audio = sign(&origin, &audio);
    assert_eq!(http_get(&edge.url(&signed_audio)).unwrap().status, 200);

    // Removed: the objects go, the origin answers 404, and so does the edge for what it
    // had not cached.
    let out = origin.cli(&["library", "remove", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s3.keys(&format!("public/{id}")).is_empty());
    assert_eq!(
        http_get(&origin.url(&format!("/vod/{id}/master.m3u8")))
            .unwrap()
            .status,
        404
    );
    // (The still was asked of the origin only.)
    let r = http_get(&edge.url(&format!("/vod/{id}/thumb-3000.jpg"))).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn a_killed_upload_leaves_no_half_item_and_the_next_start_finishes_it() {
    let s3 = S3Store::start();
    let valve = Valve::start(s3.port);
    let mut origin = origin_with_bucket(&valve.endpoint());
    let edge = edge_with_bucket(&origin, &s3.endpoint());
    // The first playlist's upload never arrives: the segments are up, nothing names them.
    valve.hold_at(".m3u8 HTTP/1.1");
    let clip = media_dir().join("clip.mp4");
    let id = import(&origin, &clip, &[]);
    let files = relative_files(&origin.data(&format!("vod/{id}")));
    wait_for(
        "the upload to reach the playlists",
        Duration::from_secs(60),
        || valve.holding().then_some(()),
    );
    origin.kill_run();
    let up = s3.keys(&format!("public/{id}"));
    assert!(
        up.iter().any(|k| k.ends_with(".m4s") || k.ends_with(".ts")),
        "{up:?}"
    );
    assert!(
        !up.iter()
            .any(|k| k.ends_with(".m3u8") || k.ends_with("meta.json")),
        "{up:?}"
    );
    // Nothing is lost here, and an edge reading the bucket finds no item to play.
    assert_eq!(relative_files(&origin.data(&format!("vod/{id}"))), files);
    let r = http_get(&edge.url(&format!("/vod/{id}/master.m3u8"))).unwrap();
    assert_eq!(r.status, 404);

    valve.open();
    origin.run();
    let up = wait_uploaded(&origin, &s3, &id, "public");
    let expected: Vec<String> = files.iter().map(|f| format!("public/{id}/{f}")).collect();
    assert_eq!(up, expected);
    // The edge keeps a 404 for a second: then it plays.
    wait_for("the item at the edge", Duration::from_secs(10), || {
        let r = http_get(&edge.url(&format!("/vod/{id}/master.m3u8"))).ok()?;
        (r.status == 200).then_some(())
    });
    let (ok, err) = ffmpeg_decodes(&edge.url(&format!("/vod/{id}/master.m3u8")), 2);
    assert!(ok, "{err}");

    // The bucket does not answer: removal says so and is finished once it does.
    valve.cut();
    let out = origin.cli(&["library", "remove", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("its copy in the bucket is not deleted yet"),
        "{err}"
    );
    assert_eq!(
        http_get(&origin.url(&format!("/vod/{id}/master.m3u8")))
            .unwrap()
            .status,
        404
    );
    valve.open();
    wait_for("the removal to finish", Duration::from_secs(90), || {
        (s3.keys(&format!("public/{id}")).is_empty()
            && !origin.data(&format!(".work/removed-{id}")).exists())
        .then_some(())
    });
}
