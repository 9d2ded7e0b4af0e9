//! An edge's origin by name (`edge.origin = "https://home.example.org"`): nginx resolves a
//! name in an `upstream` only when it starts, and the home's address changes. So the
//! sidecar looks the name up itself, at start and every `edge.resolve_every`, writes the
//! addresses where `render` puts them into `upstream streamedge_origin`, and has nginx
//! reload when they change. A lookup that fails keeps the last addresses; with none yet,
//! the upstream names the host and nginx resolves it as before.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::fsutil::write_atomic;

/// The addresses last found, one per line.
pub fn addresses_file(config: &Config) -> PathBuf {
    config.nginx.prefix.join("origin-addresses")
}

/// The addresses last found (none: the upstream names the host).
pub fn known(config: &Config) -> Vec<IpAddr> {
    std::fs::read_to_string(addresses_file(config))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn remember(config: &Config, addresses: &[IpAddr]) -> Result<()> {
    let text: String = addresses.iter().map(|a| format!("{a}\n")).collect();
    write_atomic(&addresses_file(config), text.as_bytes(), 0o644, None)
}

/// The origin's addresses now, sorted; `None` when the origin is no name or none answers.
async fn look_up(config: &Config) -> Option<Vec<IpAddr>> {
    let edge = config.edge.as_ref()?;
    let name = edge.origin_name()?;
    let resolver = match crate::dns::resolver(&edge.nameservers) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("edge: cannot look up the origin {name}: {e:#}");
            return None;
        }
    };
    let mut found = crate::dns::addresses(&resolver, &name).await;
    found.sort();
    found.dedup();
    (!found.is_empty()).then_some(found)
}

/// At start, before nginx's configuration is rendered: the origin's addresses now (a
/// failure leaves those of the last run).
pub async fn prepare(config: &Config) -> Result<()> {
    if config.edge.as_ref().and_then(|e| e.origin_name()).is_none() {
        // An address: nothing to look up, nothing left from a name before.
        let _ = std::fs::remove_file(addresses_file(config));
        return Ok(());
    }
    if let Some(found) = look_up(config).await {
        remember(config, &found).context("cannot keep the origin's addresses")?;
    }
    Ok(())
}

/// Looks the origin up every `edge.resolve_every`; `reload` makes nginx take a change.
pub async fn watch(config: Config, reload: impl Fn() -> Result<()>) {
    let Some(edge) = config.edge.clone() else {
        return;
    };
    let Some(name) = edge.origin_name() else {
        return;
    };
    loop {
        tokio::time::sleep(edge.resolve_every).await;
        let Some(found) = look_up(&config).await else {
            continue;
        };
        let before = known(&config);
        if found == before {
            continue;
        }
        let shown = |a: &[IpAddr]| {
            a.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        tracing::info!(
            "edge: the origin {name} is at {} now (was {}): reloading nginx",
            shown(&found),
            shown(&before)
        );
        if let Err(e) = remember(&config, &found).and_then(|()| reload()) {
            tracing::error!("edge: cannot follow the origin to its new address: {e:#}");
        }
    }
}

/// `server` lines of `upstream streamedge_origin`: the addresses found, else the host.
pub fn servers(config: &Config, host_port: &str, port: u16) -> String {
    let found = match config.edge.as_ref().and_then(|e| e.origin_name()) {
        Some(_) => known(config),
        None => Vec::new(),
    };
    if found.is_empty() {
        return format!("        server {host_port};");
    }
    found
        .iter()
        .map(|a| match a {
            IpAddr::V4(v4) => format!("        server {v4}:{port};"),
            IpAddr::V6(v6) => format!("        server [{v6}]:{port};"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
