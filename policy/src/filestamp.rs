//! A file's identity as `stat` sees it: device, inode, size and modification time. The
//! sidecar replaces files by rename, so a change always shows as a new inode; a cache that
//! keeps the stamp of what it read re-reads only when the stamp changes.

use std::fs;
use std::os::unix::fs::MetadataExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    pub fn of(m: &fs::Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}
