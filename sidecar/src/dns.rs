//! DNS lookups through the configured servers (hickory), caching nothing: what dynamic DNS
//! checks, what `auto`'s self-check connects to, and where DNS-01 watches for its records
//! (the zone's own name servers, so no resolver's cache of "no such record" stands between).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// "1.1.1.1:53", or "1.1.1.1" for port 53.
pub fn server_addr(ns: &str) -> Result<SocketAddr> {
    ns.parse()
        .or_else(|_| ns.parse::<IpAddr>().map(|ip| (ip, 53).into()))
        .with_context(|| format!("\"{ns}\" is not a DNS server address"))
}

/// A resolver asking `nameservers` ("1.1.1.1:53"; empty: the system's), every question afresh.
pub fn resolver(nameservers: &[String]) -> Result<TokioResolver> {
    let servers = nameservers
        .iter()
        .map(|ns| server_addr(ns))
        .collect::<Result<Vec<_>>>()?;
    resolver_at(&servers)
}

fn resolver_at(servers: &[SocketAddr]) -> Result<TokioResolver> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio().context("cannot read the system's DNS configuration")?
    } else {
        let mut cfg = ResolverConfig::new();
        for addr in servers {
            cfg.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
        }
        TokioResolver::builder_with_config(cfg, TokioConnectionProvider::default())
    };
    let mut opts = ResolverOpts::default();
    // An answer cached from before a change would mislead.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 1;
    *builder.options_mut() = opts;
    Ok(builder.build())
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// The addresses `name` resolves to (A and AAAA); none if it does not resolve.
pub async fn addresses(resolver: &TokioResolver, name: &str) -> Vec<IpAddr> {
    resolver
        .lookup_ip(fqdn(name))
        .await
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

/// The names to ask for NS records, from `name` up to its two last labels:
/// `_acme-challenge.a.example.org` → `a.example.org`, `example.org`.
pub fn zone_candidates(name: &str) -> Vec<String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    (1..labels.len().saturating_sub(1))
        .map(|i| labels[i..].join("."))
        .collect()
}

/// The zone of `name` and its name servers' addresses, by asking `resolver` for NS records
/// from the name upwards; `None` when no zone answers with name servers that resolve.
pub async fn authoritative(
    resolver: &TokioResolver,
    name: &str,
) -> Option<(String, Vec<SocketAddr>)> {
    for zone in zone_candidates(name) {
        let Ok(ns) = resolver.ns_lookup(fqdn(&zone)).await else {
            continue;
        };
        let mut servers = Vec::new();
        for host in ns.iter() {
            for ip in addresses(resolver, &host.0.to_utf8()).await {
                servers.push(SocketAddr::new(ip, 53));
            }
        }
        if !servers.is_empty() {
            return Some((zone, servers));
        }
    }
    None
}

/// The TXT texts `name` has at one server (each record's strings joined, as RFC 8555 reads
/// them); none if it has none or does not answer.
async fn txt_at(resolver: &TokioResolver, name: &str) -> BTreeSet<String> {
    resolver
        .txt_lookup(fqdn(name))
        .await
        .map(|l| {
            l.iter()
                .map(|t| {
                    t.txt_data()
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether each expected `(name, text)` is among what a server answered per name.
pub fn all_present(expected: &[(String, String)], answered: &[(String, BTreeSet<String>)]) -> bool {
    expected.iter().all(|(name, text)| {
        answered
            .iter()
            .any(|(n, texts)| n == name && texts.contains(text))
    })
}

/// Waits until every name server of each name's zone answers all its expected TXT texts.
/// Where no name servers can be found (a test's DNS, a zone only the configured servers
/// know), the configured servers themselves are asked (`nameservers`; empty: the system's).
pub async fn wait_for_txt(
    nameservers: &[String],
    expected: &[(String, String)],
    timeout: Duration,
) -> Result<()> {
    let resolver = resolver(nameservers)?;
    let names: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut watched = Vec::new();
    for name in &names {
        let w = Watch::find(&resolver, nameservers, name).await?;
        tracing::info!("waiting for TXT \"{name}\" at {}", w.shown);
        watched.push((*name, w));
    }
    let started = Instant::now();
    loop {
        let mut missing = None;
        for (name, w) in &watched {
            let wanted: Vec<(String, String)> = expected
                .iter()
                .filter(|(n, _)| n == name)
                .cloned()
                .collect();
            if !w.answer_all(name, &wanted).await {
                missing = Some((name, &w.shown));
                break;
            }
        }
        let Some((name, shown)) = missing else {
            return Ok(());
        };
        if started.elapsed() >= timeout {
            bail!(
                "{shown} do not answer TXT \"{name}\" with the challenge after {} (acme.propagation_timeout)",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The servers one name's TXT records are watched at, one resolver each.
struct Watch {
    /// What they are called in messages.
    shown: String,
    servers: Vec<TokioResolver>,
}

impl Watch {
    async fn find(resolver: &TokioResolver, nameservers: &[String], name: &str) -> Result<Watch> {
        let (shown, addrs) = match authoritative(resolver, name).await {
            Some((zone, addrs)) => {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                (
                    format!("the name servers of \"{zone}\" ({})", list.join(", ")),
                    addrs,
                )
            }
            None if nameservers.is_empty() => ("the system's DNS servers".into(), Vec::new()),
            None => (
                format!("acme.nameservers ({})", nameservers.join(", ")),
                nameservers
                    .iter()
                    .map(|ns| server_addr(ns))
                    .collect::<Result<_>>()?,
            ),
        };
        let servers = if addrs.is_empty() {
            vec![resolver_at(&[])?]
        } else {
            addrs
                .iter()
                .map(|a| resolver_at(std::slice::from_ref(a)))
                .collect::<Result<_>>()?
        };
        Ok(Watch { shown, servers })
    }

    /// Whether every server answers every wanted text.
    async fn answer_all(&self, name: &str, wanted: &[(String, String)]) -> bool {
        for r in &self.servers {
            let answered = [(name.to_string(), txt_at(r, name).await)];
            if !all_present(wanted, &answered) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_looked_for_from_the_name_up() {
        assert_eq!(
            zone_candidates("_acme-challenge.cam.example.org."),
            ["cam.example.org", "example.org"]
        );
        assert_eq!(
            zone_candidates("_acme-challenge.example.org"),
            ["example.org"]
        );
        assert!(zone_candidates("org").is_empty());
    }

    #[test]
    fn every_expected_text_must_be_there() {
        let name = "_acme-challenge.example.org".to_string();
        let expected = vec![(name.clone(), "a".into()), (name.clone(), "b".into())];
        let only_a = vec![(name.clone(), BTreeSet::from(["a".to_string()]))];
        let both = vec![(
            name.clone(),
            BTreeSet::from(["a".to_string(), "b".into(), "old".into()]),
        )];
        assert!(!all_present(&expected, &only_a));
        assert!(all_present(&expected, &both));
        assert!(server_addr("127.0.0.1").unwrap().port() == 53);
        assert!(server_addr("127.0.0.1:5353").unwrap().port() == 5353);
        assert!(server_addr("ns1").is_err());
    }
}
