//! Fetch jobs: media from the web into the library. A job goes queued → probing →
//! downloading → transcoding → publishing → done | failed | cancelled; yt-dlp downloads,
//! `library::transcode` builds the item in `DATA/.work/job-<id>/`, and one rename publishes
//! it as `DATA/vod/<id>/` (the item has the job's id). Jobs are recorded in `DATA/jobs/` and
//! taken up again after a restart from their last completed step.

pub mod space;
pub mod url;
pub mod webhook;
pub mod ytdlp;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use streamedge_formats::layout::META_JSON;

use crate::config::Config;
use crate::error::Error;
use crate::fsutil::write_atomic;
use crate::library::transcode::{self, Cancelled, Segments};
use crate::proc::{self, Exit};

/// Finished jobs kept in `DATA/jobs/` (the oldest go first).
const KEEP_FINISHED: usize = 200;

/// A job that was interrupted this many times (the sidecar stopped while it ran) fails.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Video,
    Audio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Probing,
    Downloading,
    Transcoding,
    Publishing,
    Done,
    Failed,
    Cancelled,
}

impl State {
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Probing => "probing",
            State::Downloading => "downloading",
            State::Transcoding => "transcoding",
            State::Publishing => "publishing",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

/// A preset: a height limit and the segment format, written "720p", "ts" or "720p,ts".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Preset {
    pub max_height: Option<u32>,
    pub segments: Segments,
}

impl TryFrom<String> for Preset {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let mut p = Preset::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "ts" => p.segments = Segments::Ts,
                "fmp4" => p.segments = Segments::Fmp4,
                h => {
                    let height = h
                        .strip_suffix('p')
                        .and_then(|n| n.parse::<u32>().ok())
                        .filter(|n| (144..=4320).contains(n));
                    match height {
                        Some(n) => p.max_height = Some(n),
                        None => {
                            return Err(format!(
                            "unknown preset \"{part}\": use a height such as 720p, and ts or fmp4"
                        ))
                        }
                    }
                }
            }
        }
        Ok(p)
    }
}

impl From<Preset> for String {
    fn from(p: Preset) -> String {
        let mut parts = Vec::new();
        if let Some(h) = p.max_height {
            parts.push(format!("{h}p"));
        }
        parts.push(
            match p.segments {
                Segments::Fmp4 => "fmp4",
                Segments::Ts => "ts",
            }
            .into(),
        );
        parts.join(",")
    }
}

/// A job as the API and `streamedge jobs` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub url: String,
    pub kind: Kind,
    pub preset: Preset,
    pub title: Option<String>,
    pub state: State,
    /// Of the current state, for downloading and transcoding.
    pub percent: Option<f64>,
    /// Seconds left in the current state, when known.
    pub eta: Option<u64>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// The library item's id, once done: it plays at `/vod/<item>/master.m3u8`.
    pub item: Option<String>,
    /// What its processes cost, by step ("probe", "download", "transcode", "poster"): those
    /// that ended, and those running so far.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cost: crate::costs::Costs,
    pub created: String,
    pub updated: String,
}

impl Job {
    /// A new job, waiting for its turn.
    fn queued(id: String, url: String, kind: Kind, preset: Preset, title: Option<String>) -> Job {
        Job {
            id,
            url,
            kind,
            preset,
            title,
            state: State::Queued,
            percent: None,
            eta: None,
            error: None,
            item: None,
            cost: Default::default(),
            created: now(),
            updated: now(),
        }
    }
}

/// A job as the API shows it: with what its running processes have cost so far.
fn with_running(job: &Job) -> Job {
    let mut j = job.clone();
    if !j.state.is_final() {
        j.cost = crate::costs::with_running(j.cost, crate::costs::running_for(&j.id));
    }
    j
}

/// A job's record in `DATA/jobs/<id>.json`: the job and what only the sidecar needs (the
/// webhook URL may carry a token, so it never appears in the API).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    job: Job,
    #[serde(default)]
    webhook: Option<String>,
    /// The downloaded file, inside the job's scratch folder, once the download completed.
    #[serde(default)]
    downloaded: Option<String>,
    #[serde(default)]
    attempts: u32,
}

/// What a client asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub url: String,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub webhook: Option<String>,
}

fn now() -> String {
    crate::clock::now_rfc3339()
}

/// The running jobs and their records.
#[derive(Clone)]
pub struct Manager(Arc<Inner>);

struct Inner {
    config: Config,
    records: Mutex<BTreeMap<String, Record>>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    slots: Arc<Semaphore>,
    ytdlp: PathBuf,
    webhooks: webhook::Webhooks,
    floor: space::Floor,
}

impl Manager {
    /// Reads the records; jobs that were running when the sidecar stopped are queued again
    /// (their completed download kept), or fail when interrupted too often.
    pub fn open(config: &Config) -> Result<Manager> {
        let dir = config.layout().jobs();
        let mut records = BTreeMap::new();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let rec = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Record>(&t).ok());
            match rec {
                Some(r) if path.file_stem().is_some_and(|s| *s == *r.job.id) => {
                    records.insert(r.job.id.clone(), r);
                }
                _ => tracing::warn!("ignoring unreadable job record {}", path.display()),
            }
        }
        let m = Manager(Arc::new(Inner {
            config: config.clone(),
            records: Mutex::new(records),
            cancels: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(config.fetch.concurrency.max(1))),
            ytdlp: ytdlp::locate(config.fetch.ytdlp.as_deref()),
            webhooks: webhook::Webhooks::new(&config.fetch)?,
            floor: space::Floor::new(&config.data_dir, config.fetch.min_free_mb),
        }));
        m.prune();
        Ok(m)
    }

    /// Takes up unfinished jobs, oldest first. Called once by `run`.
    pub fn resume(&self) {
        let mut changed = Vec::new();
        {
            let mut records = self.0.records.lock().expect("not poisoned");
            for r in records.values_mut().filter(|r| !r.job.state.is_final()) {
                if r.attempts >= MAX_ATTEMPTS {
                    r.job.state = State::Failed;
                    r.job.error = Some(format!(
                        "interrupted {} times (streamedge stopped while it ran); giving up",
                        r.attempts
                    ));
                } else {
                    tracing::info!(
                        "job {}: taking it up again after a restart ({})",
                        r.job.id,
                        r.job.state.as_str()
                    );
                    r.job.state = State::Queued;
                }
                r.job.percent = None;
                r.job.eta = None;
                r.job.updated = now();
                changed.push(r.clone());
            }
        }
        for r in changed {
            self.save(&r);
            if r.job.state == State::Failed {
                let _ = std::fs::remove_dir_all(self.scratch(&r.job.id));
            } else {
                self.spawn(r.job.id);
            }
        }
    }

    pub fn list(&self) -> Vec<Job> {
        let records = self.0.records.lock().expect("not poisoned");
        records
            .values()
            .rev()
            .map(|r| with_running(&r.job))
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Job> {
        let records = self.0.records.lock().expect("not poisoned");
        records.get(id).map(|r| with_running(&r.job))
    }

    /// Where the job's processes write what they cost as they end.
    fn tally(&self, id: &str) -> crate::costs::Tally {
        let me = self.clone();
        let id = id.to_string();
        crate::costs::Tally::new(move |role, cost| {
            me.update(&id, true, |r| {
                crate::costs::add(&mut r.job.cost, role, cost)
            })
        })
    }

    /// Checks a request and queues the job. Nothing runs for a refused request.
    pub async fn submit(&self, new: NewJob) -> Result<Job, Error> {
        let config = &self.0.config;
        let u = url::check(new.url.trim()).map_err(|e| Error::Invalid(e.to_string()))?;
        let preset = Preset::try_from(new.preset.unwrap_or_default()).map_err(Error::Invalid)?;
        if let Some(w) = &new.webhook {
            let webhook = |e: anyhow::Error| Error::Invalid(format!("webhook: {e}"));
            let wu = url::check(w).map_err(webhook)?;
            if self.0.webhooks.is_checked(w) {
                url::check_addresses(&wu).await.map_err(webhook)?;
            }
        }
        if !config.fetch.allow_private_addresses {
            url::check_addresses(&u)
                .await
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        let title = new
            .title
            .map(|t| t.chars().filter(|c| !c.is_control()).take(200).collect())
            .filter(|t: &String| !t.trim().is_empty());
        if let Some(why) = self.0.floor.check() {
            return Err(Error::NoSpace(why));
        }
        let url = u.to_string();
        let job = {
            let mut records = self.0.records.lock().expect("not poisoned");
            if let Some(r) = records
                .values()
                .find(|r| !r.job.state.is_final() && r.job.url == url && r.job.kind == new.kind)
            {
                return Err(Error::Conflict(format!(
                    "this URL is already being fetched by job {}",
                    r.job.id
                )));
            }
            let id = transcode::new_id()?;
            let job = Job::queued(id.clone(), url, new.kind, preset, title);
            records.insert(
                id,
                Record {
                    job: job.clone(),
                    webhook: new.webhook.or_else(|| config.fetch.webhook.clone()),
                    downloaded: None,
                    attempts: 0,
                },
            );
            job
        };
        self.save_id(&job.id);
        tracing::info!("job {}: queued {} ({:?})", job.id, job.url, job.kind);
        self.spawn(job.id.clone());
        Ok(job)
    }

    /// Stops a job (SIGINT to its tools, SIGKILL after a grace period) and waits until it has
    /// stopped and its scratch folder is gone.
    pub async fn cancel(&self, id: &str) -> Result<Job, Error> {
        let Some(job) = self.get(id) else {
            return Err(Error::NotFound(format!("no job \"{id}\"")));
        };
        if job.state.is_final() {
            return Err(Error::Conflict(format!(
                "job {id} has already ended ({})",
                job.state.as_str()
            )));
        }
        if let Some(token) = self.0.cancels.lock().expect("not poisoned").get(id) {
            token.cancel();
        }
        let deadline = tokio::time::Instant::now() + proc::GRACE * 2 + Duration::from_secs(5);
        loop {
            match self.get(id) {
                Some(j) if j.state.is_final() => return Ok(j),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(anyhow::anyhow!("job {id} does not stop").into())
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn scratch(&self, id: &str) -> PathBuf {
        self.0.config.layout().scratch(&format!("job-{id}"))
    }

    fn record(&self, id: &str) -> Option<Record> {
        self.0
            .records
            .lock()
            .expect("not poisoned")
            .get(id)
            .cloned()
    }

    fn update(&self, id: &str, persist: bool, f: impl FnOnce(&mut Record)) {
        let rec = {
            let mut records = self.0.records.lock().expect("not poisoned");
            let Some(r) = records.get_mut(id) else { return };
            f(r);
            r.job.updated = now();
            r.clone()
        };
        if persist {
            self.save(&rec);
        }
    }

    fn set_state(&self, id: &str, state: State) {
        tracing::info!("job {id}: {}", state.as_str());
        self.update(id, true, |r| {
            r.job.state = state;
            r.job.percent = None;
            r.job.eta = None;
        });
    }

    /// Progress of the current state, in memory only (states are what records keep).
    fn set_progress(&self, id: &str, percent: Option<f64>, eta: Option<u64>) {
        self.update(id, false, |r| {
            r.job.percent = percent.map(|p| (p * 10.0).round() / 10.0);
            r.job.eta = eta;
        });
    }

    fn save_id(&self, id: &str) {
        if let Some(r) = self.record(id) {
            self.save(&r);
        }
    }

    /// Writes a record (0600: it may hold a webhook token). A failure to record is logged:
    /// the job itself goes on.
    fn save(&self, r: &Record) {
        let path = self.0.config.layout().job(&r.job.id);
        let text = serde_json::to_string_pretty(r).expect("a record serializes") + "\n";
        if let Err(e) = write_atomic(&path, text.as_bytes(), 0o600, None) {
            tracing::warn!("job {}: cannot record its state: {e:#}", r.job.id);
        }
    }

    /// Forgets the oldest finished jobs beyond `KEEP_FINISHED`.
    fn prune(&self) {
        let mut records = self.0.records.lock().expect("not poisoned");
        let finished: Vec<String> = records
            .values()
            .filter(|r| r.job.state.is_final())
            .map(|r| r.job.id.clone())
            .collect();
        let excess = finished.len().saturating_sub(KEEP_FINISHED);
        for id in finished.into_iter().take(excess) {
            records.remove(&id);
            let _ = std::fs::remove_file(self.0.config.layout().job(&id));
        }
    }

    fn spawn(&self, id: String) {
        let token = CancellationToken::new();
        self.0
            .cancels
            .lock()
            .expect("not poisoned")
            .insert(id.clone(), token.clone());
        let m = self.clone();
        tokio::spawn(async move {
            let permit = tokio::select! {
                p = m.0.slots.clone().acquire_owned() => p,
                _ = token.cancelled() => {
                    m.finish(&id, Err(Cancelled.into())).await;
                    return;
                }
            };
            // The floor stops the job's tools, not the job: it then fails, saying why.
            let tools = token.child_token();
            let watch = m.0.floor.watch(tools.clone());
            let outcome = watch.explain(m.execute(&id, &tools).await);
            drop(watch);
            drop(permit);
            m.finish(&id, outcome).await;
        });
    }

    /// Records how a job ended, removes its scratch folder and calls the webhook.
    async fn finish(&self, id: &str, outcome: Result<()>) {
        let _ = std::fs::remove_dir_all(self.scratch(id));
        self.0.cancels.lock().expect("not poisoned").remove(id);
        self.update(id, true, |r| {
            r.job.percent = None;
            r.job.eta = None;
            r.downloaded = None;
            match &outcome {
                Ok(()) => {
                    r.job.state = State::Done;
                    r.job.percent = Some(100.0);
                    r.job.item = Some(r.job.id.clone());
                }
                Err(e) if e.is::<Cancelled>() => r.job.state = State::Cancelled,
                Err(e) => {
                    r.job.state = State::Failed;
                    r.job.error = Some(format!("{e:#}"));
                }
            }
        });
        let Some(rec) = self.record(id) else { return };
        match &rec.job.error {
            Some(e) if rec.job.state == State::Failed => {
                tracing::warn!("job {id}: failed: {e}")
            }
            _ => tracing::info!("job {id}: {}", rec.job.state.as_str()),
        }
        if let Some(hook) = &rec.webhook {
            match self.0.webhooks.send(hook, &rec.job).await {
                Ok(s) if s.is_success() => {}
                Ok(s) => tracing::warn!("job {id}: the webhook answered {s}"),
                Err(e) => tracing::warn!("job {id}: the webhook failed: {e:#}"),
            }
        }
    }

    /// The steps of a job, from the first one not yet completed.
    async fn execute(&self, id: &str, cancel: &CancellationToken) -> Result<()> {
        let Some(rec) = self.record(id) else {
            bail!("the job's record is gone")
        };
        self.update(id, true, |r| r.attempts += 1);
        let config = &self.0.config;
        let dest = config.layout().item(id);
        if dest.join(META_JSON).exists() {
            // Published just before a restart: nothing is left to do.
            return Ok(());
        }
        let scratch = self.scratch(id);
        let download_dir = scratch.join("download");
        let have = rec
            .downloaded
            .as_ref()
            .map(|f| download_dir.join(f))
            .filter(|p| p.is_file());
        let input = match have {
            Some(p) => p,
            None => {
                self.set_state(id, State::Probing);
                let u = url::check(&rec.job.url)?;
                if !config.fetch.allow_private_addresses {
                    // Names can change between the request and now.
                    url::check_addresses(&u).await?;
                }
                let info = self.probe(id, &rec.job.url, cancel).await?;
                if !config.fetch.allow_private_addresses {
                    // A public URL may redirect to this network: yt-dlp reports where it went.
                    url::check_reached(&info.urls).await?;
                }
                if rec.job.title.is_none() {
                    self.update(id, true, |r| r.job.title = Some(info.title.clone()));
                }
                self.set_state(id, State::Downloading);
                std::fs::create_dir_all(&download_dir)
                    .with_context(|| format!("cannot create {}", download_dir.display()))?;
                let file = self.download(id, &rec.job, &download_dir, cancel).await?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .context("yt-dlp named no file")?;
                self.update(id, true, |r| r.downloaded = Some(name));
                file
            }
        };
        self.set_state(id, State::Transcoding);
        let work = scratch.join("item");
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("cannot clean {}", work.display()))?;
        }
        let job = self.record(id).map(|r| r.job).unwrap_or(rec.job);
        let title = job.title.clone().unwrap_or_else(|| id.to_string());
        let origin = transcode::Origin {
            id,
            title: &title,
            source: &job.url,
        };
        let opts = transcode::Options {
            audio_only: job.kind == Kind::Audio,
            max_height: job.preset.max_height,
            segments: job.preset.segments,
            tally: Some(self.tally(id)),
            ..Default::default()
        };
        let me = self.clone();
        let key = id.to_string();
        let mut progress = move |p: f64, eta: Option<u64>| me.set_progress(&key, Some(p), eta);
        transcode::build_item(&input, &work, origin, opts, cancel, &mut progress).await?;
        self.set_state(id, State::Publishing);
        transcode::publish(&work, &dest)
    }

    /// `yt-dlp -J`: what the URL is, before anything is downloaded.
    async fn probe(&self, id: &str, url: &str, cancel: &CancellationToken) -> Result<ytdlp::Info> {
        let mut cmd = Command::new(&self.0.ytdlp);
        cmd.args(ytdlp::probe_args(url));
        let mut json = String::new();
        let role = proc::Role::new("probe", id).tallied(&self.tally(id));
        match proc::run(cmd, role, cancel, |l| json.push_str(l)).await? {
            Exit::Success => ytdlp::parse_info(&json),
            Exit::Cancelled => Err(Cancelled.into()),
            Exit::Failed(stderr) => bail!("{}", ytdlp::explain(&stderr)),
        }
    }

    async fn download(
        &self,
        id: &str,
        job: &Job,
        dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<PathBuf> {
        let mut cmd = Command::new(&self.0.ytdlp);
        cmd.args(ytdlp::download_args(
            &job.url,
            dir,
            job.kind,
            job.preset.max_height,
        ));
        let role = proc::Role::new("download", id).tallied(&self.tally(id));
        let exit = proc::run(cmd, role, cancel, |line| {
            if let Some((percent, eta)) = ytdlp::parse_progress(line) {
                self.set_progress(id, percent, eta);
            }
        })
        .await?;
        match exit {
            Exit::Success => {}
            Exit::Cancelled => return Err(Cancelled.into()),
            Exit::Failed(stderr) => bail!("{}", ytdlp::explain(&stderr)),
        }
        let said = std::fs::read_to_string(dir.join(ytdlp::FILEPATH))
            .context("yt-dlp did not say which file it downloaded")?;
        let file = PathBuf::from(said.lines().last().unwrap_or_default().trim());
        let file = std::fs::canonicalize(dir.join(file))
            .context("the file yt-dlp downloaded is missing")?;
        if !file.starts_with(std::fs::canonicalize(dir)?) {
            bail!("yt-dlp wrote outside its folder: {}", file.display());
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets() {
        let p = |s: &str| Preset::try_from(s.to_string());
        assert_eq!(p("").unwrap(), Preset::default());
        assert_eq!(
            p("720p,ts").unwrap(),
            Preset {
                max_height: Some(720),
                segments: Segments::Ts
            }
        );
        assert_eq!(String::from(p(" 480p ").unwrap()), "480p,fmp4");
        for bad in ["720", "hd", "99999p", "12p"] {
            assert!(p(bad).unwrap_err().contains("unknown preset"), "{bad}");
        }
    }

    #[test]
    fn records_keep_private_fields_out_of_the_job() {
        let rec = Record {
            job: Job::queued(
                "x".into(),
                "https://example.org/a".into(),
                Kind::Audio,
                Preset::default(),
                None,
            ),
            webhook: Some("https://hooks.example/secret-token".into()),
            downloaded: None,
            attempts: 2,
        };
        let text = serde_json::to_string(&rec).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back.attempts, 2);
        assert_eq!(back.webhook, rec.webhook);
        let public = serde_json::to_string(&back.job).unwrap();
        assert!(!public.contains("secret-token"), "{public}");
        assert!(public.contains(r#""kind":"audio""#) && public.contains(r#""state":"queued""#));
    }
}
