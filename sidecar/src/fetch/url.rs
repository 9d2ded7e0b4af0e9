//! What a fetch URL must be before any tool sees it: http or https, of reasonable length,
//! not something a tool could read as an option, without credentials, and (unless the
//! configuration allows it) not a name for this machine or its LAN.

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Result};

use crate::address;

/// Longer URLs are refused: nothing real needs more, and it bounds what jobs store.
pub const MAX_LEN: usize = 2048;

/// Checks the text of a URL; returns it parsed.
pub fn check(text: &str) -> Result<url::Url> {
    if text.len() > MAX_LEN {
        bail!("the URL is longer than {MAX_LEN} characters");
    }
    if text.starts_with('-') {
        bail!("the URL starts with '-'");
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("the URL contains spaces or control characters");
    }
    let url = url::Url::parse(text).map_err(|e| anyhow::anyhow!("not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        bail!(
            "only http and https URLs can be fetched, not {}:",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("the URL has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("URLs with a user name or password are not accepted (they would be stored with the job)");
    }
    Ok(url)
}

/// Refuses `ip` unless it is on the public internet; `host` is how the URL named it.
pub fn check_ip(host: &str, ip: IpAddr) -> Result<()> {
    if !address::is_global(ip) {
        bail!(
            "\"{host}\" is a private address ({ip}): this machine and its network are off limits \
             (fetch.allow_private_addresses)"
        );
    }
    Ok(())
}

/// The address a URL names literally (no resolver is asked for those).
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

/// Resolves `host`, refused if any address it names is private.
pub async fn public_addrs(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| anyhow::anyhow!("the host name \"{host}\" does not resolve"))?
        .collect();
    for a in &addrs {
        check_ip(host, a.ip())?;
    }
    Ok(addrs)
}

/// Resolves the URL's host and refuses it if any address it names is private.
pub async fn check_addresses(url: &url::Url) -> Result<()> {
    let host = url.host_str().unwrap_or_default();
    match literal_ip(url) {
        Some(ip) => check_ip(host, ip),
        None => public_addrs(host, url.port_or_known_default().unwrap_or(80))
            .await
            .map(drop),
    }
}

/// Checks the URLs a probe actually reached (after redirects) the same way.
pub async fn check_reached(urls: &[String]) -> Result<()> {
    for u in urls {
        let parsed = url::Url::parse(u)
            .map_err(|e| anyhow::anyhow!("yt-dlp reports a URL that is not one ({e})"))?;
        if parsed.scheme() == "http" || parsed.scheme() == "https" {
            check_addresses(&parsed)
                .await
                .map_err(|e| anyhow::anyhow!("the URL leads elsewhere: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_web_url() {
        for (bad, why) in [
            ("-o x", "starts with '-'"),
            ("--exec=rm", "starts with '-'"),
            ("file:///etc/passwd", "not file:"),
            ("ftp://example.org/a.mp4", "not ftp:"),
            ("example.org/a.mp4", "not a URL"),
            ("http://", "not a URL"),
            ("http://a b/", "spaces"),
            ("http://u:p@example.org/", "user name or password"),
        ] {
            let e = check(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_LEN));
        assert!(check(&long).unwrap_err().to_string().contains("longer"));
        assert!(check("https://example.org/watch?v=1&t=2").is_ok());
    }

    #[tokio::test]
    async fn redirects_to_this_network_are_refused() {
        let reached = ["http://10.0.0.5/a.mp4".to_string()];
        let e = check_reached(&reached).await.unwrap_err().to_string();
        assert!(
            e.starts_with("the URL leads elsewhere: \"10.0.0.5\" is a private address"),
            "{e}"
        );
        assert!(check_reached(&["http://93.184.216.34/v".to_string()])
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn loopback_names_are_refused() {
        let e = check_addresses(&check("http://127.0.0.1:8000/a.mp4").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("private address (127.0.0.1)"), "{e}");
        let e = check_addresses(&check("http://localhost/a.mp4").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("private address"), "{e}");
        // IPv6 spellings of loopback, and the special-purpose IPv4 blocks.
        for (url, ip) in [
            ("http://[::127.0.0.1]/", "::127.0.0.1"),
            ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),
            ("http://[2002:7f00:1::1]/", "2002:7f00:1::1"),
            ("http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1"),
            ("http://198.18.0.1/", "198.18.0.1"),
            ("http://192.0.0.1/", "192.0.0.1"),
            ("http://240.0.0.1/", "240.0.0.1"),
        ] {
            let e = check_addresses(&check(url).unwrap())
                .await
                .unwrap_err()
                .to_string();
            let ip: IpAddr = ip.parse().unwrap();
            assert!(e.contains(&format!("private address ({ip})")), "{url}: {e}");
        }
        assert!(
            check_addresses(&check("http://[2606:4700::1111]/").unwrap())
                .await
                .is_ok()
        );
    }
}
