//! `streamedge init`.

use std::process::ExitCode;

use anyhow::Result;

pub fn run(args: crate::init::InitArgs) -> Result<ExitCode> {
    crate::init::init(&args)?;
    let path = args.dir.join("streamedge.toml");
    println!(
        "wrote {}\nstart it with: streamedge run --config {}",
        path.display(),
        path.display()
    );
    super::done()
}
