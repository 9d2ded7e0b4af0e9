//! Hosts of a test's own: a network namespace with the addresses it needs.

use std::process::Command;

use crate::ports::free_port;

/// A network namespace the test creates (and removes when dropped), with its own loopback
/// holding whatever addresses a test needs: hosts of its own, never this machine's.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace whose loopback also has `addresses` (`"2001:db8:1:2::1/64"`).
    pub fn new(addresses: &[&str]) -> Netns {
        let name = format!("se-test-{}-{}", std::process::id(), free_port());
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        for a in addresses {
            ip(&["-n", &ns.name, "addr", "add", a, "dev", "lo", "nodad"]);
        }
        ns
    }

    /// Runs `f` on a thread of its own that has entered the namespace: the sockets it
    /// opens, the threads it starts and the programs it runs are all inside. A panic in `f`
    /// is the caller's.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            let inside = scope.spawn(|| {
                let ns = std::fs::File::open(&path).expect("open the namespace");
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("enter the namespace (the tests run as root)");
                f()
            });
            inside
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// `curl` inside the namespace, from source address `from`; the status code.
    pub fn curl(&self, from: Option<&str>, url: &str) -> Result<u16, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, "curl", "-s", "-g", "-m", "5"]);
        cmd.args(["-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(f) = from {
            cmd.args(["--interface", f]);
        }
        let out = cmd.arg(url).output().map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&out.stdout)
            .parse::<u16>()
            .ok()
            .filter(|&c| c != 0)
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}
