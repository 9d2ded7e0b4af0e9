//! A stand-in for Let's Encrypt: a real ACME CA (Debian's pebble), and a look at the
//! certificate a server presents.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dns::TestDns;
use crate::ports::free_port;

/// A real ACME CA for tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS
/// (every name is 127.0.0.1), its HTTP-01 validation pointed at a given port, and a TLS
/// certificate for its own listener from a CA made here.
pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub management: u16,
    _dns: TestDns,
    children: Vec<Child>,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port`, issuing certificates valid for
    /// `validity` seconds. pebble's default 5% nonce rejection stays on.
    pub fn start(http_port: u16, validity: u64) -> Pebble {
        Pebble::start_with(http_port, validity, None)
    }

    /// As `start`, requiring external account binding with this key id and (URL-safe
    /// base64) HMAC key.
    pub fn start_with(http_port: u16, validity: u64, eab: Option<(&str, &str)>) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("pebble-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        // A CA for pebble's own HTTPS, and a listener certificate for 127.0.0.1.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "streamedge test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(d.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), key.serialize_pem()).unwrap();

        let dns_server = TestDns::start_answering("127.0.0.1");
        let dns = dns_server.port;
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        // pebble exits at once if a port was taken in the meantime: then again, elsewhere.
        for _ in 0..3 {
            let (port, management) = (free_port(), free_port());
            let config = serde_json::json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": d.join("cert.pem"),
                "privateKey": d.join("key.pem"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": eab.is_some(),
                "externalAccountMACKeys": eab.map(|(k, v)| serde_json::json!({k: v})).unwrap_or(serde_json::json!({})),
                "certificateValidityPeriod": validity,
            }});
            std::fs::write(d.join("pebble.json"), config.to_string()).unwrap();
            let mut child = Command::new("pebble")
                .arg("-config")
                .arg(d.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                // Every order proves its names: a reused authorization would skip the
                // challenge a test is about.
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(log("pebble.log"))
                .stderr(log("pebble.err"))
                .spawn()
                .expect("start pebble");
            let url = format!("https://127.0.0.1:{port}/dir");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if get_trusting(&d.join("ca.pem"), &url).is_ok() {
                    return Pebble {
                        dir,
                        port,
                        management,
                        _dns: dns_server,
                        children: vec![child],
                    };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let err = std::fs::read_to_string(d.join("pebble.err")).unwrap_or_default();
        panic!("pebble did not start:\n{err}");
    }

    /// The DNS pebble's validation asks (DNS-01's TXT records, HTTP-01's addresses).
    pub fn dns(&self) -> &TestDns {
        &self._dns
    }

    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The root that signs pebble's own HTTPS certificate.
    pub fn ca_root(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn get(&self, url: &str) -> reqwest::Result<String> {
        get_trusting(&self.ca_root(), url)
    }

    /// The root and intermediate that sign the certificates pebble issues (regenerated at
    /// every start), from its management port.
    pub fn issuing_chain(&self) -> (String, String) {
        let m = format!("https://127.0.0.1:{}", self.management);
        (
            self.get(&format!("{m}/roots/0")).unwrap(),
            self.get(&format!("{m}/intermediates/0")).unwrap(),
        )
    }

    /// Stops the CA: it becomes unreachable.
    pub fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A GET over HTTPS trusting only the root in `ca` (pebble's own listener).
fn get_trusting(ca: &Path, url: &str) -> reqwest::Result<String> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()?
        .error_for_status()?
        .text()
}

/// The leaf certificate (PEM) an HTTPS server presents for `sni`, by `openssl s_client`.
pub fn served_certificate(port: u16, sni: &str) -> Option<String> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    Some(format!("{}\n", &text[start..end]))
}
