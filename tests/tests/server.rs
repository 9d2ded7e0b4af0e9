//! `streamedge init`, `run` and the command line, as a user drives them.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use streamedge_tests::{http_get, module_path, streamedge_bin, wait_for, Options, Server};

fn nginx_running(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

#[test]
fn init_writes_a_complete_configuration() {
    let s = Server::init(Options::default());
    for f in [
        "streamedge.toml",
        "nginx.conf",
        "site.conf",
        "data/live",
        "data/vod",
        "data/.work",
        "data/jobs",
        "data/acme",
        "data/certs",
        "data/ddns",
    ] {
        assert!(s.path(f).exists(), "{f} missing");
    }
    let conf = s.read("nginx.conf");
    assert!(conf.contains("hls on;") && conf.contains("hls_nested on;"));
    assert!(conf.contains(&format!(
        "hls_path {}/live;",
        s.data("").display().to_string().trim_end_matches('/')
    )));
    // Running it again without --force keeps what is there.
    let again = std::process::Command::new(streamedge_bin())
        .args(["init", "--dir"])
        .arg(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists (use --force"));
}

#[test]
fn defaults_are_the_router_mapped_ports() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(streamedge_bin())
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(dir.path().join("streamedge.toml")).unwrap();
    for want in ["http = 8080", "https = 4433", "rtmp = 1935"] {
        assert!(toml.contains(want), "{want} in\n{toml}");
    }
    let conf = std::fs::read_to_string(dir.path().join("nginx.conf")).unwrap();
    assert!(conf.contains("listen 8080 default_server;") && conf.contains("listen 1935;"));
}

#[test]
fn keys_are_stored_as_hashes_in_a_private_file() {
    use std::os::unix::fs::MetadataExt;
    let s = Server::init(Options::default());
    let k = s.key("add", "alice");
    let secret = k.stream_key.split_once("?key=").unwrap().1;
    let meta = std::fs::metadata(s.data("keys.toml")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = s.read("data/keys.toml");
    assert!(text.contains("name = \"alice\"") && text.contains("hash = \"sha256:"));
    assert!(!text.contains(secret));

    let list = s.cli(&["keys", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "alice");
    assert_eq!(v[0]["state"], "active");
    assert!(!String::from_utf8_lossy(&list.stdout).contains("sha256"));
    s.cli(&["keys", "revoke", "alice"]);
    let human = String::from_utf8_lossy(&s.cli(&["keys", "list"]).stdout).into_owned();
    assert!(
        human.contains("alice") && human.contains("revoked"),
        "{human}"
    );
    // A revoked name need not stay listed forever.
    let out = s.cli(&["keys", "remove", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = s.cli(&["keys", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
    assert!(!s.read("data/keys.toml").contains("alice"));
}

#[test]
fn bad_input_is_one_clear_line_and_a_failing_exit_code() {
    let s = Server::init(Options::default());
    s.key("add", "alice");
    let cases: &[(&[&str], &str)] = &[
        (&["keys", "add", "alice"], "streamedge: stream name \"alice\" already has a key"),
        (&["keys", "add", "../etc"], "streamedge: invalid stream name \"../etc\": stream name may contain only letters, digits, '-' and '_'"),
        (&["keys", "add", &"x".repeat(65)], "stream name is longer than 64 characters"),
        (&["keys", "revoke", "nobody"], "streamedge: unknown stream name \"nobody\""),
        (&["keys", "rotate", "nobody"], "streamedge: unknown stream name \"nobody\""),
        (&["keys", "private", "nobody"], "streamedge: unknown stream name \"nobody\""),
        (&["keys", "remove", "nobody"], "streamedge: unknown stream name \"nobody\""),
        (&["sign", "/etc/passwd"], "streamedge: cannot sign \"/etc/passwd\": expected /live/NAME or /vod/ID"),
        (&["sign", "/live/../keys"], "streamedge: cannot sign \"/live/../keys\": stream name may contain only"),
        (&["library", "public", "../x"], "streamedge: invalid library item id \"../x\""),
    ];
    let usage = s.cli(&["sign", "/live/alice", "--ttl", "soon"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "clap reports bad arguments with 2"
    );
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--ttl"));
    for (args, want) in cases {
        let out = s.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // A config that cannot be read, and one that is broken.
    let missing = std::process::Command::new(streamedge_bin())
        .args(["--config", "/nonexistent/streamedge.toml", "keys", "list"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .starts_with("streamedge: cannot read configuration /nonexistent/streamedge.toml"));
    std::fs::write(s.config(), "data_dir = [\n").unwrap();
    let broken = s.cli(&["keys", "list"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("invalid configuration"));
}

#[test]
fn a_broken_keys_file_refuses_new_publishes_keeps_live_ones_and_is_not_overwritten() {
    let s = Server::start(Options::default());
    let k = s.key("add", "alice");
    let secret = k.stream_key.split_once("?key=").unwrap().1.to_string();
    let publish = |client: u32| {
        format!("addr=127.0.0.1&clientid={client}&call=publish&name=alice&key={secret}")
    };
    assert_eq!(
        streamedge_tests::callback(s.internal, publish(1).as_bytes()),
        Some(200)
    );
    let good = s.read("data/keys.toml");
    std::fs::write(s.data("keys.toml"), "[[key]\nbroken").unwrap();
    // Both workers answer alike: a few tries reach both.
    for client in 2..8 {
        assert_eq!(
            streamedge_tests::callback(s.internal, publish(client).as_bytes()),
            Some(403)
        );
    }
    // The live stream's heartbeat still passes: nobody is cut off by a typo.
    let update = format!("addr=127.0.0.1&clientid=1&call=update_publish&name=alice&key={secret}");
    assert_eq!(
        streamedge_tests::callback(s.internal, update.as_bytes()),
        Some(200)
    );
    assert!(s
        .read("logs/error.log")
        .contains("keys.toml: line 1: invalid table header, expected `.`, `]]`, refusing new publishers until it is fixed"));
    // The sidecar refuses to build on it rather than overwrite it.
    let add = s.cli(&["keys", "add", "bob"]);
    assert_eq!(add.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&add.stderr).contains("invalid keys file"));
    assert_eq!(s.read("data/keys.toml"), "[[key]\nbroken");
    // Fixed: publishing works again at once.
    std::fs::write(s.data("keys.toml"), good).unwrap();
    let done = "addr=127.0.0.1&clientid=1&call=publish_done&name=alice";
    assert_eq!(
        streamedge_tests::callback(s.internal, done.as_bytes()),
        Some(200)
    );
    assert_eq!(
        streamedge_tests::callback(s.internal, publish(9).as_bytes()),
        Some(200)
    );
}

#[test]
fn run_restarts_a_dead_nginx_reloads_on_sighup_and_stops_cleanly() {
    let mut s = Server::start(Options::default());
    let first = s.nginx_pid().expect("nginx pid");

    // SIGHUP reloads: same master, configuration checked and re-read.
    s.signal_run(Signal::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || {
        s.read("run.log").contains("nginx reloaded").then_some(())
    });
    assert_eq!(s.nginx_pid(), Some(first));

    // nginx killed: the supervisor starts a new one.
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let second = wait_for("a new nginx", Duration::from_secs(20), || {
        s.nginx_pid()
            .filter(|&p| p != first && nginx_running(p) && http_get(&s.url("/api/streams")).is_ok())
    });
    assert!(s.read("run.log").contains("nginx exited"));

    // SIGTERM: everything stops, nothing left behind.
    let status = s.stop().expect("run was running");
    assert!(status.success(), "{status}");
    assert!(!nginx_running(second), "nginx outlived streamedge run");
    assert!(http_get(&s.url("/api/streams")).is_err());
    let st = s.cli(&["status"]);
    assert_eq!(st.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&st.stdout).contains("nginx: not running"));
}

#[test]
fn run_refuses_a_configuration_nginx_rejects() {
    let mut s = Server::init(Options::default());
    s.edit_config(|c| {
        c["nginx"]["module"] = "/nonexistent/module.so".into();
    });
    let out = std::process::Command::new(streamedge_bin())
        .arg("--config")
        .arg(s.config())
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nginx rejected its configuration"), "{err}");
    assert!(err.contains("/nonexistent/module.so"), "{err}");
    assert!(s.nginx_pid().is_none());
    let _ = &mut s;
}

#[test]
fn values_that_would_inject_nginx_directives_are_refused() {
    let s = Server::init(Options::default());
    s.edit_config(|c| {
        c["nginx"]["worker_processes"] = "1; error_log /tmp/streamedge-injected debug".into();
    });
    let out = s.cli(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nginx.worker_processes \"1; error_log /tmp/streamedge-injected debug\" must be \"auto\" or a number"),
        "{err}"
    );
    assert!(s.nginx_pid().is_none());
    let conf = std::fs::read_to_string(s.path("nginx.conf")).unwrap_or_default();
    assert!(!conf.contains("streamedge-injected"), "rendered anyway");
    s.edit_config(|c| {
        c["nginx"]["worker_processes"] = "2".into();
        c["data_dir"] = "data;\nuser root".into();
    });
    let out = s.cli(&["keys", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data_dir \"") && err.contains("contains ';'"),
        "{err}"
    );
}

#[test]
fn killing_streamedge_run_takes_nginx_down_with_it() {
    let s = Server::start(Options::default());
    let nginx = s.nginx_pid().expect("nginx pid");
    s.signal_run(Signal::SIGKILL);
    wait_for("nginx to stop", Duration::from_secs(15), || {
        (!nginx_running(nginx)).then_some(())
    });
    wait_for("the ports to be free", Duration::from_secs(15), || {
        http_get(&s.url("/api/streams")).is_err().then_some(())
    });
}

#[test]
fn the_default_configuration_limits_the_api_per_address() {
    let s = Server::start(Options::default());
    // Errors under /api/ are JSON, also those nginx gives before choosing a location; other
    // paths keep nginx's page.
    for (request, status) in [
        (&b"GET /api/jobs/%00 HTTP/1.0\r\n\r\n"[..], 400),
        (b"GET /api/../../etc HTTP/1.0\r\n\r\n", 400),
        (b"TRACE /api/jobs HTTP/1.0\r\n\r\n", 405),
        (b"GET /api/nothing-here HTTP/1.0\r\n\r\n", 404),
    ] {
        let (got, bytes) = streamedge_tests::raw_exchange(s.http, request).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let shown = String::from_utf8_lossy(request);
        assert_eq!(got, status, "{shown}: {text}");
        assert!(
            text.contains("Content-Type: application/json"),
            "{shown}: {text}"
        );
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].is_string(), "{shown}: {body}");
    }
    let (got, bytes) = streamedge_tests::raw_exchange(s.http, b"TRACE / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(got, 405);
    assert!(String::from_utf8_lossy(&bytes).contains("Content-Type: text/html"));

    let url = s.url("/api/streams");
    let client = reqwest::blocking::Client::new();
    let got: Vec<(u16, Option<String>)> = (0..120)
        .map(|_| {
            let r = client.get(&url).send().unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry)
        })
        .collect();
    // rate=10r/s burst=50: the burst passes at once (less what the harness used while
    // waiting for the server), then the rate.
    let burst = got.iter().take_while(|(s, _)| *s == 200).count();
    assert!(
        (45..=53).contains(&burst),
        "{burst} passed at once: {got:?}"
    );
    let refused: Vec<_> = got.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "never limited");
    assert!(
        refused.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "{refused:?}"
    );
    // The refusals are JSON too.
    let r = client.get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["content-type"], "application/json");
    // 100 refusals within a minute ban the address for 10 minutes: logged once.
    for _ in 0..60 {
        client.get(&url).send().unwrap();
    }
    let r = client.get(&url).send().unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers().get("retry-after").map(|v| v.to_str().unwrap())
        ),
        (429, Some("600"))
    );
    let log = s.read("logs/error.log");
    assert_eq!(
        log.matches("banning \"127.0.0.1\" for 600s by zone \"api\"")
            .count(),
        1,
        "{log}"
    );
}

/// `init --domain NAME --ddns-ionos`: ACME for the name, the DNS section pointing at a key
/// file beside the configuration, links on the router's 443, and every option documented in
/// the file itself.
#[test]
fn init_for_a_domain_with_ionos_dns_writes_a_documented_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(streamedge_bin())
        .args([
            "init",
            "--domain",
            "media.example.org",
            "--ddns-ionos",
            "--email",
            "me@example.org",
        ])
        .arg("--dir")
        .arg(dir.path())
        .arg("--module")
        .arg(module_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("streamedge.toml")).unwrap();
    let c: toml::Table = text.parse().unwrap();
    assert_eq!(
        c["acme"]["domains"].as_array().unwrap()[0].as_str(),
        Some("media.example.org")
    );
    assert_eq!(c["ddns"]["provider"].as_str(), Some("ionos"));
    assert_eq!(
        c["ddns"]["domains"].as_array().unwrap()[0].as_str(),
        Some("media.example.org")
    );
    assert_eq!(c["ddns"]["api_key_file"].as_str(), Some("ionos-api.key"));
    assert_eq!(c["ports"]["public_https"].as_integer(), Some(443));
    // Commented: each option says what it does.
    assert!(
        text.contains(
            "# Names that follow this home's address (at least one).\ndomains = [\"media.example.org\"]"
        ),
        "{text}"
    );
    assert!(text.contains("\n[acme]\n"));
    let nginx = std::fs::read_to_string(dir.path().join("nginx.conf")).unwrap();
    assert!(
        nginx.contains("return 301 https://$host$request_uri;"),
        "the router's 443 needs no port"
    );
    // Without the key file, DNS checks say what is missing.
    let out = std::process::Command::new(streamedge_bin())
        .arg("--config")
        .arg(dir.path())
        .args(["ddns", "check", "--once", "--dry-run"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ionos-api.key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --ddns-ionos needs a domain.
    let out = std::process::Command::new(streamedge_bin())
        .args(["init", "--ddns-ionos", "--dir"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
