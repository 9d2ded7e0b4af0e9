//! `streamedge status`: nginx, who is live, the keys.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit, Ctx};

#[derive(Debug, clap::Args)]
pub struct Status {
    #[arg(long)]
    json: bool,
}

impl Status {
    /// Exit code 3 when nginx does not run.
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let s = crate::status::gather(&ctx.load()?).await?;
        emit(self.json, &s, crate::status::describe)?;
        if !s.nginx.running {
            return Ok(ExitCode::from(3));
        }
        super::done()
    }
}
