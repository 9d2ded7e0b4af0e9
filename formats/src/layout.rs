//! The data directory (ARCHITECTURE.md, "Data directory"): the one place that names its
//! files and folders. nginx's module reads the keys, the signing secrets, live HLS and the
//! library from it; the sidecar writes them. Nothing else joins paths below the root.
//!
//! ```text
//! DATA/keys.toml                 stream keys, hashed (0600, read by nginx's workers)
//! DATA/sign.keys                 secrets of signed links (0600, read by nginx's master)
//! DATA/api.token                 the control API's bearer token (0600)
//! DATA/live/<name>/index.m3u8    live HLS, written by nginx-rtmp (the source rendition)
//! DATA/live/<name>/master.m3u8   the sidecar's ladder, with <height>p/ rungs and thumb.jpg
//! DATA/vod/<id>/master.m3u8      a library item, with meta.json beside it
//! DATA/certs/<domain>/           the pair nginx serves; certs/placeholder until issued
//! DATA/acme/                     the ACME account, challenge files, DNS-01 records made
//! DATA/jobs/<id>.json            fetch jobs
//! DATA/ddns/state.json           what dynamic DNS last published
//! DATA/.work/<id>/               scratch space of a job, an import or a recording
//! ```

use std::path::{Path, PathBuf};

/// A library item's description, beside its playlists.
pub const META_JSON: &str = "meta.json";
/// The playlist nginx-rtmp writes for a live stream: its source rendition.
pub const LIVE_PLAYLIST: &str = "index.m3u8";
/// The live ladder's master playlist, beside it: the source and the encoded rungs.
pub const LIVE_MASTER: &str = "master.m3u8";
/// A live stream's thumbnail, beside its playlists.
pub const LIVE_THUMBNAIL: &str = "thumb.jpg";
/// A live stream's title, beside its playlists, when its publisher gave one (a relay: the
/// source's title); one line of text.
pub const LIVE_TITLE: &str = "title.txt";
/// A library item's top playlist.
pub const VOD_PLAYLIST: &str = "master.m3u8";
/// The certificate chain and key file names of every pair in `certs/`.
pub const CERT_CHAIN: &str = "fullchain.pem";
pub const CERT_KEY: &str = "privkey.pem";

/// The folder of a certificate in `certs/`, named for its first domain: a wildcard's `*`
/// becomes `_wildcard` (as mkcert names its files), so no name is a glob in a shell or in
/// nginx's configuration.
pub fn cert_folder(domain: &str) -> String {
    match domain.strip_prefix("*.") {
        Some(base) => format!("_wildcard.{base}"),
        None => domain.to_string(),
    }
}

/// Paths below one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stream keys, as hashes.
    pub fn keys_file(&self) -> PathBuf {
        self.root.join("keys.toml")
    }

    /// Taken while the keys file is rewritten.
    pub fn keys_lock(&self) -> PathBuf {
        self.root.join(".keys.lock")
    }

    /// Restream destinations and relays, their platforms' stream keys in the clear: the
    /// sidecar's alone (mode 0600; nginx never reads it).
    pub fn restreams_file(&self) -> PathBuf {
        self.root.join("restreams.toml")
    }

    /// Taken while the restreams file is rewritten.
    pub fn restreams_lock(&self) -> PathBuf {
        self.root.join(".restreams.lock")
    }

    /// The signing secrets of private links.
    pub fn secrets_file(&self) -> PathBuf {
        self.root.join("sign.keys")
    }

    /// The bearer token of the control API's writes.
    pub fn api_token_file(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// Live HLS, one folder per stream.
    pub fn live(&self) -> PathBuf {
        self.root.join("live")
    }

    /// The library, one folder per item.
    pub fn vod(&self) -> PathBuf {
        self.root.join("vod")
    }

    /// One library item's folder; `id` is a checked item id.
    pub fn item(&self, id: &str) -> PathBuf {
        self.vod().join(id)
    }

    /// One library item's `meta.json`.
    pub fn item_meta(&self, id: &str) -> PathBuf {
        self.item(id).join(META_JSON)
    }

    /// Certificates, one folder per first domain name.
    pub fn certs(&self) -> PathBuf {
        self.root.join("certs")
    }

    /// The self-signed certificate nginx uses until a real one exists.
    pub fn placeholder_cert(&self) -> PathBuf {
        self.certs().join("placeholder")
    }

    /// The chain and key in a certificate folder.
    pub fn cert_pair(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join(CERT_CHAIN), dir.join(CERT_KEY))
    }

    /// What nginx serves: the first domain's pair, or the placeholder without a domain.
    pub fn served_cert(&self, first_domain: Option<&str>) -> (PathBuf, PathBuf) {
        match first_domain {
            Some(domain) => Self::cert_pair(&self.certs().join(cert_folder(domain))),
            None => Self::cert_pair(&self.placeholder_cert()),
        }
    }

    /// The ACME account, orders and state.
    pub fn acme(&self) -> PathBuf {
        self.root.join("acme")
    }

    /// DNS-01 records created at the DNS provider and not yet removed (0600): what a killed
    /// sidecar leaves is removed at the next issuance.
    pub fn acme_dns_records(&self) -> PathBuf {
        self.acme().join("dns-records.json")
    }

    /// nginx's root for `/.well-known/acme-challenge/`.
    pub fn acme_challenge_root(&self) -> PathBuf {
        self.acme().join("challenge")
    }

    /// Fetch job records.
    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// One job's record.
    pub fn job(&self, id: &str) -> PathBuf {
        self.jobs().join(format!("{id}.json"))
    }

    /// Dynamic DNS state and its lock.
    pub fn ddns(&self) -> PathBuf {
        self.root.join("ddns")
    }

    pub fn ddns_state(&self) -> PathBuf {
        self.ddns().join("state.json")
    }

    /// The Telegram bot's state: the last update it took, and the progress messages it
    /// edits.
    pub fn telegram_state(&self) -> PathBuf {
        self.root.join("telegram/state.json")
    }

    /// Scratch space: jobs and imports work here and move finished items into `vod/`.
    pub fn work(&self) -> PathBuf {
        self.root.join(".work")
    }

    /// One job's or import's scratch folder.
    pub fn scratch(&self, id: &str) -> PathBuf {
        self.work().join(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_below_the_root() {
        let l = Layout::new("/d");
        assert_eq!(l.keys_file(), Path::new("/d/keys.toml"));
        assert_eq!(l.item_meta("x1"), Path::new("/d/vod/x1/meta.json"));
        assert_eq!(l.job("j"), Path::new("/d/jobs/j.json"));
        assert_eq!(
            l.served_cert(Some("example.org")).0,
            Path::new("/d/certs/example.org/fullchain.pem")
        );
        assert_eq!(
            l.served_cert(None).1,
            Path::new("/d/certs/placeholder/privkey.pem")
        );
        assert_eq!(
            l.served_cert(Some("*.example.org")).1,
            Path::new("/d/certs/_wildcard.example.org/privkey.pem")
        );
        assert_eq!(l.scratch("j"), Path::new("/d/.work/j"));
    }
}
