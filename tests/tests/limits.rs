//! Rate limits with bans in real nginx with two worker processes. Limited locations answer
//! with `empty_gif`: like `limit_req`, limits run in the preaccess phase, after `return`.

use std::time::Duration;

use streamedge_tests::{http_get, statuses, Nginx};

fn server(zones: &str, location: &str) -> String {
    format!("{zones}\nserver {{ listen 127.0.0.1:{{port}};\nlocation / {{ return 200 ok; }}\nlocation /t {{ {location} empty_gif; }}\n}}")
}

fn count(v: &[u16], code: u16) -> usize {
    v.iter().filter(|&&s| s == code).count()
}

#[test]
fn burst_arithmetic_is_exact() {
    // One a minute keeps the test free of timing: only the burst passes.
    let n = Nginx::start(&server(
        "streamedge_limit_zone $binary_remote_addr zone=z:1m rate=1r/m burst=5;",
        "streamedge_limit zone=z;",
    ));
    let got = statuses(&n.url("/t"), 20);
    assert_eq!(count(&got, 200), 6, "{got:?}");
    assert_eq!(count(&got, 429), 14, "{got:?}");
    assert_eq!(&got[..6], &[200; 6]);
    let log = n.access_log();
    assert_eq!(log.matches(" 200 passed").count(), 6);
    assert_eq!(log.matches(" 429 limited").count(), 14);
}

#[test]
fn retry_after_says_when_and_waiting_recovers() {
    let n = Nginx::start(&server(
        "streamedge_limit_zone $binary_remote_addr zone=m:1m rate=1r/m;\n\
         streamedge_limit_zone $binary_remote_addr zone=s:1m rate=2r/s;",
        "streamedge_limit zone=m;",
    ));
    assert_eq!(http_get(&n.url("/t")).unwrap().status, 200);
    let r = http_get(&n.url("/t")).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));

    let n2 = Nginx::start(&server(
        "streamedge_limit_zone $binary_remote_addr zone=s:1m rate=2r/s;",
        "streamedge_limit zone=s;",
    ));
    assert_eq!(http_get(&n2.url("/t")).unwrap().status, 200);
    let r = http_get(&n2.url("/t")).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(http_get(&n2.url("/t")).unwrap().status, 200);
}

#[test]
fn bans_start_once_and_end() {
    let n = Nginx::start(&server(
        "streamedge_limit_zone $binary_remote_addr zone=b:1m rate=1r/m ban_after=3 ban_window=1m ban_time=3s;",
        "streamedge_limit zone=b;",
    ));
    let got = statuses(&n.url("/t"), 3);
    assert_eq!(got, [200, 429, 429]);
    // The third refusal starts the ban: Retry-After is the ban's length.
    let r = http_get(&n.url("/t")).unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("3")));
    for _ in 0..5 {
        let r = http_get(&n.url("/t")).unwrap();
        assert_eq!(r.status, 429);
        let left: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3).contains(&left), "{left}");
    }
    let log = n.error_log();
    assert_eq!(
        log.matches("banning \"127.0.0.1\" for 3s by zone \"b\"")
            .count(),
        1,
        "{log}"
    );
    assert!(n.access_log().contains(" 429 banned"));
    std::thread::sleep(Duration::from_millis(3200));
    // The ban is over; the rate (one a minute) still applies.
    let r = http_get(&n.url("/t")).unwrap();
    assert_eq!(r.status, 429);
    assert!(n
        .access_log()
        .lines()
        .last()
        .unwrap()
        .ends_with(" 429 limited"));
}

#[test]
fn allow_list_dry_run_status_and_empty_keys() {
    let n = Nginx::start(
        "streamedge_limit_zone $binary_remote_addr zone=a:1m rate=1r/m;\n\
         streamedge_limit_zone $arg_user zone=u:1m rate=1r/m;\n\
         server { listen 127.0.0.1:{port};\n\
         location / { return 200 ok; }\n\
         location /allowed { streamedge_limit zone=a; streamedge_limit_allow 10.0.0.0/8 127.0.0.0/8; empty_gif; }\n\
         location /dry { streamedge_limit zone=a dry_run; empty_gif; }\n\
         location /status { streamedge_limit zone=u; streamedge_limit_status 503; empty_gif; }\n}",
    );
    assert_eq!(statuses(&n.url("/allowed"), 10), [200; 10]);
    assert_eq!(statuses(&n.url("/dry"), 5), [200; 5]);
    assert_eq!(n.access_log().matches(" 200 dry_run").count(), 4);
    assert!(n
        .error_log()
        .contains("dry run, not limiting requests by zone \"a\", key \"127.0.0.1\""));
    // An empty key is never limited; a named one is, with the configured status.
    assert_eq!(statuses(&n.url("/status"), 5), [200; 5]);
    assert_eq!(statuses(&n.url("/status?user=x"), 2), [200, 503]);
}

#[test]
fn several_zones_on_one_location_all_apply() {
    let n = Nginx::start(&server(
        "streamedge_limit_zone $binary_remote_addr zone=addr:1m rate=1r/m burst=4;\n\
         streamedge_limit_zone $arg_user zone=user:1m rate=1r/m burst=1;",
        "streamedge_limit zone=addr; streamedge_limit zone=user;",
    ));
    // The user zone allows 2 per user; the address zone 5 in all.
    assert_eq!(statuses(&n.url("/t?user=x"), 3), [200, 200, 429]);
    assert_eq!(statuses(&n.url("/t?user=y"), 3), [200, 200, 429]);
    // Refused requests do not use up the other zone: x and y passed 4, one left for z.
    assert_eq!(statuses(&n.url("/t?user=z"), 2), [200, 429]);
    assert_eq!(http_get(&n.url("/t?user=w")).unwrap().status, 429);
}

#[test]
fn state_survives_a_reload_and_a_changed_key_is_refused() {
    let http = server(
        "streamedge_limit_zone $binary_remote_addr zone=r:1m rate=1r/m burst=2;",
        "streamedge_limit zone=r;",
    );
    let n = Nginx::start(&http);
    assert_eq!(statuses(&n.url("/t"), 3), [200; 3]);
    // A reload with the same zone keeps its state: still limited.
    assert!(n.reload(&http.replace(
        "empty_gif; }\n}",
        "empty_gif; }\nlocation /new { return 204; }\n}"
    )));
    assert_eq!(http_get(&n.url("/new")).unwrap().status, 204);
    assert_eq!(http_get(&n.url("/t")).unwrap().status, 429);
    // A reload that changes the zone's key is refused; the old configuration stays.
    assert!(!n.reload(&http.replace("$binary_remote_addr", "$arg_k")));
    assert!(n.error_log().contains(
        "zone \"r\" is used for key \"$arg_k\" while previously it was used for key \"$binary_remote_addr\""
    ));
    assert_eq!(http_get(&n.url("/t?k=fresh")).unwrap().status, 429);
}

#[test]
fn a_full_zone_forgets_old_keys_and_new_keys_still_work() {
    // 64k holds about 1,100 keys; 3,000 distinct keys overflow it.
    let n = Nginx::start(&server(
        "streamedge_limit_zone $arg_k zone=small:64k rate=1r/m;",
        "streamedge_limit zone=small;",
    ));
    let client = reqwest::blocking::Client::new();
    for i in 0..3000 {
        let s = client
            .get(n.url(&format!("/t?k=key{i}")))
            .send()
            .unwrap()
            .status();
        assert_eq!(s, 200, "new key {i} was refused");
    }
    let log = n.error_log();
    assert_eq!(
        log.matches("zone \"small\" is full").count(),
        1,
        "alert logged once:\n{log}"
    );
    assert!(log.contains("[alert]"));
    // The newest keys are still tracked.
    assert_eq!(
        client.get(n.url("/t?k=key2999")).send().unwrap().status(),
        429
    );
}

#[test]
fn concurrent_clients_on_both_workers_add_up() {
    // One shared key: every request counts against the same entry, whichever worker takes it.
    let n = Nginx::start(&server(
        "streamedge_limit_zone all zone=g:1m rate=1r/m burst=99;",
        "streamedge_limit zone=g;",
    ));
    let url = n.url("/t");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || statuses(&url, 40))
        })
        .collect();
    let all: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 320);
    assert_eq!(count(&all, 200), 100, "exactly rate+burst passed");
    assert_eq!(count(&all, 429), 220);
    // Both workers answered.
    let log = n.access_log();
    let pids: std::collections::HashSet<&str> =
        log.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(pids.len() >= 2, "only one worker served: {pids:?}");
}

/// A folder with an index page and a file, readable by nginx's workers.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(dir.path().join("index.html"), "home\n").unwrap();
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    dir
}

#[test]
fn internal_redirects_are_charged_once() {
    // index, try_files, error_page and rewrite ... last each send the request through the
    // preaccess phase again; it is still one request, as with limit_req. One zone per
    // location, so each starts with a full burst.
    let dir = site();
    let d = dir.path().display();
    let zones: String = (1..=5)
        .map(|i| {
            format!("streamedge_limit_zone $binary_remote_addr zone=z{i}:1m rate=1r/m burst=5;\n")
        })
        .collect();
    let n = Nginx::start(&format!(
        "{zones}server {{ listen 127.0.0.1:{{port}};\n\
         location / {{ return 200 ok; }}\n\
         location /file/ {{ streamedge_limit zone=z1; alias {d}/; }}\n\
         location /dir/ {{ streamedge_limit zone=z2; alias {d}/; }}\n\
         location /tf/ {{ streamedge_limit zone=z3; root {d}; try_files /nope /a.txt =404; }}\n\
         location /ep/ {{ streamedge_limit zone=z4; root {d}; error_page 404 =200 /file/a.txt; }}\n\
         location /rw/ {{ rewrite ^ /rwdir/ last; }}\n\
         location /rwdir/ {{ streamedge_limit zone=z5; alias {d}/; }}\n\
         }}"
    ));
    // /dir/ goes through the index module to /dir/index.html; /ep/ ends in /file/, which
    // has a zone of its own; /rw/ is rewritten to a folder, which the index module
    // redirects again: each request is charged once, in the first location that limits it.
    for path in ["/file/index.html", "/dir/", "/tf/x", "/ep/missing", "/rw/x"] {
        let got = statuses(&n.url(path), 20);
        assert_eq!(count(&got, 200), 6, "{path}: {got:?}");
        assert_eq!(count(&got, 429), 14, "{path}: {got:?}");
    }
    // What each request was, as logged once it ended.
    let log = n.access_log();
    assert_eq!(log.matches(" 429 limited").count(), 5 * 14, "{log}");
    assert_eq!(log.matches(" 200 passed").count(), 5 * 6, "{log}");
}

#[test]
fn an_ipv6_client_is_its_64_network() {
    // A namespace of the test's own, whose loopback has addresses in two /64 networks.
    let ns = streamedge_tests::Netns::new(&[
        "2001:db8:1:2::1/64",
        "2001:db8:1:2::2/64",
        "2001:db8:1:2:ffff::3/64",
        "2001:db8:1:3::1/64",
    ]);
    let n = Nginx::start_in(
        &ns,
        "streamedge_limit_zone $streamedge_client zone=c:1m rate=1r/m burst=1;\n\
         server { listen [::1]:{port}; listen [2001:db8:1:2::1]:{port}; location / { return 200 ok; }\n\
         location /t { streamedge_limit zone=c; empty_gif; } }",
    );
    let url = format!("http://[2001:db8:1:2::1]:{}/t", n.port);
    // Two requests pass (the rate and its burst of one), from any address of the /64...
    assert_eq!(ns.curl(Some("2001:db8:1:2::1"), &url), Ok(200));
    assert_eq!(ns.curl(Some("2001:db8:1:2::2"), &url), Ok(200));
    // ...so a third address of the same /64 is the same client.
    assert_eq!(ns.curl(Some("2001:db8:1:2:ffff::3"), &url), Ok(429));
    // Another /64 is another client.
    assert_eq!(ns.curl(Some("2001:db8:1:3::1"), &url), Ok(200));
    drop(n);
}
