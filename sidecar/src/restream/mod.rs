//! Restreaming: while a stream is live, each of its destinations (`streamedge restream add
//! NAME URL`: YouTube, Twitch, a restream service, any RTMP or RTMPS server) gets the stream
//! from a process of its own (`push`), so one failing destination never holds back another.
//!
//! The destinations' URLs carry the platforms' stream keys: they are kept in
//! `DATA/restreams.toml`, mode 0600, the sidecar's alone (nginx never reads it), shown
//! masked everywhere after `add`, and handed to the pushing process on its stdin, never on a
//! command line (which every local user can read in /proc) nor in a log.

pub mod push;
pub mod relay;
pub mod session;

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};
use streamedge_formats::name::check_name;

use crate::config::{Config, Switch};
use crate::error::Error;
use crate::fsutil::write_atomic;

/// Destinations at most, over all streams.
const MAX_DESTINATIONS: usize = 200;

/// One destination as the restreams file keeps it.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub id: String,
    /// The local stream it restreams.
    pub stream: String,
    /// `rtmp://` or `rtmps://`, the platform's stream key in it: a secret.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A rung of the ladder ("720p") instead of the source as published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<String>,
    pub enabled: bool,
    pub created: String,
}

impl std::fmt::Debug for Destination {
    // Never the key, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("url", &masked(&self.url))
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// The restreams file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestreamFile {
    #[serde(default, rename = "destination")]
    pub destinations: Vec<Destination>,
    #[serde(default, rename = "relay")]
    pub relays: Vec<relay::Relay>,
}

/// A destination as `restream list --json` and the API show it: the key masked.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationInfo {
    pub id: String,
    pub stream: String,
    pub url: String,
    pub label: Option<String>,
    pub rendition: Option<String>,
    pub enabled: bool,
    pub created: String,
}

impl From<&Destination> for DestinationInfo {
    fn from(d: &Destination) -> Self {
        DestinationInfo {
            id: d.id.clone(),
            stream: d.stream.clone(),
            url: masked(&d.url),
            label: d.label.clone(),
            rendition: d.rendition.clone(),
            enabled: d.enabled,
            created: d.created.clone(),
        }
    }
}

/// An RTMP URL taken apart as an RTMP client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The application: the first part of the path.
    pub app: String,
    /// The rest of the path and any query: the stream key.
    pub key: String,
}

impl RtmpUrl {
    /// `rtmp://HOST[:PORT]/APP/KEY` or `rtmps://…`; the key is what follows the application,
    /// query and all (Facebook's keys have one).
    pub fn parse(url: &str) -> Result<RtmpUrl> {
        if url.len() > 2048 {
            bail!("the URL is longer than 2048 bytes");
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("the URL has a space or a control character");
        }
        let (tls, rest) = if let Some(r) = url.strip_prefix("rtmps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("rtmp://") {
            (false, r)
        } else {
            bail!("the URL must start with rtmp:// or rtmps://");
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            bail!("user:password@ in the URL is not supported");
        }
        let default_port = if tls { 443 } else { 1935 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .context("an IPv6 address in the URL lacks its ]")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok().filter(|p| *p != 0),
                None if after.is_empty() => Some(default_port),
                None => None,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok().filter(|p| *p != 0)),
                None => (authority.to_string(), Some(default_port)),
            }
        };
        let port = port.context("the URL's port is not a number from 1 to 65535")?;
        if host.is_empty() {
            bail!("the URL has no host");
        }
        let (app, key) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            bail!("the URL has no application: rtmp://HOST/APP/STREAM-KEY");
        }
        if key.is_empty() {
            bail!("the URL has no stream key: rtmp://HOST/APP/STREAM-KEY");
        }
        Ok(RtmpUrl {
            tls,
            host,
            port,
            app: app.to_string(),
            key: key.to_string(),
        })
    }

    /// `HOST:PORT`, for messages: no secret in it.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// What RTMP's `connect` names as the server's URL: scheme, host, port, application.
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        format!("{scheme}://{}/{}", self.server(), self.app)
    }
}

/// The URL with its stream key hidden but for its last four characters when it is long
/// enough for them to say nothing: `rtmp://a.rtmp.youtube.com/live2/****3f9k`.
pub fn masked(url: &str) -> String {
    match RtmpUrl::parse(url) {
        Ok(u) => {
            let chars: Vec<char> = u.key.chars().collect();
            let tail: String = if chars.len() >= 16 {
                chars[chars.len() - 4..].iter().collect()
            } else {
                String::new()
            };
            format!("{}/****{tail}", u.tc_url())
        }
        Err(_) => "(an invalid URL)".to_string(),
    }
}

/// The restreams file, locked against other writers while it is changed.
struct Locked {
    _lock: Flock<File>,
    file: RestreamFile,
}

fn lock(config: &Config) -> Result<Locked> {
    let lock = crate::fsutil::lock(&config.layout().restreams_lock())?;
    Ok(Locked {
        _lock: lock,
        file: load(&config.layout().restreams_file())?,
    })
}

/// Reads the restreams file; a missing file is an empty one.
pub fn load(path: &Path) -> Result<RestreamFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("invalid restreams file {}: {}", path.display(), e.message())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RestreamFile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save(config: &Config, file: &RestreamFile) -> Result<()> {
    let text = toml::to_string(file).context("cannot write the restreams file")?;
    write_atomic(
        &config.layout().restreams_file(),
        text.as_bytes(),
        0o600,
        None,
    )
}

/// What `restream add` is asked for.
pub struct NewDestination<'a> {
    pub stream: &'a str,
    pub url: &'a str,
    pub label: Option<&'a str>,
    pub rendition: Option<&'a str>,
}

/// `restream add`: a new enabled destination; the stream's next broadcast goes there, and
/// a broadcast live now within a second or two.
pub fn add(config: &Config, new: &NewDestination) -> Result<DestinationInfo, Error> {
    check_name(new.stream.as_bytes()).map_err(|e| {
        Error::Invalid(format!(
            "invalid stream name \"{}\": {e}",
            new.stream.escape_debug()
        ))
    })?;
    RtmpUrl::parse(new.url).map_err(|e| Error::Invalid(format!("invalid destination URL: {e}")))?;
    if let Some(l) = new.label {
        if l.is_empty() || l.chars().count() > 64 || l.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "a label is 1 to 64 characters, none of them control characters".into(),
            ));
        }
    }
    if let Some(r) = new.rendition {
        let height: Option<u32> = r.strip_suffix('p').and_then(|h| h.parse().ok());
        let ladder = config.live.ladder_for(new.stream);
        let why = match height {
            None => format!(
                "a rendition is a rung's height, such as \"720p\", not \"{}\"",
                r.escape_debug()
            ),
            Some(_) if config.live.transcode != Switch::On => format!(
                "rendition \"{r}\" needs the ladder: live.transcode = \"on\" in the configuration"
            ),
            Some(h) if !ladder.contains(&h) => format!(
                "the ladder of \"{}\" has no rung \"{r}\" (it has {})",
                new.stream,
                ladder
                    .iter()
                    .map(|h| format!("{h}p"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(_) => String::new(),
        };
        if !why.is_empty() {
            return Err(Error::Invalid(why));
        }
    }
    let mut locked = lock(config)?;
    let file = &mut locked.file;
    if file.destinations.len() >= MAX_DESTINATIONS {
        return Err(Error::Conflict(format!(
            "there are {MAX_DESTINATIONS} destinations already"
        )));
    }
    if file
        .destinations
        .iter()
        .any(|d| d.stream == new.stream && d.url == new.url)
    {
        return Err(Error::Conflict(format!(
            "\"{}\" is restreamed to {} already",
            new.stream,
            masked(new.url)
        )));
    }
    let id = loop {
        let bytes = crate::clock::random_bytes::<4>()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !file.destinations.iter().any(|d| d.id == id) {
            break id;
        }
    };
    let d = Destination {
        id,
        stream: new.stream.to_string(),
        url: new.url.to_string(),
        label: new.label.map(str::to_string),
        rendition: new.rendition.map(str::to_string),
        enabled: true,
        created: crate::clock::now_rfc3339(),
    };
    file.destinations.push(d.clone());
    save(config, file)?;
    Ok((&d).into())
}

/// `restream remove ID`: gone from the file; a push running to it stops within a second.
pub fn remove(config: &Config, id: &str) -> Result<DestinationInfo, Error> {
    let mut locked = lock(config)?;
    let file = &mut locked.file;
    let Some(i) = file.destinations.iter().position(|d| d.id == id) else {
        return Err(unknown(id));
    };
    let d = file.destinations.remove(i);
    save(config, file)?;
    Ok((&d).into())
}

/// `restream enable ID` / `restream disable ID`.
pub fn set_enabled(config: &Config, id: &str, enabled: bool) -> Result<DestinationInfo, Error> {
    let mut locked = lock(config)?;
    let file = &mut locked.file;
    let Some(d) = file.destinations.iter_mut().find(|d| d.id == id) else {
        return Err(unknown(id));
    };
    d.enabled = enabled;
    let info = (&*d).into();
    save(config, file)?;
    Ok(info)
}

fn unknown(id: &str) -> Error {
    Error::NotFound(format!(
        "no destination \"{}\" (`streamedge restream list` shows them)",
        id.escape_debug()
    ))
}

/// A destination and, while its stream is live, what its push does (`GET /api/restreams`).
#[derive(Debug, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub destination: DestinationInfo,
    pub status: Option<session::DestinationStatus>,
}

/// Every destination with its status from `board`.
pub fn listed(config: &Config, board: &session::Board) -> Result<Vec<Listed>> {
    let mut status = board.snapshot();
    Ok(list(config)?
        .into_iter()
        .map(|d| Listed {
            status: status.remove(&d.id),
            destination: d,
        })
        .collect())
}

/// `restream list`: every destination, keys masked.
pub fn list(config: &Config) -> Result<Vec<DestinationInfo>> {
    Ok(load(&config.layout().restreams_file())?
        .destinations
        .iter()
        .map(DestinationInfo::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_urls_come_apart_into_application_and_key() {
        let yt = RtmpUrl::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop").unwrap();
        assert_eq!(
            yt,
            RtmpUrl {
                tls: false,
                host: "a.rtmp.youtube.com".into(),
                port: 1935,
                app: "live2".into(),
                key: "abcd-efgh-ijkl-mnop".into(),
            }
        );
        assert_eq!(yt.tc_url(), "rtmp://a.rtmp.youtube.com:1935/live2");
        let fb =
            RtmpUrl::parse("rtmps://live-api-s.facebook.com:443/rtmp/FB-1-0-Ab?s_bl=1&s_sc=2&a=Ab")
                .unwrap();
        assert!(fb.tls);
        assert_eq!(fb.port, 443);
        assert_eq!(fb.app, "rtmp");
        assert_eq!(fb.key, "FB-1-0-Ab?s_bl=1&s_sc=2&a=Ab");
        let v6 = RtmpUrl::parse("rtmps://[::1]:8443/app/inst/key").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.key, "inst/key");
        assert_eq!(v6.server(), "[::1]:8443");
    }

    #[test]
    fn urls_without_what_a_push_needs_are_refused_with_the_reason() {
        for (url, why) in [
            ("http://example.org/app/key", "must start with rtmp://"),
            ("rtmp://example.org/app", "no stream key"),
            ("rtmp://example.org/app/", "no stream key"),
            ("rtmp://example.org", "no application"),
            ("rtmp:///app/key", "no host"),
            ("rtmp://example.org:0/app/key", "port"),
            ("rtmp://example.org:x/app/key", "port"),
            ("rtmp://u:p@example.org/app/key", "user:password"),
            ("rtmp://example.org/app/key with space", "space"),
            ("rtmp://example.org/app/key\n", "control"),
            ("rtmp://[::1/app/key", "lacks its ]"),
        ] {
            let e = RtmpUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(RtmpUrl::parse(&format!("rtmp://h/a/{}", "k".repeat(3000))).is_err());
    }

    #[test]
    fn a_masked_url_never_holds_the_key() {
        let key = "abcd-efgh-ijkl-mnop";
        let m = masked(&format!("rtmp://a.rtmp.youtube.com/live2/{key}"));
        assert_eq!(m, "rtmp://a.rtmp.youtube.com:1935/live2/****mnop");
        assert!(!m.contains(&key[..8]));
        // A short key shows nothing of itself.
        assert_eq!(masked("rtmp://h/app/short"), "rtmp://h:1935/app/****");
        let fb = masked("rtmps://h/rtmp/FB-1-0-Ab?s_bl=1&a=SECRETSECRET");
        assert!(!fb.contains("SECRET") && fb.ends_with("****CRET"), "{fb}");
        assert_eq!(masked("not a url"), "(an invalid URL)");
        let d = Destination {
            id: "1".into(),
            stream: "alice".into(),
            url: format!("rtmp://h/app/{key}"),
            label: None,
            rendition: None,
            enabled: true,
            created: String::new(),
        };
        assert!(!format!("{d:?}").contains(&key[..8]));
    }
}
