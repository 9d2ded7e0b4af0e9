//! Which challenge an order uses. `acme.challenge = "auto"` asks first whether HTTP-01 can
//! work: a random file in the challenge folder nginx serves, fetched the way the CA would
//! (the name resolved by `acme.nameservers`, on `acme.self_check_port`, 80). When it comes
//! back, HTTP-01; when not (port 80 blocked, a name that does not resolve) or for a
//! wildcard, DNS-01.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use streamedge_acme::Settings;

use crate::config::{ChallengeMode, Config};

/// The challenge an order uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Http01,
    /// With the reason, for the log.
    Dns01(String),
}

/// The choice the configuration makes alone, or `None` when the self-check must decide.
pub fn plan(mode: ChallengeMode, domains: &[String]) -> Option<Choice> {
    match mode {
        ChallengeMode::Http01 => Some(Choice::Http01),
        ChallengeMode::Dns01 => Some(Choice::Dns01("acme.challenge is \"dns-01\"".into())),
        ChallengeMode::Auto => domains
            .iter()
            .find(|d| d.starts_with("*."))
            .map(|d| Choice::Dns01(format!("\"{d}\" is a wildcard, which only DNS-01 proves"))),
    }
}

/// Whether an HTTP-01 order that failed gets one more try with DNS-01: in `auto`, when the
/// CA looked at the challenges and refused them (not when it was unreachable).
pub fn retry_with_dns(mode: ChallengeMode, e: &streamedge_acme::Error) -> bool {
    mode == ChallengeMode::Auto && matches!(e, streamedge_acme::Error::Refused(_))
}

/// `auto`'s self-check over every name: HTTP-01 if each one serves the probe.
pub async fn check(config: &Config, s: &Settings) -> Choice {
    let port = config.acme.self_check_port;
    let resolver = match crate::dns::resolver(&config.acme.nameservers) {
        Ok(r) => r,
        Err(e) => return Choice::Dns01(format!("the HTTP-01 self-check cannot resolve: {e:#}")),
    };
    let probe = match Probe::write(s) {
        Ok(p) => p,
        Err(e) => return Choice::Dns01(format!("the HTTP-01 self-check cannot start: {e}")),
    };
    for domain in &s.domains {
        let addrs = crate::dns::addresses(&resolver, domain).await;
        if addrs.is_empty() {
            return Choice::Dns01(format!(
                "the HTTP-01 self-check failed: \"{domain}\" does not resolve"
            ));
        }
        for ip in addrs {
            if let Err(why) = probe.fetch(domain, ip, port).await {
                return Choice::Dns01(format!("the HTTP-01 self-check failed: {why}"));
            }
        }
    }
    Choice::Http01
}

/// A random file in the challenge folder, removed when dropped.
struct Probe {
    path: std::path::PathBuf,
    token: String,
    content: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Probe {
    fn write(s: &Settings) -> Result<Probe, String> {
        let random = crate::clock::random_bytes::<32>().map_err(|e| format!("{e:#}"))?;
        let (token, content) = (
            format!("streamedge-probe-{}", hex(&random[..16])),
            hex(&random[16..]),
        );
        let dir = s.challenge_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(&token);
        std::fs::write(&path, &content).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Probe {
            path,
            token,
            content,
        })
    }

    /// GET http://DOMAIN:PORT/.well-known/acme-challenge/TOKEN at `ip`.
    async fn fetch(&self, domain: &str, ip: IpAddr, port: u16) -> Result<(), String> {
        let url = format!(
            "http://{domain}:{port}/.well-known/acme-challenge/{}",
            self.token
        );
        let shown = format!("http://{domain}:{port}/.well-known/acme-challenge/ at {ip}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .resolve(domain, SocketAddr::new(ip, port))
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{shown} does not answer ({e})"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() && body.trim() == self.content {
            Ok(())
        } else {
            Err(format!(
                "{shown} answers {} without the probe file",
                status.as_u16()
            ))
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_configuration_decides_unless_auto_has_no_wildcard() {
        let plain = names(&["example.org"]);
        let wild = names(&["example.org", "*.example.org"]);
        assert_eq!(plan(ChallengeMode::Http01, &plain), Some(Choice::Http01));
        assert!(matches!(
            plan(ChallengeMode::Dns01, &plain),
            Some(Choice::Dns01(_))
        ));
        assert_eq!(plan(ChallengeMode::Auto, &plain), None);
        assert!(matches!(
            plan(ChallengeMode::Auto, &wild),
            Some(Choice::Dns01(why)) if why.contains("\"*.example.org\" is a wildcard")
        ));
    }

    #[test]
    fn only_a_refusal_in_auto_tries_dns() {
        use streamedge_acme::Error;
        let refused = Error::Refused("streamedge.test: connection refused".into());
        let unreachable = Error::Acme("tcp connect error".into());
        assert!(retry_with_dns(ChallengeMode::Auto, &refused));
        assert!(!retry_with_dns(ChallengeMode::Auto, &unreachable));
        assert!(!retry_with_dns(ChallengeMode::Http01, &refused));
    }
}
