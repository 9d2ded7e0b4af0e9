//! `streamedge fetch` and `streamedge jobs`: the command line's side of the control API.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::config::Config;
use crate::fetch::{Job, State};

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(config: &Config) -> Result<Client> {
        Ok(Client {
            base: format!("http://{}", config.api.listen),
            token: crate::api::read_token(config)?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "streamedge is not running (nothing answers on {}): start it with `streamedge run`",
                    self.base
                )
            } else {
                anyhow::anyhow!("the control API at {} failed: {e}", self.base)
            }
        })?;
        let status = resp.status();
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            resp.json()
                .await
                .context("the control API answered something other than JSON")?
        };
        if !status.is_success() {
            bail!("{}", body["error"].as_str().unwrap_or(status.as_str()));
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn submit(&self, request: &Value) -> Result<Job> {
        let v = self
            .call(
                self.http
                    .post(format!("{}/api/jobs", self.base))
                    .json(request),
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    pub async fn job(&self, id: &str) -> Result<Job> {
        let v = self
            .call(self.http.get(format!("{}/api/jobs/{id}", self.base)))
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let v = self
            .call(self.http.get(format!("{}/api/jobs", self.base)))
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// The live pipeline of every live stream (`GET /api/live`).
    pub async fn live(&self) -> Result<Value> {
        self.call(self.http.get(format!("{}/api/live", self.base)))
            .await
    }

    pub async fn processes(&self) -> Result<Value> {
        self.call(self.http.get(format!("{}/api/processes", self.base)))
            .await
    }

    pub async fn cancel(&self, id: &str) -> Result<Job> {
        let v = self
            .call(self.http.delete(format!("{}/api/jobs/{id}", self.base)))
            .await?;
        Ok(serde_json::from_value(v)?)
    }
}

/// One line about a job, as `jobs` and `fetch` print it.
pub fn describe(j: &Job) -> String {
    let mut s = format!(
        "{:<20} {:<11} {:<5}",
        j.id,
        j.state.as_str(),
        match j.kind {
            crate::fetch::Kind::Video => "video",
            crate::fetch::Kind::Audio => "audio",
        }
    );
    match (j.percent, j.state.is_final()) {
        (Some(p), false) => s.push_str(&format!(" {p:>5.1}%")),
        _ => s.push_str("       "),
    }
    s.push(' ');
    s.push_str(j.title.as_deref().unwrap_or(&j.url));
    if let Some(e) = &j.error {
        s.push_str(&format!(" ({e})"));
    }
    s
}

/// The exit code that says how a job ended: 0 done, 1 failed, 2 cancelled.
pub fn exit_code(j: &Job) -> ExitCode {
    match j.state {
        State::Done => ExitCode::SUCCESS,
        State::Cancelled => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// Follows a job until it ends: a progress bar on a terminal, plain lines otherwise.
pub async fn wait(client: &Client, config: &Config, id: &str, speak: bool) -> Result<Job> {
    let bar = (speak && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(1000);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:<12} [{bar:30}] {percent:>3}% {prefix}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut last = (State::Queued, -1i64);
    let job = loop {
        let j = client.job(id).await?;
        let step = j.percent.map(|p| (p / 10.0) as i64).unwrap_or(-1);
        match &bar {
            Some(b) => {
                b.set_message(j.state.as_str());
                b.set_position(j.percent.map(|p| (p * 10.0) as u64).unwrap_or(0));
                b.set_prefix(j.eta.map(|e| format!("{e}s left")).unwrap_or_default());
            }
            None if speak && !j.state.is_final() && (j.state, step) != last => {
                let pct = j.percent.map(|p| format!(" {p:.0}%")).unwrap_or_default();
                println!("{}{pct}", j.state.as_str());
            }
            None => {}
        }
        last = (j.state, step);
        if j.state.is_final() {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !speak {
        return Ok(job);
    }
    match job.state {
        State::Done => println!(
            "done: \"{}\" is in the library: {}/vod/{}/master.m3u8",
            job.title.as_deref().unwrap_or(id),
            config.watch_url(),
            job.item.as_deref().unwrap_or(id)
        ),
        State::Failed => println!(
            "failed: {}",
            job.error.as_deref().unwrap_or("no reason given")
        ),
        _ => println!("{}", job.state.as_str()),
    }
    Ok(job)
}

/// The relays with their status from the running sidecar, or without status when it does not
/// answer.
pub async fn relays(config: &Config) -> Result<Value> {
    from_daemon_or(config, "/api/relays", crate::restream::relay::list(config)?).await
}

/// The restream destinations with what each does: from the daemon when it runs, else from
/// the file (no status).
pub async fn restreams(config: &Config) -> Result<Value> {
    from_daemon_or(config, "/api/restreams", crate::restream::list(config)?).await
}

/// The running sidecar's answer at `path`, else `listed` from the files, each with a null
/// `status`.
async fn from_daemon_or<T: serde::Serialize>(
    config: &Config,
    path: &str,
    listed: Vec<T>,
) -> Result<Value> {
    if let Ok(api) = Client::new(config) {
        if let Ok(v) = api.get(path).await {
            return Ok(v);
        }
    }
    let list: Vec<Value> = listed
        .into_iter()
        .map(|x| {
            let mut v = serde_json::to_value(x).expect("serializes");
            v["status"] = Value::Null;
            v
        })
        .collect();
    Ok(Value::Array(list))
}
