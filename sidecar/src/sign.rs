//! `streamedge sign`: links that open a private stream or library item for a while.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use streamedge_formats::layout::VOD_PLAYLIST;
use streamedge_formats::name::check_name;
use streamedge_formats::token::{self, Secrets, SECRET_LEN};

use crate::config::Config;
use crate::fsutil::write_atomic;

/// What `sign --json` prints.
#[derive(Debug, Serialize)]
pub struct Signed {
    pub url: String,
    /// The path and query alone, for another host name.
    pub path: String,
    /// The web player opening it (the link travels after `#`, so no log sees it).
    pub player: String,
    /// For a live stream: the RTMP address that plays it (`?st=TOKEN`, as nginx-rtmp passes
    /// a player's query string to the play callback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmp: Option<String>,
    pub expires: String,
}

/// Reads the secrets, newest first.
fn secrets(config: &Config) -> Result<Vec<Vec<u8>>> {
    let path = config.layout().secrets_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Secrets::parse(&text).map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))
}

fn new_secret() -> Result<[u8; SECRET_LEN]> {
    crate::clock::random_bytes()
}

/// Creates the secrets file if it is missing (by `init` and `run`).
pub fn ensure_secrets(config: &Config) -> Result<()> {
    let path = config.layout().secrets_file();
    if path.exists() {
        return Ok(());
    }
    let s = new_secret()?;
    write_atomic(&path, Secrets::render(&[&s]).as_bytes(), 0o600, None)
}

/// A new signing secret; the previous one keeps verifying until the next rotation. nginx
/// reads secrets when it loads its configuration: reload it afterwards.
pub fn rotate(config: &Config) -> Result<()> {
    let old = secrets(config)?;
    let new = new_secret()?;
    let text = Secrets::render(&[&new, &old[0]]);
    write_atomic(
        &config.layout().secrets_file(),
        text.as_bytes(),
        0o600,
        None,
    )
}

/// Splits `/live/NAME[/...]` or `/vod/ID[/...]` into the signed scope and the file to open.
fn scope(path: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, name) = match parts.as_slice() {
        [kind, name, ..] => (*kind, *name),
        _ => bail!("cannot sign \"{path}\": expected /live/NAME or /vod/ID"),
    };
    let default_file = match kind {
        // The stream itself: its ladder when one runs, else nginx-rtmp's playlist.
        "live" => "",
        "vod" => VOD_PLAYLIST,
        _ => bail!("cannot sign \"{path}\": expected /live/NAME or /vod/ID"),
    };
    check_name(name.as_bytes()).map_err(|e| anyhow::anyhow!("cannot sign \"{path}\": {e}"))?;
    let file = if parts.len() > 2 {
        parts[2..].join("/")
    } else {
        default_file.to_string()
    };
    Ok((format!("/{kind}/{name}"), file))
}

/// The web page playing `path` (`/vod/ID/master.m3u8`, `/live/NAME/`, or a signed path):
/// the path travels after `#`, so no server log sees it.
pub fn player(config: &Config, path: &str) -> String {
    format!("{}/#play={}", config.watch_url(), path.replace('%', "%25"))
}

pub fn sign(config: &Config, path: &str, ttl: Duration, ip: Option<IpAddr>) -> Result<Signed> {
    let (scope, file) = scope(path)?;
    let secret = secrets(config)?
        .into_iter()
        .next()
        .expect("parse keeps at least one");
    let expiry = SystemTime::now() + ttl;
    let secs = expiry
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();
    let t = token::sign(&secret, &scope, secs, ip);
    // The token in the path: relative URIs in the playlist inherit it.
    let path = token::signed_path(&t, &format!("{scope}/{file}"));
    let rtmp = scope
        .strip_prefix("/live/")
        .map(|name| format!("{}/{name}?{}={t}", config.rtmp_url(), token::ARG));
    Ok(Signed {
        rtmp,
        url: format!("{}{path}", config.watch_url()),
        player: player(config, &path),
        path,
        expires: crate::clock::rfc3339_secs(secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            scope("/live/alice").unwrap(),
            ("/live/alice".into(), "".into())
        );
        assert_eq!(
            scope("live/alice/index.m3u8").unwrap(),
            ("/live/alice".into(), "index.m3u8".into())
        );
        assert_eq!(
            scope("/vod/x1").unwrap(),
            ("/vod/x1".into(), "master.m3u8".into())
        );
        assert_eq!(
            scope("/vod/x1/720p/index.m3u8").unwrap(),
            ("/vod/x1".into(), "720p/index.m3u8".into())
        );
        assert!(scope("/etc/passwd").is_err());
        assert!(scope("/live").is_err());
        assert!(scope("/live/../x").is_err());
    }
}
