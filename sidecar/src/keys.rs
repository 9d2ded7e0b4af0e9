//! `streamedge keys`: stream keys for publishers. The secret is printed once and never
//! stored; the keys file holds its hash. nginx workers notice the new file on the next publish.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::Flock;
use serde::Serialize;
use streamedge_formats::keys::{encode_secret, KeyEntry, KeyFile, KeyHash, KeyState, SECRET_BYTES};
use streamedge_formats::name::check_name;

use crate::config::Config;
use crate::fsutil::write_atomic;
use crate::workers::worker_user;

/// What `keys add` and `keys rotate` print with `--json`.
#[derive(Debug, Serialize)]
pub struct NewKey {
    pub name: String,
    pub server_url: String,
    pub stream_key: String,
}

/// One row of `keys list --json`; never a secret or a hash.
#[derive(Debug, Serialize)]
pub struct KeyInfo {
    pub name: String,
    pub state: String,
    pub private: bool,
    pub created: String,
}

/// The keys file, locked against other `streamedge keys` commands while it is changed.
struct Locked {
    _lock: Flock<File>,
    file: KeyFile,
}

fn lock(config: &Config) -> Result<Locked> {
    let lock = crate::fsutil::lock(&config.layout().keys_lock())?;
    Ok(Locked {
        _lock: lock,
        file: load(&config.layout().keys_file())?,
    })
}

/// Whether `name` is a public stream with an active key in `file`: what has a chat, likes
/// and `/listen/`.
pub fn is_public(file: &KeyFile, name: &str) -> bool {
    file.get(name)
        .is_some_and(|k| !k.private && k.state == streamedge_formats::keys::KeyState::Active)
}

/// Reads the keys file; a missing file is an empty one.
pub fn load(path: &Path) -> Result<KeyFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            KeyFile::parse(&text).with_context(|| format!("invalid keys file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read keys file {}", path.display())),
    }
}

fn save(config: &Config, file: &KeyFile) -> Result<()> {
    // Readable by its owner only: nginx's worker user when nginx runs as root.
    let owner = worker_user(config)?.map(|u| u.owner);
    write_atomic(
        &config.layout().keys_file(),
        file.to_toml().as_bytes(),
        0o600,
        owner,
    )
}

/// A new secret: 24 random bytes, URL-safe base64 (stream keys, the API token).
pub fn new_secret() -> Result<String> {
    Ok(encode_secret(&crate::clock::random_bytes::<SECRET_BYTES>()?))
}

fn check(name: &str) -> Result<()> {
    check_name(name.as_bytes())
        .map_err(|e| anyhow::anyhow!("invalid stream name \"{}\": {e}", name.escape_debug()))
}

fn issue(config: &Config, name: &str, secret: &str) -> NewKey {
    NewKey {
        name: name.to_string(),
        server_url: config.rtmp_url(),
        stream_key: format!("{name}?key={secret}"),
    }
}

/// `keys add NAME`: a new name with a new secret; a private one plays only through signed
/// links.
pub fn add(config: &Config, name: &str, private: bool, record: bool) -> Result<NewKey> {
    check(name)?;
    let mut keys = lock(config)?;
    if keys.file.get(name).is_some() {
        bail!("stream name \"{name}\" already has a key (use `streamedge keys rotate {name}` for a new one)");
    }
    let secret = new_secret()?;
    keys.file.keys.push(KeyEntry {
        name: name.to_string(),
        hash: KeyHash::of(secret.as_bytes()),
        created: crate::clock::now_rfc3339(),
        state: KeyState::Active,
        private,
        record,
    });
    save(config, &keys.file)?;
    Ok(issue(config, name, &secret))
}

/// `keys rotate NAME`: a new secret; the old one stops working at once.
pub fn rotate(config: &Config, name: &str) -> Result<NewKey> {
    check(name)?;
    let mut keys = lock(config)?;
    let secret = new_secret()?;
    let Some(entry) = keys.file.get_mut(name) else {
        bail!("unknown stream name \"{name}\"");
    };
    entry.hash = KeyHash::of(secret.as_bytes());
    entry.created = crate::clock::now_rfc3339();
    entry.state = KeyState::Active;
    save(config, &keys.file)?;
    Ok(issue(config, name, &secret))
}

/// `keys revoke NAME`: the name can no longer publish until it is rotated.
pub fn revoke(config: &Config, name: &str) -> Result<()> {
    check(name)?;
    let mut keys = lock(config)?;
    let Some(entry) = keys.file.get_mut(name) else {
        bail!("unknown stream name \"{name}\"");
    };
    entry.state = KeyState::Revoked;
    save(config, &keys.file)
}

/// `keys remove NAME`: the name is forgotten, key and all: it can no longer publish (a live
/// stream ends at its next update callback) and is no longer listed.
pub fn remove(config: &Config, name: &str) -> Result<()> {
    check(name)?;
    let mut keys = lock(config)?;
    let before = keys.file.keys.len();
    keys.file.keys.retain(|k| k.name != name);
    if keys.file.keys.len() == before {
        bail!("unknown stream name \"{name}\"");
    }
    save(config, &keys.file)
}

/// `keys private NAME` / `keys public NAME`. A live stream follows within one update
/// callback (10 seconds); new viewers at once.
pub fn set_private(config: &Config, name: &str, private: bool) -> Result<()> {
    change(config, name, |k| k.private = private)
}

/// `keys record NAME on|off`: whether the name's live streams are recorded into the library.
pub fn set_record(config: &Config, name: &str, record: bool) -> Result<()> {
    change(config, name, |k| k.record = record)
}

/// Changes an existing name's entry under the keys lock.
fn change(config: &Config, name: &str, f: impl FnOnce(&mut KeyEntry)) -> Result<()> {
    check(name)?;
    let mut keys = lock(config)?;
    let Some(entry) = keys.file.get_mut(name) else {
        bail!("unknown stream name \"{name}\"");
    };
    f(entry);
    save(config, &keys.file)
}

/// `keys list`.
pub fn list(config: &Config) -> Result<Vec<KeyInfo>> {
    Ok(load(&config.layout().keys_file())?
        .keys
        .into_iter()
        .map(|k| KeyInfo {
            name: k.name,
            state: k.state.to_string(),
            private: k.private,
            created: k.created,
        })
        .collect())
}

/// The human form of a new key: what to type into OBS, once.
pub fn describe(config: &Config, k: &NewKey) -> String {
    format!(
        "Stream key for \"{name}\" (shown only now: keep it secret, `streamedge keys rotate {name}` makes a new one)\n\
         \n\
         OBS: Settings > Stream > Service: Custom...\n\
         \x20 Server:     {server}\n\
         \x20 Stream Key: {key}\n\
         \n\
         ffmpeg: ffmpeg -re -i INPUT -c:v libx264 -c:a aac -f flv \"{server}/{key}\"\n\
         Watch:  {https}/ (the web player), or {https}/live/{name}/ in any HLS player\n",
        name = k.name,
        server = k.server_url,
        key = k.stream_key,
        https = config.watch_url(),
    )
}
