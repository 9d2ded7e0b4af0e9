//! `streamedge library`: the items in `DATA/vod/`.

pub mod bucket;
pub mod stills;
pub mod transcode;

use std::path::Path;

use serde::Serialize;

use anyhow::{Context, Result};
use streamedge_formats::layout::META_JSON;
use streamedge_formats::name::check_name;

use crate::config::Config;
use crate::error::Error;
use crate::fsutil::write_atomic;
pub use transcode::Meta;

/// Marks item `id` private (plays only through signed links) or public, in its `meta.json`.
pub async fn set_private(config: &Config, id: &str, private: bool) -> Result<Meta, Error> {
    edit(
        config,
        id,
        Edit {
            private: Some(private),
            ..Default::default()
        },
    )
    .await
}

/// What `library edit` changes; `None` leaves a field as it is.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub private: Option<bool>,
}

/// Longest title and description, in characters.
pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 5000;

/// `library edit ID --title ... --description ...`: checked, then written in one step. An
/// item in the bucket whose privacy changes is copied to its new prefix first, and the old
/// copy deleted once `meta.json` says so (`bucket::keep` finishes what a stop cuts short).
pub async fn edit(config: &Config, id: &str, edit: Edit) -> Result<Meta, Error> {
    let title = edit
        .title
        .map(|t| check_text("title", t.trim(), MAX_TITLE, false))
        .transpose()?;
    let description = edit
        .description
        .map(|d| check_text("description", d.trim_end(), MAX_DESCRIPTION, true))
        .transpose()?;
    if title.is_none() && description.is_none() && edit.private.is_none() {
        return Err(Error::Invalid(
            "nothing to change: give a title, a description or whether it is private".into(),
        ));
    }
    let apply = move |m: &mut Meta| {
        if let Some(t) = title {
            m.title = t;
        }
        if let Some(d) = description {
            m.description = d;
        }
        if let Some(p) = edit.private {
            m.private = p;
        }
        Ok(())
    };
    let bucket = bucket::Bucket::of(config)?;
    let (Some(bucket), Some(private)) = (bucket, edit.private) else {
        return change(config, id, apply).await;
    };
    check_id(id)?;
    let dir = config.layout().item(id);
    let _lock = lock(&dir, id).await?;
    let before = read_meta(config, id)?;
    // Whether the bucket holds the item under the other prefix (files that are only here,
    // a new still say, go up with the next upload, to the new one).
    if before.private != private && bucket.has_item(id, before.private).await? {
        bucket.copy_to(id, private).await?;
    }
    // Until the old copy is gone, the daemon knows to finish the job if this stops.
    let note = bucket::settle_note(config, id);
    std::fs::write(&note, b"").with_context(|| format!("cannot write {}", note.display()))?;
    let meta = rewrite(config, id, apply)?;
    // Whatever the privacy was: asking again for it also deletes a copy a failure left.
    bucket.forget(id, private).await.map_err(|e| {
        Error::Unavailable(format!(
            "library item \"{id}\" is {} here, but the bucket still holds its other copy ({e:#}); the sidecar deletes it once the bucket answers",
            if private { "private" } else { "public" }
        ))
    })?;
    let _ = std::fs::remove_file(&note);
    Ok(meta)
}

/// A title (one line, not empty) or a description (lines; may be empty to clear it).
fn check_text(what: &str, text: &str, max: usize, lines: bool) -> Result<String, Error> {
    if !lines && text.is_empty() {
        return Err(Error::Invalid(format!("the {what} is empty")));
    }
    let count = text.chars().count();
    if count > max {
        return Err(Error::Invalid(format!(
            "the {what} is {count} characters long; at most {max} fit"
        )));
    }
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() && !(lines && (c == '\n' || c == '\t')))
    {
        return Err(Error::Invalid(format!(
            "the {what} holds a control character ({})",
            c.escape_unicode()
        )));
    }
    Ok(text.to_string())
}

/// Reads item `id`'s `meta.json`, lets `f` change it and writes it back in one rename, with
/// the item's folder locked so two changes at once cannot undo each other.
pub(crate) async fn change(
    config: &Config,
    id: &str,
    f: impl FnOnce(&mut Meta) -> Result<(), Error>,
) -> Result<Meta, Error> {
    check_id(id)?;
    let dir = config.layout().item(id);
    let _lock = lock(&dir, id).await?;
    rewrite(config, id, f)
}

/// An item folder's lock, held while it changes (an upload, a still, an edit, a removal).
pub type Lock = nix::fcntl::Flock<std::fs::File>;

/// Item folder `dir`'s lock, waited for without holding up other tasks.
pub(crate) async fn lock(dir: &Path, id: &str) -> Result<Lock, Error> {
    loop {
        if let Some(l) = try_lock(dir).map_err(|e| match std::fs::metadata(dir) {
            Err(m) => missing_item(id, "open", dir, m),
            Ok(_) => e.into(),
        })? {
            return Ok(l);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Item folder `dir`'s lock if nobody holds it.
pub(crate) fn try_lock(dir: &Path) -> Result<Option<Lock>> {
    let folder =
        std::fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    match nix::fcntl::Flock::lock(folder, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", dir.display())),
    }
}

/// `change` for a caller that holds the item's lock.
pub(crate) fn rewrite(
    config: &Config,
    id: &str,
    f: impl FnOnce(&mut Meta) -> Result<(), Error>,
) -> Result<Meta, Error> {
    let path = config.layout().item_meta(id);
    let mut meta = read_meta(config, id)?;
    f(&mut meta)?;
    let out = serde_json::to_string_pretty(&meta).context("cannot write meta.json")? + "\n";
    // Read by nginx's workers: world-readable like the media beside it.
    write_atomic(&path, out.as_bytes(), 0o644, None)?;
    Ok(meta)
}

/// Item `id`'s `meta.json`.
pub fn read_meta(config: &Config, id: &str) -> Result<Meta, Error> {
    check_id(id)?;
    let path = config.layout().item_meta(id);
    let text = std::fs::read_to_string(&path).map_err(|e| missing_item(id, "read", &path, e))?;
    Ok(serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?)
}

/// A failure to open an item's file: no such item when it is not there.
fn missing_item(id: &str, verb: &str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        return Error::NotFound(format!("no library item \"{id}\""));
    }
    anyhow::Error::new(e)
        .context(format!("cannot {verb} {}", path.display()))
        .into()
}

/// `library import`: a local media file into the library; returns the item's metadata.
pub async fn import(
    config: &Config,
    file: &Path,
    title: Option<&str>,
    audio: bool,
    private: bool,
) -> Result<transcode::Meta> {
    let id = transcode::new_id()?;
    let work = config.layout().scratch(&id);
    let dest = config.layout().item(&id);
    let title = title.map(String::from).unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| id.clone())
    });
    let source = std::path::absolute(file)?.display().to_string();
    let origin = transcode::Origin {
        id: &id,
        title: &title,
        source: &source,
    };
    let opts = transcode::Options {
        audio_only: audio,
        private,
        ..Default::default()
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let meta = transcode::build_item(file, &work, origin, opts, &cancel, &mut |_, _| {})
        .await
        .with_context(|| format!("cannot import {}", file.display()))?;
    transcode::publish(&work, &dest).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&work);
    })?;
    Ok(meta)
}

/// One row of `library list`.
#[derive(Debug, Serialize)]
pub struct Item {
    pub id: String,
    pub title: String,
    pub kind: String,
    pub duration: f64,
    pub private: bool,
}

/// Every complete item (one with a `meta.json`), newest first.
pub fn list_full(config: &Config) -> Result<Vec<transcode::Meta>> {
    let vod = config.layout().vod();
    let mut items = Vec::new();
    let entries =
        std::fs::read_dir(&vod).with_context(|| format!("cannot read {}", vod.display()))?;
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join(META_JSON)) else {
            continue;
        };
        if let Ok(m) = serde_json::from_str::<transcode::Meta>(&text) {
            items.push(m);
        }
    }
    items.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    Ok(items)
}

/// `library list`.
pub fn list(config: &Config) -> Result<Vec<Item>> {
    Ok(list_full(config)?
        .into_iter()
        .map(|m| Item {
            id: m.id,
            title: m.title,
            kind: m.kind,
            duration: m.duration,
            private: m.private,
        })
        .collect())
}

/// `library remove ID`: the item disappears at once (one rename), then its files go, and
/// its objects when it is in the bucket. A bucket that does not answer is an error, and the
/// renamed folder stays as the note of what is left to delete (`bucket::keep` does it).
pub async fn remove(config: &Config, id: &str) -> Result<(), Error> {
    check_id(id)?;
    let dir = config.layout().item(id);
    if !dir.join(META_JSON).exists() {
        return Err(Error::NotFound(format!("no library item \"{id}\"")));
    }
    let bucket = bucket::Bucket::of(config)?;
    // Not while it is being uploaded: the upload would put back what is deleted.
    let lock = lock(&dir, id).await?;
    let trash = bucket::removed_dir(config, id);
    std::fs::rename(&dir, &trash).with_context(|| format!("cannot remove {}", dir.display()))?;
    drop(lock);
    if let Some(b) = bucket {
        b.remove(id).await.map_err(|e| {
            Error::Unavailable(format!(
                "library item \"{id}\" is removed here, but its copy in the bucket is not deleted yet ({e:#}); the sidecar deletes it once the bucket answers"
            ))
        })?;
    }
    match std::fs::remove_dir_all(&trash) {
        // The daemon finished it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => Ok(r.with_context(|| format!("cannot delete {}", trash.display()))?),
    }
}

pub(crate) fn check_id(id: &str) -> Result<(), Error> {
    check_name(id.as_bytes()).map_err(|e| {
        Error::Invalid(format!(
            "invalid library item id \"{}\": {e}",
            id.escape_debug()
        ))
    })
}
