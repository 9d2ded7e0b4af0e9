//! Whether a browser's request comes from a page of this server: its `Origin` names the
//! host it talks to. Requests without `Origin` (players, scripts, curl) are not a browser
//! acting for another site, and pass; one that cannot be read is refused.

/// The host part of an authority (`Host` header, or an origin without its scheme), lower case,
/// without port or IPv6 brackets.
fn host(authority: &[u8]) -> Option<String> {
    let a = std::str::from_utf8(authority).ok()?.trim();
    let a = a.rsplit('@').next()?;
    let h = match a.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => a.split(':').next()?,
    };
    (!h.is_empty()).then(|| h.to_ascii_lowercase())
}

/// `origin` is the `Origin` header's value, `host_header` the request's `Host`.
pub fn same_origin(origin: Option<&[u8]>, host_header: Option<&[u8]>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(rest) = std::str::from_utf8(origin)
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest)
    else {
        return false;
    };
    let from = host(rest.as_bytes());
    from.is_some() && from == host_header.and_then(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_of_this_host() {
        let ok = |o: Option<&str>, h: &str| same_origin(o.map(str::as_bytes), Some(h.as_bytes()));
        assert!(ok(None, "tv.example.org"));
        assert!(ok(Some("https://tv.example.org"), "tv.example.org"));
        assert!(ok(Some("https://TV.example.org:4433"), "tv.example.org"));
        assert!(ok(Some("http://[::1]:8080"), "[::1]"));
        assert!(!ok(Some("https://evil.example"), "tv.example.org"));
        assert!(!ok(Some("null"), "tv.example.org"));
        assert!(!ok(
            Some("https://tv.example.org.evil.example"),
            "tv.example.org"
        ));
        assert!(!same_origin(Some(b"https://\xff"), Some(b"tv.example.org")));
        assert!(!same_origin(Some(b"https://tv.example.org"), None));
    }
}
