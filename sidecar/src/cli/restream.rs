//! `streamedge restream`: where each live stream is sent on to (YouTube, Twitch, …), and
//! `streamedge push`, the process that sends it to one of them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::restream::{self, DestinationInfo, NewDestination};

#[derive(Debug, clap::Subcommand)]
pub enum Restream {
    /// Send stream NAME, whenever it is live, to an RTMP or RTMPS server too.
    Add {
        /// The local stream.
        name: String,
        /// The platform's server and stream key: rtmp://HOST/APP/STREAM-KEY (or rtmps://).
        url: String,
        /// A name for it in lists ("YouTube").
        #[arg(long)]
        label: Option<String>,
        /// Send a rung of the ladder ("720p") instead of the stream as published.
        #[arg(long)]
        rendition: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the destinations (stream keys masked) and what each is doing.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop sending to a destination and forget it.
    Remove { id: String },
    /// Send to a disabled destination again.
    Enable { id: String },
    /// Stop sending to a destination but keep it.
    Disable { id: String },
}

/// `streamedge push` (for the sidecar): reads a destination URL line, then FLV, on stdin.
#[derive(Debug, clap::Args)]
pub struct Push {
    /// PEM certificates to trust for rtmps:// beside the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Read the stream from here with ffmpeg instead of from stdin (a relay).
    #[arg(long)]
    from: Option<String>,
    /// An HTTP header for `--from` ("Name: value"); again for more.
    #[arg(long, requires = "from")]
    header: Vec<String>,
}

impl Push {
    pub async fn run(self) -> Result<ExitCode> {
        let source = self.from.map(|url| restream::push::Source {
            url,
            headers: self.header,
        });
        restream::push::run(self.ca_file.as_deref(), source.as_ref()).await?;
        super::done()
    }
}

fn describe(d: &DestinationInfo) -> String {
    let label = d
        .label
        .as_deref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    let rendition = d
        .rendition
        .as_deref()
        .map(|r| format!(", the {r} rendition"))
        .unwrap_or_default();
    format!(
        "destination {id}: \"{stream}\"{rendition} to {url}{label}, {state}\n",
        id = d.id,
        stream = d.stream,
        url = d.url,
        state = if d.enabled { "enabled" } else { "disabled" },
    )
}

impl Restream {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Restream::Add {
                name,
                url,
                label,
                rendition,
                json,
            } => {
                let d = restream::add(
                    &c,
                    &NewDestination {
                        stream: &name,
                        url: &url,
                        label: label.as_deref(),
                        rendition: rendition.as_deref(),
                    },
                )?;
                emit(json, &d, |d| {
                    format!(
                        "{}\"{}\" goes there whenever it is live (within a second or two if it is live now)\n",
                        describe(d),
                        d.stream
                    )
                })?
            }
            Restream::List { json } => {
                let list = crate::client::restreams(&c).await?;
                emit(json, &list, |list| {
                    let list = list.as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        return "no destinations yet: `streamedge restream add NAME rtmp://HOST/APP/KEY` adds one\n".into();
                    }
                    let mut out = format!(
                        "{:<9} {:<16} {:<8} {:<10} {:>6} {:>8} URL\n",
                        "ID", "STREAM", "ENABLED", "STATE", "KBIT/S", "RETRIES"
                    );
                    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                    for d in &list {
                        let s = &d["status"];
                        let label = d["label"]
                            .as_str()
                            .map(|l| format!(" ({l})"))
                            .unwrap_or_default();
                        out += &format!(
                            "{:<9} {:<16} {:<8} {:<10} {:>6} {:>8} {}{label}\n",
                            text(&d["id"]),
                            text(&d["stream"]),
                            if d["enabled"] == true { "yes" } else { "no" },
                            s["state"].as_str().unwrap_or("idle"),
                            s["bitrate_kbps"]
                                .as_f64()
                                .map(|b| format!("{b:.0}"))
                                .unwrap_or("-".into()),
                            s["reconnects"].as_u64().unwrap_or(0),
                            text(&d["url"]),
                        );
                        if let Some(e) = s["last_error"].as_str() {
                            out += &format!("{:<9} last error: {e}\n", "");
                        }
                    }
                    out
                })?
            }
            Restream::Remove { id } => {
                let d = restream::remove(&c, &id)?;
                print!("removed {}", describe(&d));
            }
            Restream::Enable { id } => {
                print!("{}", describe(&restream::set_enabled(&c, &id, true)?))
            }
            Restream::Disable { id } => {
                print!("{}", describe(&restream::set_enabled(&c, &id, false)?))
            }
        }
        super::done()
    }
}
