//! A library item's `meta.json` (`DATA/vod/<id>/meta.json`), as far as nginx needs it: only
//! whether the item is private. The sidecar's fetch jobs write the rest.

use serde::Deserialize;

/// Longest library item id; ids use the stream-name alphabet.
pub const MAX_ID_LEN: usize = 64;

/// What the module reads of `meta.json`. Unknown fields are the sidecar's business.
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
}
