//! The free-space floor of the data directory (`fetch.min_free_mb`): checked when a job is
//! submitted and watched while it runs, so that a download or a transcode never fills the
//! disk that nginx-rtmp writes live fragments to.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

/// How often a running job looks at free space.
const EVERY: Duration = Duration::from_secs(1);

const MIB: u64 = 1024 * 1024;

/// Free space the data directory keeps, in MiB.
#[derive(Debug, Clone)]
pub struct Floor {
    dir: PathBuf,
    min_mb: u64,
}

impl Floor {
    pub fn new(dir: &Path, min_mb: u64) -> Floor {
        Floor {
            dir: dir.to_path_buf(),
            min_mb,
        }
    }

    /// Whether the directory is below the floor (false when the file system cannot say).
    pub fn below(&self) -> bool {
        self.free()
            .is_some_and(|f| f < self.min_mb.saturating_mul(MIB))
    }

    /// Why a new job cannot start, if the directory is already below the floor.
    pub fn check(&self) -> Option<String> {
        let free = self.free()?;
        (free < self.min_mb.saturating_mul(MIB)).then(|| {
            format!(
                "only {} MiB free in {}; fetching needs at least {} MiB (fetch.min_free_mb)",
                free / MIB,
                self.dir.display(),
                self.min_mb
            )
        })
    }

    /// Watches free space until the watch is dropped: below the floor, it cancels `tools`
    /// and keeps the reason.
    pub fn watch(&self, tools: CancellationToken) -> Watch {
        let breach = Arc::new(OnceLock::new());
        let (floor, seen) = (self.clone(), breach.clone());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(EVERY);
            loop {
                ticks.tick().await;
                if floor.check().is_some() {
                    let _ = seen.set(format!(
                        "stopped: less than {} MiB free in {} (fetch.min_free_mb)",
                        floor.min_mb,
                        floor.dir.display()
                    ));
                    tools.cancel();
                    return;
                }
            }
        });
        Watch { breach, task }
    }

    /// Bytes free for an unprivileged user; `None` when the file system cannot say.
    fn free(&self) -> Option<u64> {
        let s = nix::sys::statvfs::statvfs(&self.dir).ok()?;
        Some(s.blocks_available() as u64 * s.fragment_size() as u64)
    }
}

/// A running watch; dropping it stops watching.
pub struct Watch {
    breach: Arc<OnceLock<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// A failed job's outcome says that the floor stopped it, when it did.
    pub fn explain<T>(&self, outcome: Result<T>) -> Result<T> {
        match (outcome, self.breach.get()) {
            (Err(_), Some(why)) => Err(anyhow::anyhow!("{why}")),
            (outcome, _) => outcome,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_breached_floor_stops_the_tools_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // No disk has this much free: the first look breaches it.
        let floor = Floor::new(dir.path(), u64::MAX / MIB);
        assert!(floor.check().unwrap().ends_with("(fetch.min_free_mb)"));
        let tools = CancellationToken::new();
        let watch = floor.watch(tools.clone());
        tokio::time::timeout(Duration::from_secs(30), tools.cancelled())
            .await
            .expect("the watch cancels the tools");
        let e = watch.explain::<()>(Err(anyhow::anyhow!("cancelled")));
        let want = format!(
            "stopped: less than {} MiB free in {} (fetch.min_free_mb)",
            u64::MAX / MIB,
            dir.path().display()
        );
        assert_eq!(e.unwrap_err().to_string(), want);
        // What ended well stays so.
        assert!(watch.explain(Ok(())).is_ok());

        let roomy = Floor::new(dir.path(), 0);
        assert_eq!(roomy.check(), None);
        let tools = CancellationToken::new();
        let watch = roomy.watch(tools.clone());
        let e = watch.explain::<()>(Err(anyhow::anyhow!("the disk is full")));
        assert_eq!(e.unwrap_err().to_string(), "the disk is full");
        assert!(!tools.is_cancelled());
    }
}
