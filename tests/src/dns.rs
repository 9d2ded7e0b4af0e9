//! A stand-in for public DNS: pebble-challtestsrv answering what a test sets.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::free_port;
use crate::wait::wait_for;

/// pebble-challtestsrv as a real DNS server whose A/AAAA answers a test sets.
pub struct TestDns {
    pub port: u16,
    management: u16,
    child: Child,
}

impl TestDns {
    /// A DNS server where names answer nothing until a test sets them, as a real zone would.
    pub fn start() -> TestDns {
        TestDns::start_answering("")
    }

    /// A DNS server where every name not set answers `default_v4` (pebble's validation
    /// resolves any test domain to the local nginx that way).
    pub fn start_answering(default_v4: &str) -> TestDns {
        let (port, management) = (free_port(), free_port());
        let child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", default_v4, "-defaultIPv6", ""])
            .args([
                "-dns01",
                &format!("127.0.0.1:{port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let dns = TestDns {
            port,
            management,
            child,
        };
        wait_for("the test DNS server", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", management)).ok()
        });
        dns
    }

    /// The management API's base URL (`/set-txt`, `/clear-txt`, ...).
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management)
    }

    /// The DNS server's address, as `acme.nameservers` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Adds a TXT value to `host` (challtestsrv's set-txt appends).
    pub fn set_txt(&self, host: &str, value: &str) {
        set_txt(&self.management_url(), host, value);
    }

    /// Removes every TXT value of `host`.
    pub fn clear_txt(&self, host: &str) {
        clear_txt(&self.management_url(), host);
    }

    /// Makes `host` answer `addresses` (A or AAAA by their family), replacing what it had.
    pub fn set(&self, host: &str, v6: bool, addresses: &[&str]) {
        let (clear, add) = if v6 {
            ("clear-aaaa", "add-aaaa")
        } else {
            ("clear-a", "add-a")
        };
        let client = reqwest::blocking::Client::new();
        let host = format!("{}.", host.trim_end_matches('.'));
        let base = format!("http://127.0.0.1:{}", self.management);
        client
            .post(format!("{base}/{clear}"))
            .json(&serde_json::json!({"host": host}))
            .send()
            .unwrap();
        if !addresses.is_empty() {
            let r = client
                .post(format!("{base}/{add}"))
                .json(&serde_json::json!({"host": host, "addresses": addresses}))
                .send()
                .unwrap();
            assert!(r.status().is_success(), "challtestsrv refused {add}");
        }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// challtestsrv's names: lowercase, with the trailing dot.
fn dns_host(host: &str) -> String {
    format!("{}.", host.trim_end_matches('.').to_ascii_lowercase())
}

/// `set-txt` at a challtestsrv management URL: adds `value` to `host`'s TXT values.
pub fn set_txt(management: &str, host: &str, value: &str) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{management}/set-txt"))
        .json(&serde_json::json!({"host": dns_host(host), "value": value}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "challtestsrv refused set-txt");
}

/// `clear-txt` at a challtestsrv management URL.
pub fn clear_txt(management: &str, host: &str) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{management}/clear-txt"))
        .json(&serde_json::json!({"host": dns_host(host)}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "challtestsrv refused clear-txt");
}
