//! `streamedge schedule`: broadcasts announced ahead, shown on the page with a countdown.

use std::process::ExitCode;

use anyhow::Result;

use super::{done, emit, Ctx};
use crate::live::schedule::{self, Broadcast, NewBroadcast};

#[derive(Debug, clap::Subcommand)]
pub enum Schedule {
    /// Announce a broadcast of a stream.
    Add {
        /// The stream it goes out on (a name with a key).
        stream: String,
        #[arg(long)]
        title: String,
        /// When it starts: 2026-12-05T20:00:00Z (or 2026-12-05 20:00, UTC).
        #[arg(long)]
        start: String,
        /// When it ends, the same way.
        #[arg(long)]
        end: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// What is coming up (and on now), soonest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Take a broadcast off the schedule.
    Remove { id: String },
}

fn line(b: &Broadcast) -> String {
    format!(
        "{}  {} to {}  {:<16} {}\n",
        b.id, b.start, b.end, b.stream, b.title
    )
}

impl Schedule {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Schedule::Add {
                stream,
                title,
                start,
                end,
                description,
                json,
            } => {
                let b = schedule::add(
                    &c,
                    &NewBroadcast {
                        stream: &stream,
                        title: &title,
                        description: description.as_deref(),
                        start: &start,
                        end: &end,
                    },
                    std::time::SystemTime::now(),
                )?;
                emit(json, &b, |b| {
                    format!(
                        "scheduled {}the page counts down to it: {}/\n",
                        line(b),
                        c.watch_url()
                    )
                })?
            }
            Schedule::List { json } => {
                let list = schedule::upcoming(&c, std::time::SystemTime::now(), false)?;
                emit(json, &list, |list| {
                    if list.is_empty() {
                        return "nothing scheduled: `streamedge schedule add NAME --title … --start … --end …`\n".into();
                    }
                    list.iter().map(line).collect()
                })?
            }
            Schedule::Remove { id } => {
                let b = schedule::remove(&c, &id)?;
                print!("removed {}", line(&b));
            }
        }
        done()
    }
}
