//! Dynamic DNS against local stand-ins for the IONOS API and IP echo services, and a real
//! DNS server (pebble-challtestsrv) queried by hickory.

use streamedge_tests::{Options, Server, Standin, TestDns};

const KEY: &str = "pubprefix.s3cr3t";
const HOME: &str = "home.example.org";
const A1: &str = "81.2.69.142";
const A2: &str = "81.2.69.160";

struct World {
    s: Server,
    api: Standin,
    dns: TestDns,
}

fn world(mode: &str, per_minute: i64, ipv6: bool) -> World {
    let s = Server::init(Options::default());
    let api = Standin::start(KEY);
    api.state.lock().unwrap().quota = per_minute as usize;
    let dns = TestDns::start();
    api.set_echo("/v4/a", 200, A1);
    api.set_echo("/v6/a", 200, "2a01:4f8::10");
    let (base, v4, v6, ns) = (
        api.url(""),
        api.url("/v4/a"),
        api.url("/v6/a"),
        format!("127.0.0.1:{}", dns.port),
    );
    s.edit_config(|c| {
        let mut d = toml::Table::new();
        d.insert("mode".into(), mode.into());
        d.insert("api_key".into(), KEY.into());
        d.insert("api_base".into(), base.into());
        d.insert("domains".into(), vec![toml::Value::from(HOME)].into());
        d.insert("ipv6".into(), ipv6.into());
        d.insert("ip_sources_v4".into(), vec![toml::Value::from(v4)].into());
        d.insert("ip_sources_v6".into(), vec![toml::Value::from(v6)].into());
        d.insert("nameservers".into(), vec![toml::Value::from(ns)].into());
        d.insert("requests_per_minute".into(), per_minute.into());
        c.insert("ddns".into(), d.into());
    });
    World { s, api, dns }
}

impl World {
    fn check(&self) -> (bool, String) {
        let out = self.s.cli(&["ddns", "check", "--once"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn status(&self) -> serde_json::Value {
        let out = self.s.cli(&["ddns", "status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn updates(&self) -> usize {
        self.api
            .calls()
            .iter()
            .filter(|c| c.url.starts_with("/dyndns-update"))
            .count()
    }
}

fn setup(w: &World) {
    let out = w.s.cli(&["ddns", "setup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let call = &w.api.calls()[0];
    assert_eq!(
        (call.method.as_str(), call.url.as_str()),
        ("POST", "/dns/v1/dyndns")
    );
    assert_eq!(call.api_key.as_deref(), Some(KEY));
    let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["domains"][0], HOME);
    assert!(body["description"].is_string());
}

#[test]
fn a_stable_address_makes_no_calls_and_a_change_makes_exactly_one() {
    let w = world("dyndns", 2, false);
    setup(&w);
    let state = w.s.data("ddns/state.json");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions())
            & 0o777,
        0o600
    );
    assert!(!w.s.all_logs().contains("secret-update-token"));

    // DNS already has the address: ten checks, no call.
    w.dns.set(HOME, false, &[A1]);
    let before = w.api.calls().len();
    for _ in 0..10 {
        let (ok, text) = w.check();
        assert!(ok && text.contains("is in DNS already"), "{text}");
    }
    assert_eq!(w.api.calls().len(), before);

    // The address changes: exactly one update...
    w.api.set_echo("/v4/a", 200, A2);
    let (ok, text) = w.check();
    assert!(ok && text.contains(&format!("sent {A2}")), "{text}");
    assert_eq!(w.updates(), 1);
    // ...and while DNS still shows the old one, none again within the cooldown.
    for _ in 0..5 {
        let (ok, text) = w.check();
        assert!(ok && text.contains("waiting for DNS"), "{text}");
    }
    assert_eq!(w.updates(), 1);
    // DNS catches up: quiet.
    w.dns.set(HOME, false, &[A2]);
    let (_, text) = w.check();
    assert!(text.contains("is in DNS already"), "{text}");
    assert_eq!(w.updates(), 1);
    let st = w.status();
    assert_eq!(st["ipv4"]["address"], A2);
    assert_eq!(st["ipv4"]["last_sent"], A2);
    assert_eq!(st["ipv4"]["dns"][0], A2);
    assert_eq!(st["history"][0]["result"], "updated");
    assert!(!w.api.state.lock().unwrap().quota_exceeded);

    // A restart keeps what was sent: a fresh process sends nothing new.
    w.dns.set(HOME, false, &[A1]);
    let (_, text) = w.check();
    assert!(text.contains("waiting for DNS"), "{text}");
    assert_eq!(w.updates(), 1);
}

#[test]
fn server_errors_back_off_and_auth_errors_stop_until_the_config_changes() {
    let w = world("dyndns", 2, false);
    setup(&w);
    std::thread::sleep(std::time::Duration::from_secs(1));
    w.api.state.lock().unwrap().fail_next.push((
        500,
        r#"[{"code":"INTERNAL_SERVER_ERROR","message":"Something went wrong"}]"#.into(),
    ));
    let (ok, text) = w.check();
    assert!(
        !ok && text.contains("IONOS answered 500: Something went wrong"),
        "{text}"
    );
    let st = w.status();
    assert_eq!(st["failures"], 1);
    assert!(st["error"]
        .as_str()
        .unwrap()
        .starts_with("backing off until"));
    let calls = w.api.calls().len();
    let (_, text) = w.check();
    assert!(text.contains("backing off after 1 failure(s)"), "{text}");
    assert_eq!(
        w.api.calls().len(),
        calls,
        "called IONOS during the backoff"
    );

    // A 401 is final: no call until the key or names change.
    let w = world("dyndns", 5, false);
    w.s.edit_config(|c| {
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("api_key".into(), "pubprefix.wrong".into());
    });
    let out = w.s.cli(&["ddns", "setup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("The customer is not authorized to do this operation."));
    w.s.edit_config(|c| {
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("mode".into(), "records".into());
    });
    let (ok, text) = w.check();
    assert!(!ok && text.contains("IONOS answered 401"), "{text}");
    let calls = w.api.calls().len();
    for _ in 0..3 {
        let (ok, text) = w.check();
        assert!(!ok && text.contains("not updating"), "{text}");
    }
    assert_eq!(w.api.calls().len(), calls, "hammered IONOS after a 401");
    assert!(w.status()["error"]
        .as_str()
        .unwrap()
        .contains("not authorized"));
    // The right key: it tries again (and creates the record, see below).
    w.api
        .state
        .lock()
        .unwrap()
        .zones
        .push(("z1".into(), "example.org".into()));
    w.s.edit_config(|c| {
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("api_key".into(), KEY.into());
    });
    let (ok, text) = w.check();
    assert!(ok, "{text}");
}

#[test]
fn garbage_and_private_echo_answers_are_skipped() {
    let w = world("dyndns", 2, false);
    setup(&w);
    w.api.set_echo("/v4/garbage", 200, "<html>oops</html>");
    w.api.set_echo("/v4/private", 200, "192.168.1.5");
    w.api.set_echo("/v4/down", 503, "");
    let sources: Vec<toml::Value> = ["/v4/garbage", "/v4/private", "/v4/down", "/v4/a"]
        .iter()
        .map(|p| w.api.url(p).into())
        .collect();
    w.s.edit_config(|c| {
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("ip_sources_v4".into(), sources.into());
    });
    w.dns.set(HOME, false, &[A1]);
    let (ok, text) = w.check();
    assert!(
        ok && text.contains(&format!(
            "{A1} (from {}) is in DNS already",
            w.api.url("/v4/a")
        )),
        "{text}"
    );
    // Only bad answers: no address, no update, a failing exit code.
    w.api.set_echo("/v4/a", 200, "10.0.0.7");
    let (ok, text) = w.check();
    assert!(!ok && text.contains("no public address found"), "{text}");
    assert_eq!(w.updates(), 0);
}

#[test]
fn records_mode_creates_a_missing_record_then_updates_it_including_ipv6() {
    let w = world("records", 10, true);
    w.api.state.lock().unwrap().zones.extend([
        ("z1".into(), "example.org".into()),
        ("z2".into(), "other.net".into()),
    ]);
    let (ok, text) = w.check();
    assert!(ok, "{text}");
    let recs = w.api.state.lock().unwrap().records.clone();
    assert!(
        recs.iter()
            .any(|r| r.1 == "z1" && r.2 == HOME && r.3 == "A" && r.4 == A1),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .any(|r| r.2 == HOME && r.3 == "AAAA" && r.4 == "2a01:4f8::10"),
        "{recs:?}"
    );
    let creates: Vec<_> = w
        .api
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST")
        .collect();
    assert_eq!(creates.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&creates[0].body).unwrap();
    assert_eq!(
        (
            body[0]["name"].as_str(),
            body[0]["type"].as_str(),
            body[0]["content"].as_str()
        ),
        (Some(HOME), Some("A"), Some(A1))
    );
    assert!(w
        .api
        .calls()
        .iter()
        .all(|c| c.api_key.as_deref() == Some(KEY)));

    // A new address updates the existing record in place.
    w.api.set_echo("/v4/a", 200, A2);
    w.dns.set(HOME, true, &["2a01:4f8::10"]);
    let (ok, text) = w.check();
    assert!(ok, "{text}");
    let puts: Vec<_> = w
        .api
        .calls()
        .into_iter()
        .filter(|c| c.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(puts[0].url.starts_with("/dns/v1/zones/z1/records/"));
    assert!(puts[0].body.contains(A2));
    assert_eq!(
        w.api
            .state
            .lock()
            .unwrap()
            .records
            .iter()
            .filter(|r| r.3 == "A")
            .count(),
        1
    );
}

/// Many edges: the public name points at the edges, one A or AAAA record each and nothing
/// else, while the home's own name follows the home. Stale records go, an edge taken out of
/// the list loses its record, and nothing is sent while DNS answers exactly the edges.
#[test]
fn edge_names_point_at_exactly_the_edges() {
    const TV: &str = "tv.example.org";
    const E1: &str = "81.2.69.200";
    const E2: &str = "81.2.69.201";
    const E6: &str = "2a01:4f8::20";
    let w = world("records", 20, false);
    {
        let mut st = w.api.state.lock().unwrap();
        st.zones.push(("z1".into(), "example.org".into()));
        // What the name said before the edges: the home's address, and an old AAAA.
        st.records.extend([
            (
                "r-old".into(),
                "z1".into(),
                TV.into(),
                "A".into(),
                A1.into(),
            ),
            (
                "r-old6".into(),
                "z1".into(),
                TV.into(),
                "AAAA".into(),
                "2a01:4f8::10".into(),
            ),
        ]);
    }
    let set_edges = |edges: &[&str]| {
        w.s.edit_config(|c| {
            let d = c["ddns"].as_table_mut().unwrap();
            d.insert("edge_domains".into(), vec![toml::Value::from(TV)].into());
            let list: Vec<toml::Value> = edges.iter().map(|&e| e.into()).collect();
            d.insert("edges".into(), list.into());
        })
    };
    let records = |kind: &str| -> Vec<(String, String)> {
        let mut v: Vec<_> = w
            .api
            .state
            .lock()
            .unwrap()
            .records
            .iter()
            .filter(|r| r.3 == kind)
            .map(|r| (r.2.clone(), r.4.clone()))
            .collect();
        v.sort();
        v
    };
    set_edges(&[E1, E2, E6]);
    let (ok, text) = w.check();
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("{TV} A: set to the edges")),
        "{text}"
    );
    assert_eq!(
        records("A"),
        [
            (HOME.to_string(), A1.to_string()),
            (TV.to_string(), E1.to_string()),
            (TV.to_string(), E2.to_string())
        ]
    );
    assert_eq!(records("AAAA"), [(TV.to_string(), E6.to_string())]);
    assert!(w
        .api
        .calls()
        .iter()
        .all(|c| c.api_key.as_deref() == Some(KEY)));

    // DNS has not caught up: nothing is sent again within the cooldown.
    let before = w.api.calls().len();
    let (ok, text) = w.check();
    assert!(ok && text.contains("waiting for DNS"), "{text}");
    assert_eq!(w.api.calls().len(), before);
    // It has: quiet, for the home's name too.
    w.dns.set(HOME, false, &[A1]);
    w.dns.set(TV, false, &[E1, E2]);
    w.dns.set(TV, true, &[E6]);
    let (ok, text) = w.check();
    assert!(ok && text.contains("are in DNS already"), "{text}");
    assert_eq!(w.api.calls().len(), before);

    // An edge retired: only its record goes.
    set_edges(&[E2, E6]);
    let (ok, text) = w.check();
    assert!(ok, "{text}");
    let new: Vec<_> = w.api.calls().into_iter().skip(before).collect();
    assert!(
        new.iter()
            .all(|c| c.method == "GET" || c.method == "DELETE"),
        "{new:?}"
    );
    assert_eq!(
        new.iter().filter(|c| c.method == "DELETE").count(),
        1,
        "{new:?}"
    );
    assert_eq!(records("A")[1..], [(TV.to_string(), E2.to_string())]);
    let st = w.status();
    assert_eq!(st["edge_domains"][0], TV);
    assert_eq!(st["edges"][1], E6);

    // The home's address cannot be found (its echo service is down): the edges' names do
    // not depend on it, and a change of edges still reaches DNS.
    w.dns.set(TV, false, &[E2]);
    w.api.set_echo("/v4/a", 503, "");
    set_edges(&[E1, E6]);
    let (ok, text) = w.check();
    assert!(!ok && text.contains("no public address found"), "{text}");
    assert!(
        text.contains(&format!("{TV} A: set to the edges")),
        "{text}"
    );
    assert_eq!(records("A")[1..], [(TV.to_string(), E1.to_string())]);
    w.api.set_echo("/v4/a", 200, A1);

    // Bad lists are refused with the option's name.
    for (edges, why) in [
        (&["0.0.0.0"][..], "ddns.edges: 0.0.0.0"),
        (&[][..], "go together"),
    ] {
        set_edges(edges);
        let (ok, text) = w.check();
        assert!(!ok && text.contains(why), "{text}");
    }
}

#[test]
fn never_more_than_two_requests_a_minute() {
    let w = world("dyndns", 2, false);
    setup(&w);
    // Setup used one request; one more is left this minute.
    w.api.set_echo("/v4/a", 200, A2);
    let (ok, text) = w.check();
    assert!(ok && text.contains(&format!("sent {A2}")), "{text}");
    w.api.set_echo("/v4/a", 200, A1);
    let (ok, text) = w.check();
    assert!(ok && text.contains("waits for the next minute"), "{text}");
    assert_eq!(w.updates(), 1);
    assert!(!w.api.state.lock().unwrap().quota_exceeded);
    // A dry run says what it would do and calls nothing.
    let out = w.s.cli(&["ddns", "check", "--once", "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("would send {A1}")));
    assert_eq!(w.updates(), 1);
    // Disabling deletes the bulk (when the budget allows).
    std::thread::sleep(std::time::Duration::from_secs(61));
    let out = w.s.cli(&["ddns", "disable"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w
        .api
        .calls()
        .iter()
        .any(|c| c.method == "DELETE" && c.url == "/dns/v1/dyndns/bulk-1"));
    assert!(!w.api.state.lock().unwrap().quota_exceeded);
}

#[test]
fn the_daemon_checks_even_when_someone_else_runs_nginx() {
    let w = world("dyndns", 2, false);
    setup(&w);
    w.dns.set(HOME, false, &[A1]);
    w.s.edit_config(|c| {
        c["nginx"]
            .as_table_mut()
            .unwrap()
            .insert("supervise".into(), false.into());
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("interval".into(), "1s".into());
    });
    let mut daemon = std::process::Command::new(streamedge_tests::streamedge_bin())
        .arg("--config")
        .arg(w.s.config())
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The daemon's check records the address it found.
    streamedge_tests::wait_for(
        "a check by the daemon",
        std::time::Duration::from_secs(15),
        || (w.status()["ipv4"]["address"] == A1).then_some(()),
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(w.updates(), 0);
    assert!(
        w.s.nginx_pid().is_none(),
        "nginx was started though supervise = false"
    );
}
