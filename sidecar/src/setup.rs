//! What a server needs before nginx starts, made by the commands that start one (`init`,
//! `run`): the data directory's folders with their owners, nginx's own folders, the signing
//! secrets, the API token and the placeholder certificate. `render` only renders.

use anyhow::{Context, Result};
use streamedge_formats::layout::Layout;

use crate::config::Config;
use crate::fsutil::{ensure_dir, write_atomic};
use crate::workers::WorkerUser;

/// Writes a self-signed certificate for `public_host` so HTTPS always starts.
fn ensure_placeholder_cert(config: &Config) -> Result<()> {
    let dir = config.layout().placeholder_cert();
    let (cert_path, key_path) = Layout::cert_pair(&dir);
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    let names = vec![config.public_host.clone(), "localhost".to_string()];
    let cert = rcgen::generate_simple_self_signed(names)
        .context("cannot make a placeholder certificate")?;
    ensure_dir(&dir, 0o700, None)?;
    write_atomic(
        &key_path,
        cert.signing_key.serialize_pem().as_bytes(),
        0o600,
        None,
    )?;
    write_atomic(&cert_path, cert.cert.pem().as_bytes(), 0o644, None)?;
    Ok(())
}

/// Creates the data directory layout of ARCHITECTURE.md and nginx's own folders.
pub fn prepare(config: &Config, user: Option<&WorkerUser>) -> Result<()> {
    let owner = user.map(|u| u.owner);
    let data = config.layout();
    ensure_dir(data.root(), 0o755, None)?;
    // Written by nginx workers (HLS) or read by them (library, keys): owned by the worker user.
    for dir in [data.live(), data.vod()] {
        ensure_dir(&dir, 0o755, owner)?;
    }
    // Read by nginx's master only, which runs as the sidecar's user.
    ensure_dir(&data.certs(), 0o755, None)?;
    // The sidecar's own: scratch space, job records, DNS state.
    for dir in [data.work(), data.jobs(), data.ddns()] {
        ensure_dir(&dir, 0o700, None)?;
    }
    // ACME: the account stays private, but nginx's workers must reach the challenge files
    // (`/.well-known/acme-challenge/` below the challenge root).
    ensure_dir(&data.acme(), 0o711, None)?;
    let mut dir = data.acme_challenge_root();
    ensure_dir(&dir, 0o755, None)?;
    for sub in [".well-known", "acme-challenge"] {
        dir.push(sub);
        ensure_dir(&dir, 0o755, None)?;
    }
    let prefix = &config.nginx.prefix;
    ensure_dir(prefix, 0o755, None)?;
    ensure_dir(&prefix.join("logs"), 0o755, None)?;
    ensure_dir(&prefix.join("tmp"), 0o700, owner)?;
    if config.edge.is_some() {
        // nginx makes the caches' own folders (segments, playlists), not their parent.
        ensure_dir(&prefix.join("cache"), 0o700, owner)?;
    }
    if let Some(dir) = config.nginx.conf.parent() {
        ensure_dir(dir, 0o755, None)?;
    }
    if config.edge.is_none() {
        crate::sign::ensure_secrets(config)?;
    } else if !data.secrets_file().exists() {
        // An edge checks the origin's links: its secrets, not new ones.
        tracing::warn!(
            "this edge needs the origin's signing secrets: copy the origin's DATA/sign.keys to {} (mode 0600)",
            data.secrets_file().display()
        );
    }
    crate::api::ensure_token(config)?;
    ensure_placeholder_cert(config)?;
    crate::certs::ensure_placeholder(config)
}
