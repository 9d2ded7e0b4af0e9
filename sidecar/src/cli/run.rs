//! `streamedge run`: the daemon.

use std::process::ExitCode;

use anyhow::Result;

use super::Ctx;

pub async fn run(ctx: &Ctx) -> Result<ExitCode> {
    crate::run::run(&ctx.load()?).await?;
    super::done()
}
