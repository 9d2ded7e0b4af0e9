//! `streamedge relay`: live sources pulled into local streams.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::{emit, Ctx};
use crate::restream::relay::{self, NewRelay, RelayInfo, DEFAULT_WATCH};

#[derive(Debug, clap::Subcommand)]
pub enum Relay {
    /// Pull a live source into the new stream NAME: a page yt-dlp reads (a YouTube
    /// channel's /live), or an HLS, RTMP or SRT URL.
    Add {
        /// The local stream (a new name: the relay gets its key).
        name: String,
        /// The source.
        #[arg(long)]
        from: String,
        /// Check the source every EVERY (default 2m) and relay it whenever it is live.
        #[arg(long, value_name = "EVERY", num_args = 0..=1, default_missing_value = "2m",
              value_parser = humantime::parse_duration)]
        watch: Option<Duration>,
        /// The stream plays through signed links only.
        #[arg(long)]
        private: bool,
        /// Record the stream into the library.
        #[arg(long)]
        record: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the relays and what each is doing.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop a relay and forget it, with its stream's key.
    Remove { name: String },
}

fn describe(r: &RelayInfo) -> String {
    let how = match r.watch_seconds {
        Some(s) => format!(
            "watched every {}",
            humantime::format_duration(Duration::from_secs(s))
        ),
        None => "pulled now".to_string(),
    };
    format!("relay \"{}\" from {} ({how})\n", r.stream, r.from)
}

impl Relay {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Relay::Add {
                name,
                from,
                watch,
                private,
                record,
                json,
            } => {
                let r = relay::add(
                    &c,
                    &NewRelay {
                        stream: &name,
                        from: &from,
                        watch,
                        private,
                        record,
                    },
                )?;
                emit(json, &r, |r| {
                    let when = if r.watch_seconds.is_some() {
                        "whenever the source is live"
                    } else {
                        "while the source is live"
                    };
                    format!(
                        "{}\"{}\" plays {when}: {}/live/{}/ (`streamedge relay list` says what it does)\n",
                        describe(r),
                        r.stream,
                        c.watch_url(),
                        r.stream
                    )
                })?
            }
            Relay::List { json } => {
                let list = crate::client::relays(&c).await?;
                emit(json, &list, |list| {
                    let list = list.as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        return format!(
                            "no relays yet: `streamedge relay add NAME --from URL --watch` adds one (checked every {})\n",
                            humantime::format_duration(DEFAULT_WATCH)
                        );
                    }
                    let mut out = format!(
                        "{:<16} {:<9} {:>6} {:<21} SOURCE\n",
                        "STREAM", "STATE", "KBIT/S", "LAST CHECK"
                    );
                    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
                    for r in &list {
                        let s = &r["status"];
                        out += &format!(
                            "{:<16} {:<9} {:>6} {:<21} {}\n",
                            text(&r["stream"]),
                            s["state"].as_str().unwrap_or("stopped"),
                            s["bitrate_kbps"]
                                .as_f64()
                                .map(|b| format!("{b:.0}"))
                                .unwrap_or("-".into()),
                            text(&s["last_check_at"]),
                            text(&r["from"]),
                        );
                        if let Some(t) = s["title"].as_str() {
                            out += &format!("{:<16} title: {t}\n", "");
                        }
                        if let Some(c) = s["last_check"].as_str() {
                            out += &format!("{:<16} {c}\n", "");
                        }
                    }
                    out
                })?
            }
            Relay::Remove { name } => {
                let r = relay::remove(&c, &name)?;
                print!("removed {}", describe(&r));
            }
        }
        super::done()
    }
}
