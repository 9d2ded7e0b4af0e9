//! HLS routing decisions: which file a URL names, what headers it gets, and playlists that
//! carry a signed token to every URI inside them.
//!
//! Paths are checked on nginx's decoded, normalized URI before anything touches the disk:
//! `/live/<name>/<file>` and `/vod/<id>/<path>` with names from the stream-name alphabet and
//! path segments of `[A-Za-z0-9._-]` that never start with a dot. That rules out `..`,
//! hidden files, encoded anything (`%` is not allowed), backslashes and NUL by construction.

use streamedge_formats::name::check_name;

/// Which tree a location serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Vod,
}

impl Mode {
    /// The URI prefix, which is also the folder under the data directory.
    pub fn prefix(self) -> &'static str {
        match self {
            Mode::Live => "/live/",
            Mode::Vod => "/vod/",
        }
    }
}

/// What a URL names, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The stream name or library item id.
    pub name: &'a str,
    /// The path below it, without a leading slash.
    pub file: &'a str,
    pub kind: Kind,
}

impl Target<'_> {
    /// The prefix a signed token covers: `/live/alice`, `/vod/<id>`.
    pub fn scope(&self, mode: Mode) -> String {
        format!("{}{}", mode.prefix(), self.name)
    }
}

/// The kinds of file the routes serve, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Playlist,
    TsSegment,
    Mp4,
    AudioMp4,
    Aac,
    Mp3,
    Jpeg,
    Vtt,
}

impl Kind {
    fn of(file: &str) -> Option<Kind> {
        let ext = file.rsplit_once('.')?.1;
        Some(match ext {
            "m3u8" => Kind::Playlist,
            "ts" => Kind::TsSegment,
            "m4s" | "mp4" => Kind::Mp4,
            "m4a" => Kind::AudioMp4,
            "aac" => Kind::Aac,
            "mp3" => Kind::Mp3,
            "jpg" => Kind::Jpeg,
            "vtt" => Kind::Vtt,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Playlist => "application/vnd.apple.mpegurl",
            Kind::TsSegment => "video/mp2t",
            Kind::Mp4 => "video/mp4",
            Kind::AudioMp4 => "audio/mp4",
            Kind::Aac => "audio/aac",
            Kind::Mp3 => "audio/mpeg",
            Kind::Jpeg => "image/jpeg",
            Kind::Vtt => "text/vtt",
        }
    }

    /// Live playlists change every segment; live segment names come back when a stream
    /// restarts, so they are cached briefly; library files never change.
    pub fn cache_control(self, mode: Mode, private: bool) -> &'static str {
        match (mode, self, private) {
            (Mode::Live, Kind::Playlist, false) => "no-cache",
            (Mode::Live, Kind::Playlist, true) => "private, no-cache",
            (Mode::Live, _, false) => "public, max-age=10",
            (Mode::Live, _, true) => "private, max-age=10",
            (Mode::Vod, _, false) => "public, max-age=31536000, immutable",
            (Mode::Vod, _, true) => "private, max-age=31536000, immutable",
        }
    }
}

/// Why a URL was refused before touching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not a well-formed name or path: 400.
    BadRequest,
    /// Well-formed, but not something these routes serve: 404.
    NotFound,
}

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Checks a decoded URI for `mode`.
pub fn parse_path(mode: Mode, uri: &[u8]) -> Result<Target<'_>, PathError> {
    let uri = std::str::from_utf8(uri).map_err(|_| PathError::BadRequest)?;
    let rest = uri
        .strip_prefix(mode.prefix())
        .ok_or(PathError::BadRequest)?;
    if !rest
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'))
    {
        return Err(PathError::BadRequest);
    }
    let (name, file) = rest.split_once('/').ok_or(PathError::NotFound)?;
    check_name(name.as_bytes()).map_err(|_| PathError::BadRequest)?;
    let depth = match mode {
        Mode::Live => 1,
        // master.m3u8, 720p/index.m3u8, 720p/seg_001.m4s: a little room for layouts.
        Mode::Vod => 3,
    };
    let segments: Vec<&str> = file.split('/').collect();
    if !segments.iter().all(|s| segment_ok(s)) {
        return Err(PathError::BadRequest);
    }
    if segments.len() > depth {
        return Err(PathError::NotFound);
    }
    let kind = Kind::of(file).ok_or(PathError::NotFound)?;
    Ok(Target { name, file, kind })
}

/// The value of the `st` argument in a raw query string.
pub fn token_arg(args: &[u8]) -> Option<&str> {
    let args = std::str::from_utf8(args).ok()?;
    args.split('&').find_map(|kv| kv.strip_prefix("st="))
}

fn with_token(uri: &str, token: &str) -> String {
    // A token is for this server: URIs that name another one keep theirs.
    if uri.contains("://") || uri.starts_with("//") {
        return uri.to_string();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}st={token}")
}

/// Adds `st=TOKEN` to every URI of a playlist: the URI lines (variants, segments) and the
/// `URI="..."` attributes of tags (`EXT-X-MAP`, `EXT-X-KEY`, `EXT-X-MEDIA`, ...). Players
/// that drop query strings on relative requests (iOS) then still send the token.
pub fn rewrite_playlist(text: &str, token: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
        {
            Some(b) => (b, &line[b.len()..]),
            None => (line, ""),
        };
        if body.trim().is_empty() {
            out.push_str(line);
        } else if body.starts_with('#') {
            out.push_str(&rewrite_uri_attributes(body, token));
            out.push_str(end);
        } else {
            out.push_str(&with_token(body.trim(), token));
            out.push_str(end);
        }
    }
    out
}

fn rewrite_uri_attributes(tag: &str, token: &str) -> String {
    let mut out = String::new();
    let mut rest = tag;
    while let Some(at) = rest.find("URI=\"") {
        let (before, after) = rest.split_at(at + 5);
        out.push_str(before);
        let Some(close) = after.find('"') else {
            out.push_str(after);
            return out;
        };
        out.push_str(&with_token(&after[..close], token));
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_paths() {
        let t = parse_path(Mode::Live, b"/live/alice/index.m3u8").unwrap();
        assert_eq!(
            (t.name, t.file, t.kind),
            ("alice", "index.m3u8", Kind::Playlist)
        );
        assert_eq!(t.scope(Mode::Live), "/live/alice");
        assert_eq!(
            parse_path(Mode::Live, b"/live/alice/12.ts").unwrap().kind,
            Kind::TsSegment
        );
        assert_eq!(
            parse_path(Mode::Live, b"/live/alice/a/b.ts"),
            Err(PathError::NotFound)
        );
        assert_eq!(
            parse_path(Mode::Live, b"/live/alice/index.html"),
            Err(PathError::NotFound)
        );
        assert_eq!(
            parse_path(Mode::Live, b"/live/alice"),
            Err(PathError::NotFound)
        );
    }

    #[test]
    fn vod_paths() {
        let t = parse_path(Mode::Vod, b"/vod/x1-b2/720p/seg_001.m4s").unwrap();
        assert_eq!(
            (t.name, t.file, t.kind),
            ("x1-b2", "720p/seg_001.m4s", Kind::Mp4)
        );
        assert_eq!(
            parse_path(Mode::Vod, b"/vod/x/master.m3u8").unwrap().kind,
            Kind::Playlist
        );
        assert_eq!(
            parse_path(Mode::Vod, b"/vod/x/poster.jpg").unwrap().kind,
            Kind::Jpeg
        );
        assert_eq!(
            parse_path(Mode::Vod, b"/vod/x/meta.json"),
            Err(PathError::NotFound)
        );
        assert_eq!(
            parse_path(Mode::Vod, b"/vod/x/a/b/c/d.ts"),
            Err(PathError::NotFound)
        );
    }

    #[test]
    fn hostile_paths_are_bad_requests() {
        for bad in [
            &b"/live/../etc/passwd"[..],
            b"/live/alice/../../etc/passwd",
            b"/live/alice/..",
            b"/live/alice/.hidden.ts",
            b"/live/al%2e/0.ts",
            b"/live/alice/%2e%2e.ts",
            b"/live/alice\\..\\0.ts",
            b"/live/alice/0.ts\0.m3u8",
            b"/live/\xc0\xae\xc0\xae/0.ts",
            b"/live//etc/passwd",
            b"/live/alice//0.ts",
            b"/live/alice/ 0.ts",
            b"/vod/x/720p/../../../etc/passwd",
            b"/vod/x/%252e%252e/a.ts",
            b"/etc/passwd",
            b"/vod/x/",
        ] {
            assert_eq!(
                parse_path(Mode::Live, bad)
                    .err()
                    .or(parse_path(Mode::Vod, bad).err()),
                Some(PathError::BadRequest),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(parse_path(Mode::Vod, bad).is_err());
        }
    }

    #[test]
    fn headers_by_kind() {
        assert_eq!(
            Kind::Playlist.content_type(),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(Kind::TsSegment.content_type(), "video/mp2t");
        assert_eq!(Kind::Mp4.content_type(), "video/mp4");
        assert_eq!(Kind::Playlist.cache_control(Mode::Live, false), "no-cache");
        assert_eq!(
            Kind::TsSegment.cache_control(Mode::Live, false),
            "public, max-age=10"
        );
        assert!(Kind::Mp4
            .cache_control(Mode::Vod, false)
            .ends_with("immutable"));
        assert!(Kind::Mp4
            .cache_control(Mode::Vod, true)
            .starts_with("private"));
    }

    #[test]
    fn token_argument() {
        assert_eq!(token_arg(b"st=1.abc"), Some("1.abc"));
        assert_eq!(token_arg(b"x=1&st=9.i.z&y=2"), Some("9.i.z"));
        assert_eq!(token_arg(b"xst=1"), None);
        assert_eq!(token_arg(b""), None);
    }

    #[test]
    fn every_uri_of_a_playlist_carries_the_token() {
        let master = "#EXTM3U\n#EXT-X-VERSION:7\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/index.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO=\"a\"\n360p/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2000000\r\n720p/index.m3u8?x=1\r\n";
        assert_eq!(
            rewrite_playlist(master, "T"),
            "#EXTM3U\n#EXT-X-VERSION:7\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/index.m3u8?st=T\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO=\"a\"\n360p/index.m3u8?st=T\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2000000\r\n720p/index.m3u8?x=1&st=T\r\n"
        );
        let media =
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"/k/1\",IV=0x1\n\
            #EXTINF:2.0,\nseg_0.m4s\n#EXTINF:2.0,\nhttps://cdn.example/seg_1.m4s\n#EXT-X-ENDLIST\n";
        let out = rewrite_playlist(media, "T");
        assert!(out.contains("#EXT-X-MAP:URI=\"init.mp4?st=T\""), "{out}");
        assert!(out.contains("URI=\"/k/1?st=T\",IV=0x1"));
        assert!(out.contains("\nseg_0.m4s?st=T\n"));
        // Another host's URI is left alone: the token is not given away.
        assert!(out.contains("\nhttps://cdn.example/seg_1.m4s\n"));
        assert!(out.ends_with("#EXT-X-ENDLIST\n"));
    }
}
