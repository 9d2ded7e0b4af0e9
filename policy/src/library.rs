//! Whether a library item may be served to anyone, as one worker sees it: its `meta.json`
//! says `"private": true` or not. One `stat` per request; the file is re-read only when it
//! changed. An item folder without `meta.json` is not (or no longer) in the library.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use streamedge_formats::library::Access;

use crate::filestamp::Stamp;

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
        let Ok(meta) = fs::metadata(&path) else {
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
        let private = fs::read_to_string(&path)
            .ok()
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
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.item(&dir, "a"), Item::Missing);
    }
}
