//! The live pipeline: an adaptive-bitrate ladder beside nginx-rtmp's source rendition, made
//! by one ffmpeg per live stream. Real nginx-rtmp, a real ffmpeg publisher, ffprobe on the
//! rungs.

use std::time::Duration;

use streamedge_tests::{http_get, http_get_once, wait_for, Options, Publisher, Server};

fn ladder_server() -> Server {
    Server::start(Options {
        transcode: true,
        ..Options::default()
    })
}

/// The media lines of a playlist.
fn lines(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Follows `/live/NAME/` (or its signed form) until it answers with the ladder's master
/// playlist; returns the master's URL path.
fn wait_master(s: &Server, entry: &str) -> String {
    wait_for(
        "the ladder's master playlist",
        Duration::from_secs(60),
        || {
            let r = http_get_once(&s.url(entry)).unwrap();
            (r.status == 302 && r.header("location") == Some("master.m3u8"))
                .then(|| format!("{entry}master.m3u8"))
        },
    )
}

/// The ladder processes (ffmpeg with a stream map) working in stream `name`'s folder.
fn ladders_in(s: &Server, name: &str) -> Vec<i32> {
    let dir = s.data(&format!("live/{name}"));
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
            cwd == dir && String::from_utf8_lossy(&cmd).contains("-var_stream_map")
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The height ffprobe finds in a segment served at `path`.
fn served_height(s: &Server, path: &str) -> u32 {
    let r = http_get(&s.url(path)).unwrap();
    assert_eq!(r.status, 200, "{path}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &r.body).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=height", "-of", "csv=p=0"])
        .arg(file.path())
        .output()
        .unwrap();
    // MPEG-TS lists the stream under its program too: the first line is enough.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no video height in {path}"))
}

/// A 480p stream gets the source and a 360p rung (the 720p and 480p rungs would not be
/// below the source), each playable; `/live/NAME/` points at the master playlist while the
/// ladder runs, and at nothing once the publisher leaves.
/// A ladder that cannot keep up (its ffmpeg held back with SIGSTOP 97% of the time, as an
/// overloaded machine would: at 90% an idle machine still kept up with these small rungs) drops its top rung after ~10 s below real time, says so in
/// the log and the status, and goes on with the rungs below.
#[test]
fn a_ladder_that_falls_behind_drops_its_top_rung() {
    let mut s = Server::init(Options {
        transcode: true,
        ..Options::default()
    });
    live_option(
        &s,
        "ladder",
        toml::Value::Array(vec![360.into(), 240.into()]),
    );
    s.run();
    let key = s.key("add", "slow");
    let _publisher = Publisher::start_sized(&key.url(), 120, "854x480", 25);
    let master = wait_master(&s, "/live/slow/");
    let text = http_get(&s.url(&master)).unwrap().text();
    assert_eq!(
        lines(&text),
        ["index.m3u8", "360p/index.m3u8", "240p/index.m3u8"]
    );
    let pid = ladders_in(&s, "slow")[0];
    let held = std::thread::spawn(move || {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(pid);
        // At most 60 s; ends as soon as the process does (the ladder starts anew).
        for _ in 0..60 {
            if kill(pid, Signal::SIGSTOP).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(970));
            if kill(pid, Signal::SIGCONT).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        let _ = kill(pid, Signal::SIGCONT);
    });
    let status = wait_for("the top rung dropped", Duration::from_secs(90), || {
        let (code, v) = s.api("GET", "/api/live", None, true);
        assert_eq!(code, 200);
        let l = v["slow"].clone();
        (l["dropped"].as_array()?.len() == 1 && l["state"] == "running").then_some(l)
    });
    held.join().unwrap();
    let dropped = status["dropped"][0].as_str().unwrap();
    assert!(dropped.starts_with("360p (at 0."), "{status}");
    assert_eq!(status["rungs"], serde_json::json!(["240p"]), "{status}");
    assert!(
        !ladders_in(&s, "slow").contains(&pid),
        "the slow process is gone"
    );
    // The new ladder's master lists the rung left, and it plays.
    wait_for("the master without 360p", Duration::from_secs(60), || {
        let r = http_get(&s.url("/live/slow/master.m3u8")).ok()?;
        (r.status == 200 && lines(&r.text()) == ["index.m3u8", "240p/index.m3u8"]).then_some(())
    });
    let rung = http_get(&s.url("/live/slow/240p/index.m3u8"))
        .unwrap()
        .text();
    let segment = *lines(&rung).last().expect("a segment");
    assert_eq!(
        served_height(&s, &format!("/live/slow/240p/{segment}")),
        240
    );
    let log = s.read("run.log");
    assert!(log.contains("so its top rung is dropped"), "{log}");
    let text = String::from_utf8_lossy(&s.cli(&["status"]).stdout).into_owned();
    assert!(
        text.contains("ladder slow: running, 240p") && text.contains("dropped 360p"),
        "{text}"
    );
}

/// A stream without sound (some cameras): nginx-rtmp still declares an AAC stream in its
/// fragments, with no channels; the ladder maps video alone and plays.
#[test]
fn a_silent_stream_gets_its_ladder() {
    let s = ladder_server();
    let key = s.key("add", "cam");
    let _publisher = Publisher::start_silent(&key.url(), 120, "854x480", 25);
    let master_path = wait_master(&s, "/live/cam/");
    let master = http_get(&s.url(&master_path)).unwrap().text();
    assert_eq!(
        lines(&master),
        ["index.m3u8", "360p/index.m3u8"],
        "{master}"
    );
    let rung = http_get(&s.url("/live/cam/360p/index.m3u8"))
        .unwrap()
        .text();
    let segment = *lines(&rung).last().expect("a segment");
    assert_eq!(served_height(&s, &format!("/live/cam/360p/{segment}")), 360);
}

#[test]
fn a_live_stream_gets_a_ladder_that_fits_its_source() {
    let s = ladder_server();
    let key = s.key("add", "alice");
    let publisher = Publisher::start_sized(&key.url(), 120, "854x480", 25);
    // From the moment the stream's entry answers, it names a playlist that plays: the
    // source's, or the master once the ladder and the source both have theirs.
    let first = wait_for("alice to play", Duration::from_secs(30), || {
        let r = http_get_once(&s.url("/live/alice/")).unwrap();
        (r.status == 302).then(|| r.header("location").unwrap().to_string())
    });
    assert!(first == "index.m3u8" || first == "master.m3u8", "{first}");
    assert_eq!(
        http_get(&s.url(&format!("/live/alice/{first}")))
            .unwrap()
            .status,
        200
    );
    let master_path = wait_master(&s, "/live/alice/");
    let r = http_get(&s.url(&master_path)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let master = r.text();
    assert_eq!(
        lines(&master),
        ["index.m3u8", "360p/index.m3u8"],
        "{master}"
    );
    assert!(master.contains("RESOLUTION=854x480") && master.contains("RESOLUTION=640x360"));
    for variant in lines(&master) {
        let r = http_get(&s.url(&format!("/live/alice/{variant}"))).unwrap();
        assert_eq!(r.status, 200, "{variant}");
        let playlist = r.text();
        let segment = lines(&playlist)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("no segment in {variant}: {playlist}"));
        let dir = variant.trim_end_matches("index.m3u8");
        let height = served_height(&s, &format!("/live/alice/{dir}{segment}"));
        assert_eq!(height, if dir.is_empty() { 480 } else { 360 }, "{variant}");
    }
    // One ffmpeg for the whole ladder; killed, it is started again and the ladder goes on.
    let pids = ladders_in(&s, "alice");
    assert_eq!(pids.len(), 1, "{pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("a new ladder", Duration::from_secs(30), || {
        let now = ladders_in(&s, "alice");
        (now.len() == 1 && now[0] != pids[0]).then_some(())
    });
    wait_master(&s, "/live/alice/");
    // What the ladder does and costs: the API (the owner's) and `streamedge status`.
    let live = wait_for(
        "the ladder's speed and cost",
        Duration::from_secs(30),
        || {
            let (status, v) = s.api("GET", "/api/live", None, true);
            assert_eq!(status, 200, "{v}");
            let a = v["alice"].clone();
            (a["state"] == "running"
                && a["speed"].as_f64().is_some()
                && a["cpu_seconds"].as_f64() > Some(0.0))
            .then_some(a)
        },
    );
    assert_eq!(live["rungs"], serde_json::json!(["360p"]), "{live}");
    // The restarted ladder too reads nginx-rtmp's push, not the playlist seconds behind it;
    // the push arrived under the bare name (the key in the publisher's URL stayed behind).
    assert_eq!(live["input"], "feed", "{live}");
    assert_eq!(live["restarts"], 1, "{live}");
    assert!(live["last_error"].as_str().is_some(), "{live}");
    assert!(live["peak_memory_mib"].as_f64() > Some(5.0), "{live}");
    assert_eq!(s.api("GET", "/api/live", None, false).0, 401);
    let status = s.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("ladder alice: running, 360p at "), "{text}");
    let log = s.read("run.log");
    assert!(
        log.contains("live \"alice\": the ladder stopped")
            && log.contains("starting it again in 1s"),
        "{log}"
    );

    drop(publisher);
    wait_for("the ladder to stop", Duration::from_secs(30), || {
        let gone = !s.data("live/alice/master.m3u8").exists()
            && http_get_once(&s.url("/live/alice/")).unwrap().status == 404;
        (gone && ladders_in(&s, "alice").is_empty()).then_some(())
    });
}

/// The feed port takes nginx-rtmp's push and nothing else: a publisher that is not nginx
/// (another application, a name that is no stream name) and bytes that are not RTMP are
/// refused with a log line that repeats nothing they sent, and the stream's ladder still
/// reads nginx's push.
#[test]
fn the_feed_takes_only_nginxs_push() {
    let s = ladder_server();
    let feed = s.feed_address();
    let key = s.key("add", "dave");
    let publisher = Publisher::start_sized(&key.url(), 120, "640x480", 15);
    wait_master(&s, "/live/dave/");
    // Not RTMP at all: the connection is closed, the feed goes on.
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(&feed).unwrap();
        let _ = tcp.write_all(&[0x55; 4096]);
    }
    // Another application, a name that is no stream name, and a second push of a live name
    // (nginx pushes a name again only once its push has ended: this one is not nginx's).
    for url in [
        format!("rtmp://{feed}/live/dave"),
        format!("rtmp://{feed}/feed/da%20ve?secret-looking-query"),
        format!("rtmp://{feed}/feed/dave"),
    ] {
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=15",
                "-t",
                "5",
            ])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", &url])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} was taken");
    }
    wait_for("the refusals in the log", Duration::from_secs(30), || {
        let log = s.read("run.log");
        let refused = log
            .matches("refused a publish that is not nginx's push")
            .count();
        (refused >= 2 && log.contains("refused \"dave\": it has a feed already")).then_some(())
    });
    let log = s.read("run.log");
    assert!(
        !log.contains("secret-looking-query") && !log.contains(&key.stream_key),
        "{log}"
    );
    let (_, v) = s.api("GET", "/api/live", None, true);
    assert_eq!(v["dave"]["input"], "feed", "{v}");
    assert_eq!(v["dave"]["state"], "running", "{v}");
    assert_eq!(v["dave"]["restarts"], 0, "{v}");
    drop(publisher);
}

/// A private stream's ladder plays only through a signed link, and the link's token reaches
/// every rung: the master's relative URIs stay below the signed path.
#[test]
fn a_private_ladder_plays_only_with_the_token() {
    let s = ladder_server();
    let out = s.cli(&["keys", "add", "carol", "--private", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = format!(
        "{}/{}",
        v["server_url"].as_str().unwrap(),
        v["stream_key"].as_str().unwrap()
    );
    let _p = Publisher::start_sized(&url, 120, "854x480", 25);
    let out = s.cli(&["sign", "/live/carol", "--ttl", "10m", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed = v["path"].as_str().unwrap();
    let entry = signed.trim_end_matches("index.m3u8");
    let master_path = wait_master(&s, entry);
    let master = http_get(&s.url(&master_path)).unwrap().text();
    let rung = format!("{entry}360p/index.m3u8");
    assert!(lines(&master).contains(&"360p/index.m3u8"), "{master}");
    let playlist = http_get(&s.url(&rung)).unwrap();
    assert_eq!(playlist.status, 200);
    let segment = lines(&playlist.text()).last().unwrap().to_string();
    assert_eq!(served_height(&s, &format!("{entry}360p/{segment}")), 360);
    // nginx's own push plays the private stream to the sidecar without a token (its play
    // callback is told apart from any client's), and the ladder reads it.
    let (_, v) = s.api("GET", "/api/live", None, true);
    assert_eq!(v["carol"]["input"], "feed", "{v}");
    // The thumbnail with the token; a link with the token in the query moves to the
    // signed path, so the relative playlists keep it.
    wait_for("carol's thumbnail", Duration::from_secs(40), || {
        (http_get(&s.url(&format!("{entry}thumb.jpg")))
            .unwrap()
            .status
            == 200)
            .then_some(())
    });
    let token = entry
        .strip_prefix("/s/")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let r = http_get_once(&s.url(&format!("/live/carol/?st={token}"))).unwrap();
    assert_eq!((r.status, r.header("location")), (302, Some(entry)));
    // Without the token: answered like a name that does not exist.
    let unknown = http_get(&s.url("/live/nosuchname/index.m3u8")).unwrap();
    for path in [
        "/live/carol/".to_string(),
        "/live/carol/master.m3u8".to_string(),
        "/live/carol/360p/index.m3u8".to_string(),
        "/live/carol/thumb.jpg".to_string(),
        format!("/live/carol/360p/{segment}"),
    ] {
        let r = http_get(&s.url(&path)).unwrap();
        assert_eq!(
            (r.status, r.text()),
            (unknown.status, unknown.text()),
            "{path}"
        );
    }
}

/// hls.js in Chromium plays the ladder through the web page and switches between its
/// renditions when told to: each forced level shows its own height and keeps playing.
#[test]
fn hls_js_plays_the_ladder_and_switches_renditions() {
    let s = ladder_server();
    let key = s.key("add", "cam");
    let _p = Publisher::start_sized(&key.url(), 180, "854x480", 25);
    wait_master(&s, "/live/cam/");
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let out = std::process::Command::new("node")
        .arg(web.join("test/ladder.mjs"))
        .current_dir(&web)
        .env("BASE", s.url(""))
        .env("STREAM", "cam")
        .output()
        .expect("run node (make deps installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    let found: serde_json::Value = serde_json::from_str(report.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| {
            panic!(
                "no report: {report} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(out.status.success() && found["error"].is_null(), "{found}");
    // hls.js orders levels by bitrate, which for a test pattern says little: the set counts.
    let mut levels: Vec<u64> = found["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().unwrap())
        .collect();
    levels.sort_unstable();
    assert_eq!(levels, [360, 480], "{found}");
    assert_eq!(found["switched"], found["levels"], "{found}");
    assert_eq!(found["fatal"], serde_json::json!([]), "{found}");
    assert_eq!(found["failed"], serde_json::json!([]), "{found}");
}

/// A live stream has a thumbnail, listed in `/api/streams` once it exists, made again from
/// newer segments about every 10 s, and gone when the stream ends. Here without a ladder: it
/// is made from the source either way.
#[test]
fn a_live_stream_has_a_thumbnail_that_follows_it() {
    let s = Server::start(Options::default());
    let key = s.key("add", "alice");
    let publisher = Publisher::start_sized(&key.url(), 120, "640x360", 25);
    let listed = || -> Option<String> {
        let r = http_get(&s.url("/api/streams")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v.as_array()?
            .iter()
            .find(|x| x["name"] == "alice")?
            .get("thumbnail")?
            .as_str()
            .map(String::from)
    };
    let path = wait_for(
        "a thumbnail in /api/streams",
        Duration::from_secs(40),
        listed,
    );
    assert_eq!(path, "/live/alice/thumb.jpg");
    let r = http_get(&s.url(&path)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(&r.body[..2], [0xFF, 0xD8], "a JPEG");
    assert_eq!(served_height(&s, &path), 240);
    let first = r.body;
    wait_for("a newer thumbnail", Duration::from_secs(40), || {
        (http_get(&s.url(&path)).unwrap().body != first).then_some(())
    });
    drop(publisher);
    wait_for("the thumbnail to go", Duration::from_secs(30), || {
        (http_get(&s.url(&path)).unwrap().status == 404 && listed().is_none()).then_some(())
    });
}

/// The library items whose title starts with `prefix`, as the owner lists them.
fn items_titled(s: &Server, prefix: &str) -> Vec<serde_json::Value> {
    let (status, v) = s.api("GET", "/api/library", None, true);
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .filter(|i| i["title"].as_str().is_some_and(|t| t.starts_with(prefix)))
        .cloned()
        .collect()
}

/// Sets `live.KEY` in the server's configuration.
fn live_option(s: &Server, key: &str, value: impl Into<toml::Value>) {
    s.edit_config(|c| {
        c["live"]
            .as_table_mut()
            .expect("init writes [live]")
            .insert(key.into(), value.into());
    });
}

/// The recording folders in the scratch space.
fn recordings(s: &Server) -> Vec<String> {
    s.entries(".work")
        .into_iter()
        .filter(|e| e.starts_with("rec-"))
        .collect()
}

fn recorded_key(s: &Server, name: &str) -> String {
    let out = s.cli(&["keys", "add", name, "--record", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    format!(
        "{}/{}",
        v["server_url"].as_str().unwrap(),
        v["stream_key"].as_str().unwrap()
    )
}

/// A recorded stream becomes one private library item when it ends; a publisher back
/// within the grace period continues the same recording.
#[test]
fn a_recorded_stream_and_its_reconnect_become_one_private_item() {
    let mut s = Server::init(Options::default());
    live_option(&s, "record_grace", "8s");
    s.run();
    let url = recorded_key(&s, "alice");
    for _ in 0..2 {
        let (ok, err) = Publisher::start(&url, 6).finish(Duration::from_secs(30));
        assert!(ok, "{err}");
        s.wait_live("alice", false);
    }
    let items = wait_for(
        "the recording in the library",
        Duration::from_secs(120),
        || {
            let found = items_titled(&s, "alice, live ");
            (!found.is_empty() && recordings(&s).is_empty()).then_some(found)
        },
    );
    assert_eq!(items.len(), 1, "one item for both broadcasts: {items:?}");
    let item = &items[0];
    assert_eq!(item["private"], true, "{item}");
    let duration = item["duration"].as_f64().unwrap();
    assert!(
        (9.0..=14.0).contains(&duration),
        "two 6 s broadcasts: {duration}"
    );
    // Private: not in the public list.
    let (_, public) = s.api("GET", "/api/library", None, false);
    assert!(!public.to_string().contains("alice, live"), "{public}");
}

/// Killed with SIGKILL mid-stream, the sidecar takes the recording up at its next start:
/// what was recorded until then is not lost.
#[test]
fn a_recording_survives_a_killed_sidecar() {
    let mut s = Server::init(Options::default());
    live_option(&s, "record_grace", "2s");
    s.run();
    let url = recorded_key(&s, "bob");
    let publisher = Publisher::start(&url, 60);
    let folder = wait_for(
        "fragments in the recording",
        Duration::from_secs(40),
        || {
            let rec = recordings(&s);
            let folder = rec.first()?.clone();
            // Six 1 s fragments (live.fragment, a keyframe a second).
            let n = s.entries(&format!(".work/{folder}")).len();
            (n >= 6).then_some(folder)
        },
    );
    s.kill_run();
    drop(publisher);
    assert!(s.data(&format!(".work/{folder}")).is_dir());
    s.run();
    let items = wait_for(
        "the recording in the library",
        Duration::from_secs(120),
        || {
            let found = items_titled(&s, "bob, live ");
            (!found.is_empty() && recordings(&s).is_empty()).then_some(found)
        },
    );
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(
        items[0]["duration"].as_f64().unwrap() >= 4.0,
        "{:?}",
        items[0]
    );
    let log = s.read("run.log");
    assert!(log.contains("the recording is library item"), "{log}");
}

/// nginx killed with SIGKILL (master and workers, as a crash or the OOM killer would) in the
/// middle of a recording: the sidecar starts it again, the publisher comes back within the
/// grace period and is killed itself (SIGKILL, no goodbye): everything written before each
/// kill is in one library item.
#[test]
fn a_recording_survives_killed_nginx_and_publisher() {
    let mut s = Server::init(Options::default());
    live_option(&s, "record_grace", "15s");
    s.run();
    let url = recorded_key(&s, "eve");
    let publisher = Publisher::start(&url, 60);
    let fragments = |s: &Server| {
        let rec = recordings(s);
        rec.first()
            .map(|f| s.entries(&format!(".work/{f}")).len())
            .unwrap_or(0)
    };
    wait_for(
        "fragments in the recording",
        Duration::from_secs(40),
        || (fragments(&s) >= 5).then_some(()),
    );
    let before = s.nginx_pid().expect("nginx runs");
    // The whole group: master and workers.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(before),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drop(publisher);
    wait_for("nginx started again", Duration::from_secs(30), || {
        let pid = s.nginx_pid().filter(|p| *p != before)?;
        let up = http_get(&format!("http://127.0.0.1:{}/api/streams", s.internal)).ok()?;
        (up.status == 200).then_some(pid)
    });
    let kept = fragments(&s);
    assert!(kept >= 5, "the recording lost fragments: {kept}");
    let publisher = Publisher::start(&url, 60);
    wait_for("the recording to go on", Duration::from_secs(40), || {
        (fragments(&s) >= kept + 4).then_some(())
    });
    assert_eq!(recordings(&s).len(), 1, "one recording for both broadcasts");
    drop(publisher);
    let items = wait_for(
        "the recording in the library",
        Duration::from_secs(150),
        || {
            let found = items_titled(&s, "eve, live ");
            (!found.is_empty() && recordings(&s).is_empty()).then_some(found)
        },
    );
    assert_eq!(items.len(), 1, "{items:?}");
    let duration = items[0]["duration"].as_f64().unwrap();
    assert!(duration >= 8.0, "both parts: {duration} s");
    let log = s.read("run.log");
    assert!(log.contains("nginx exited"), "{log}");
}

/// Recordings never fill the disk: below `live.record_min_free_mb` they pause with a log
/// line that says why, the stream itself plays on, and no item is made of nothing. The data
/// directory is on a small tmpfs (the tests run as root).
#[test]
fn a_recording_pauses_when_the_disk_is_nearly_full() {
    let mut s = Server::init(Options::default());
    let disk = streamedge_tests::SmallDisk::mount(&s.path("small"), "32m");
    let data = disk.path().join("data");
    s.edit_config(|c| {
        c.insert("data_dir".into(), data.display().to_string().into());
    });
    live_option(&s, "record_min_free_mb", 100);
    live_option(&s, "record_grace", "2s");
    s.run();
    let url = recorded_key(&s, "alice");
    let publisher = Publisher::start(&url, 8);
    wait_for("the pause in the log", Duration::from_secs(30), || {
        s.read("run.log")
            .contains("live \"alice\": recording paused: less than 100 MiB free")
            .then_some(())
    });
    assert!(s.is_live("alice"), "the stream plays on");
    let (ok, err) = publisher.finish(Duration::from_secs(30));
    assert!(ok, "{err}");
    // Nothing was kept, so nothing becomes an item, and the empty folder goes.
    wait_for("the empty recording to go", Duration::from_secs(30), || {
        let left = std::fs::read_dir(data.join(".work"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("rec-"));
        (!left).then_some(())
    });
    assert!(items_titled(&s, "alice, live ").is_empty());
}

/// A broadcast scheduled from the API (and the CLI): listed for everyone but private
/// streams', refused without the token or with bad times; a recording made in its time
/// takes its title and description.
#[test]
fn a_scheduled_broadcast_is_listed_and_names_its_recording() {
    let mut s = Server::init(Options::default());
    live_option(&s, "record_grace", "2s");
    s.run();
    let url = recorded_key(&s, "show");
    let private = s.cli(&["keys", "add", "hidden", "--private"]);
    assert!(private.status.success());
    let now = std::time::SystemTime::now();
    let at = |secs: i64| {
        let t = if secs >= 0 {
            now + Duration::from_secs(secs as u64)
        } else {
            now - Duration::from_secs((-secs) as u64)
        };
        humantime::format_rfc3339_seconds(t).to_string()
    };
    let body = |stream: &str, from: i64, to: i64| {
        serde_json::json!({
            "stream": stream, "title": "Friday Mix", "description": "Two hours of deep house.",
            "start": at(from), "end": at(to),
        })
        .to_string()
    };
    // The owner's only; the times must make sense.
    assert_eq!(
        s.api(
            "POST",
            "/api/schedule",
            Some(&body("show", -60, 3600)),
            false
        )
        .0,
        401
    );
    let (status, v) = s.api("POST", "/api/schedule", Some(&body("show", 3600, 60)), true);
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("end"), "{v}");
    let (status, b) = s.api(
        "POST",
        "/api/schedule",
        Some(&body("show", -60, 3600)),
        true,
    );
    assert_eq!(status, 201, "{b}");
    let hidden = s.cli(&[
        "schedule",
        "add",
        "hidden",
        "--title",
        "Secret",
        "--start",
        &at(60),
        "--end",
        &at(120),
    ]);
    assert!(
        hidden.status.success(),
        "{}",
        String::from_utf8_lossy(&hidden.stderr)
    );
    let (_, public) = s.api("GET", "/api/schedule", None, false);
    assert_eq!(public.as_array().unwrap().len(), 1, "{public}");
    assert_eq!(public[0]["title"], "Friday Mix");
    let (_, owner) = s.api("GET", "/api/schedule", None, true);
    assert_eq!(owner.as_array().unwrap().len(), 2, "{owner}");
    let listed = s.cli(&["schedule", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Secret"));

    // The show goes out: its recording is named after the broadcast.
    let (ok, err) = Publisher::start(&url, 6).finish(Duration::from_secs(30));
    assert!(ok, "{err}");
    let items = wait_for(
        "the recording in the library",
        Duration::from_secs(120),
        || {
            let found = items_titled(&s, "Friday Mix (show, live ");
            (!found.is_empty()).then_some(found)
        },
    );
    assert_eq!(
        items[0]["description"], "Two hours of deep house.",
        "{:?}",
        items[0]
    );
    // Taken off the schedule.
    let id = b["id"].as_str().unwrap();
    assert_eq!(
        s.api("DELETE", &format!("/api/schedule/{id}"), None, true)
            .0,
        200
    );
    assert_eq!(
        s.api("DELETE", &format!("/api/schedule/{id}"), None, true)
            .0,
        404
    );
    let (_, public) = s.api("GET", "/api/schedule", None, false);
    assert_eq!(public, serde_json::json!([]));
}
