//! nginx control: rendering its configuration (`render`), starting, checking, reloading and
//! stopping it, and keeping it running.

pub mod origin;
pub mod render;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use streamedge_formats::streams::Stream;

use crate::config::Config;

/// What the supervisor is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Reload,
    Stop,
}

/// nginx with this configuration; if streamedge dies, it is told to stop (SIGTERM): nothing
/// is left behind.
fn base_command(config: &Config) -> Command {
    let mut c = Command::new(&config.nginx.binary);
    crate::proc::prepare(&mut c, Signal::SIGTERM);
    c.arg("-p")
        .arg(&config.nginx.prefix)
        .arg("-c")
        .arg(&config.nginx.conf);
    c
}

/// Runs `nginx -t` on the rendered configuration; the error names the file and line.
pub async fn test_config(config: &Config) -> Result<()> {
    let out = base_command(config)
        .arg("-t")
        .arg("-q")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", config.nginx.binary.display()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("test failed"))
            .collect();
        bail!("nginx rejected its configuration:\n{}", lines.join("\n"));
    }
    Ok(())
}

/// Asks nginx (through the module's `/api/streams`) who is live.
pub async fn streams(config: &Config) -> Result<Vec<Stream>> {
    list_streams(config, "/api/streams").await
}

/// The same with private names, for this machine's own work on live streams.
pub async fn streams_all(config: &Config) -> Result<Vec<Stream>> {
    list_streams(config, "/api/streams/all").await
}

/// What each limit zone has counted since nginx started.
pub async fn limits(config: &Config) -> Result<Vec<streamedge_formats::limits::ZoneStats>> {
    internal_get(config, "/api/limits").await
}

async fn list_streams(config: &Config, path: &str) -> Result<Vec<Stream>> {
    internal_get(config, path).await
}

/// A JSON answer of nginx's internal server.
async fn internal_get<T: serde::de::DeserializeOwned>(config: &Config, path: &str) -> Result<T> {
    // One client for the daemon's polls (twice a second), its connections kept alive.
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("a plain HTTP client builds")
    });
    let url = format!("{}{path}", config.internal_http());
    let resp = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let resp = resp
        .error_for_status()
        .with_context(|| format!("bad answer from {url}"))?;
    resp.json()
        .await
        .with_context(|| format!("unexpected answer from {url}"))
}

/// Waits until nginx answers on its internal port, at most `limit` (for ever without one);
/// false if it did not.
pub async fn wait_answering(config: &Config, limit: Option<Duration>) -> bool {
    let start = Instant::now();
    while streams(config).await.is_err() {
        if limit.is_some_and(|l| start.elapsed() >= l) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Asks a running nginx (started with this configuration) to reload; false if none runs.
pub fn reload_running(config: &Config) -> Result<bool> {
    let Some(pid) = running_pid(config) else {
        return Ok(false);
    };
    kill(Pid::from_raw(pid), Signal::SIGHUP).context("cannot signal nginx")?;
    Ok(true)
}

/// The pid of a running nginx master started with this configuration, if any.
pub fn running_pid(config: &Config) -> Option<i32> {
    pid_alive(&config.pid_file())
}

fn pid_alive(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Signal 0 checks that the process exists without touching it.
    (pid > 0 && kill(Pid::from_raw(pid), None).is_ok()).then_some(pid)
}

fn spawn(config: &Config) -> Result<Child> {
    let mut c = base_command(config);
    c.arg("-g").arg("daemon off;");
    c.stdin(Stdio::null());
    // Its own process group: a terminal's Ctrl-C reaches streamedge, which stops nginx in
    // order, rather than nginx directly.
    c.process_group(0);
    c.spawn()
        .with_context(|| format!("cannot start {}", config.nginx.binary.display()))
}

/// Stops nginx: a fast shutdown (SIGTERM), then SIGKILL to the whole group after a grace
/// period, so no worker outlives it.
async fn stop(child: &mut Child, pid: Pid, grace: Duration) {
    if !crate::proc::stop_group(child, pid, Signal::SIGTERM, grace).await {
        tracing::warn!(
            "nginx did not stop within {}s and was killed",
            grace.as_secs()
        );
    }
}

/// Starts nginx and keeps it running until told to stop: restarts it when it dies (waiting
/// longer after each quick death), reloads it on order after checking the configuration.
pub async fn supervise(config: &Config, mut orders: mpsc::Receiver<Order>) -> Result<()> {
    if let Some(pid) = running_pid(config) {
        bail!(
            "nginx is already running with this configuration (pid {pid}, {}); stop it first",
            config.pid_file().display()
        );
    }
    test_config(config).await?;
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let mut child = spawn(config)?;
        // Also the process group of its workers. Kept now: `id()` forgets it once reaped.
        let pid = Pid::from_raw(child.id().context("nginx exited at once")? as i32);
        tracing::info!("nginx started (pid {pid})");
        loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.context("cannot wait for nginx")?;
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::error!("nginx exited ({status}), starting it again in {}s", backoff.as_secs());
                    // Workers whose master died would hold the ports.
                    let _ = killpg(pid, Signal::SIGKILL);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        order = orders.recv() => if matches!(order, Some(Order::Stop) | None) {
                            return Ok(());
                        },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    break;
                }
                order = orders.recv() => match order {
                    Some(Order::Reload) => match reload(config, pid).await {
                        Ok(()) => tracing::info!("nginx reloaded"),
                        Err(e) => tracing::error!("not reloading nginx: {e:#}"),
                    },
                    Some(Order::Stop) | None => {
                        stop(&mut child, pid, Duration::from_secs(10)).await;
                        tracing::info!("nginx stopped");
                        return Ok(());
                    }
                },
            }
        }
    }
}

async fn reload(config: &Config, pid: Pid) -> Result<()> {
    render::write_nginx_conf(config, crate::workers::worker_user(config)?.as_ref())?;
    test_config(config).await?;
    kill(pid, Signal::SIGHUP).context("cannot signal nginx")?;
    Ok(())
}
