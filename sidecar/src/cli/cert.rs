//! `streamedge cert`: the HTTPS certificate.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};
use crate::certs;

#[derive(Debug, clap::Subcommand)]
pub enum Cert {
    /// Names, expiry, next renewal and the last error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Renew now if due (or with --force, regardless); exits 0 only with a valid certificate
    /// in service.
    Renew {
        #[arg(long)]
        force: bool,
    },
}

impl Cert {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.load()?;
        match self {
            Cert::Status { json } => {
                let Some(st) = certs::status(&c)? else {
                    anyhow::bail!("ACME is off: set acme.domains in streamedge.toml (or streamedge init --domain NAME)");
                };
                emit(json, &st, |st| {
                    let mut out = format!("domains: {}\n", st.domains.join(", "));
                    out += &match (&st.not_after, &st.next_renewal) {
                        (Some(na), Some(nr)) => format!(
                            "certificate: serial {}, valid until {na}, renewal from {nr}\n",
                            st.serial.as_deref().unwrap_or("?")
                        ),
                        _ => "certificate: none yet (HTTPS serves a self-signed placeholder)\n"
                            .into(),
                    };
                    if let Some(c) = &st.challenge {
                        out += &format!("challenge: {c} (the last attempt's)\n");
                    }
                    if let Some(e) = &st.last_error {
                        out += &format!("last error: {e} ({} failure(s) in a row)\n", st.failures);
                    }
                    if let Some(n) = &st.next_attempt {
                        out += &format!("next attempt: {n}\n");
                    }
                    out
                })?
            }
            Cert::Renew { force } => match certs::renew(&c, force).await? {
                certs::Outcome::Renewed(info) => {
                    certs::serve(&c, &info, crate::nginx::reload_running).await?;
                    println!(
                        "new certificate for {} (serial {}), valid until {}",
                        info.names.join(", "),
                        info.serial,
                        crate::clock::rfc3339(info.not_after)
                    )
                }
                certs::Outcome::NotDue { not_after, renew_at } => println!(
                    "the certificate is valid until {}; renewal is due from {} (--force renews now)",
                    crate::clock::rfc3339(not_after),
                    crate::clock::rfc3339(renew_at)
                ),
            },
        }
        super::done()
    }
}
