//! The streamedge server under test: `streamedge init` and `run` in a temp folder on free
//! loopback ports (the sidecar supervising Debian's nginx with nginx-rtmp and the built
//! module), torn down so that no process outlives the test even when it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::http::http_get;
use crate::paths::{module_path, streamedge_bin};
use crate::ports::free_port;
use crate::wait::wait_for;

/// Settings written into `streamedge.toml` beyond what `init` chooses.
#[derive(Debug, Clone)]
pub struct Options {
    pub ban_attempts: u32,
    pub ban_window: &'static str,
    pub ban_time: &'static str,
    /// `fetch.allow_private_addresses`: the tests' media servers are on loopback.
    pub allow_private_addresses: bool,
    /// `live.transcode`: off unless a test is about the ladder, so the other tests do not
    /// spend this machine's two cores encoding.
    pub transcode: bool,
    /// More `streamedge init` arguments (`--edge --origin URL`).
    pub init_args: Vec<String>,
    /// Where nginx listens (`init --bind`): loopback, or `0.0.0.0` for a host on a
    /// [`crate::Network`] of the test's own.
    pub bind: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        // Tests refuse many publishers on purpose: no bans unless a test asks for them.
        Options {
            ban_attempts: 0,
            ban_window: "10m",
            ban_time: "15m",
            allow_private_addresses: true,
            transcode: false,
            init_args: Vec::new(),
            bind: "127.0.0.1",
        }
    }
}

/// A configured server folder; `start` runs it.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub https: u16,
    pub rtmp: u16,
    /// Where Icecast sources connect (the sidecar).
    pub icecast: u16,
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
        let icecast = free_port();
        let out = Command::new(streamedge_bin())
            .args([
                "init",
                "--bind",
                opts.bind,
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
            .args(["--icecast-port", &icecast.to_string()])
            .args(["--internal-port", &internal.to_string()])
            .arg("--module")
            .arg(module_path())
            .args(&opts.init_args)
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
            icecast,
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
            let live = c["live"].as_table_mut().expect("init writes [live]");
            live.insert(
                "transcode".into(),
                if opts.transcode { "on" } else { "off" }.into(),
            );
            live.insert("feed".into(), format!("127.0.0.1:{}", free_port()).into());
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

    /// The sidecar's control API address (`api.listen`), which nginx does not proxy but for
    /// `/api/`.
    pub fn api_listen(&self) -> String {
        let config: toml::Table = self.read("streamedge.toml").parse().expect("valid TOML");
        config["api"]["listen"]
            .as_str()
            .expect("api.listen")
            .to_string()
    }

    /// The sidecar's live feed address (`live.feed`), where nginx-rtmp pushes each stream.
    pub fn feed_address(&self) -> String {
        let config: toml::Table = self.read("streamedge.toml").parse().expect("valid TOML");
        config["live"]["feed"]
            .as_str()
            .expect("live.feed")
            .to_string()
    }

    /// `GET /metrics` on the control API's loopback port: the Prometheus text.
    pub fn metrics(&self) -> String {
        let r = http_get(&format!("http://{}/metrics", self.api_listen())).expect("metrics answer");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        r.text()
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

    /// The entry of `name` in `/api/streams` as viewers get it through nginx (`null` if not
    /// listed).
    pub fn stream_entry(&self, name: &str) -> Value {
        let (status, list) = self.api("GET", "/api/streams", None, false);
        assert_eq!(status, 200);
        list.as_array()
            .and_then(|l| l.iter().find(|e| e["name"] == name).cloned())
            .unwrap_or(Value::Null)
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

    /// Stops nginx, master and workers, for `time` (SIGSTOP, then SIGCONT): connections are
    /// still taken by the kernel, nothing is answered, as when a server hangs.
    pub fn freeze_nginx(&self, time: Duration) {
        let master = self.nginx_pid().expect("nginx runs");
        let mut all = vec![master];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the fields after the last ')'.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if parent == Some(master) {
                all.extend(
                    entry
                        .file_name()
                        .to_str()
                        .and_then(|p| p.parse::<i32>().ok()),
                );
            }
        }
        for &p in &all {
            let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
        }
        std::thread::sleep(time);
        for &p in &all {
            let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
        }
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
