//! `streamedge sign`: links to private streams and items, and the signing secret.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::sign;

#[derive(Debug, clap::Args)]
pub struct Sign {
    /// What to open: /live/NAME or /vod/ID (or a file below them).
    #[arg(required_unless_present = "rotate_secret")]
    path: Option<String>,
    /// How long the link works ("30m", "1h", "7d"). Default: 1h.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<std::time::Duration>,
    /// Only this client address may use the link.
    #[arg(long)]
    ip: Option<std::net::IpAddr>,
    #[arg(long)]
    json: bool,
    /// Make a new signing secret; links signed with the current one keep working until
    /// the next rotation.
    #[arg(long, conflicts_with_all = ["path", "ip"])]
    rotate_secret: bool,
}

impl Sign {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        if self.rotate_secret {
            sign::rotate(&c)?;
            let reloaded = crate::nginx::reload_running(&c)?;
            println!("new signing secret in use; links signed before keep working until the next rotation");
            if !reloaded {
                println!("nginx is not running: it reads the new secret when it starts");
            }
            return super::done();
        }
        let s = sign::sign(
            &c,
            self.path.as_deref().unwrap_or_default(),
            self.ttl.unwrap_or(crate::config::DEFAULT_LINK_TTL),
            self.ip,
        )?;
        emit(self.json, &s, |s| {
            let mut out = format!("{}\nin the web player: {}\n", s.url, s.player);
            if let Some(rtmp) = &s.rtmp {
                out += &format!("over RTMP: {rtmp}\n");
            }
            out + &format!("(valid until {})\n", s.expires)
        })?;
        super::done()
    }
}
