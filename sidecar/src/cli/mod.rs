//! The command line: one file per command, each with its own clap arguments and a `run`
//! that parses nothing more, calls the services and prints, in human text or `--json`
//! through [`emit`]. `main.rs` only parses and hands over.

mod cert;
mod ddns;
mod fetch;
mod init;
mod keys;
mod library;
mod relay;
mod restream;
mod run;
mod schedule;
mod sign;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{self, Config};

#[derive(Debug, Parser)]
#[command(
    name = "streamedge",
    version,
    about = "A streaming edge for a home server, beside nginx"
)]
pub struct Cli {
    /// Configuration file (or its folder) [default: $STREAMEDGE_CONFIG, else /etc/streamedge/streamedge.toml].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a complete configuration (streamedge.toml, nginx.conf, data folders) into a folder.
    Init(crate::init::InitArgs),
    /// Run the sidecar, starting and supervising nginx when the configuration says so.
    Run,
    /// Manage stream keys.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// Print a link that opens a private stream or library item for a while.
    Sign(sign::Sign),
    /// Put a video or an audio track from the web into the library (yt-dlp, then ffmpeg).
    Fetch(fetch::Fetch),
    /// Fetch jobs: list them, or cancel one.
    Jobs(fetch::Jobs),
    /// Library items.
    #[command(subcommand)]
    Library(library::Library),
    /// The HTTPS certificate (ACME).
    #[command(subcommand)]
    Cert(cert::Cert),
    /// Dynamic DNS (IONOS).
    #[command(subcommand)]
    Ddns(ddns::Ddns),
    /// Send live streams on to other RTMP servers (YouTube, Twitch, …).
    #[command(subcommand)]
    Restream(restream::Restream),
    /// Pull a live source (a channel, a page, an HLS, RTMP or SRT URL) into a local stream.
    #[command(subcommand)]
    Relay(relay::Relay),
    /// Broadcasts announced ahead: the page counts down to them.
    #[command(subcommand)]
    Schedule(schedule::Schedule),
    /// Send one stream to one destination (run by `streamedge run`; the URL and then FLV on
    /// stdin).
    #[command(hide = true)]
    Push(restream::Push),
    /// Show whether nginx runs, who is live and how many keys exist.
    Status(status::Status),
}

/// What every command gets: where its configuration is.
pub struct Ctx {
    config: Option<PathBuf>,
}

impl Ctx {
    /// Reads and checks the configuration the command names.
    pub fn load(&self) -> Result<Config> {
        Config::load(&config::path(self.config.clone()))
    }
}

impl Cli {
    /// Whether the command is one push of a restream: a process per destination, each on a
    /// single thread (one stream's copying needs no more, and threads would cost its CPU).
    pub fn single_threaded(&self) -> bool {
        matches!(self.command, Command::Push(_))
    }

    /// Runs the command; its exit code, or the error to print.
    pub async fn run(self) -> Result<ExitCode> {
        let ctx = Ctx {
            config: self.config,
        };
        match self.command {
            Command::Init(args) => init::run(args),
            Command::Run => run::run(&ctx).await,
            Command::Keys(k) => k.run(&ctx),
            Command::Sign(s) => s.run(&ctx),
            Command::Fetch(f) => f.run(&ctx).await,
            Command::Jobs(j) => j.run(&ctx).await,
            Command::Library(l) => l.run(&ctx).await,
            Command::Cert(c) => c.run(&ctx).await,
            Command::Ddns(d) => d.run(&ctx).await,
            Command::Restream(r) => r.run(&ctx).await,
            Command::Relay(r) => r.run(&ctx).await,
            Command::Schedule(s) => s.run(&ctx),
            Command::Push(p) => p.run().await,
            Command::Status(s) => s.run(&ctx).await,
        }
    }
}

/// The one way commands print what they found: pretty JSON with `--json`, otherwise the
/// human text `human` makes of it (printed as is, so it brings its own newlines).
pub fn emit<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human(value));
    }
    Ok(())
}

/// A command done: exit code 0.
fn done() -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
