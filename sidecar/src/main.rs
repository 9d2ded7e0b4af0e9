//! `streamedge`: the sidecar daemon and command line of a streamedge home server.

// Three layers; a module imports only from its own layer or those below it, and never in a
// circle (`layers` checks it):
//
// The command line and the daemon.
mod api;
mod cli;
mod client;
mod init;
mod metrics;
mod run;
mod setup;
mod status;
// The services.
mod certs;
mod chat;
mod ddns;
mod fetch;
mod keys;
mod library;
mod live;
mod nginx;
mod restream;
mod sign;
mod telegram;
// The base: configuration, the data directory, errors, file, process and address helpers.
mod address;
mod clock;
mod config;
mod config_file;
mod costs;
mod dns;
mod error;
mod fsutil;
mod proc;
mod workers;

#[cfg(test)]
mod layers;
#[cfg(test)]
mod props;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STREAMEDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = if cli.single_threaded() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamedge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamedge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
