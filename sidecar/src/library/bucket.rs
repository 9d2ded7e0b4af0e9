//! The library in an S3-compatible bucket (`library.storage = "s3"`). Items are made and
//! published on this disk as always; then the daemon uploads each one (`keep`): segments
//! first, then the playlists that name them, `master.m3u8`, and `meta.json` last, below
//! `public/ID/` or `private/ID/` (`streamedge_formats::bucket`), and deletes the local
//! files but `meta.json`, which stays as the library's catalogue (what the listing, the
//! module's privacy check and the API read).
//!
//! Nobody sees half an item: nginx serves a file from this disk while it is here and from
//! the bucket once it is not, and an edge that reads the bucket finds no `master.m3u8` until
//! every file it names is up. A sidecar killed mid-upload leaves the local item whole and
//! uploads it again at the next start. Removal and privacy changes leave journals the same
//! way (`DATA/.work/removed-ID`, objects under the other prefix), finished by `keep`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{Attribute, Attributes, ClientOptions, ObjectStore, RetryConfig};
use streamedge_formats::bucket::{object_key, prefix};
use streamedge_formats::layout::{META_JSON, VOD_PLAYLIST};
use tokio::io::AsyncWriteExt;

use crate::config::{BucketAccess, Config};

/// Files uploaded at once.
const PARALLEL: usize = 4;
/// Where a removed item waits until its objects are deleted.
const REMOVED: &str = "removed-";
/// An item whose copy under its old privacy's prefix is still to delete.
const SETTLE: &str = "settle-";
/// How often `keep` looks for work.
const EVERY: Duration = Duration::from_secs(2);

/// The library's bucket.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// The bucket of `config`, when the library is in one.
    pub fn of(config: &Config) -> Result<Option<Bucket>> {
        config
            .library
            .bucket()?
            .map(|a| Bucket::open(&a))
            .transpose()
    }

    pub fn open(access: &BucketAccess) -> Result<Bucket> {
        let endpoint = access.endpoint.as_str().trim_end_matches('/');
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_region(&access.region)
            .with_bucket_name(&access.bucket)
            .with_access_key_id(&access.credentials.access_key_id)
            .with_secret_access_key(&access.credentials.secret_access_key)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(access.endpoint.scheme() == "http")
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..Default::default()
            })
            .build()
            .context("cannot use the library's bucket")?;
        Ok(Bucket {
            store: Arc::new(store),
        })
    }

    /// Every key below `public/ID/` or `private/ID/`.
    async fn keys(&self, private: bool, id: &str) -> Result<Vec<Key>> {
        let under = Key::from(format!("{}/{id}", prefix(private)));
        self.store
            .list(Some(&under))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .with_context(|| format!("cannot list {under} in the bucket"))
    }

    /// Uploads one file, in parts when it is large.
    async fn put(&self, key: &str, file: &Path) -> Result<u64> {
        let mut source = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type(key).into());
        let mut out = BufWriter::with_capacity(self.store.clone(), Key::from(key), 8 << 20)
            .with_attributes(attributes);
        let sent = match tokio::io::copy(&mut source, &mut out).await {
            Ok(n) => n,
            Err(e) => {
                let _ = out.abort().await;
                return Err(e).with_context(|| format!("cannot upload {key}"));
            }
        };
        out.shutdown()
            .await
            .with_context(|| format!("cannot upload {key}"))?;
        Ok(sent)
    }

    /// Deletes `keys`: the master playlist first (the item stops playing at once), the
    /// catalogue copy last.
    async fn delete(&self, mut keys: Vec<Key>) -> Result<usize> {
        keys.sort_by_key(|k| match k.filename() {
            Some(VOD_PLAYLIST) => 0,
            Some(META_JSON) => 2,
            _ => 1,
        });
        let n = keys.len();
        for k in keys {
            match self.store.delete(&k).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot delete {k}")),
            }
        }
        Ok(n)
    }

    /// Deletes every object of item `id`, public and private.
    pub async fn remove(&self, id: &str) -> Result<usize> {
        let mut keys = self.keys(false, id).await?;
        keys.extend(self.keys(true, id).await?);
        self.delete(keys).await
    }

    /// Uploads item `id` from its local folder, then leaves only `meta.json` there. The
    /// caller holds the item's lock.
    pub async fn upload(&self, dir: &Path, id: &str, private: bool) -> Result<Uploaded> {
        let mut files = Vec::new();
        list_files(dir, Path::new(""), &mut files)?;
        let whole = files.iter().any(|f| f.as_path() == Path::new(VOD_PLAYLIST));
        if !whole && !self.has_item(id, private).await? && self.has_item(id, !private).await? {
            // A few files of an item whose copy is under the other prefix (a privacy change
            // cut short): the copy comes over first, so nothing but these files is new.
            self.copy_to(id, private).await?;
        }
        files.sort_by_key(|f| (upload_order(f), f.clone()));
        let mut sent = Uploaded::default();
        for stage in 0..4 {
            let batch: Vec<(String, PathBuf)> = files
                .iter()
                .filter(|f| upload_order(f) == stage)
                .map(|rel| {
                    (
                        object_key(private, id, &rel.to_string_lossy()),
                        dir.join(rel),
                    )
                })
                .collect();
            let sizes: Vec<u64> = futures_util::stream::iter(batch)
                .map(|(key, path)| {
                    let bucket = self.clone();
                    async move { bucket.put(&key, &path).await }
                })
                .buffer_unordered(PARALLEL)
                .try_collect()
                .await?;
            sent.files += sizes.len();
            sent.bytes += sizes.iter().sum::<u64>();
        }
        // Up whole: the other prefix's copy, if a change of privacy left one, goes.
        self.delete(self.keys(!private, id).await?).await?;
        for rel in files.iter().filter(|f| upload_order(f) != 3) {
            std::fs::remove_file(dir.join(rel))
                .with_context(|| format!("cannot delete {}", dir.join(rel).display()))?;
        }
        remove_empty_dirs(dir);
        Ok(sent)
    }

    /// Moves an uploaded item's objects to the prefix of its new privacy, the master
    /// playlist and `meta.json` last, so it plays from there before the old copy goes (the
    /// caller writes the local `meta.json` between `copy_to` and `forget`).
    pub async fn copy_to(&self, id: &str, private: bool) -> Result<()> {
        let mut keys = self.keys(!private, id).await?;
        keys.sort_by_key(|k| {
            let rel = k
                .as_ref()
                .splitn(3, '/')
                .nth(2)
                .unwrap_or_default()
                .to_string();
            (upload_order(Path::new(&rel)), rel)
        });
        for from in keys {
            let rel = from.as_ref().splitn(3, '/').nth(2).unwrap_or_default();
            let to = Key::from(object_key(private, id, rel));
            self.store
                .copy(&from, &to)
                .await
                .with_context(|| format!("cannot copy {from} to {to}"))?;
        }
        Ok(())
    }

    /// Deletes the copy under the prefix item `id` is no longer at.
    pub async fn forget(&self, id: &str, private: bool) -> Result<usize> {
        self.delete(self.keys(!private, id).await?).await
    }

    /// Downloads file `rel` of item `id` to `dest` (a still needs a segment back).
    pub async fn download(&self, private: bool, id: &str, rel: &str, dest: &Path) -> Result<()> {
        let key = Key::from(object_key(private, id, rel));
        let got = self
            .store
            .get(&key)
            .await
            .with_context(|| format!("cannot read {key} from the bucket"))?;
        let bytes = got
            .bytes()
            .await
            .with_context(|| format!("cannot read {key} from the bucket"))?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Whole or not at all: a dot name is never uploaded, the rename is one step.
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let part = dest.with_file_name(format!(".{name}.download"));
        let written = std::fs::write(&part, &bytes).and_then(|()| std::fs::rename(&part, dest));
        if written.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        written.with_context(|| format!("cannot write {}", dest.display()))
    }

    /// Whether `public/ID/meta.json` (or `private/`) is there: the item is up, whole.
    pub async fn has_item(&self, id: &str, private: bool) -> Result<bool> {
        match self
            .store
            .head(&Key::from(object_key(private, id, META_JSON)))
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).context("cannot ask the bucket"),
        }
    }
}

/// What one upload sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Uploaded {
    pub files: usize,
    pub bytes: u64,
}

/// 0: media, 1: the renditions' playlists, 2: the master playlist, 3: `meta.json`.
fn upload_order(rel: &Path) -> u8 {
    let name = rel.to_string_lossy();
    if name == META_JSON {
        3
    } else if name == VOD_PLAYLIST {
        2
    } else if name.ends_with(".m3u8") {
        1
    } else {
        0
    }
}

/// What the bucket answers each file with.
fn content_type(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("m4s" | "mp4") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("aac") => "audio/aac",
        Some("mp3") => "audio/mpeg",
        Some("jpg") => "image/jpeg",
        Some("vtt") => "text/vtt",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Regular files below `dir`, relative to it; temporary files (`.name`) are not the item's.
fn list_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let here = dir.join(rel);
    for e in std::fs::read_dir(&here).with_context(|| format!("cannot read {}", here.display()))? {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = e.file_type()?;
        if kind.is_dir() {
            list_files(dir, &rel.join(&name), out)?;
        } else if kind.is_file() {
            out.push(rel.join(&name));
        }
    }
    Ok(())
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// Whether item folder `dir` holds more than its `meta.json`: files still to upload.
pub fn has_local_files(dir: &Path) -> bool {
    let mut files = Vec::new();
    list_files(dir, Path::new(""), &mut files).is_ok() && files.iter().any(|f| upload_order(f) != 3)
}

/// The note `edit` leaves while an item's copy under its old privacy's prefix is deleted.
pub fn settle_note(config: &Config, id: &str) -> PathBuf {
    config.layout().scratch(&format!("{SETTLE}{id}"))
}

/// Where `remove` leaves item `id` until its objects are gone.
pub fn removed_dir(config: &Config, id: &str) -> PathBuf {
    config.layout().scratch(&format!("{REMOVED}{id}"))
}

/// The daemon's part: uploads what was published, finishes removals and privacy changes
/// that a stop cut short.
pub async fn keep(config: Config, bucket: Bucket) {
    let mut settled = false;
    let mut wait = EVERY;
    loop {
        match round(&config, &bucket, !settled).await {
            Ok(()) => {
                settled = true;
                wait = EVERY;
            }
            Err(e) => {
                tracing::warn!("library: the bucket: {e:#} (trying again in {wait:?})");
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// One look at the library; `settle`: also check every uploaded item has one copy, under
/// its privacy's prefix (once, at the start).
async fn round(config: &Config, bucket: &Bucket, settle: bool) -> Result<()> {
    let work = config.layout().work();
    if let Ok(entries) = std::fs::read_dir(&work) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix(REMOVED) else {
                continue;
            };
            let n = bucket.remove(id).await?;
            match std::fs::remove_dir_all(e.path()) {
                // `library remove` finished it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                r => r.with_context(|| format!("cannot delete {}", e.path().display()))?,
            }
            tracing::info!("library: item {id} removed from the bucket ({n} objects)");
        }
    }
    // Privacy changes a failure cut short: settled in the loop below.
    let mut notes = std::collections::BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(&work) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(SETTLE) {
                notes.insert(id.to_string());
            }
        }
    }
    let mut failed = None;
    let vod = config.layout().vod();
    let entries =
        std::fs::read_dir(&vod).with_context(|| format!("cannot read {}", vod.display()))?;
    for e in entries.flatten() {
        let dir = e.path();
        let id = e.file_name().to_string_lossy().into_owned();
        if !dir.join(META_JSON).is_file() {
            continue;
        }
        let local = has_local_files(&dir);
        let noted = notes.remove(&id);
        if !local && !settle && !noted {
            continue;
        }
        // Busy (a change, a still, a removal): next round.
        let Some(lock) = super::try_lock(&dir)? else {
            continue;
        };
        let Ok(meta) = super::read_meta(config, &id) else {
            continue;
        };
        // One item that fails (an unreadable file, say) holds up no other.
        if let Err(e) = settle_item(bucket, &dir, &id, meta.private).await {
            tracing::warn!("library: item {id}: {e:#}");
            failed = Some(e);
            continue;
        }
        if noted {
            let _ = std::fs::remove_file(settle_note(config, &id));
        }
        drop(lock);
    }
    // Notes of items that are gone (removed meanwhile).
    for id in notes {
        let _ = std::fs::remove_file(settle_note(config, &id));
    }
    match failed {
        Some(e) => Err(e.context("some items are not settled")),
        None => Ok(()),
    }
}

/// Item `id` up whole, under its privacy's prefix only; the caller holds its lock.
async fn settle_item(bucket: &Bucket, dir: &Path, id: &str, private: bool) -> Result<()> {
    if has_local_files(dir) {
        let sent = bucket.upload(dir, id, private).await?;
        tracing::info!(
            "library: item {id} is in the bucket ({} files, {:.1} MB)",
            sent.files,
            sent.bytes as f64 / 1e6
        );
    } else if bucket.has_item(id, private).await? {
        let n = bucket.forget(id, private).await?;
        if n > 0 {
            tracing::info!("library: item {id}: {n} objects of its old privacy deleted");
        }
    } else if bucket.has_item(id, !private).await? {
        // A change of privacy stopped between writing meta.json and moving the objects.
        bucket.copy_to(id, private).await?;
        bucket.forget(id, private).await?;
        tracing::info!("library: item {id} moved to its privacy's prefix");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_before_playlists_before_the_master_and_meta_last() {
        let mut files: Vec<PathBuf> = [
            "meta.json",
            "master.m3u8",
            "720p/index.m3u8",
            "720p/seg_000.m4s",
            "poster.jpg",
            "360p/init.mp4",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        files.sort_by_key(|f| (upload_order(f), f.clone()));
        let names: Vec<_> = files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "360p/init.mp4",
                "720p/seg_000.m4s",
                "poster.jpg",
                "720p/index.m3u8",
                "master.m3u8",
                "meta.json"
            ]
        );
        assert_eq!(content_type("public/a/720p/s.m4s"), "video/mp4");
        assert_eq!(
            content_type("public/a/master.m3u8"),
            "application/vnd.apple.mpegurl"
        );
    }

    #[test]
    fn only_meta_json_left_is_uploaded() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("meta.json"), "{}").unwrap();
        std::fs::write(d.path().join(".meta.json.1.tmp"), "{}").unwrap();
        assert!(!has_local_files(d.path()));
        std::fs::create_dir(d.path().join("720p")).unwrap();
        std::fs::write(d.path().join("720p/seg.m4s"), "x").unwrap();
        assert!(has_local_files(d.path()));
    }
}
