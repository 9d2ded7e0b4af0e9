//! The module inside real nginx: configuration errors and hostile callbacks.

use std::process::Command;
use std::time::Duration;

use streamedge_tests::{callback, module_path, raw_request, wait_for, Options, Server};

/// Runs `nginx -t` on an http block around `directives`; returns (ok, stderr, config path).
fn nginx_t(http: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let conf = dir.path().join("nginx.conf");
    let text = format!(
        "load_module {};\nerror_log {}/logs/error.log;\npid {}/nginx.pid;\nevents {{}}\nhttp {{\n{http}\n}}\n",
        module_path().display(),
        dir.path().display(),
        dir.path().display()
    );
    std::fs::write(&conf, text).unwrap();
    let out = Command::new("/usr/sbin/nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        conf.display().to_string(),
    )
}

#[test]
fn a_valid_configuration_passes_nginx_t() {
    let (ok, err, _) = nginx_t(
        "streamedge_data /tmp;\nstreamedge_zone 128k;\n\
         streamedge_limit_zone $binary_remote_addr zone=one:64k rate=10r/s burst=5 ban_after=3 ban_window=1m ban_time=1h;\n\
         streamedge_limit_zone $arg_user zone=two:1m rate=30r/m;\nstreamedge_limit_status 503;\n\
         streamedge_limit_allow 10.0.0.0/8 ::1;\n\
         streamedge_live_timeout 30s;\nserver { listen 127.0.0.1:1; location /a { streamedge_limit zone=one; streamedge_limit zone=two dry_run; streamedge_publish_auth; }\n\
         location /s { streamedge_streams; } }",
    );
    assert!(ok, "{err}");
}

#[test]
fn bad_directives_fail_nginx_t_with_file_and_line() {
    // Each case: the http block, the message nginx must print, and the line it must name
    // (the http block's first line is line 6).
    let cases: &[(&str, &str, u32)] = &[
        (
            "streamedge_zone 1k;",
            "zone size \"1k\" is too small, the minimum is 64k",
            6,
        ),
        ("streamedge_zone lots;", "invalid zone size \"lots\"", 6),
        (
            "\nstreamedge_hls_bucket http://127.0.0.1:9 library credentials=/nonexistent/s3.credentials;",
            "cannot use bucket credentials \"/nonexistent/s3.credentials\": No such file or directory (os error 2)",
            7,
        ),
        (
            "streamedge_hls_bucket http://127.0.0.1:9 library;",
            "\"streamedge_hls_bucket\" needs credentials=FILE",
            6,
        ),
        (
            "streamedge_hls_bucket http://127.0.0.1:9 library region= credentials=/x;",
            "invalid parameter \"region=\"",
            6,
        ),
        (
            "streamedge_hls_bucket http://127.0.0.1:9 library credentials=/dev/null;",
            "cannot use bucket credentials \"/dev/null\": no aws_access_key_id",
            6,
        ),
        (
            "streamedge_data /tmp;\nstreamedge_data /var;",
            "\"streamedge_data\" directive is duplicate",
            7,
        ),
        (
            "\nstreamedge_limit_zone $binary_remote_addr zone=a:64k rate=x;",
            "invalid rate \"x\"",
            7,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr zone=a:64k rate=1r/s ban_after=0;",
            "invalid ban_after \"0\"",
            6,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr zone=a:64k rate=1r/s tries=3;",
            "invalid parameter \"tries=3\"",
            6,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr zone=a:64k rate=1r/s ban_after=3 ban_window=soon;",
            "invalid ban_window \"soon\"",
            6,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr zone=a:1k rate=1r/s;",
            "zone \"a\" is too small, the minimum is 64k",
            6,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr zone=a:64k;",
            "\"rate\" parameter is required",
            6,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr rate=1r/s;",
            "\"zone\" parameter is required",
            6,
        ),
        (
            "streamedge_limit_zone $binary_remote_addr zone=a:64k rate=1r/s ban_time=1m;",
            "\"ban_window\" and \"ban_time\" require \"ban_after\"",
            6,
        ),
        (
            "streamedge_limit_zone $a zone=a:64k rate=1r/s;\nstreamedge_limit_zone $b zone=a:64k rate=1r/s;",
            "zone \"a\" is duplicate",
            7,
        ),
        (
            "streamedge_limit zone=nowhere;",
            "unknown streamedge_limit_zone \"nowhere\"",
            6,
        ),
        (
            "streamedge_limit_zone $a zone=a:64k rate=1r/s;\nserver { listen 127.0.0.1:1;\nlocation / { streamedge_limit zone=a; streamedge_limit zone=a; } }",
            "zone \"a\" is duplicate",
            8,
        ),
        (
            "streamedge_limit_zone $a zone=a:64k rate=1r/s;\nstreamedge_limit zone=a fast;",
            "invalid parameter \"fast\"",
            7,
        ),
        (
            "streamedge_limit_status 200;",
            "invalid status \"200\", it must be between 400 and 599",
            6,
        ),
        (
            "streamedge_limit_allow 10.0.0.0/40;",
            "invalid address range \"10.0.0.0/40\"",
            6,
        ),
        (
            "streamedge_data /tmp;\nserver { listen 127.0.0.1:1;\nlocation /live/ { streamedge_hls films; } }",
            "invalid value \"films\", it must be \"live\", \"vod\" or \"signed\"",
            8,
        ),
        (
            "streamedge_data /tmp;\nserver { listen 127.0.0.1:1;\nlocation /hls/ { streamedge_hls live; } }",
            "\"streamedge_hls live\" must be in \"location /live/\"",
            8,
        ),
        (
            "server { listen 127.0.0.1:1;\nlocation /live/ { streamedge_hls live cache; } }",
            "invalid value \"cache\", it must be \"edge\" or \"shield\"",
            7,
        ),
        (
            "server { listen 127.0.0.1:1;\nlocation /vod/ { streamedge_hls vod; } }",
            "\"streamedge_hls\" requires \"streamedge_data\" before it",
            7,
        ),
        (
            "streamedge_hls_secrets /nonexistent/sign.keys;",
            "cannot use signing secrets \"/nonexistent/sign.keys\": No such file or directory (os error 2)",
            6,
        ),
        (
            "streamedge_hls_cors off;\nstreamedge_hls_cors *;",
            "\"streamedge_hls_cors\" directive is duplicate",
            7,
        ),
        (
            "streamedge_live_timeout never;",
            "invalid live timeout \"never\"",
            6,
        ),
        (
            "streamedge_live_timeout 1s 2s;",
            "invalid number of arguments in \"streamedge_live_timeout\" directive",
            6,
        ),
        (
            "server { listen 127.0.0.1:1;\nlocation /a { streamedge_publish_auth on; } }",
            "invalid number of arguments in \"streamedge_publish_auth\" directive",
            7,
        ),
        (
            "streamedge_publish_auth;",
            "\"streamedge_publish_auth\" directive is not allowed here",
            6,
        ),
    ];
    for (http, message, line) in cases {
        let (ok, err, conf) = nginx_t(http);
        assert!(!ok, "{http}: nginx -t passed");
        let want = format!("{message} in {conf}:{line}");
        assert!(err.contains(&want), "{http}:\nwant: {want}\ngot:  {err}");
    }
}

#[test]
fn publish_auth_without_a_data_directory_is_refused() {
    let (ok, err, _) =
        nginx_t("server { listen 127.0.0.1:1; location /a { streamedge_publish_auth; } }");
    assert!(!ok);
    assert!(
        err.contains("\"streamedge_publish_auth\" requires \"streamedge_data\" in the http block"),
        "{err}"
    );
}

#[test]
fn hostile_callbacks_never_crash_a_worker() {
    let s = Server::start(Options::default());
    let key = s.key("add", "alice");
    let secret = key.stream_key.split_once("?key=").unwrap().1.to_string();
    let long_name = format!(
        "addr=127.0.0.1&call=publish&name={}&key=x",
        "a".repeat(10_000)
    );
    let long_key = format!(
        "addr=127.0.0.1&call=publish&name=alice&key={}",
        "k".repeat(5_000)
    );
    let bodies: Vec<(Vec<u8>, u16)> = vec![
        (b"".to_vec(), 400),
        (b"call=publish".to_vec(), 400),
        (b"addr=127.0.0.1&call=publish".to_vec(), 400),
        (
            b"addr=127.0.0.1&call=publish&name=../../etc/passwd&key=x".to_vec(),
            400,
        ),
        (
            b"addr=127.0.0.1&call=publish&name=%2e%2e%2fetc&key=x".to_vec(),
            400,
        ),
        (
            b"addr=127.0.0.1&call=publish&name=al%00ice&key=x".to_vec(),
            400,
        ),
        (
            b"addr=127.0.0.1&call=publish&name=\xff\xfe\x00&key=\xff".to_vec(),
            400,
        ),
        (
            b"addr=127.0.0.1&call=publish&name=%ff%fe&key=x".to_vec(),
            400,
        ),
        (long_name.into_bytes(), 400),
        (long_key.into_bytes(), 400),
        (
            format!("addr=127.0.0.1&call=publish&name=alice&name=bob&key={secret}").into_bytes(),
            400,
        ),
        (
            format!("addr=127.0.0.1&call=publish&name=alice&key={secret}&addr=10.0.0.1")
                .into_bytes(),
            400,
        ),
        (
            format!("addr=127.0.0.1&call=publish&call=play&name=alice&key={secret}").into_bytes(),
            400,
        ),
        (
            b"addr=not-an-address&call=publish&name=alice&key=x".to_vec(),
            400,
        ),
        (b"addr=127.0.0.1&call=launch&name=alice".to_vec(), 400),
        (
            b"addr=127.0.0.1&clientid=99999999999999999999999&call=publish&name=alice&key=x"
                .to_vec(),
            400,
        ),
        (b"%%%&&&===&call&=&addr".to_vec(), 400),
        (vec![b'&'; 15_000], 400),
        (vec![0u8; 12_000], 400),
        (
            b"addr=127.0.0.1&call=publish&name=alice&key=wrong".to_vec(),
            403,
        ),
    ];
    for (body, want) in &bodies {
        let got = callback(s.internal, body);
        assert_eq!(
            got,
            Some(*want),
            "body {:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    // Bodies beyond the location's limit are refused by nginx itself.
    assert_eq!(callback(s.internal, &vec![b'a'; 20_000]), Some(413));
    // Other methods, and a lying Content-Length.
    let put = b"PUT /rtmp/auth HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(raw_request(s.internal, put), Some(405));
    // notify_method get would put the key in a logged request line: refused, and not logged.
    let get = format!(
        "GET /rtmp/auth?addr=127.0.0.1&call=publish&name=alice&key={secret}-get HTTP/1.0\r\n\r\n"
    );
    assert_eq!(raw_request(s.internal, get.as_bytes()), Some(405));
    let short = b"POST /rtmp/auth HTTP/1.0\r\nContent-Length: 100\r\n\r\naddr=127.0.0.1";
    let _ = raw_request(s.internal, short);
    // The callbacks are not on the public ports at all.
    let public = format!("addr=127.0.0.1&clientid=1&call=publish&name=alice&key={secret}");
    assert_eq!(callback(s.http, public.as_bytes()), Some(404));

    // Every worker survived, and a real publish still works.
    assert!(s.crashes().is_empty(), "{:?}", s.crashes());
    let ok = format!("addr=127.0.0.1&clientid=1&call=publish&name=alice&key={secret}");
    assert_eq!(callback(s.internal, ok.as_bytes()), Some(200));
    // Listed live once the broadcast writes its playlist, as nginx-rtmp does every fragment.
    std::fs::create_dir_all(s.data("live/alice")).unwrap();
    wait_for("alice to be listed live", Duration::from_secs(10), || {
        std::fs::write(s.data("live/alice/index.m3u8"), "#EXTM3U\n").unwrap();
        s.is_live("alice").then_some(())
    });
    // What was logged names the problem, never a key.
    let log = s.read("logs/error.log");
    assert!(
        log.contains("bad callback from 127.0.0.1: duplicate \"name\" field"),
        "{log}"
    );
    assert!(!log.contains(&secret));
    assert!(!s.all_logs().contains("-get"), "a GET callback was logged");
    assert!(!log.contains("kkkkkkkk"));
}

#[test]
fn the_callback_location_is_loopback_only_and_streams_hide_addresses() {
    let s = Server::start(Options::default());
    s.key("add", "alice");
    let r = streamedge_tests::http_get(&s.url("/api/streams")).unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.text(),
        "[{\"name\":\"alice\",\"live\":false,\"since\":null}]\n"
    );
    // The callback location is served only on the internal loopback server, not on the
    // public ports.
    let conf = s.read("nginx.conf");
    let internal = conf
        .find(&format!("listen 127.0.0.1:{};", s.internal))
        .unwrap();
    assert!(
        conf.find("location = /rtmp/auth").unwrap() > internal,
        "{conf}"
    );
    let body = b"addr=127.0.0.1&clientid=1&call=publish&name=alice&key=x";
    assert_eq!(streamedge_tests::callback(s.http, body), Some(404));
    assert_eq!(streamedge_tests::callback(s.internal, body), Some(403));
}
