//! A library item's `meta.json` (`DATA/vod/<id>/meta.json`): written by the sidecar when an
//! item is complete (its playlists and segments are in place first), read by the sidecar's
//! library list and, for whether the item is private, by nginx's module.

use serde::{Deserialize, Serialize};

/// Longest library item id; ids use the stream-name alphabet.
pub const MAX_ID_LEN: usize = 64;

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The item's folder name in `DATA/vod/`.
    pub id: String,
    pub title: String,
    /// Free text the owner gives the item (`library edit ID --description ...`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The file or URL it came from.
    pub source: String,
    /// "video" or "audio".
    pub kind: String,
    /// Seconds; 0 when ffprobe could not tell.
    pub duration: f64,
    /// What ffprobe found in the source: codecs ("h264", "aac"), size in bytes, frame size.
    #[serde(default)]
    pub codecs: Vec<String>,
    #[serde(default)]
    pub source_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_resolution: Option<String>,
    /// The renditions' names ("720p", "audio"), each a folder beside `master.m3u8`.
    pub renditions: Vec<String>,
    /// File names in the item's folder.
    pub poster: Option<String>,
    /// Stills taken at chosen times (`library thumbnails ID --at 5s,30s`), oldest time first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thumbnails: Vec<Thumbnail>,
    pub download: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// Plays only through signed links.
    #[serde(default)]
    pub private: bool,
}

/// A still of a library item: `thumb-<ms>.jpg` beside its `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// Seconds into the item.
    pub at: f64,
    pub file: String,
}

/// What the module reads of `meta.json`: only `private`, so no other field can keep an item
/// from being served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Access {
    #[serde(default)]
    pub private: bool,
}

impl Access {
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_defaults_to_public() {
        assert_eq!(
            Access::parse("{\"id\":\"a\",\"title\":\"t\"}").unwrap(),
            Access { private: false }
        );
        assert!(Access::parse("{\"private\":true}").unwrap().private);
        assert!(Access::parse("{\"private\":\"yes\"}").is_err());
        assert!(Access::parse("[").is_err());
    }

    #[test]
    fn the_module_reads_what_the_sidecar_writes() {
        let meta = Meta {
            id: "x1".into(),
            title: "t".into(),
            description: "two\nlines".into(),
            source: "https://example.org/v".into(),
            kind: "video".into(),
            duration: 1.5,
            codecs: vec!["h264".into()],
            source_size: 10,
            source_resolution: None,
            renditions: vec!["720p".into()],
            poster: None,
            thumbnails: vec![Thumbnail {
                at: 30.0,
                file: "thumb-30000.jpg".into(),
            }],
            download: None,
            created: "2026-12-02T06:50:00Z".into(),
            private: true,
        };
        let text = serde_json::to_string(&meta).unwrap();
        assert_eq!(serde_json::from_str::<Meta>(&text).unwrap(), meta);
        assert!(Access::parse(&text).unwrap().private);
    }
}
