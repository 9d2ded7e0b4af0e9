//! What a fetch URL must be before any tool sees it: http or https, of reasonable length,
//! not something a tool could read as an option, without credentials, and (unless the
//! configuration allows it) not a name for this machine or its LAN.

use std::net::IpAddr;

use anyhow::{bail, Result};

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

/// Addresses that are this machine, its LAN or otherwise not the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // carrier-grade NAT, 100.64.0.0/10
                || (a == 100 && (64..128).contains(&b))
                // "this network", 0.0.0.0/8
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // unique local fc00::/7, link-local fe80::/10
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves the URL's host and refuses it if any address it names is private.
pub async fn check_addresses(url: &url::Url) -> Result<()> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        _ => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| anyhow::anyhow!("the host name \"{host}\" does not resolve"))?
            .map(|a| a.ip())
            .collect(),
    };
    if let Some(ip) = addrs.into_iter().find(|ip| is_private(*ip)) {
        bail!(
            "\"{host}\" is a private address ({ip}): fetching from this machine or its network \
             is off (fetch.allow_private_addresses)"
        );
    }
    Ok(())
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

    #[test]
    fn private_addresses() {
        for p in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
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
    }
}
