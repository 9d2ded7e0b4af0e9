//! Certificates from a real ACME CA (pebble), served by real nginx, renewed while a live
//! stream goes on, surviving an unreachable CA and a killed sidecar.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use streamedge_tests::{
    metric, served_certificate, streamedge_bin, wait_for, Options, Pebble, Publisher, Server,
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
