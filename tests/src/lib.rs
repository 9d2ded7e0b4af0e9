//! The end-to-end harness: a real streamedge server (sidecar supervising Debian's nginx with
//! nginx-rtmp and the built module) in a temp folder on free loopback ports, real ffmpeg
//! publishers, and teardown that leaves no process behind even when a test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The workspace's release build folder (override with `STREAMEDGE_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("STREAMEDGE_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"))
}

pub fn streamedge_bin() -> PathBuf {
    target_dir().join("streamedge")
}

pub fn module_path() -> PathBuf {
    target_dir().join("libngx_http_streamedge_module.so")
}

/// A port nobody listens on right now, below the kernel's ephemeral range (32768 and up on
/// Linux), so no outgoing connection of this or another test takes it before the server
/// binds it; each test process walks its own stretch of ports, never handing one out twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 40) as u16 * 500;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + n % 500;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        assert!(n < 5_000, "no free port found");
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Settings written into `streamedge.toml` beyond what `init` chooses.
#[derive(Debug, Clone)]
pub struct Options {
    pub ban_attempts: u32,
    pub ban_window: &'static str,
    pub ban_time: &'static str,
    /// `fetch.allow_private_addresses`: the tests' media servers are on loopback.
    pub allow_private_addresses: bool,
}

impl Default for Options {
    fn default() -> Self {
        // Tests refuse many publishers on purpose: no bans unless a test asks for them.
        Options {
            ban_attempts: 0,
            ban_window: "10m",
            ban_time: "15m",
            allow_private_addresses: true,
        }
    }
}

/// A configured server folder; `start` runs it.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub https: u16,
    pub rtmp: u16,
    /// nginx's loopback-only server: callbacks, stub_status.
    pub internal: u16,
    run: Option<Child>,
}

/// A new key as `streamedge keys add --json` prints it.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub server_url: String,
    pub stream_key: String,
}

impl Key {
    /// The full RTMP URL a publisher uses: server URL and stream key, as OBS joins them.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server_url, self.stream_key)
    }
}

impl Server {
    /// `streamedge init` in a temp folder on free loopback ports.
    pub fn init(opts: Options) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("streamedge-test-")
            .tempdir()
            .unwrap();
        // nginx's workers run as www-data when the tests run as root: let them in.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let (http, https, rtmp, internal) = (free_port(), free_port(), free_port(), free_port());
        let out = Command::new(streamedge_bin())
            .args([
                "init",
                "--bind",
                "127.0.0.1",
                "--host",
                "127.0.0.1",
                "--worker-processes",
                "2",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--http-port",
                &http.to_string(),
                "--https-port",
                &https.to_string(),
            ])
            .args(["--rtmp-port", &rtmp.to_string()])
            .args(["--internal-port", &internal.to_string()])
            .arg("--module")
            .arg(module_path())
            .output()
            .expect("run streamedge init");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = Server {
            dir,
            http,
            https,
            rtmp,
            internal,
            run: None,
        };
        let api = free_port();
        s.edit_config(|c| {
            let publish = c["publish"].as_table_mut().expect("init writes [publish]");
            publish.insert("ban_attempts".into(), i64::from(opts.ban_attempts).into());
            publish.insert("ban_window".into(), opts.ban_window.into());
            publish.insert("ban_time".into(), opts.ban_time.into());
            c["api"]
                .as_table_mut()
                .expect("init writes [api]")
                .insert("listen".into(), format!("127.0.0.1:{api}").into());
            c["fetch"]
                .as_table_mut()
                .expect("init writes [fetch]")
                .insert(
                    "allow_private_addresses".into(),
                    opts.allow_private_addresses.into(),
                );
        });
        s
    }

    /// The control API's token, from the configured data directory.
    pub fn token(&self) -> String {
        let config: toml::Table = self.read("streamedge.toml").parse().expect("valid TOML");
        let data = self.path(config["data_dir"].as_str().expect("data_dir"));
        std::fs::read_to_string(data.join("api.token"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// A request to the control API through nginx's `/api/` on the HTTP port; with the
    /// token when `auth`. Returns the status and the JSON body (`null` when empty).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, auth: bool) -> (u16, Value) {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut req = client.request(method.parse().unwrap(), self.url(path));
        if auth {
            req = req.bearer_auth(self.token());
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().expect("the API answers");
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, v)
    }

    /// `POST /api/jobs` with `body`; panics unless it is created.
    pub fn submit(&self, body: &Value) -> String {
        let (status, v) = self.api("POST", "/api/jobs", Some(&body.to_string()), true);
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Waits until job `id` satisfies `f` (a job that ends otherwise fails the test).
    pub fn wait_job(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (_, j) = self.api("GET", &format!("/api/jobs/{id}"), None, true);
            if f(&j) {
                return j;
            }
            let state = j["state"].as_str().unwrap_or_default();
            if ["done", "failed", "cancelled"].contains(&state) {
                panic!("job {id} ended ({j}) while waiting for {what}");
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; the job: {j}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Entries of a data folder (none if it does not exist).
    pub fn entries(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data(rel))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The pid of `streamedge run`.
    pub fn run_pid(&self) -> Option<u32> {
        self.run.as_ref().map(|c| c.id())
    }

    /// Kills `streamedge run` with SIGKILL, as a crash would, and reaps it.
    pub fn kill_run(&mut self) {
        if let Some(mut child) = self.run.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `init` then `run`, waiting until nginx answers.
    pub fn start(opts: Options) -> Server {
        let mut s = Server::init(opts);
        s.run();
        s
    }

    pub fn run(&mut self) {
        let log = std::fs::File::create(self.path("run.log")).unwrap();
        let child = Command::new(streamedge_bin())
            .arg("--config")
            .arg(self.config())
            .arg("run")
            .env("STREAMEDGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start streamedge run");
        self.run = Some(child);
        // The internal server: never redirected to HTTPS, whatever the configuration.
        let url = format!("http://127.0.0.1:{}/api/streams", self.internal);
        wait_for("nginx to answer", Duration::from_secs(20), || {
            if let Some(status) = self.run.as_mut().unwrap().try_wait().unwrap() {
                panic!("streamedge run exited ({status}): {}", self.read("run.log"));
            }
            http_get(&url).ok().filter(|r| r.status == 200)
        });
    }

    /// Changes `streamedge.toml` as a user editing it would.
    pub fn edit_config(&self, f: impl FnOnce(&mut toml::Table)) {
        let mut table: toml::Table = self.read("streamedge.toml").parse().expect("valid TOML");
        f(&mut table);
        std::fs::write(self.config(), toml::to_string(&table).unwrap()).unwrap();
    }

    pub fn config(&self) -> PathBuf {
        self.path("streamedge.toml")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn data(&self, rel: &str) -> PathBuf {
        self.dir.path().join("data").join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// Runs `streamedge --config <this server> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(streamedge_bin())
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run streamedge")
    }

    /// `keys add NAME --json` (or `rotate`), parsed.
    pub fn key(&self, verb: &str, name: &str) -> Key {
        let out = self.cli(&["keys", verb, name, "--json"]);
        assert!(
            out.status.success(),
            "keys {verb} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("keys --json prints JSON");
        Key {
            name: v["name"].as_str().unwrap().into(),
            server_url: v["server_url"].as_str().unwrap().into(),
            stream_key: v["stream_key"].as_str().unwrap().into(),
        }
    }

    /// `GET /api/streams`, as (name, live) pairs.
    pub fn streams(&self) -> Vec<(String, bool)> {
        let url = format!("http://127.0.0.1:{}/api/streams", self.internal);
        let r = http_get(&url).expect("GET /api/streams");
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).expect("/api/streams is JSON");
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["live"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    pub fn is_live(&self, name: &str) -> bool {
        self.streams().iter().any(|(n, live)| n == name && *live)
    }

    pub fn wait_live(&self, name: &str, live: bool) {
        wait_for(
            &format!("{name} live={live}"),
            Duration::from_secs(20),
            || (self.is_live(name) == live).then_some(()),
        );
    }

    /// The nginx master's pid, from its pid file.
    pub fn nginx_pid(&self) -> Option<i32> {
        self.read("nginx.pid").trim().parse().ok()
    }

    /// Every log nginx and the sidecar wrote, for checks that span them all.
    pub fn all_logs(&self) -> String {
        ["logs/error.log", "logs/access.log", "run.log"]
            .iter()
            .map(|l| self.read(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Lines in nginx's error log that say a worker died.
    pub fn crashes(&self) -> Vec<String> {
        self.read("logs/error.log")
            .lines()
            .filter(|l| {
                l.contains("exited on signal")
                    || l.contains("[alert]") && l.contains("worker process")
            })
            .map(String::from)
            .collect()
    }

    /// Stops `streamedge run` as a user would (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.run.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    pub fn signal_run(&self, sig: Signal) {
        let pid = self.run.as_ref().expect("running").id();
        kill(Pid::from_raw(pid as i32), sig).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // Whatever happened, no nginx of this test outlives it.
        if let Some(pid) = self.nginx_pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- logs of {} ---\n{}",
                self.dir.path().display(),
                self.all_logs()
            );
        }
    }
}

/// A running ffmpeg publisher, stopped on drop.
pub struct Publisher(Child);

impl Publisher {
    /// Publishes a small test pattern with sound for `secs` seconds, in real time.
    pub fn start(url: &str, secs: u32) -> Publisher {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=15"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", &secs.to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "15",
            ])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg");
        Publisher(child)
    }

    /// Waits for ffmpeg to end; returns whether it succeeded and what it printed.
    pub fn finish(mut self, timeout: Duration) -> (bool, String) {
        let status = wait_for("ffmpeg to end", timeout, || self.0.try_wait().unwrap());
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.success(), err)
    }

    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn http_get(url: &str) -> reqwest::Result<Response> {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()?;
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: r.bytes()?.to_vec(),
    })
}

/// Sends raw bytes as a request and returns the status code nginx answered, if any. For
/// requests no well-behaved client would send.
pub fn raw_request(port: u16, request: &[u8]) -> Option<u16> {
    raw_exchange(port, request).map(|(status, _)| status)
}

/// Sends raw bytes and returns the status and the whole response, headers included.
pub fn raw_exchange(port: u16, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf))
}

/// `GET` of a path sent exactly as given (clients would normalize or escape it).
pub fn raw_get(port: u16, path: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    raw_exchange(port, &req)
}

/// `ffprobe` on a URL: the codec types of the streams it could decode, in order.
pub fn ffprobe_streams(url: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A form POST to the callback location, as nginx-rtmp sends it (HTTP/1.0).
pub fn callback(port: u16, body: &[u8]) -> Option<u16> {
    let mut req = format!(
        "POST /rtmp/auth HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_request(port, &req)
}

/// A bare nginx with the streamedge module and a given `http` block, on free loopback ports,
/// two workers: for tests of directives outside the generated configuration.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Starts nginx; `{port}` in `http` is replaced by its port.
    pub fn start(http: &str) -> Nginx {
        Nginx::start_with(http, None)
    }

    /// Starts nginx inside network namespace `netns` (see [`Netns`]); `{port}` as above.
    /// Requests must then come from inside the namespace too.
    pub fn start_in(netns: &Netns, http: &str) -> Nginx {
        Nginx::start_with(http, Some(netns))
    }

    fn start_with(http: &str, netns: Option<&Netns>) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("streamedge-nginx-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let port = free_port();
        write_conf(dir.path(), port, http);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, "/usr/sbin/nginx"]);
                c
            }
            None => Command::new("/usr/sbin/nginx"),
        };
        let child = cmd
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { dir, port, child };
        wait_for("nginx to answer", Duration::from_secs(10), || {
            if let Some(status) = n.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", n.error_log());
            }
            match netns {
                Some(ns) => ns.curl(None, &format!("http://[::1]:{}/", n.port)).ok(),
                None => http_get(&n.url("/")).ok().map(|r| r.status),
            }
        });
        n
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// Writes a new `http` block and reloads; returns whether nginx accepted it (it keeps the
    /// old configuration otherwise). Waits until the old workers are gone.
    pub fn reload(&self, http: &str) -> bool {
        write_conf(self.dir.path(), self.port, http);
        let before = self.error_log().matches("gracefully shutting down").count();
        let ok = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .args(["-s", "reload"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "nginx -s reload could not signal nginx");
        wait_for("the reload to finish", Duration::from_secs(10), || {
            let log = self.error_log();
            if log.contains("[emerg]") && log.rfind("reconfiguring") < log.rfind("[emerg]") {
                return Some(false);
            }
            (log.matches("gracefully shutting down").count() >= before + 2).then_some(true)
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
        }
    }
}

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

/// Writes a bare nginx configuration around `http` into `dir`.
fn write_conf(dir: &Path, port: u16, http: &str) {
    let d = dir.display();
    let text = format!(
        "load_module {module};\ndaemon off;\nworker_processes 2;\npid {d}/nginx.pid;\n\
         error_log {d}/logs/error.log info;\nevents {{}}\nhttp {{\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         log_format limits '$pid $status $streamedge_limit_result';\n\
         access_log {d}/logs/access.log limits;\n{http}\n}}\n",
        module = module_path().display(),
        http = http.replace("{port}", &port.to_string()),
    );
    std::fs::write(dir.join("nginx.conf"), text).unwrap();
}

/// Statuses of `n` GET requests to `url`, each on a fresh connection.
pub fn statuses(url: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| http_get(url).expect("request").status)
        .collect()
}

/// Decodes `secs` seconds of video and audio from `url` with ffmpeg; both must be present.
/// Returns whether it worked and what ffmpeg said.
pub fn ffmpeg_decodes(url: &str, secs: u32) -> (bool, String) {
    let out = Command::new("timeout")
        .args([
            "60",
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            url,
            "-t",
            &secs.to_string(),
        ])
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Makes a library item as the sidecar publishes one: two renditions of a short test clip
/// in fMP4 HLS (VOD playlists, a master playlist) and a meta.json.
pub fn make_vod_item(vod_dir: &Path, id: &str, meta: &str) {
    let dir = vod_dir.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("ffmpeg")
        .current_dir(&dir)
        .args(["-nostdin", "-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=4:size=320x180:rate=15",
        ])
        .args(["-f", "lavfi", "-i", "sine=duration=4:frequency=440"])
        .args(["-filter_complex", "[0:v]split=2[a][b];[b]scale=160:90[c]"])
        .args(["-map", "[a]", "-map", "[c]", "-map", "1:a", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-c:a",
            "aac",
        ])
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-master_pl_name",
            "master.m3u8",
        ])
        .args(["-var_stream_map", "v:0,a:0 v:1,a:1", "v%v/index.m3u8"])
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the VOD fixture");
    std::fs::write(dir.join("meta.json"), meta).unwrap();
}

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

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub api_key: Option<String>,
    pub body: String,
}

/// What the stand-in answers and remembers.
#[derive(Debug, Default)]
pub struct StandinState {
    /// IP echo answers by path (`/v4/a` ...): status and body.
    pub echo: std::collections::HashMap<String, (u16, String)>,
    /// IONOS zones: (id, name), and records: (id, zone id, name, type, content).
    pub zones: Vec<(String, String)>,
    pub records: Vec<(String, String, String, String, String)>,
    /// The key IONOS accepts.
    pub api_key: String,
    /// Where the stand-in listens, for the update URL it hands out.
    pub port: u16,
    /// Answers for the next IONOS calls, instead of the real ones: (status, body).
    pub fail_next: Vec<(u16, String)>,
    /// Every IONOS request (echo requests are not kept).
    pub seen: Vec<Seen>,
    /// Times of IONOS requests, to check the quota: 2 a minute, as documented, unless a test
    /// configures the client for more.
    pub request_times: Vec<Instant>,
    pub quota: usize,
    pub quota_exceeded: bool,
}

/// Local stand-ins for the services streamedge's DNS updates talk to: IP echo services and
/// the IONOS DNS API, following IONOS's documented contract (X-API-Key, JSON bodies, error
/// arrays of {code, message}, a DynDNS update URL, at most 2 requests a minute).
pub struct Standin {
    pub port: u16,
    pub state: std::sync::Arc<std::sync::Mutex<StandinState>>,
}

impl Standin {
    pub fn start(api_key: &str) -> Standin {
        let (port, server) = tiny_server("the stand-in");
        let state = std::sync::Arc::new(std::sync::Mutex::new(StandinState {
            api_key: api_key.to_string(),
            port,
            quota: 2,
            ..Default::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let (status, text) = answer(&shared, &req, body);
                let resp = tiny_http::Response::from_string(text)
                    .with_status_code(status)
                    .with_header(
                        "Content-Type: application/json"
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    );
                let _ = req.respond(resp);
            }
        });
        Standin { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_echo(&self, path: &str, status: u16, body: &str) {
        self.state
            .lock()
            .unwrap()
            .echo
            .insert(path.into(), (status, body.into()));
    }

    /// IONOS requests seen so far.
    pub fn calls(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn answer(
    state: &std::sync::Mutex<StandinState>,
    req: &tiny_http::Request,
    body: String,
) -> (u16, String) {
    let mut s = state.lock().unwrap();
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    if let Some((status, text)) = s.echo.get(&path) {
        return (*status, text.clone());
    }
    let key = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-API-Key"))
        .map(|h| h.value.to_string());
    s.seen.push(Seen {
        method: req.method().to_string(),
        url: url.clone(),
        api_key: key.clone(),
        body: body.clone(),
    });
    let now = Instant::now();
    s.request_times
        .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
    s.request_times.push(now);
    if s.request_times.len() > s.quota {
        s.quota_exceeded = true;
        return (
            429,
            r#"[{"code":"TOO_MANY_REQUESTS","message":"Rate limit exceeded"}]"#.into(),
        );
    }
    if !s.fail_next.is_empty() {
        return s.fail_next.remove(0);
    }
    let method = req.method().to_string();
    // The update URL carries its own secret and needs no key.
    if path == "/dyndns-update" {
        return if url.contains("q=secret-update-token") {
            (200, String::new())
        } else {
            (
                401,
                r#"[{"code":"UNAUTHORIZED","message":"invalid update token"}]"#.into(),
            )
        };
    }
    if key.as_deref() != Some(s.api_key.as_str()) {
        return (401, r#"[{"code":"UNAUTHORIZED","message":"The customer is not authorized to do this operation."}]"#.into());
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["dns", "v1", "dyndns"]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if !v["domains"].is_array() {
                return (
                    400,
                    r#"[{"code":"INVALID_DATA","message":"domains is required"}]"#.into(),
                );
            }
            let update = format!(
                "http://127.0.0.1:{}/dyndns-update?q=secret-update-token",
                s.port
            );
            (200, serde_json::json!({"bulkId": "bulk-1", "updateUrl": update, "domains": v["domains"], "description": v["description"]}).to_string())
        }
        ("DELETE", ["dns", "v1", "dyndns", bulk]) => {
            if *bulk == "bulk-1" {
                (200, String::new())
            } else {
                (404, "[]".into())
            }
        }
        ("GET", ["dns", "v1", "zones"]) => {
            let zones: Vec<_> = s
                .zones
                .iter()
                .map(|(id, name)| serde_json::json!({"id": id, "name": name, "type": "NATIVE"}))
                .collect();
            (200, serde_json::Value::from(zones).to_string())
        }
        ("GET", ["dns", "v1", "zones", zone]) => {
            let records: Vec<_> = s
                .records
                .iter()
                .filter(|r| r.1 == *zone)
                .map(|r| serde_json::json!({"id": r.0, "name": r.2, "type": r.3, "content": r.4, "ttl": 60, "prio": 0, "disabled": false}))
                .collect();
            (
                200,
                serde_json::json!({"id": zone, "name": "zone", "records": records}).to_string(),
            )
        }
        ("PUT", ["dns", "v1", "zones", zone, "records", id]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let (zone, id) = (zone.to_string(), id.to_string());
            match (
                v["content"].as_str(),
                s.records.iter_mut().find(|r| r.0 == id && r.1 == zone),
            ) {
                (Some(c), Some(r)) => {
                    r.4 = c.to_string();
                    (200, String::new())
                }
                _ => (
                    404,
                    r#"[{"code":"NOT_FOUND","message":"record not found"}]"#.into(),
                ),
            }
        }
        ("POST", ["dns", "v1", "zones", zone, "records"]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let zone = zone.to_string();
            for r in v.as_array().cloned().unwrap_or_default() {
                let id = format!("rec-{}", s.records.len() + 1);
                s.records.push((
                    id,
                    zone.clone(),
                    r["name"].as_str().unwrap_or("").into(),
                    r["type"].as_str().unwrap_or("").into(),
                    r["content"].as_str().unwrap_or("").into(),
                ));
            }
            (201, String::new())
        }
        _ => (
            404,
            r#"[{"code":"NOT_FOUND","message":"no such resource"}]"#.into(),
        ),
    }
}

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

/// Test media made with ffmpeg once per test binary: `clip.mp4` (720p, 8 s, with sound),
/// `long.mp4` (720p, 30 s), `song.m4a` (audio only, 8 s), `corrupt.mp4` (random bytes).
/// Made once into the build folder and kept, since every run would make the same files.
pub fn media_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let done = target_dir().join("test-media-1");
        if done.is_dir() {
            return done;
        }
        let dir = tempfile::Builder::new()
            .prefix("test-media-")
            .tempdir_in(target_dir())
            .unwrap();
        let make = |name: &str, args: &[&str]| {
            let out = Command::new("ffmpeg")
                .args(["-v", "error", "-y"])
                .args(args)
                .arg(dir.path().join(name))
                .output()
                .expect("run ffmpeg");
            assert!(
                out.status.success(),
                "make {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let video = |secs: &str| {
            [
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                secs,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "30",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ]
            .map(String::from)
        };
        make(
            "clip.mp4",
            &video("8").iter().map(String::as_str).collect::<Vec<_>>(),
        );
        make(
            "long.mp4",
            &video("30").iter().map(String::as_str).collect::<Vec<_>>(),
        );
        make(
            "song.m4a",
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=330:sample_rate=44100",
                "-t",
                "8",
                "-c:a",
                "aac",
            ],
        );
        let mut junk = vec![0u8; 300_000];
        for (i, b) in junk.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
        }
        std::fs::write(dir.path().join("corrupt.mp4"), junk).unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        // Another test binary may have made them meanwhile: either copy will do.
        let made = dir.keep();
        if std::fs::rename(&made, &done).is_err() {
            let _ = std::fs::remove_dir_all(&made);
        }
        done
    })
}

/// A loopback web server for fetch tests: files of `media_dir()` at `/NAME`, the same
/// slowly (about 256 KB/s) at `/slow/NAME`, 404 for anything else. Counts requests.
pub struct MediaServer {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

struct Slow<R>(R);

impl<R: Read> Read for Slow<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(60));
        let n = buf.len().min(16 * 1024);
        self.0.read(&mut buf[..n])
    }
}

impl MediaServer {
    pub fn start() -> MediaServer {
        let dir = media_dir().to_path_buf();
        let (port, server) = tiny_server("the media server");
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let url = req.url().to_string();
                    let (slow, name) = match url.strip_prefix("/slow/") {
                        Some(n) => (true, n.to_string()),
                        None => (false, url.trim_start_matches('/').to_string()),
                    };
                    let path = dir.join(&name);
                    let file = (!name.contains('/') && !name.is_empty())
                        .then(|| std::fs::File::open(&path).ok())
                        .flatten();
                    let Some(file) = file else {
                        let _ = req.respond(
                            tiny_http::Response::from_string("not found").with_status_code(404),
                        );
                        return;
                    };
                    let len = file.metadata().unwrap().len() as usize;
                    let ctype = if name.ends_with(".m4a") {
                        "audio/mp4"
                    } else {
                        "video/mp4"
                    };
                    let header = format!("Content-Type: {ctype}")
                        .parse::<tiny_http::Header>()
                        .unwrap();
                    let reader: Box<dyn Read + Send> = if slow {
                        Box::new(Slow(file))
                    } else {
                        Box::new(file)
                    };
                    let resp =
                        tiny_http::Response::new(200.into(), vec![header], reader, Some(len), None)
                            // With a length, as file servers send them (not chunked).
                            .with_chunked_threshold(usize::MAX);
                    let _ = req.respond(resp);
                });
            }
        });
        MediaServer { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A tiny_http server on a free loopback port. tiny_http binds without SO_REUSEADDR: a port
/// with old connections in TIME_WAIT is refused, so another is tried.
fn tiny_server(what: &str) -> (u16, tiny_http::Server) {
    (0..20)
        .find_map(|_| {
            let port = free_port();
            tiny_http::Server::http(("127.0.0.1", port))
                .ok()
                .map(|s| (port, s))
        })
        .unwrap_or_else(|| panic!("start {what}"))
}

/// Processes whose command line mentions `needle` (yt-dlp and ffmpeg of a job).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if cmd.contains(needle) || cwd.to_string_lossy().contains(needle) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// A stand-in for a public server: an address outside every private range (100.128.0.1,
/// just above carrier-grade NAT) on the loopback of a network namespace the test creates.
/// What runs inside [`PublicStandIn::run`] (the test's servers, `streamedge run`, nginx,
/// yt-dlp) lives in that namespace, so the address never exists on this machine itself.
pub struct PublicStandIn(Netns);

impl PublicStandIn {
    pub const IP: &'static str = "100.128.0.1";

    pub fn new() -> PublicStandIn {
        PublicStandIn(Netns::new(&[&format!("{}/32", Self::IP)]))
    }

    /// Runs `f` inside the namespace (see [`Netns::run`]).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.0.run(f)
    }
}

impl Default for PublicStandIn {
    fn default() -> Self {
        PublicStandIn::new()
    }
}

/// A webhook's receiver on loopback: answers 204 and remembers what it was sent (method,
/// path, body).
pub struct HookReceiver {
    pub url: String,
    pub port: u16,
    posted: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl HookReceiver {
    pub fn start() -> HookReceiver {
        let (port, server) = tiny_server("the webhook receiver");
        let posted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = posted.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                seen.lock()
                    .unwrap()
                    .push((req.method().to_string(), req.url().to_string(), body));
                let _ = req.respond(tiny_http::Response::empty(204));
            }
        });
        HookReceiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            posted,
        }
    }

    /// What it was sent so far.
    pub fn posted(&self) -> Vec<(String, String, String)> {
        self.posted.lock().unwrap().clone()
    }
}
