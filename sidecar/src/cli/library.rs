//! `streamedge library`: the items of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::library;

#[derive(Debug, clap::Subcommand)]
pub enum Library {
    /// Add a local video or audio file: transcoded into adaptive HLS with a poster.
    Import {
        file: PathBuf,
        #[arg(long)]
        title: Option<String>,
        /// Keep only the sound (AAC HLS and an MP3 for download).
        #[arg(long)]
        audio: bool,
        /// The item plays only through signed links (`streamedge sign /vod/ID`) from the start.
        #[arg(long)]
        private: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the items.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete an item.
    Remove {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change an item's title or description.
    Edit {
        id: String,
        #[arg(long)]
        title: Option<String>,
        /// Free text shown with the item; "" clears it.
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take stills of a video item at chosen times, beside it (thumb-<ms>.jpg).
    Thumbnails {
        id: String,
        /// Times into the item: "5s,30s,1m", "1m30s", "12.5".
        #[arg(long, value_name = "TIMES")]
        at: String,
        #[arg(long)]
        json: bool,
    },
    /// Make the still at a chosen time the item's poster.
    Poster {
        id: String,
        /// A time into the item: "30s", "1m30s", "12.5".
        #[arg(long, value_name = "TIME")]
        at: String,
        #[arg(long)]
        json: bool,
    },
    /// Let an item play only through signed links.
    Private { id: String },
    /// Let anyone play an item.
    Public { id: String },
}

impl Library {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Library::Import {
                file,
                title,
                audio,
                private,
                json,
            } => {
                let m = library::import(&c, &file, title.as_deref(), audio, private).await?;
                emit(json, &m, |m| {
                    format!(
                        "added \"{}\" as {} ({} {}, {:.0}s): {}/vod/{}/master.m3u8\n",
                        m.title,
                        m.id,
                        m.kind,
                        m.renditions.join(" "),
                        m.duration,
                        c.watch_url(),
                        m.id
                    )
                })?
            }
            Library::List { json } => emit(json, &library::list(&c)?, |items| {
                if items.is_empty() {
                    return "the library is empty: `streamedge library import FILE` adds to it\n"
                        .into();
                }
                items
                    .iter()
                    .map(|i| {
                        let access = if i.private { "private" } else { "public" };
                        format!(
                            "{:<20} {:<6} {:>7.0}s {:<8} {}\n",
                            i.id, i.kind, i.duration, access, i.title
                        )
                    })
                    .collect()
            })?,
            Library::Remove { id, json } => {
                library::remove(&c, &id).await?;
                emit(json, &serde_json::json!({ "removed": id }), |_| {
                    format!("removed library item \"{id}\"\n")
                })?
            }
            Library::Edit {
                id,
                title,
                description,
                json,
            } => {
                let edit = library::Edit {
                    title,
                    description,
                    private: None,
                };
                let m = library::edit(&c, &id, edit).await?;
                emit(json, &m, |m| {
                    let about = match m.description.lines().count() {
                        0 => "no description".to_string(),
                        1 => "a description of one line".to_string(),
                        n => format!("a description of {n} lines"),
                    };
                    format!("library item \"{id}\" is \"{}\", with {about}\n", m.title)
                })?
            }
            Library::Thumbnails { id, at, json } => {
                let times = library::stills::parse_times(&at)?;
                let m = library::stills::thumbnails(&c, &id, &times).await?;
                emit(json, &m.thumbnails, |thumbs| {
                    thumbs
                        .iter()
                        .filter(|t| times.contains(&t.at))
                        .map(|t| format!("{}/vod/{id}/{} ({} s)\n", c.watch_url(), t.file, t.at))
                        .collect()
                })?
            }
            Library::Poster { id, at, json } => {
                let times = library::stills::parse_times(&at)?;
                let [at] = times[..] else {
                    anyhow::bail!("--at takes one time for a poster");
                };
                let m = library::stills::poster(&c, &id, at).await?;
                emit(json, &m, |m| {
                    format!(
                        "library item \"{id}\" has the still at {at} s as its poster: {}/vod/{id}/{}\n",
                        c.watch_url(),
                        m.poster.as_deref().unwrap_or_default()
                    )
                })?
            }
            Library::Private { id } => {
                library::set_private(&c, &id, true).await?;
                println!("library item \"{id}\" plays only through signed links now (`streamedge sign /vod/{id}`)");
            }
            Library::Public { id } => {
                library::set_private(&c, &id, false).await?;
                println!("anyone may play library item \"{id}\" now");
            }
        }
        super::done()
    }
}
