//! `streamedge library`: the items in `DATA/vod/`.

use anyhow::{bail, Context, Result};
use streamedge_formats::name::check_name;

use crate::config::Config;
use crate::fsutil::write_atomic;

/// Marks item `id` private (plays only through signed links) or public, in its `meta.json`.
pub fn set_private(config: &Config, id: &str, private: bool) -> Result<()> {
    check_name(id.as_bytes())
        .map_err(|e| anyhow::anyhow!("invalid library item id \"{}\": {e}", id.escape_debug()))?;
    let path = config.data_dir.join("vod").join(id).join("meta.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("no library item \"{id}\""),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut meta: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    let Some(obj) = meta.as_object_mut() else {
        bail!("invalid {}: not a JSON object", path.display());
    };
    obj.insert("private".into(), private.into());
    let mut out = serde_json::to_string_pretty(&meta)?;
    out.push('\n');
    // Read by nginx's workers: world-readable like the media beside it.
    write_atomic(&path, out.as_bytes(), 0o644, None)
}
