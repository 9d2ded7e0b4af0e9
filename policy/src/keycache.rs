//! The keys file as one worker sees it: re-read only when its identity (device, inode, size,
//! modification time) changes, which costs one `stat` per check. The sidecar replaces the
//! file by rename, so a change always shows as a new inode: key changes apply to the next
//! publish without a reload.
//!
//! A file that turns unreadable or invalid leaves no keys in service (the error is reported
//! once per change): every worker then refuses new publishes alike until the file is fixed.
//! Keeping "the last good keys" would differ from worker to worker, since each has its own.

use std::fs;
use std::path::{Path, PathBuf};

use crate::filestamp::Stamp;
use crate::safefile::read_below;

/// Largest keys file read: thousands of keys fit in far less.
const MAX_KEYS_FILE: u64 = 4 * 1024 * 1024;

use streamedge_formats::keys::KeyFile;

/// What a refresh found, for the caller to log.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    Loaded(usize),
    /// The file could not be used; no keys are in service until it can be.
    Failed(String),
}

#[derive(Debug)]
pub struct KeyCache {
    path: PathBuf,
    /// Identity of the file last looked at, good or bad, so a bad file is reported once.
    seen: Option<Stamp>,
    keys: Option<KeyFile>,
}

impl KeyCache {
    pub fn new(path: PathBuf) -> Self {
        KeyCache {
            path,
            seen: None,
            keys: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys in service; `None` while the file cannot be used.
    pub fn keys(&self) -> Option<&KeyFile> {
        self.keys.as_ref()
    }

    /// Looks at the file and re-reads it if it changed.
    pub fn refresh(&mut self) -> Refresh {
        let meta = match fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // No file yet is a normal first state: no names, nothing to report.
                let first = self.seen.take().is_none() && self.keys.is_none();
                self.keys = Some(KeyFile::default());
                return if first {
                    Refresh::Loaded(0)
                } else {
                    Refresh::Unchanged
                };
            }
            Err(e) => return self.failed(None, e.to_string()),
        };
        let stamp = Stamp::of(&meta);
        if self.seen == Some(stamp) {
            return Refresh::Unchanged;
        }
        let parsed = self
            .read()
            .and_then(|text| KeyFile::parse(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(keys) => {
                self.seen = Some(stamp);
                let n = keys.keys.len();
                self.keys = Some(keys);
                Refresh::Loaded(n)
            }
            Err(e) => self.failed(Some(stamp), e),
        }
    }

    /// The file's text, read without following a link and without blocking on a FIFO.
    fn read(&self) -> Result<String, String> {
        let (dir, name) = match (self.path.parent(), self.path.file_name()) {
            (Some(d), Some(n)) => (d, n.to_string_lossy()),
            _ => return Err("not a file path".into()),
        };
        let (_, bytes) = read_below(dir, &name, MAX_KEYS_FILE).map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|_| "not UTF-8".into())
    }

    fn failed(&mut self, stamp: Option<Stamp>, error: String) -> Refresh {
        self.keys = None;
        if stamp.is_some() && self.seen == stamp {
            return Refresh::Unchanged;
        }
        self.seen = stamp;
        Refresh::Failed(format!("{}: {error}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamedge_formats::keys::{KeyEntry, KeyHash, KeyState, Verdict};

    fn write_keys(path: &Path, names: &[(&str, &str)]) {
        let file = KeyFile {
            keys: names
                .iter()
                .map(|(n, s)| KeyEntry {
                    name: n.to_string(),
                    hash: KeyHash::of(s.as_bytes()),
                    created: String::new(),
                    state: KeyState::Active,
                    private: false,
                    record: false,
                })
                .collect(),
        };
        // Replace by rename, as the sidecar does.
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, file.to_toml()).unwrap();
        fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn follows_changes_and_survives_bad_files() {
        let dir = std::env::temp_dir().join(format!("keycache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        let _ = fs::remove_file(&path);
        let mut c = KeyCache::new(path.clone());

        // No file: no names, not an error.
        assert_eq!(c.refresh(), Refresh::Loaded(0));
        assert_eq!(
            c.keys().unwrap().verify(b"alice", b"k1"),
            Verdict::UnknownName
        );

        write_keys(&path, &[("alice", "k1")]);
        assert_eq!(c.refresh(), Refresh::Loaded(1));
        assert_eq!(c.refresh(), Refresh::Unchanged);
        assert_eq!(c.keys().unwrap().verify(b"alice", b"k1"), Verdict::Accepted);

        write_keys(&path, &[("alice", "k2"), ("bob", "k3")]);
        assert_eq!(c.refresh(), Refresh::Loaded(2));
        assert_eq!(c.keys().unwrap().verify(b"alice", b"k1"), Verdict::WrongKey);

        // A broken file is reported once, and leaves no keys in service.
        fs::write(&path, "[[key]\nbroken").unwrap();
        assert!(matches!(c.refresh(), Refresh::Failed(e) if e.contains("keys.toml")));
        assert_eq!(c.refresh(), Refresh::Unchanged);
        assert!(c.keys().is_none());

        // Fixed: back in service.
        write_keys(&path, &[("bob", "k3")]);
        assert_eq!(c.refresh(), Refresh::Loaded(1));
        assert_eq!(c.keys().unwrap().verify(b"bob", b"k3"), Verdict::Accepted);

        // Removed: no names, like a server that never had keys.
        fs::remove_file(&path).unwrap();
        assert_eq!(c.refresh(), Refresh::Unchanged);
        assert_eq!(
            c.keys().unwrap().verify(b"bob", b"k3"),
            Verdict::UnknownName
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
