//! `streamedge library`: the items in `DATA/vod/`.

pub mod transcode;

use std::path::Path;

use serde::Serialize;

use anyhow::{Context, Result};
use streamedge_formats::layout::META_JSON;
use streamedge_formats::name::check_name;

use crate::config::Config;
use crate::error::Error;
use crate::fsutil::write_atomic;

/// Marks item `id` private (plays only through signed links) or public, in its `meta.json`.
pub fn set_private(config: &Config, id: &str, private: bool) -> Result<(), Error> {
    check_id(id)?;
    let path = config.layout().item_meta(id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(format!("no library item \"{id}\"")))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read {}", path.display()))
                .into())
        }
    };
    let mut meta: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    let Some(obj) = meta.as_object_mut() else {
        return Err(anyhow::anyhow!("invalid {}: not a JSON object", path.display()).into());
    };
    obj.insert("private".into(), private.into());
    let mut out = serde_json::to_string_pretty(&meta).context("cannot write meta.json")?;
    out.push('\n');
    // Read by nginx's workers: world-readable like the media beside it.
    write_atomic(&path, out.as_bytes(), 0o644, None)?;
    Ok(())
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

/// `library remove ID`: the item disappears at once (one rename), then its files go.
pub fn remove(config: &Config, id: &str) -> Result<(), Error> {
    check_id(id)?;
    let dir = config.layout().item(id);
    if !dir.join(META_JSON).exists() {
        return Err(Error::NotFound(format!("no library item \"{id}\"")));
    }
    let trash = config.layout().scratch(&format!("removed-{id}"));
    std::fs::rename(&dir, &trash).with_context(|| format!("cannot remove {}", dir.display()))?;
    std::fs::remove_dir_all(&trash)
        .with_context(|| format!("cannot delete {}", trash.display()))?;
    Ok(())
}

fn check_id(id: &str) -> Result<(), Error> {
    check_name(id.as_bytes()).map_err(|e| {
        Error::Invalid(format!(
            "invalid library item id \"{}\": {e}",
            id.escape_debug()
        ))
    })
}
