//! `streamedge keys`: stream names and their keys.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::keys;

#[derive(Debug, clap::Subcommand)]
pub enum Keys {
    /// Create a key for a new stream name; the secret is shown once.
    Add {
        name: String,
        /// The stream plays only through signed links (`streamedge sign`).
        #[arg(long)]
        private: bool,
        /// Record its live streams into the library (private until you publish them).
        #[arg(long)]
        record: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record a name's live streams into the library, or stop recording them.
    Record {
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Let a name's stream play only through signed links.
    Private { name: String },
    /// Let anyone watch a name's stream.
    Public { name: String },
    /// List stream names and the state of their keys (never a secret).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop a name from publishing.
    Revoke { name: String },
    /// Forget a name and its key: it can no longer publish and is no longer listed.
    Remove { name: String },
    /// Give a name a new secret; the old one stops working.
    Rotate {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

impl Keys {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Keys::Add {
                name,
                private,
                record,
                json,
            } => emit(json, &keys::add(&c, &name, private, record)?, |k| {
                keys::describe(&c, k)
            })?,
            Keys::Record { name, state } => {
                let on = state == "on";
                keys::set_record(&c, &name, on)?;
                if on {
                    println!("\"{name}\"'s live streams are recorded into the library from its next publish (private until `streamedge library public ID`)");
                } else {
                    println!("\"{name}\"'s live streams are no longer recorded");
                }
            }
            Keys::Rotate { name, json } => {
                emit(json, &keys::rotate(&c, &name)?, |k| keys::describe(&c, k))?
            }
            Keys::Private { name } => {
                keys::set_private(&c, &name, true)?;
                println!("\"{name}\" plays only through signed links now (`streamedge sign /live/{name}`)");
            }
            Keys::Public { name } => {
                keys::set_private(&c, &name, false)?;
                println!("anyone may watch \"{name}\" now");
            }
            Keys::Revoke { name } => {
                keys::revoke(&c, &name)?;
                println!("revoked the key of \"{name}\": it can no longer publish");
            }
            Keys::Remove { name } => {
                keys::remove(&c, &name)?;
                println!("removed \"{name}\" and its key");
            }
            Keys::List { json } => emit(json, &keys::list(&c)?, |list| {
                if list.is_empty() {
                    return "no stream keys yet: `streamedge keys add NAME` makes one\n".into();
                }
                let mut out = format!("{:<24} {:<8} {:<8} CREATED\n", "NAME", "STATE", "ACCESS");
                for k in list {
                    let access = if k.private { "private" } else { "public" };
                    out += &format!(
                        "{:<24} {:<8} {:<8} {}\n",
                        k.name, k.state, access, k.created
                    );
                }
                out
            })?,
        }
        super::done()
    }
}
