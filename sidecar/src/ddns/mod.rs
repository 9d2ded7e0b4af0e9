//! Dynamic DNS: keeps the configured names pointing at this home's public address, calling
//! IONOS only when the address really changed, and backing off politely when IONOS says no.
//! Replaces a cron job that called the update URL every minute whatever happened.

pub mod address;
pub mod edges;
pub mod ionos;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Ddns};
use address::Family;
use ionos::ApiError;

/// Events kept in the state file.
const HISTORY: usize = 100;

/// What the check remembers about one address family.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FamilyState {
    /// The public address last found.
    pub current: Option<IpAddr>,
    /// What DNS said at the last check, per name.
    #[serde(default)]
    pub dns: Vec<String>,
    /// The address last sent to IONOS, and when.
    pub last_sent: Option<IpAddr>,
    pub sent_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub at: String,
    pub family: String,
    pub address: Option<IpAddr>,
    pub result: String,
}

/// `DATA/ddns/state.json`, mode 0600: it holds the DynDNS update URL, which is a secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Identifies the configuration an authentication error belongs to.
    #[serde(default)]
    pub fingerprint: String,
    pub bulk_id: Option<String>,
    pub update_url: Option<String>,
    #[serde(default)]
    pub v4: FamilyState,
    #[serde(default)]
    pub v6: FamilyState,
    pub last_check: Option<u64>,
    pub next_check: Option<u64>,
    pub last_result: Option<String>,
    /// A 401/403: nothing is retried until the configuration changes.
    pub auth_error: Option<String>,
    #[serde(default)]
    pub failures: u32,
    pub backoff_until: Option<u64>,
    /// When the last IONOS requests were made (seconds), for the rate limit.
    #[serde(default)]
    pub requests: Vec<u64>,
    /// Records mode: the zone of each name and the record id of each "name TYPE" (empty:
    /// none yet, to create), so an update takes one request once they are known, and a
    /// lookup cut short by the request budget goes on at the next check.
    #[serde(default)]
    pub zone_ids: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub record_ids: std::collections::BTreeMap<String, String>,
    /// Edge names: what was last set for each "name TYPE" (the addresses) and when.
    #[serde(default)]
    pub edges_sent: std::collections::BTreeMap<String, (String, u64)>,
    #[serde(default)]
    pub history: Vec<Event>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

use crate::clock::rfc3339_secs as rfc3339;

impl State {
    fn family(&mut self, f: Family) -> &mut FamilyState {
        match f {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    fn record(&mut self, now: u64, family: Family, address: Option<IpAddr>, result: String) {
        self.last_result = Some(result.clone());
        self.history.push(Event {
            at: rfc3339(now),
            family: family.record_type().into(),
            address,
            result,
        });
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
    }

    /// After an IONOS error: an authentication error stops updates until the configuration
    /// changes, anything else backs off.
    fn failed(&mut self, now: u64, e: &ApiError) {
        match e {
            ApiError::Auth(m) => self.auth_error = Some(m.clone()),
            ApiError::Retry(_) | ApiError::Other(_) => {
                self.failures += 1;
                let until = now + backoff(self.failures).as_secs();
                self.backoff_until = Some(until);
                self.next_check = Some(until);
            }
        }
    }

    /// One request from the budget for an update, counted in `calls`; none left: deferred.
    fn spend(&mut self, now: u64, per_minute: u32, calls: &mut u32) -> Result<(), UpdateError> {
        let ok = self.take_request(now, per_minute);
        *calls += u32::from(ok);
        if ok {
            Ok(())
        } else {
            Err(Deferred)
        }
    }

    /// Takes one request from the rolling one-minute budget, if there is one left.
    fn take_request(&mut self, now: u64, per_minute: u32) -> bool {
        self.requests.retain(|&t| t + 60 > now);
        if self.requests.len() >= per_minute as usize {
            return false;
        }
        self.requests.push(now);
        true
    }
}

/// What a check should do for one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Every name already resolves to the address, and only to it.
    UpToDate,
    /// The address was sent within the cooldown: DNS is still catching up.
    Propagating,
    Update,
}

/// Decides from the address found, what DNS says for each name, and what was sent last.
pub fn plan(
    addr: IpAddr,
    dns: &[Vec<IpAddr>],
    fam: &FamilyState,
    now: u64,
    cooldown: Duration,
) -> Plan {
    if !dns.is_empty() && dns.iter().all(|a| a == &[addr]) {
        return Plan::UpToDate;
    }
    let recent = fam.sent_at.is_some_and(|t| now < t + cooldown.as_secs());
    if fam.last_sent == Some(addr) && recent {
        return Plan::Propagating;
    }
    Plan::Update
}

/// After the `failures`-th failure in a row: 1, 2, 4 ... minutes, at most an hour.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(60 * (1u64 << failures.saturating_sub(1).min(6)))
        .min(Duration::from_secs(3600))
}

/// What `ddns check` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub lines: Vec<String>,
    /// IONOS calls made.
    pub calls: u32,
    /// True when something failed (the exit code says so).
    pub failed: bool,
}

fn state_path(config: &Config) -> PathBuf {
    config.layout().ddns_state()
}

fn load(config: &Config) -> Result<State> {
    let path = state_path(config);
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("invalid {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save(config: &Config, state: &State) -> Result<()> {
    let text = serde_json::to_string_pretty(state)? + "\n";
    crate::fsutil::write_atomic(&state_path(config), text.as_bytes(), 0o600, None)
}

/// One check at a time per data directory (the daemon, the command line).
fn lock(config: &Config) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let dir = config.layout().ddns();
    crate::fsutil::ensure_dir(&dir, 0o700, None)?;
    crate::fsutil::lock(&dir.join(".lock"))
}

fn settings(config: &Config) -> Result<&Ddns> {
    let d = config
        .ddns
        .as_ref()
        .context("dynamic DNS is off: add a [ddns] section to streamedge.toml")?;
    if !d.updates() {
        bail!(
            "dynamic DNS is off: [ddns] has no domains or edge_domains (its key serves DNS-01 certificates only)"
        );
    }
    Ok(d)
}

/// A digest of what an authentication error depends on: a new key or new names retry.
fn fingerprint(d: &Ddns, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let text = format!(
        "{}\n{}\n{}\n{}\n{:?}\n{:?}",
        d.provider, d.mode, d.api_base, key, d.domains, d.edge_domains
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What DNS says for each name; a name that does not resolve says nothing.
async fn resolve(d: &Ddns, family: Family) -> Result<Vec<Vec<IpAddr>>> {
    let resolver = crate::dns::resolver(&d.nameservers)?;
    let mut out = Vec::new();
    for name in &d.domains {
        out.push(lookup(&resolver, name, family).await);
    }
    Ok(out)
}

/// A name's addresses of one family; none when it does not resolve.
async fn lookup(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
    family: Family,
) -> Vec<IpAddr> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match family {
        Family::V4 => resolver
            .ipv4_lookup(fqdn)
            .await
            .map(|l| l.iter().map(|a| IpAddr::V4(a.0)).collect()),
        Family::V6 => resolver
            .ipv6_lookup(fqdn)
            .await
            .map(|l| l.iter().map(|a| IpAddr::V6(a.0)).collect()),
    }
    .unwrap_or_default()
}

/// `ddns setup`: creates the DynDNS bulk and stores its update URL.
pub async fn setup(config: &Config) -> Result<String> {
    let d = settings(config)?;
    let key = d.key()?;
    let _lock = lock(config)?;
    let mut state = load(config)?;
    let now = secs(SystemTime::now());
    if !state.take_request(now, d.requests_per_minute) {
        bail!(
            "IONOS allows {} requests a minute; try again in a minute",
            d.requests_per_minute
        );
    }
    let client = ionos::Client::new(&d.api_base, &key);
    let bulk = client
        .dyndns_setup(&d.domains, "streamedge")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state.bulk_id = Some(bulk.bulk_id.clone());
    state.update_url = Some(bulk.update_url);
    save(config, &state)?;
    Ok(bulk.bulk_id)
}

/// `ddns disable`: deletes the DynDNS bulk.
pub async fn disable(config: &Config) -> Result<()> {
    let d = settings(config)?;
    let key = d.key()?;
    let _lock = lock(config)?;
    let mut state = load(config)?;
    let Some(bulk) = state.bulk_id.clone() else {
        bail!("no DynDNS bulk to delete (see `streamedge ddns setup`)");
    };
    let client = ionos::Client::new(&d.api_base, &key);
    client
        .dyndns_delete(&bulk)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state.bulk_id = None;
    state.update_url = None;
    save(config, &state)
}

/// One check: find the address, ask DNS, update IONOS if needed.
pub async fn check(config: &Config, dry_run: bool) -> Result<Report> {
    let d = settings(config)?;
    let key = d.key()?;
    let _lock = lock(config)?;
    let mut state = load(config)?;
    let now = secs(SystemTime::now());
    let mut report = Report {
        lines: Vec::new(),
        calls: 0,
        failed: false,
    };
    let fp = fingerprint(d, &key);
    if state.fingerprint != fp {
        // A new key, new names or another mode: earlier refusals no longer apply.
        state = State {
            fingerprint: fp,
            bulk_id: state.bulk_id,
            update_url: state.update_url,
            history: state.history,
            requests: state.requests,
            ..State::default()
        };
    }
    state.last_check = Some(now);
    state.next_check = Some(now + d.interval.as_secs());
    if let Some(e) = &state.auth_error {
        report.lines.push(format!(
            "not updating: {e} (fix the API key or the names in streamedge.toml)"
        ));
        report.failed = true;
        save(config, &state)?;
        return Ok(report);
    }
    if let Some(until) = state.backoff_until.filter(|&u| u > now) {
        report.lines.push(format!(
            "backing off after {} failure(s) until {}",
            state.failures,
            rfc3339(until)
        ));
        state.next_check = Some(until.max(now + d.interval.as_secs()));
        save(config, &state)?;
        return Ok(report);
    }
    let client = ionos::Client::new(&d.api_base, &key);
    let mut ionos_failed = false;
    let families: Vec<Family> = [(d.ipv4, Family::V4), (d.ipv6, Family::V6)]
        .into_iter()
        .filter(|(on, _)| *on && !d.domains.is_empty())
        .map(|(_, f)| f)
        .collect();
    for family in families {
        let sources = match family {
            Family::V4 => &d.ip_sources_v4,
            Family::V6 => &d.ip_sources_v6,
        };
        let Some((addr, source)) = address::discover(sources, family).await else {
            report.lines.push(format!(
                "{}: no public address found from {} source(s)",
                family.record_type(),
                sources.len()
            ));
            report.failed = true;
            continue;
        };
        let dns = resolve(d, family).await?;
        let fam = state.family(family);
        fam.current = Some(addr);
        fam.dns = dns
            .iter()
            .map(|a| {
                a.iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let what = plan(addr, &dns, fam, now, d.cooldown);
        let t = family.record_type();
        match what {
            Plan::UpToDate => report
                .lines
                .push(format!("{t}: {addr} (from {source}) is in DNS already")),
            Plan::Propagating => report.lines.push(format!(
                "{t}: {addr} was sent at {}; waiting for DNS",
                rfc3339(fam.sent_at.unwrap_or(now))
            )),
            Plan::Update if dry_run => report
                .lines
                .push(format!("{t}: would send {addr} (DNS says {:?})", fam.dns)),
            Plan::Update => {
                let result =
                    update(d, &client, &mut state, family, addr, now, &mut report.calls).await;
                match result {
                    Ok(()) => {
                        let fam = state.family(family);
                        fam.last_sent = Some(addr);
                        fam.sent_at = Some(now);
                        state.failures = 0;
                        state.backoff_until = None;
                        report.lines.push(format!("{t}: sent {addr}"));
                        state.record(now, family, Some(addr), "updated".into());
                    }
                    Err(Deferred) => report.lines.push(format!(
                        "{t}: {addr} waits for the next minute (IONOS allows {} requests a minute)",
                        d.requests_per_minute
                    )),
                    Err(Failed(e)) => {
                        report.failed = true;
                        ionos_failed = true;
                        state.failed(now, &e);
                        report.lines.push(format!("{t}: cannot send {addr}: {e}"));
                        state.record(now, family, Some(addr), e.to_string());
                        break;
                    }
                }
            }
        }
    }
    // The edges' names do not depend on the home's address: they are kept even when it
    // cannot be found, though not right after IONOS itself failed (that backs off).
    if !ionos_failed {
        let before = report.calls;
        match edges::sync(d, &client, &mut state, now, dry_run, &mut report).await {
            Ok(()) if report.calls > before => {
                // IONOS answered: whatever failed before is over.
                state.failures = 0;
                state.backoff_until = None;
            }
            Ok(()) => {}
            Err(e) => {
                report.failed = true;
                state.failed(now, &e);
                report.lines.push(format!("cannot set the edges: {e}"));
            }
        }
    }
    save(config, &state)?;
    Ok(report)
}

enum UpdateError {
    /// Out of request budget this minute: try at the next check.
    Deferred,
    Failed(ApiError),
}
use UpdateError::{Deferred, Failed};

async fn update(
    d: &Ddns,
    client: &ionos::Client,
    state: &mut State,
    family: Family,
    addr: IpAddr,
    now: u64,
    calls: &mut u32,
) -> Result<(), UpdateError> {
    let mut budget = |state: &mut State| state.spend(now, d.requests_per_minute, calls);
    if d.mode == crate::config::DdnsMode::Dyndns {
        let Some(url) = state.update_url.clone() else {
            return Err(Failed(ApiError::Other(
                "no update URL yet: run `streamedge ddns setup`".into(),
            )));
        };
        budget(state)?;
        return client.dyndns_update(&url).await.map_err(Failed);
    }
    let kind = family.record_type();
    for name in &d.domains {
        if !state.zone_ids.contains_key(name) {
            budget(state)?;
            let zones = client.zones().await.map_err(Failed)?;
            let zone = ionos::zone_for(&zones, name).ok_or_else(|| {
                Failed(ApiError::Other(format!("no IONOS zone holds \"{name}\"")))
            })?;
            state.zone_ids.insert(name.clone(), zone.id.clone());
        }
        let zone = state.zone_ids[name].clone();
        let key = format!("{name} {kind}");
        if !state.record_ids.contains_key(&key) {
            budget(state)?;
            let records = client.records(&zone, name, kind).await.map_err(Failed)?;
            if records
                .first()
                .is_some_and(|r| r.content == addr.to_string())
            {
                // The record has it already (DNS caches lag behind): nothing to send.
                continue;
            }
            state.record_ids.insert(
                key.clone(),
                records.first().map(|r| r.id.clone()).unwrap_or_default(),
            );
        }
        budget(state)?;
        let record = state.record_ids[&key].clone();
        let sent = match record.as_str() {
            "" => client
                .create_records(&zone, kind, &[(name, &addr.to_string())], d.ttl)
                .await
                .map(drop),
            id => client.update_record(&zone, id, addr, d.ttl).await,
        };
        // Whatever happened, look the record up afresh next time: it exists now, or the
        // cached ids were stale.
        state.record_ids.remove(&key);
        if sent.is_err() {
            state.zone_ids.remove(name);
        }
        sent.map_err(Failed)?;
    }
    Ok(())
}

/// `ddns status --json`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub mode: String,
    pub domains: Vec<String>,
    pub edge_domains: Vec<String>,
    pub edges: Vec<IpAddr>,
    pub ipv4: Option<FamilyStatus>,
    pub ipv6: Option<FamilyStatus>,
    pub last_check: Option<String>,
    pub next_check: Option<String>,
    pub last_result: Option<String>,
    pub error: Option<String>,
    pub failures: u32,
    pub history: Vec<Event>,
}

#[derive(Debug, Serialize)]
pub struct FamilyStatus {
    pub address: Option<IpAddr>,
    pub dns: Vec<String>,
    pub last_sent: Option<IpAddr>,
    pub sent_at: Option<String>,
}

pub fn status(config: &Config) -> Result<Status> {
    let d = settings(config)?;
    let s = load(config)?;
    let fam = |f: &FamilyState| FamilyStatus {
        address: f.current,
        dns: f.dns.clone(),
        last_sent: f.last_sent,
        sent_at: f.sent_at.map(rfc3339),
    };
    let error = s.auth_error.clone().or_else(|| {
        s.backoff_until
            .map(|u| format!("backing off until {}", rfc3339(u)))
    });
    Ok(Status {
        mode: d.mode.to_string(),
        domains: d.domains.clone(),
        edge_domains: d.edge_domains.clone(),
        edges: d.edges.clone(),
        ipv4: d.ipv4.then(|| fam(&s.v4)),
        ipv6: d.ipv6.then(|| fam(&s.v6)),
        last_check: s.last_check.map(rfc3339),
        next_check: s.next_check.map(rfc3339),
        last_result: s.last_result.clone(),
        error,
        failures: s.failures,
        history: s.history.iter().rev().take(20).cloned().collect(),
    })
}

/// The daemon's loop: a check every interval (or when a backoff ends).
pub async fn run_loop(config: Config) {
    loop {
        let wait = match check(&config, false).await {
            Ok(r) => {
                r.lines.iter().for_each(|l| tracing::info!("ddns: {l}"));
                config
                    .ddns
                    .as_ref()
                    .map(|d| d.interval)
                    .unwrap_or(Duration::from_secs(60))
            }
            Err(e) => {
                tracing::error!("ddns: {e:#}");
                Duration::from_secs(60)
            }
        };
        let next = load(&config)
            .ok()
            .and_then(|s| s.next_check)
            .map(|n| n.saturating_sub(secs(SystemTime::now())));
        tokio::time::sleep(
            next.map(Duration::from_secs)
                .unwrap_or(wait)
                .max(Duration::from_millis(100)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const COOL: Duration = Duration::from_secs(600);

    #[test]
    fn updates_only_when_dns_lacks_the_address_and_it_was_not_just_sent() {
        let a = ip("81.2.69.142");
        let b = ip("81.2.69.143");
        let none = FamilyState::default();
        assert_eq!(
            plan(a, &[vec![a], vec![a]], &none, 1000, COOL),
            Plan::UpToDate
        );
        assert_eq!(
            plan(a, &[vec![a], vec![b]], &none, 1000, COOL),
            Plan::Update
        );
        assert_eq!(plan(a, &[vec![a, b]], &none, 1000, COOL), Plan::Update);
        assert_eq!(plan(a, &[vec![]], &none, 1000, COOL), Plan::Update);
        let sent = FamilyState {
            last_sent: Some(a),
            sent_at: Some(1000),
            ..Default::default()
        };
        assert_eq!(plan(a, &[vec![b]], &sent, 1300, COOL), Plan::Propagating);
        // DNS never caught up: after the cooldown, send again.
        assert_eq!(plan(a, &[vec![b]], &sent, 1600, COOL), Plan::Update);
        // Another change during the cooldown is sent at once.
        assert_eq!(plan(b, &[vec![a]], &sent, 1100, COOL), Plan::Update);
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let mins: Vec<u64> = (1..10).map(|f| backoff(f).as_secs() / 60).collect();
        assert_eq!(mins, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn at_most_n_requests_in_any_minute() {
        let mut s = State::default();
        assert!(s.take_request(100, 2));
        assert!(s.take_request(110, 2));
        assert!(!s.take_request(150, 2));
        assert!(s.take_request(160, 2));
        assert!(!s.take_request(165, 2));
        assert!(s.take_request(171, 2));
    }

    #[test]
    fn history_is_bounded() {
        let mut s = State::default();
        for i in 0..250 {
            s.record(i, Family::V4, None, format!("r{i}"));
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history.last().unwrap().result, "r249");
    }
}
