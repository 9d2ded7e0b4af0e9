//! Files that nginx reads while the sidecar writes them: always replaced whole (temp file,
//! fsync, rename, fsync of the folder), so a reader sees the old or the new file, never half.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Who should own a file the sidecar writes: nginx's worker user when nginx runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Replaces `path` with `bytes`, created with `mode` and, when given, `owner`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: Option<Owner>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; secrets need exactly this one.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(o) = owner {
            std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Holds an exclusive lock on `path` (created 0600 if missing) until dropped: one writer at
/// a time for state that the daemon and the command line both change.
pub fn lock(path: &Path) -> Result<nix::fcntl::Flock<File>> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("cannot lock {}", path.display()))
}

/// Creates a folder (and its parents) if missing, with `mode` and `owner` for the last part.
pub fn ensure_dir(path: &Path, mode: u32, owner: Option<Owner>) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if let Some(o) = owner {
        std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
            .with_context(|| format!("cannot change the owner of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_whole_with_the_asked_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.toml");
        write_atomic(&p, b"one", 0o600, None).unwrap();
        write_atomic(&p, b"two", 0o600, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        // No temp file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"old", 0o644, None).unwrap();
        let missing = dir.path().join("nope/f");
        let e = format!(
            "{:#}",
            write_atomic(&missing, b"x", 0o644, None).unwrap_err()
        );
        assert!(e.starts_with("cannot write"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }
}
