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

/// A network of a test's own: a router namespace and hosts around it, each on a cable of its
/// own (a veth pair): host N is `10.201.N.1/24`, its way out `10.201.N.254`, the router's
/// end. Everything a test sends on it stays inside the namespaces it removes when dropped.
pub struct Network {
    router: Netns,
    hosts: u8,
}

/// A host on a [`Network`].
pub struct Host {
    pub ns: Netns,
    /// Its address on the network.
    pub address: String,
}

/// A host's end of its cable.
const UPLINK: &str = "uplink";

impl Network {
    pub fn new() -> Network {
        let router = Netns::new(&[]);
        router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        Network { router, hosts: 0 }
    }

    /// A new host, cabled to the router.
    pub fn host(&mut self) -> Host {
        self.hosts += 1;
        let n = self.hosts;
        let ns = Netns::new(&[]);
        let port = format!("h{n}");
        ip(&[
            "link",
            "add",
            UPLINK,
            "netns",
            &ns.name,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.router.name,
        ]);
        let address = format!("10.201.{n}.1");
        let gateway = format!("10.201.{n}.254");
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            UPLINK,
        ]);
        ip(&["-n", &ns.name, "link", "set", UPLINK, "up"]);
        ip(&[
            "-n",
            &self.router.name,
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            &port,
        ]);
        ip(&["-n", &self.router.name, "link", "set", &port, "up"]);
        ip(&["-n", &ns.name, "route", "add", "default", "via", &gateway]);
        Host { ns, address }
    }
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}

impl Host {
    /// Shapes what this host sends to `rate` ("20mbit"), as a home uplink is: a token bucket
    /// (`tc tbf`) on its end of the cable.
    pub fn shape_uplink(&self, rate: &str) {
        self.ns.exec(&[
            "tc", "qdisc", "add", "dev", UPLINK, "root", "tbf", "rate", rate, "burst", "32kb",
            "latency", "400ms",
        ]);
    }

    /// Bytes this host has sent on its cable.
    pub fn sent_bytes(&self) -> u64 {
        let out = self.ns.exec(&[
            "cat",
            &format!("/sys/class/net/{UPLINK}/statistics/tx_bytes"),
        ]);
        out.trim().parse().expect("a byte count")
    }

    /// `http://ADDRESS:PORT`.
    pub fn url(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.address)
    }
}

impl Netns {
    /// Runs a program inside the namespace; what it printed. Panics when it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec");
        assert!(
            out.status.success(),
            "{args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
