//! `streamedge fetch` and `streamedge jobs`: fetch jobs, through the daemon's API.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::client;

#[derive(Debug, clap::Args)]
pub struct Fetch {
    url: String,
    /// Keep only the sound (AAC HLS and an MP3 for download).
    #[arg(long)]
    audio: bool,
    /// A height limit and segment format: "720p", "ts", "480p,ts" (fMP4 by default).
    #[arg(long)]
    preset: Option<String>,
    #[arg(long)]
    title: Option<String>,
    /// POST the job's final JSON to this URL when it ends.
    #[arg(long)]
    webhook: Option<String>,
    /// Follow the job until it ends; the exit code says how (0 done, 1 failed, 2 cancelled).
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
}

impl Fetch {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        let api = client::Client::new(&c)?;
        let request = serde_json::json!({
            "url": self.url,
            "kind": if self.audio { "audio" } else { "video" },
            "preset": self.preset,
            "title": self.title,
            "webhook": self.webhook,
        });
        let job = api.submit(&request).await?;
        if !self.wait {
            emit(self.json, &job, |j| {
                format!(
                    "job {} queued: `streamedge jobs` shows its progress\n",
                    j.id
                )
            })?;
            return super::done();
        }
        if !self.json {
            println!("job {}: {}", job.id, job.url);
        }
        let end = client::wait(&api, &c, &job.id, !self.json).await?;
        if self.json {
            emit(true, &end, |_| String::new())?;
        }
        Ok(client::exit_code(&end))
    }
}

#[derive(Debug, clap::Args)]
pub struct Jobs {
    #[command(subcommand)]
    command: Option<JobsCommand>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum JobsCommand {
    /// Stop a job: its tools are stopped and its files removed.
    Cancel {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

impl Jobs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        let api = client::Client::new(&c)?;
        match self.command {
            None => emit(self.json, &api.jobs().await?, |jobs| {
                if jobs.is_empty() {
                    return "no jobs: `streamedge fetch URL` starts one\n".into();
                }
                jobs.iter()
                    .map(|j| format!("{}\n", client::describe(j)))
                    .collect()
            })?,
            Some(JobsCommand::Cancel { id, json }) => emit(json, &api.cancel(&id).await?, |j| {
                format!("job {id} {}\n", j.state.as_str())
            })?,
        }
        super::done()
    }
}
