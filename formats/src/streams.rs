//! `GET /api/streams`: the streams nginx knows, as the module answers it and the web page,
//! the sidecar and the tests read it.
//!
//! ```json
//! [{"name":"alice","live":true,"since":"2026-12-02T06:50:00Z"},
//!  {"name":"bob","live":false,"since":null}]
//! ```

use serde::{Deserialize, Serialize};

/// One stream name with a key, or one that has been live since nginx started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    /// Playing now.
    pub live: bool,
    /// In this machine's own list (`/api/streams/all`) only: the publisher is connected,
    /// whether or not the stream plays yet (its first fragment comes a keyframe later).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publishing: bool,
    /// When it went live, or last went offline; null if never seen since nginx started.
    pub since: Option<String>,
    /// While live, once the sidecar has made one: the path of its thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// While live, when its publisher gave one: the broadcast's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// While live (in this machine's own list, also of the last broadcast): who is
    /// watching or listening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
}

/// A broadcast's audience: counts only, nothing that tells one viewer from another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    /// Players that asked for the stream within the last 25 to 30 seconds, and the
    /// sidecar's listeners (`/listen/NAME`).
    pub viewers: u32,
    /// The most at once, this broadcast.
    pub peak: u32,
    /// Visits this broadcast: a player counts again after 30 seconds away.
    pub total: u32,
    pub likes: u32,
}

/// Invisible characters that change how the text around them shows: zero-width ones and
/// the bidirectional overrides (a title that reads backwards).
pub fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The longest title, in characters.
pub const MAX_TITLE: usize = 200;

/// A title as it is shown: the first line of `text`, without control characters or the
/// spaces around it, at most [`MAX_TITLE`] characters; none if nothing is left.
pub fn clean_title(text: &str) -> Option<String> {
    let line = text.lines().next().unwrap_or_default();
    let title: String = line
        .chars()
        .filter(|c| !c.is_control() && !is_format(*c))
        .take(MAX_TITLE)
        .collect();
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_string())
}

/// The answer: live streams first, then by name; one line.
pub fn to_json(streams: &mut [Stream]) -> String {
    streams.sort_by(|a, b| b.live.cmp(&a.live).then_with(|| a.name.cmp(&b.name)));
    let mut out = serde_json::to_string(streams).expect("plain data serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_first_then_by_name_and_back() {
        let s = |name: &str, live, since: Option<&str>| Stream {
            name: name.into(),
            live,
            publishing: false,
            since: since.map(Into::into),
            thumbnail: None,
            title: None,
            audience: None,
        };
        let mut list = vec![
            s("zed", false, None),
            s("bob", false, Some("1970-01-01T00:00:00Z")),
            s("yan", true, Some("2025-11-21T20:00:00Z")),
        ];
        let text = to_json(&mut list);
        assert_eq!(
            text,
            "[{\"name\":\"yan\",\"live\":true,\"since\":\"2025-11-21T20:00:00Z\"},\
             {\"name\":\"bob\",\"live\":false,\"since\":\"1970-01-01T00:00:00Z\"},\
             {\"name\":\"zed\",\"live\":false,\"since\":null}]\n"
        );
        let back: Vec<Stream> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
        list[0].thumbnail = Some("/live/yan/thumb.jpg".into());
        assert!(to_json(&mut list).starts_with(
            "[{\"name\":\"yan\",\"live\":true,\"since\":\"2025-11-21T20:00:00Z\",\
             \"thumbnail\":\"/live/yan/thumb.jpg\"}"
        ));
        assert_eq!(to_json(&mut []), "[]\n");
    }

    #[test]
    fn titles_are_one_clean_line() {
        assert_eq!(
            clean_title("  Night Set \nsecond"),
            Some("Night Set".into())
        );
        assert_eq!(clean_title("a\u{7}b\tc"), Some("abc".into()));
        assert_eq!(
            clean_title("evil\u{202E}txt.exe\u{200B}"),
            Some("eviltxt.exe".into())
        );
        assert_eq!(clean_title(" \n"), None);
        assert_eq!(clean_title(""), None);
        assert_eq!(
            clean_title(&"é".repeat(300)).unwrap().chars().count(),
            MAX_TITLE
        );
    }
}
