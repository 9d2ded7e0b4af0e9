//! Certificates from a real ACME CA (pebble), served by real nginx, renewed while a live
//! stream goes on, surviving an unreachable CA and a killed sidecar.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use streamedge_tests::{
    metric, served_certificate, streamedge_bin, wait_for, Options, Pebble, Publisher, Server,
    Standin, TestDns,
};

const DOMAIN: &str = "streamedge.test";

fn with_acme(s: &Server, pebble: &Pebble) {
    let (dir, root) = (pebble.directory(), pebble.ca_root());
    s.edit_config(|c| {
        let mut acme = toml::Table::new();
        acme.insert("domains".into(), vec![toml::Value::from(DOMAIN)].into());
        acme.insert("email".into(), "admin@streamedge.test".into());
        acme.insert("directory".into(), dir.into());
        acme.insert("ca_root".into(), root.display().to_string().into());
        acme.insert("renew_check".into(), "1s".into());
        c.insert("acme".into(), acme.into());
    });
}

fn status(s: &Server) -> serde_json::Value {
    let out = s.cli(&["cert", "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn leaf(chain: &str) -> String {
    let end = chain.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    format!("{}\n", &chain[..end])
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The public keys of the certificate and the key in service are the same.
fn pair_matches(s: &Server) -> bool {
    let dir = s.data(&format!("certs/{DOMAIN}"));
    let cert = openssl(&[
        "x509",
        "-in",
        &dir.join("fullchain.pem").display().to_string(),
        "-noout",
        "-pubkey",
    ]);
    let key = openssl(&[
        "pkey",
        "-in",
        &dir.join("privkey.pem").display().to_string(),
        "-pubout",
    ]);
    cert.contains("BEGIN PUBLIC KEY") && cert == key
}

/// Waits until nginx serves the leaf of `chain`: the daemon reloads it once the certificate is
/// issued and installed, and a reload takes a moment on a busy machine.
fn wait_served(s: &Server, chain: &str) {
    wait_for(
        "nginx to serve the certificate",
        Duration::from_secs(20),
        || {
            (served_certificate(s.https, DOMAIN).as_deref() == Some(leaf(chain).as_str()))
                .then_some(())
        },
    );
}

fn wait_issued(s: &Server) -> serde_json::Value {
    wait_for("a certificate", Duration::from_secs(90), || {
        let st = status(s);
        (st["issued"] == true).then_some(st)
    })
}

#[test]
fn first_certificate_is_issued_verified_and_served() {
    let mut s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    with_acme(&s, &pebble);
    s.run();
    let st = wait_issued(&s);
    assert_eq!(st["domains"][0], DOMAIN);
    assert!(st["last_error"].is_null());

    let chain = std::fs::read_to_string(s.data(&format!("certs/{DOMAIN}/fullchain.pem"))).unwrap();
    let (root, intermediate) = pebble.issuing_chain();
    let (rp, ip, lp) = (
        s.path("root.pem"),
        s.path("intermediate.pem"),
        s.path("leaf.pem"),
    );
    std::fs::write(&rp, root).unwrap();
    std::fs::write(&ip, intermediate).unwrap();
    std::fs::write(&lp, leaf(&chain)).unwrap();
    let verify = openssl(&[
        "verify",
        "-CAfile",
        &rp.display().to_string(),
        "-untrusted",
        &ip.display().to_string(),
        &lp.display().to_string(),
    ]);
    assert!(verify.contains(": OK"), "{verify}");
    assert!(openssl(&[
        "x509",
        "-in",
        &lp.display().to_string(),
        "-noout",
        "-ext",
        "subjectAltName"
    ])
    .contains(DOMAIN));

    // nginx serves it on the HTTPS port for that name.
    wait_served(&s, &chain);
    assert!(pair_matches(&s));
    let key = s.data(&format!("certs/{DOMAIN}/privkey.pem"));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(key).unwrap().permissions())
            & 0o777,
        0o600
    );
    let account = s.data("acme/account.json");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(account).unwrap().permissions())
            & 0o777,
        0o600
    );
    // The challenge files are gone once the order is done.
    let left: Vec<_> = std::fs::read_dir(s.data("acme/challenge/.well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // /metrics says how long it has left: an hour, in days.
    let days = metric(
        &s.metrics(),
        &format!("streamedge_certificate_days_left{{domain=\"{DOMAIN}\"}}"),
    )
    .expect("the certificate's days left");
    assert!(days > 0.0 && days <= 1.0 / 24.0 + 0.01, "{days}");
    // An hour-long test certificate is within 7 days of expiry: status says so.
    let out = s.cli(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("warning: the certificate for {DOMAIN} expires in")));
    // Not due: renew does nothing and says when it will.
    let out = s.cli(&["cert", "renew"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("renewal is due from"));
}

#[test]
fn renewal_when_due_does_not_interrupt_a_live_stream() {
    let mut s = Server::init(Options::default());
    // 30 s certificates: renewal with a third left, 20 s after issuance.
    let pebble = Pebble::start(s.http, 30);
    with_acme(&s, &pebble);
    s.run();
    let first = wait_issued(&s)["serial"].as_str().unwrap().to_string();
    let key = s.key("add", "live1");
    let mut publisher = Publisher::start(&key.url(), 90);
    s.wait_live("live1", true);
    let master = s.nginx_pid();
    // Watch the stream until a few seconds after the renewal's reload.
    let start = Instant::now();
    let mut renewed: Option<(String, Instant)> = None;
    while renewed
        .as_ref()
        .is_none_or(|(_, at)| at.elapsed() < Duration::from_secs(5))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the certificate was not renewed"
        );
        assert!(publisher.is_running(), "the publisher was cut off");
        assert!(s.is_live("live1"), "the stream dropped");
        if renewed.is_none() {
            if let Some(serial) = status(&s)["serial"].as_str().filter(|x| *x != first) {
                renewed = Some((serial.to_string(), Instant::now()));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        s.nginx_pid(),
        master,
        "nginx was restarted rather than reloaded"
    );
    assert!(s.read("logs/error.log").contains("reconfiguring"));
    // With a domain, plain HTTP redirects to HTTPS: ask HTTPS (the served certificate is
    // checked below).
    let out = std::process::Command::new("curl")
        .args(["-sk", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "https://127.0.0.1:{}/live/live1/index.m3u8",
            s.https
        ))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"200", "HLS stopped after the reload");
    drop(publisher);
    let chain = std::fs::read_to_string(s.data(&format!("certs/{DOMAIN}/fullchain.pem"))).unwrap();
    let served = served_certificate(s.https, DOMAIN).unwrap();
    assert_eq!(served, leaf(&chain));
    assert!(pair_matches(&s));
    // The previous pair is kept as a backup.
    assert_eq!(
        std::fs::read_dir(s.data(&format!("certs/.versions/{DOMAIN}")))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn an_unreachable_ca_keeps_the_old_certificate_and_schedules_a_retry() {
    let mut s = Server::init(Options::default());
    let mut pebble = Pebble::start(s.http, 3600);
    with_acme(&s, &pebble);
    s.run();
    let serial = wait_issued(&s)["serial"].as_str().unwrap().to_string();
    let chain = std::fs::read_to_string(s.data(&format!("certs/{DOMAIN}/fullchain.pem"))).unwrap();
    wait_served(&s, &chain);
    pebble.stop();

    let out = s.cli(&["cert", "renew", "--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot get a certificate for streamedge.test"),
        "{err}"
    );
    assert!(
        err.contains("the current certificate stays in service"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let st = status(&s);
    assert_eq!(st["serial"], serial.as_str());
    assert!(
        st["last_error"].as_str().unwrap().contains("ACME server"),
        "{st}"
    );
    assert_eq!(st["failures"], 1);
    let next = humantime::parse_rfc3339(st["next_attempt"].as_str().unwrap()).unwrap();
    let wait = next.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        wait > Duration::from_secs(240) && wait <= Duration::from_secs(300),
        "{wait:?}"
    );
    // nginx still serves the certificate it had.
    assert_eq!(served_certificate(s.https, DOMAIN).unwrap(), leaf(&chain));
    assert!(pair_matches(&s));
}

#[test]
fn a_sidecar_killed_mid_issuance_never_leaves_a_mismatched_pair() {
    let mut s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    with_acme(&s, &pebble);
    s.run();
    wait_issued(&s);
    for i in 0..8u64 {
        let mut renew = Command::new(streamedge_bin())
            .arg("--config")
            .arg(s.config())
            .args(["cert", "renew", "--force"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + i * 60));
        let _ = kill(Pid::from_raw(renew.id() as i32), Signal::SIGKILL);
        let _ = renew.wait();
        assert!(
            pair_matches(&s),
            "mismatched pair after a kill at about {}ms",
            40 + i * 60
        );
    }
    // The next renewal works and cleans up what the killed ones left.
    let out = s.cli(&["cert", "renew", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pair_matches(&s));
    let left: Vec<_> = std::fs::read_dir(s.data("acme/challenge/.well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        std::fs::read_dir(s.data(&format!("certs/.versions/{DOMAIN}")))
            .unwrap()
            .count()
            <= 2
    );
}

#[test]
fn external_account_binding_is_honoured() {
    const KID: &str = "kid-1";
    const HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let mut s = Server::init(Options::default());
    let pebble = Pebble::start_with(s.http, 3600, Some((KID, HMAC)));
    with_acme(&s, &pebble);
    // Without binding, the CA refuses to make an account.
    let out = s.cli(&["cert", "renew"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot get a certificate"));
    s.edit_config(|c| {
        let acme = c["acme"].as_table_mut().unwrap();
        acme.insert("eab_kid".into(), KID.into());
        acme.insert("eab_hmac_key".into(), HMAC.into());
    });
    s.run();
    let st = wait_issued(&s);
    assert_eq!(st["failures"], 0);
    assert!(pair_matches(&s));
}

/// A CA whose HTTPS certificate is not trusted (no `acme.ca_root` for a private CA, or the
/// wrong one) fails with what TLS found wrong and the setting that fixes it, not hyper's
/// "client error (Connect)".
#[test]
fn an_untrusted_ca_says_why_and_names_acme_ca_root() {
    let s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    with_acme(&s, &pebble);
    // A root that signed nothing pebble has.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let wrong = s.path("wrong-root.pem");
    std::fs::write(&wrong, params.self_signed(&key).unwrap().pem()).unwrap();

    for root in [None, Some(&wrong)] {
        s.edit_config(|c| {
            let acme = c["acme"].as_table_mut().unwrap();
            match root {
                Some(r) => acme.insert("ca_root".into(), r.display().to_string().into()),
                None => acme.remove("ca_root"),
            };
        });
        let out = s.cli(&["cert", "renew"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("cannot verify the ACME server's TLS certificate (invalid peer certificate: UnknownIssuer)"),
            "{err}"
        );
        assert!(err.contains("acme.ca_root"), "{err}");
        if let Some(r) = root {
            assert!(err.contains(&r.display().to_string()), "{err}");
        }
        assert!(!err.contains("client error (Connect)"), "{err}");
        // `cert status` keeps the same reason.
        let st = status(&s);
        assert!(
            st["last_error"].as_str().unwrap().contains("acme.ca_root"),
            "{st}"
        );
    }
}

// DNS-01 through the IONOS stand-in: it keeps pebble-challtestsrv's TXT records the same as
// its own, so pebble validates exactly what IONOS was told.

const IONOS_KEY: &str = "pubprefix.secret";

/// An IONOS stand-in holding the zone `streamedge.test`, no quota, and TXT records pushed to
/// the DNS pebble validates with.
fn ionos_for(pebble: &Pebble) -> Standin {
    let api = Standin::start(IONOS_KEY);
    let mut st = api.state.lock().unwrap();
    st.quota = usize::MAX;
    st.zones = vec![("z1".into(), DOMAIN.into())];
    st.txt_to = vec![pebble.dns().management_url()];
    drop(st);
    api
}

/// `with_acme`, then DNS-01 (`challenge`) with these names, the stand-in's key from `[ddns]`,
/// and `dns` as the DNS everything asks (the zone has no NS records there: its TXT records
/// are watched at `dns` itself).
fn with_dns01(s: &Server, pebble: &Pebble, api: &Standin, challenge: &str, domains: &[&str]) {
    with_acme(s, pebble);
    let ns = pebble.dns().addr();
    let (base, echo) = (api.url(""), api.url("/v4"));
    api.set_echo("/v4", 200, "127.0.0.1");
    s.edit_config(|c| {
        let acme = c["acme"].as_table_mut().unwrap();
        let names: Vec<toml::Value> = domains.iter().map(|d| toml::Value::from(*d)).collect();
        acme.insert("domains".into(), names.into());
        acme.insert("challenge".into(), challenge.into());
        acme.insert(
            "nameservers".into(),
            vec![toml::Value::from(ns.clone())].into(),
        );
        acme.insert("propagation_timeout".into(), "60s".into());
        let mut d = toml::Table::new();
        d.insert("api_key".into(), IONOS_KEY.into());
        d.insert("api_base".into(), base.into());
        d.insert("domains".into(), vec![toml::Value::from(DOMAIN)].into());
        // Dynamic DNS itself stays on loopback and quiet: an echo that says loopback (no
        // public address, so no update), and the test's DNS.
        d.insert("ip_sources_v4".into(), vec![toml::Value::from(echo)].into());
        d.insert("nameservers".into(), vec![toml::Value::from(ns)].into());
        d.insert("interval".into(), "1h".into());
        c.insert("ddns".into(), d.into());
    });
}

/// The TXT records the stand-in holds, and the records the sidecar still lists as made.
fn leftovers(s: &Server, api: &Standin) -> (Vec<(String, String)>, bool) {
    (api.txt_records(), s.data("acme/dns-records.json").exists())
}

fn subject_alt_names(s: &Server, chain: &str) -> String {
    let lp = s.path("leaf.pem");
    std::fs::write(&lp, leaf(chain)).unwrap();
    openssl(&[
        "x509",
        "-in",
        &lp.display().to_string(),
        "-noout",
        "-ext",
        "subjectAltName",
    ])
}

#[test]
fn dns01_issues_a_wildcard_and_its_base_name_served_by_nginx_and_removes_its_records() {
    let mut s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    let api = ionos_for(&pebble);
    let wildcard = format!("*.{DOMAIN}");
    with_dns01(&s, &pebble, &api, "dns-01", &[&wildcard, DOMAIN]);
    // A fixed address: [ddns] only lends its key, and no dynamic DNS runs.
    s.edit_config(|c| {
        let d = c.get_mut("ddns").and_then(|d| d.as_table_mut()).unwrap();
        d.remove("domains");
    });
    s.run();
    let st = wait_issued(&s);
    assert_eq!(st["challenge"], "dns-01");
    assert!(
        !s.read("run.log").contains("ddns:"),
        "{}",
        s.read("run.log")
    );
    assert_eq!(st["domains"][0], wildcard.as_str());
    // Stored where no name is a glob; nginx's configuration points there.
    let chain = std::fs::read_to_string(s.data(&format!("certs/_wildcard.{DOMAIN}/fullchain.pem")))
        .unwrap();
    assert!(s
        .read("nginx.conf")
        .contains(&format!("certs/_wildcard.{DOMAIN}/fullchain.pem")));
    let names = subject_alt_names(&s, &chain);
    let mut sans: Vec<&str> = names
        .lines()
        .nth(1)
        .unwrap_or("")
        .trim()
        .split(", ")
        .collect();
    sans.sort();
    assert_eq!(
        sans,
        [format!("DNS:*.{DOMAIN}"), format!("DNS:{DOMAIN}")],
        "{names}"
    );
    // nginx serves it, for the base name and for a name under the wildcard.
    wait_served(&s, &chain);
    assert_eq!(
        served_certificate(s.https, &format!("cam.{DOMAIN}")).as_deref(),
        Some(leaf(&chain).as_str())
    );
    // One TXT record per name was made, through the API, with the key; none is left.
    let posts: Vec<_> = api
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.url == "/dns/v1/zones/z1/records")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].body.matches("\"TXT\"").count(), 2, "{posts:?}");
    assert_eq!(posts[0].api_key.as_deref(), Some(IONOS_KEY));
    let deletes = api.calls().iter().filter(|c| c.method == "DELETE").count();
    assert_eq!(deletes, 2);
    assert_eq!(leftovers(&s, &api), (vec![], false));
    // The key is never logged; the daemon saw nginx serve the new certificate.
    let log = s.read("run.log");
    assert!(!log.contains(IONOS_KEY));
    wait_for(
        "the daemon to see it served",
        Duration::from_secs(20),
        || {
            s.read("run.log")
                .contains("nginx serves the new certificate")
                .then_some(())
        },
    );
    assert!(!s
        .read("run.log")
        .contains("does not serve the new certificate"));
    let out = s.cli(&["cert", "status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("challenge: dns-01"));
}

#[test]
fn failed_dns01_orders_leave_no_record_and_say_why() {
    let s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    let api = ionos_for(&pebble);
    with_dns01(&s, &pebble, &api, "dns-01", &[DOMAIN]);

    // A wrong key: IONOS says so, nothing is made.
    s.edit_config(|c| {
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("api_key".into(), "pubprefix.wrong".into());
    });
    let out = s.cli(&["cert", "renew"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot list the IONOS zones: IONOS answered 401: The customer is not authorized to do this operation."), "{err}");
    assert!(!err.contains("wrong"), "the key is in the message: {err}");
    assert!(status(&s)["last_error"]
        .as_str()
        .unwrap()
        .contains("IONOS answered 401"));
    assert_eq!(leftovers(&s, &api), (vec![], false));

    // The records reach the DNS the sidecar watches but not the one pebble asks: the CA
    // refuses, and the records go all the same.
    s.edit_config(|c| {
        c["ddns"]
            .as_table_mut()
            .unwrap()
            .insert("api_key".into(), IONOS_KEY.into());
    });
    let elsewhere = TestDns::start();
    api.state.lock().unwrap().txt_to = vec![elsewhere.management_url()];
    s.edit_config(|c| {
        c["acme"].as_table_mut().unwrap().insert(
            "nameservers".into(),
            vec![toml::Value::from(elsewhere.addr())].into(),
        );
    });
    let out = s.cli(&["cert", "renew"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot get a certificate for {DOMAIN}: the CA refused the order: {DOMAIN}:"
        )),
        "{err}"
    );
    let st = status(&s);
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("the CA refused the order"),
        "{st}"
    );
    assert_eq!(st["challenge"], "dns-01");
    assert_eq!(st["issued"], false);
    assert!(api.calls().iter().any(|c| c.method == "POST"));
    assert_eq!(leftovers(&s, &api), (vec![], false));

    // The zone's name servers never answer: the wait ends at acme.propagation_timeout,
    // and the records go.
    api.state.lock().unwrap().txt_to.clear();
    s.edit_config(|c| {
        c["acme"]
            .as_table_mut()
            .unwrap()
            .insert("propagation_timeout".into(), "2s".into());
    });
    let out = s.cli(&["cert", "renew"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "do not answer TXT \"_acme-challenge.{DOMAIN}\" with the challenge after 2s"
        )),
        "{err}"
    );
    assert_eq!(leftovers(&s, &api), (vec![], false));
}

#[test]
fn records_a_killed_sidecar_left_are_removed_by_the_next_issuance() {
    let s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    let api = ionos_for(&pebble);
    with_dns01(&s, &pebble, &api, "dns-01", &[DOMAIN]);
    // The records never show in DNS: the issuance waits, and is killed while it does.
    api.state.lock().unwrap().txt_to.clear();
    let mut renew = Command::new(streamedge_bin())
        .arg("--config")
        .arg(s.config())
        .args(["cert", "renew"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ledger = s.data("acme/dns-records.json");
    wait_for("a TXT record at IONOS", Duration::from_secs(30), || {
        let listed = std::fs::read_to_string(&ledger).unwrap_or_default();
        (!api.txt_records().is_empty() && listed.contains("rec-")).then_some(())
    });
    let _ = kill(Pid::from_raw(renew.id() as i32), Signal::SIGKILL);
    let _ = renew.wait();
    assert_eq!(api.txt_records().len(), 1);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&ledger).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    api.state.lock().unwrap().txt_to = vec![pebble.dns().management_url()];
    let out = s.cli(&["cert", "renew"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&s)["issued"], true);
    assert_eq!(leftovers(&s, &api), (vec![], false));
}

#[test]
fn auto_uses_http01_when_port_80_answers_and_dns01_when_it_does_not() {
    let s = Server::init(Options::default());
    let pebble = Pebble::start(s.http, 3600);
    let api = ionos_for(&pebble);
    with_dns01(&s, &pebble, &api, "auto", &[DOMAIN]);
    s.edit_config(|c| {
        c["acme"]
            .as_table_mut()
            .unwrap()
            .insert("self_check_port".into(), i64::from(s.http).into());
    });
    // nginx must answer the self-check and pebble's HTTP-01.
    let mut s = s;
    s.run();
    let st = wait_issued(&s);
    assert_eq!(st["challenge"], "http-01");
    assert!(api.calls().iter().all(|c| c.method != "POST"));
    // The probe file is gone.
    let left: Vec<_> = std::fs::read_dir(s.data("acme/challenge/.well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The name now points at a loopback address where nothing listens, as port 80 blocked.
    pebble.dns().set(DOMAIN, false, &["127.0.0.2"]);
    let out = s.cli(&["cert", "renew", "--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let st = status(&s);
    assert_eq!(st["challenge"], "dns-01");
    assert!(st["last_error"].is_null());
    assert!(api.calls().iter().any(|c| c.method == "POST"));
    assert_eq!(leftovers(&s, &api), (vec![], false));
    let chain = std::fs::read_to_string(s.data(&format!("certs/{DOMAIN}/fullchain.pem"))).unwrap();
    wait_served(&s, &chain);
}
