//! `streamedge ddns`: the dynamic DNS record.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::ddns;

#[derive(Debug, clap::Subcommand)]
pub enum Ddns {
    /// Create the IONOS DynDNS bulk for the names and store its update URL (mode "dyndns").
    Setup,
    /// Delete the DynDNS bulk.
    Disable,
    /// Check the public address and update DNS when it changed; every interval, until stopped.
    Check {
        /// One check, then exit (non-zero if it failed).
        #[arg(long)]
        once: bool,
        /// Say what would be sent, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this many checks.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Current address, what DNS says, the last update and the next check.
    Status {
        #[arg(long)]
        json: bool,
    },
}

impl Ddns {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Ddns::Setup => println!(
                "DynDNS bulk {} created; its update URL is stored",
                ddns::setup(&c).await?
            ),
            Ddns::Disable => {
                ddns::disable(&c).await?;
                println!("DynDNS bulk deleted");
            }
            Ddns::Check {
                once,
                dry_run,
                count,
            } => {
                let rounds = if once { Some(1) } else { count };
                let interval = c.ddns.as_ref().map(|d| d.interval).unwrap_or_default();
                let mut done = 0u64;
                let failed = loop {
                    let r = ddns::check(&c, dry_run).await?;
                    r.lines.iter().for_each(|l| println!("{l}"));
                    done += 1;
                    if rounds.is_some_and(|n| done >= n) {
                        break r.failed;
                    }
                    tokio::time::sleep(interval).await;
                };
                if failed {
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ddns::Status { json } => emit(json, &ddns::status(&c)?, |st| {
                let mut out = format!("mode: {}, names: {}\n", st.mode, st.domains.join(", "));
                for (t, f) in [("A", &st.ipv4), ("AAAA", &st.ipv6)] {
                    if let Some(f) = f {
                        let addr = f
                            .address
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "unknown".into());
                        out += &format!(
                            "{t}: address {addr}, DNS says {:?}, last sent {}\n",
                            f.dns,
                            f.last_sent
                                .map(|a| a.to_string())
                                .unwrap_or_else(|| "nothing".into())
                        );
                    }
                }
                out += &format!(
                    "last check: {}, next: {}\n",
                    st.last_check.as_deref().unwrap_or("never"),
                    st.next_check.as_deref().unwrap_or("-")
                );
                if let Some(r) = &st.last_result {
                    out += &format!("last result: {r}\n");
                }
                if let Some(e) = &st.error {
                    out += &format!("error: {e}\n");
                }
                out
            })?,
        }
        super::done()
    }
}
