//! The broadcasts that ended, with their audience: when each started and ended, its title,
//! and its viewers at the peak, in all, and its likes, as the module counted them (the
//! registry keeps them only until the stream's next publish). The last [`KEEP`] are in
//! `DATA/broadcasts.json` (0600: private streams' too), for `GET /api/broadcasts`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use streamedge_formats::streams::{Audience, Stream};

use crate::config::Config;

/// Broadcasts kept.
pub const KEEP: usize = 500;

/// One broadcast that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub stream: String,
    /// When it went live and when it ended (RFC 3339).
    pub started: Option<String>,
    pub ended: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub audience: Audience,
}

fn path(config: &Config) -> std::path::PathBuf {
    config.layout().root().join("broadcasts.json")
}

fn read(path: &Path) -> Result<Vec<Ended>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("invalid {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Notes that stream `last` (its registry entry as last seen) ended now.
pub fn record(config: &Config, last: &Stream) {
    let entry = Ended {
        stream: last.name.clone(),
        started: last.since.clone(),
        ended: crate::clock::now_rfc3339(),
        title: last.title.clone(),
        audience: last.audience.unwrap_or_default(),
    };
    let result = (|| -> Result<()> {
        let p = path(config);
        // A damaged file starts afresh rather than stopping the record.
        let mut all = read(&p).unwrap_or_default();
        all.push(entry);
        if all.len() > KEEP {
            all.drain(..all.len() - KEEP);
        }
        let text = serde_json::to_string_pretty(&all)?;
        crate::fsutil::write_atomic(&p, text.as_bytes(), 0o600, None)
    })();
    if let Err(e) = result {
        tracing::warn!("live \"{}\": cannot keep its figures: {e:#}", last.name);
    }
}

/// The broadcasts that ended, newest first.
pub fn list(config: &Config) -> Result<Vec<Ended>> {
    let mut all = read(&path(config))?;
    all.reverse();
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_broadcasts_are_kept_newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("data_dir = {:?}\npublic_host = \"x\"\n", dir.path());
        let config: Config = toml::from_str(&text).unwrap();
        let s = |n: u32| Stream {
            name: format!("s{n}"),
            live: false,
            publishing: false,
            since: Some("2026-12-04T18:00:00Z".into()),
            thumbnail: None,
            title: Some("Friday Mix".into()),
            audience: Some(Audience {
                viewers: 0,
                peak: n,
                total: n * 2,
                likes: 1,
            }),
        };
        for n in 0..(KEEP as u32 + 3) {
            record(&config, &s(n));
        }
        let all = list(&config).unwrap();
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].stream, format!("s{}", KEEP + 2));
        assert_eq!(all[0].audience.total, (KEEP as u32 + 2) * 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("broadcasts.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
