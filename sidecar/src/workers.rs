//! Who nginx's workers run as: they read the keys and the library and write HLS, so files
//! they need are owned by that user.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::fsutil::Owner;

/// The user nginx workers run as, when nginx starts as root; `None` when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerUser {
    pub name: String,
    pub owner: Owner,
}

/// Decides the worker user: the configured one (default `www-data`) if it can reach the data
/// directory; otherwise root, with a warning, since workers must read keys and write HLS.
pub fn worker_user(config: &Config) -> Result<Option<WorkerUser>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let wanted = config
        .nginx
        .user
        .clone()
        .unwrap_or_else(|| "www-data".into());
    let user = nix::unistd::User::from_name(&wanted)
        .with_context(|| format!("cannot look up user \"{wanted}\""))?;
    let Some(user) = user else {
        bail!("nginx.user \"{wanted}\" does not exist on this machine");
    };
    let owner = Owner {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    };
    if let Some(blocked) = unreachable_ancestor(&config.data_dir, owner) {
        tracing::warn!(
            "nginx workers run as root: user \"{wanted}\" cannot enter {}; \
             choose a data_dir outside it to run them unprivileged",
            blocked.display()
        );
        return Ok(Some(WorkerUser {
            name: "root".into(),
            owner: Owner { uid: 0, gid: 0 },
        }));
    }
    Ok(Some(WorkerUser {
        name: wanted,
        owner,
    }))
}

/// The first existing folder above `path` that `owner` may not enter.
fn unreachable_ancestor(path: &Path, owner: Owner) -> Option<PathBuf> {
    path.ancestors().skip(1).find_map(|dir| {
        let m = std::fs::metadata(dir).ok()?;
        let mode = m.mode();
        let can = if m.uid() == owner.uid {
            mode & 0o100 != 0
        } else if m.gid() == owner.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!can).then(|| dir.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_folders_a_user_cannot_enter() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir_all(closed.join("data")).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = Owner {
            uid: 54321,
            gid: 54321,
        };
        assert_eq!(
            unreachable_ancestor(&closed.join("data"), stranger),
            Some(closed.clone())
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(unreachable_ancestor(&closed.join("data"), stranger), None);
    }
}
