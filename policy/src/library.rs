//! Whether a library item may be served to anyone, as one worker sees it: its `meta.json`
//! says `"private": true` or not. One `lstat` per request; the file is re-read only when it
//! changed, without following links (see `safefile`). An item folder without `meta.json` is
//! not (or no longer) in the library.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use streamedge_formats::library::Access;

use crate::filestamp::Stamp;
use crate::safefile::read_below;

/// Largest `meta.json` read; real ones are well under a kilobyte.
const MAX_META: u64 = 64 * 1024;

/// Items remembered per worker before the cache starts over.
const MAX_ITEMS: usize = 4096;

/// What the module needs to know about an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Missing,
    Public,
    Private,
}

#[derive(Debug, Default)]
pub struct AccessCache {
    items: HashMap<String, (Stamp, bool)>,
}

impl AccessCache {
    /// Looks up item `id` under `vod_dir`. An unreadable or invalid `meta.json` counts as
    /// private: the item is refused rather than exposed.
    pub fn item(&mut self, vod_dir: &Path, id: &str) -> Item {
        let path = vod_dir.join(id).join("meta.json");
        let Ok(meta) = fs::symlink_metadata(&path) else {
            self.items.remove(id);
            return Item::Missing;
        };
        let stamp = Stamp::of(&meta);
        if let Some((seen, private)) = self.items.get(id) {
            if *seen == stamp {
                return if *private {
                    Item::Private
                } else {
                    Item::Public
                };
            }
        }
        let private = read_below(vod_dir, &format!("{id}/meta.json"), MAX_META)
            .ok()
            .and_then(|(_, bytes)| String::from_utf8(bytes).ok())
            .and_then(|t| Access::parse(&t).ok())
            .is_none_or(|a| a.private);
        if self.items.len() >= MAX_ITEMS {
            self.items.clear();
        }
        self.items.insert(id.to_string(), (stamp, private));
        if private {
            Item::Private
        } else {
            Item::Public
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, id: &str, json: &str) {
        fs::create_dir_all(dir.join(id)).unwrap();
        let tmp = dir.join(id).join("meta.json.tmp");
        fs::write(&tmp, json).unwrap();
        fs::rename(tmp, dir.join(id).join("meta.json")).unwrap();
    }

    #[test]
    fn follows_meta_json() {
        let dir = std::env::temp_dir().join(format!("library-cache-{}", std::process::id()));
        let mut c = AccessCache::default();
        assert_eq!(c.item(&dir, "a"), Item::Missing);
        write(&dir, "a", "{\"id\":\"a\"}");
        assert_eq!(c.item(&dir, "a"), Item::Public);
        write(&dir, "a", "{\"id\":\"a\",\"private\":true}");
        assert_eq!(c.item(&dir, "a"), Item::Private);
        write(&dir, "a", "{ broken");
        assert_eq!(c.item(&dir, "a"), Item::Private);
        // A linked meta.json (here to a public one) is not read: refused, not exposed.
        write(&dir, "b", "{\"id\":\"b\"}");
        fs::remove_file(dir.join("a/meta.json")).unwrap();
        std::os::unix::fs::symlink(dir.join("b/meta.json"), dir.join("a/meta.json")).unwrap();
        assert_eq!(c.item(&dir, "a"), Item::Private);
        fs::remove_file(dir.join("a/meta.json")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.item(&dir, "a"), Item::Missing);
    }
}
