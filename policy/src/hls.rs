//! HLS routing decisions: which file a URL names, what headers it gets, and where a signed
//! link carries its token.
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

    /// Live playlists change with every segment: a browser asks again each time
    /// (`max-age=0`), a shared cache (an edge, a CDN) keeps one for a second, so the viewers
    /// behind it make one request a second. Live segment names are never reused (nginx-rtmp's
    /// `hls_fragment_naming system`, the ladder's epoch start numbers, the audio rendition's
    /// run-time prefix), so a segment is as immutable as a library file; other live files (the
    /// thumbnail) are rewritten in place. Private answers are for the viewer's browser alone.
    pub fn cache_control(self, mode: Mode, private: bool) -> &'static str {
        match (mode, self, private) {
            (Mode::Live, Kind::Playlist, false) => "public, max-age=0, s-maxage=1",
            (Mode::Live, Kind::Playlist, true) => "private, no-cache",
            (Mode::Live, Kind::TsSegment, false) => "public, max-age=31536000, immutable",
            (Mode::Live, Kind::TsSegment, true) => "private, max-age=31536000, immutable",
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
    if file.is_empty() && mode == Mode::Live {
        // `/live/NAME/`: the stream itself, whichever playlist plays it.
        return Ok(Target {
            name,
            file,
            kind: Kind::Playlist,
        });
    }
    let depth = match mode {
        // index.m3u8 and nginx-rtmp's fragments; 720p/index.m3u8 and the ladder's segments.
        Mode::Live => 2,
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

/// The value of the `st` argument in a raw query string (links made before tokens moved
/// into the path).
pub fn token_arg(args: &[u8]) -> Option<&str> {
    let args = std::str::from_utf8(args).ok()?;
    args.split('&').find_map(|kv| kv.strip_prefix("st="))
}

/// Where `st=TOKEN` sits in a query string (the first one), as a byte range: an edge passes
/// on that argument alone, so no other argument can make a cache miss of its own.
pub fn token_arg_range(args: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    for part in args.split(|&b| b == b'&') {
        if part.starts_with(b"st=") {
            return Some(start..start + part.len());
        }
        start += part.len() + 1;
    }
    None
}

pub use streamedge_formats::token::{signed_path, SIGNED_PREFIX};

/// A URL with its token in the path, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedPath<'a> {
    pub token: &'a str,
    pub mode: Mode,
    /// Where the same URL without `/s/TOKEN` starts: `/live/...` or `/vod/...`.
    pub inner_start: usize,
}

/// Checks the `/s/TOKEN/` part of a decoded URI; the rest is checked by [`parse_path`].
pub fn parse_signed(uri: &[u8]) -> Result<SignedPath<'_>, PathError> {
    let rest = uri
        .strip_prefix(SIGNED_PREFIX.as_bytes())
        .ok_or(PathError::BadRequest)?;
    let end = rest
        .iter()
        .position(|&c| c == b'/')
        .ok_or(PathError::NotFound)?;
    let token = &rest[..end];
    // The token alphabet: digits, dots and URL-safe base64.
    if token.is_empty()
        || token.len() > 64
        || !token
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(PathError::BadRequest);
    }
    let inner_start = SIGNED_PREFIX.len() + end;
    let inner = &uri[inner_start..];
    let mode = if inner.starts_with(Mode::Live.prefix().as_bytes()) {
        Mode::Live
    } else if inner.starts_with(Mode::Vod.prefix().as_bytes()) {
        Mode::Vod
    } else {
        return Err(PathError::NotFound);
    };
    Ok(SignedPath {
        token: std::str::from_utf8(token).map_err(|_| PathError::BadRequest)?,
        mode,
        inner_start,
    })
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
        // The ladder's rungs, one level below; nothing deeper.
        assert_eq!(
            parse_path(Mode::Live, b"/live/alice/360p/1.ts")
                .unwrap()
                .file,
            "360p/1.ts"
        );
        assert_eq!(
            parse_path(Mode::Live, b"/live/alice/a/b/c.ts"),
            Err(PathError::NotFound)
        );
        // The stream itself.
        let t = parse_path(Mode::Live, b"/live/alice/").unwrap();
        assert_eq!((t.name, t.file, t.kind), ("alice", "", Kind::Playlist));
        assert_eq!(
            parse_path(Mode::Vod, b"/vod/x1/"),
            Err(PathError::BadRequest)
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
        assert_eq!(
            Kind::Playlist.cache_control(Mode::Live, false),
            "public, max-age=0, s-maxage=1"
        );
        assert_eq!(
            Kind::TsSegment.cache_control(Mode::Live, false),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            Kind::Jpeg.cache_control(Mode::Live, false),
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
    fn the_token_argument_alone() {
        let r = |a: &[u8]| token_arg_range(a).map(|x| String::from_utf8(a[x].to_vec()).unwrap());
        assert_eq!(r(b"st=1.abc"), Some("st=1.abc".into()));
        assert_eq!(r(b"x=1&st=9.i.z&y=2"), Some("st=9.i.z".into()));
        assert_eq!(r(b"x=1&xst=2"), None);
        assert_eq!(r(b""), None);
        assert_eq!(r(b"&&st="), Some("st=".into()));
    }

    #[test]
    fn token_argument() {
        assert_eq!(token_arg(b"st=1.abc"), Some("1.abc"));
        assert_eq!(token_arg(b"x=1&st=9.i.z&y=2"), Some("9.i.z"));
        assert_eq!(token_arg(b"xst=1"), None);
        assert_eq!(token_arg(b""), None);
    }

    #[test]
    fn signed_paths() {
        let uri = b"/s/1700000000.abc_-Z/live/alice/index.m3u8";
        let s = parse_signed(uri).unwrap();
        assert_eq!((s.token, s.mode), ("1700000000.abc_-Z", Mode::Live));
        let inner = &uri[s.inner_start..];
        assert_eq!(inner, b"/live/alice/index.m3u8");
        assert_eq!(parse_path(s.mode, inner).unwrap().name, "alice");
        let v = parse_signed(b"/s/9.i.x/vod/x1/720p/seg_1.m4s").unwrap();
        assert_eq!(v.mode, Mode::Vod);
        assert_eq!(
            signed_path("9.i.x", "/vod/x1/master.m3u8"),
            "/s/9.i.x/vod/x1/master.m3u8"
        );
        for (bad, want) in [
            (&b"/s//live/alice/0.ts"[..], PathError::BadRequest),
            (b"/s/a%2fb/live/alice/0.ts", PathError::BadRequest),
            (b"/s/a b/live/alice/0.ts", PathError::BadRequest),
            (b"/s/tok", PathError::NotFound),
            (b"/s/tok/etc/passwd", PathError::NotFound),
            (b"/s/tok/livex/a/0.ts", PathError::NotFound),
            (b"/x/tok/live/a/0.ts", PathError::BadRequest),
        ] {
            assert_eq!(
                parse_signed(bad),
                Err(want),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("/s/{}/live/a/0.ts", "t".repeat(65));
        assert_eq!(parse_signed(long.as_bytes()), Err(PathError::BadRequest));
    }
}
