//! `streamedge.toml`: the one file a user edits. Relative paths are relative to the file's
//! own folder, so a configuration folder can be moved as a whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use streamedge_formats::layout::Layout;

/// Where commands look for the configuration when neither `--config` nor
/// `STREAMEDGE_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/streamedge/streamedge.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The data directory shared with nginx (keys, HLS output, library, certificates).
    pub data_dir: PathBuf,
    /// The host name or address publishers and viewers use; shown in the OBS settings.
    pub public_host: String,
    #[serde(default)]
    pub ports: Ports,
    #[serde(default)]
    pub publish: Publish,
    #[serde(default)]
    pub acme: Acme,
    /// Dynamic DNS; absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddns: Option<Ddns>,
    #[serde(default)]
    pub live: Live,
    #[serde(default)]
    pub restream: Restream,
    #[serde(default)]
    pub fetch: Fetch,
    #[serde(default)]
    pub library: Library,
    /// This server is an edge: a cache in front of a home server; absent: it is the home
    /// server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<Edge>,
    /// The Telegram bot that fills the library from a phone; absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<Telegram>,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub nginx: Nginx,
}

/// The live pipeline: what the sidecar does with a stream while it is live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Live {
    /// An adaptive-bitrate ladder beside nginx-rtmp's source rendition.
    pub transcode: Switch,
    /// Length of a live HLS segment, nginx-rtmp's and the ladder's: segments start at the
    /// publisher's keyframes, so they are this short only when keyframes come this often.
    pub fragment: NginxTime,
    /// The encoded rungs' heights, top down; only those below the source's height are made.
    pub ladder: Vec<u32>,
    /// Other ladders for some stream names (`alice = [480]`); `[]` for none.
    pub ladders: std::collections::BTreeMap<String, Vec<u32>>,
    /// Record every live stream into the library ("on"), or only names with
    /// `keys record NAME on` ("off").
    pub record: Switch,
    /// A publisher back within this long continues the same recording.
    #[serde(with = "humantime_serde")]
    pub record_grace: Duration,
    /// Free space, MiB, below which recordings pause (with a log line): they never fill the
    /// disk.
    pub record_min_free_mb: u64,
    /// The loopback address nginx-rtmp pushes every live stream to, for the ladder to read
    /// from the publish on (no waiting for the first HLS fragment).
    pub feed: std::net::SocketAddr,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            transcode: Switch::On,
            fragment: NginxTime(Duration::from_secs(1)),
            ladder: vec![720, 480, 360],
            ladders: Default::default(),
            record: Switch::Off,
            record_grace: Duration::from_secs(60),
            record_min_free_mb: 2048,
            feed: std::net::SocketAddr::from(([127, 0, 0, 1], 1936)),
        }
    }
}

impl Live {
    /// The encoded rungs' heights for stream `name`.
    pub fn ladder_for(&self, name: &str) -> &[u32] {
        self.ladders.get(name).unwrap_or(&self.ladder)
    }

    fn check(&self) -> Result<()> {
        let f = self.fragment.0;
        if f < Duration::from_millis(500) || f > Duration::from_secs(10) {
            bail!(
                "live.fragment: \"{}\" is not from 500ms to 10s",
                self.fragment
            );
        }
        for (what, ladder) in std::iter::once(("live.ladder".to_string(), &self.ladder)).chain(
            self.ladders
                .iter()
                .map(|(name, l)| (format!("live.ladders.{name}"), l)),
        ) {
            if let Some(h) = ladder
                .iter()
                .find(|h| !(144..=2160).contains(*h) || *h % 2 == 1)
            {
                bail!("{what}: {h} is not an even height from 144 to 2160");
            }
            if ladder.len() > 4 {
                bail!("{what}: at most 4 rungs");
            }
        }
        for name in self.ladders.keys() {
            streamedge_formats::name::check_name(name.as_bytes())
                .map_err(|e| anyhow::anyhow!("live.ladders: \"{name}\": {e}"))?;
        }
        if !self.feed.ip().is_loopback() || self.feed.port() == 0 {
            bail!(
                "live.feed \"{}\" must be a loopback address and port, such as \"127.0.0.1:1936\"",
                self.feed
            );
        }
        Ok(())
    }
}

/// A feature that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// Fetch jobs: media from the web into the library.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fetch {
    /// Jobs that run at once; the others wait their turn.
    pub concurrency: usize,
    /// Allow URLs whose names resolve to this machine, its LAN or link-local addresses.
    pub allow_private_addresses: bool,
    /// Free space kept in the data directory, in MiB: new jobs are refused (507) below it,
    /// and a running job that would take the disk below it is stopped, so live output
    /// always has room.
    pub min_free_mb: u64,
    /// A URL that receives each job's final JSON (POST) when it ends; a job may name its own.
    pub webhook: Option<String>,
    /// The yt-dlp to run [default: the project's virtual environment, else PATH].
    pub ytdlp: Option<PathBuf>,
}

impl Default for Fetch {
    fn default() -> Self {
        Fetch {
            concurrency: 1,
            allow_private_addresses: false,
            min_free_mb: 1024,
            webhook: None,
            ytdlp: None,
        }
    }
}

/// The sidecar's control API, which nginx proxies at `/api/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// A loopback address and port.
    pub listen: String,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: "127.0.0.1:8089".into(),
        }
    }
}

/// Restreaming: each live stream out to its destinations (`streamedge restream`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Restream {
    /// A publisher back within this long finds its destinations still connected: meanwhile
    /// they get the slate.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The "be right back" picture (PNG or JPEG); none: a generated one.
    pub slate: Option<PathBuf>,
    /// PEM certificates to trust for `rtmps://` destinations beside the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for Restream {
    fn default() -> Self {
        Restream {
            grace: Duration::from_secs(30),
            slate: None,
            ca_file: None,
        }
    }
}

impl Restream {
    fn check(&self) -> Result<()> {
        if self.grace > Duration::from_secs(3600) {
            bail!(
                "restream.grace: \"{}\" is more than an hour",
                humantime::format_duration(self.grace)
            );
        }
        Ok(())
    }
}

/// Certificates from an ACME CA. No domains: no ACME, HTTPS keeps its placeholder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Acme {
    /// One certificate with all these names, stored under the first.
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// "letsencrypt", "letsencrypt-staging", or the directory URL of another CA.
    pub directory: String,
    /// A PEM root to trust for the CA's own HTTPS (private CAs).
    pub ca_root: Option<PathBuf>,
    /// How often to look at the certificate ("12h").
    #[serde(with = "humantime_serde")]
    pub renew_check: Duration,
    /// External account binding, for CAs that require it.
    pub eab_kid: Option<String>,
    pub eab_hmac_key: Option<String>,
    /// How the names are proved: files on port 80, TXT records at IONOS, or either.
    pub challenge: ChallengeMode,
    /// DNS servers asked for a zone's name servers and a name's address ("1.1.1.1:53");
    /// empty: the system's. A zone whose name servers cannot be found is watched here.
    pub nameservers: Vec<String>,
    /// How long DNS-01 waits for the zone's name servers to answer the TXT records.
    #[serde(with = "humantime_serde")]
    pub propagation_timeout: Duration,
    /// The port `auto`'s self-check asks on a domain: the CA's HTTP-01 port, 80.
    pub self_check_port: u16,
}

/// `acme.challenge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeMode {
    /// Files nginx serves on the HTTP port, which the router must map from 80.
    #[serde(rename = "http-01")]
    Http01,
    /// TXT records through the IONOS DNS API (the key of `[ddns]`): no port needed; wildcards.
    #[serde(rename = "dns-01")]
    Dns01,
    /// HTTP-01 when a request from outside reaches the challenge files, else DNS-01.
    #[serde(rename = "auto")]
    Auto,
}

impl std::fmt::Display for ChallengeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChallengeMode::Http01 => "http-01",
            ChallengeMode::Dns01 => "dns-01",
            ChallengeMode::Auto => "auto",
        })
    }
}

impl Default for Acme {
    fn default() -> Self {
        Acme {
            domains: Vec::new(),
            email: None,
            directory: "letsencrypt".into(),
            ca_root: None,
            renew_check: Duration::from_secs(12 * 3600),
            eab_kid: None,
            eab_hmac_key: None,
            challenge: ChallengeMode::Http01,
            nameservers: Vec::new(),
            propagation_timeout: Duration::from_secs(300),
            self_check_port: 80,
        }
    }
}

impl Acme {
    pub fn enabled(&self) -> bool {
        !self.domains.is_empty()
    }

    pub fn directory_url(&self) -> String {
        match self.directory.as_str() {
            "letsencrypt" => streamedge_acme::LETSENCRYPT.into(),
            "letsencrypt-staging" => streamedge_acme::LETSENCRYPT_STAGING.into(),
            url => url.into(),
        }
    }

    /// The EAB HMAC key as the CA gives it: URL-safe base64, padded or not.
    pub fn eab_hmac_key_bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let key = self.eab_hmac_key.as_deref()?.trim_end_matches('=');
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .ok()
    }

    /// Checks with the `[ddns]` section DNS-01 takes its IONOS key from.
    fn check(&self, ddns: Option<&Ddns>) -> Result<()> {
        for d in &self.domains {
            if d.starts_with("*.") && self.challenge == ChallengeMode::Http01 {
                bail!("acme.domains: \"{d}\" is a wildcard, which needs acme.challenge = \"dns-01\" or \"auto\" (HTTP-01 cannot issue wildcards)");
            }
            let name = d.strip_prefix("*.").unwrap_or(d);
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.contains('.')
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                });
            if !ok {
                bail!("acme.domains: \"{d}\" is not a domain name");
            }
        }
        let url = self.directory_url();
        if !url.starts_with("https://") {
            bail!("acme.directory \"{}\" must be \"letsencrypt\", \"letsencrypt-staging\" or an https:// URL", self.directory);
        }
        if self.renew_check.is_zero() {
            bail!("acme.renew_check must be longer than 0s");
        }
        if self.eab_kid.is_some() != self.eab_hmac_key.is_some() {
            bail!("acme.eab_kid and acme.eab_hmac_key go together");
        }
        if self.eab_hmac_key.is_some() && self.eab_hmac_key_bytes().is_none() {
            bail!("acme.eab_hmac_key is not URL-safe base64, as CAs give it");
        }
        check_nameservers("acme.nameservers", &self.nameservers)?;
        if self.challenge != ChallengeMode::Http01 && self.enabled() && ddns.is_none() {
            bail!(
                "acme.challenge \"{}\" puts TXT records through the IONOS DNS API: add a [ddns] section with its api_key or api_key_file",
                self.challenge
            );
        }
        if self.propagation_timeout.is_zero() {
            bail!("acme.propagation_timeout must be longer than 0s");
        }
        if self.self_check_port == 0 {
            bail!("acme.self_check_port must be between 1 and 65535");
        }
        Ok(())
    }
}

/// The DNS provider dynamic DNS talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DdnsProvider {
    Ionos,
}

/// How the provider is told: one DynDNS update URL (`streamedge ddns setup` first), or the
/// A/AAAA records through its DNS API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DdnsMode {
    Dyndns,
    Records,
}

impl std::fmt::Display for DdnsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ionos")
    }
}

impl std::fmt::Display for DdnsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DdnsMode::Dyndns => "dyndns",
            DdnsMode::Records => "records",
        })
    }
}

/// Dynamic DNS: keep `domains` pointing at this home's public address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ddns {
    pub provider: DdnsProvider,
    pub mode: DdnsMode,
    pub api_key: Option<String>,
    /// A file holding the API key (`prefix.secret`), better than the key in this file.
    pub api_key_file: Option<PathBuf>,
    pub api_base: String,
    pub domains: Vec<String>,
    /// Public names that point at the edges (`edges`), not at this home.
    pub edge_domains: Vec<String>,
    /// The edges' addresses, for `edge_domains`.
    pub edges: Vec<std::net::IpAddr>,
    pub ipv4: bool,
    pub ipv6: bool,
    pub ip_sources_v4: Vec<String>,
    pub ip_sources_v6: Vec<String>,
    /// DNS servers to ask ("1.1.1.1:53"); empty: the system's.
    pub nameservers: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// After an update, DNS gets this long to show it before the update counts as lost.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// IONOS's documented limit: requests a minute, whatever happens.
    pub requests_per_minute: u32,
    /// TTL of records created or updated in records mode.
    pub ttl: u32,
}

impl Default for Ddns {
    fn default() -> Self {
        Ddns {
            provider: DdnsProvider::Ionos,
            mode: DdnsMode::Dyndns,
            api_key: None,
            api_key_file: None,
            api_base: "https://api.hosting.ionos.com".into(),
            domains: Vec::new(),
            edge_domains: Vec::new(),
            edges: Vec::new(),
            ipv4: true,
            ipv6: false,
            ip_sources_v4: vec![
                "https://api.ipify.org".into(),
                "https://ipv4.icanhazip.com".into(),
                "https://v4.ident.me".into(),
            ],
            ip_sources_v6: vec![
                "https://api6.ipify.org".into(),
                "https://ipv6.icanhazip.com".into(),
                "https://v6.ident.me".into(),
            ],
            nameservers: Vec::new(),
            interval: Duration::from_secs(60),
            cooldown: Duration::from_secs(600),
            requests_per_minute: 2,
            ttl: 60,
        }
    }
}

impl Ddns {
    /// The API key, from the file if one is named.
    pub fn key(&self) -> Result<String> {
        match (&self.api_key_file, &self.api_key) {
            (Some(f), _) => Ok(std::fs::read_to_string(f)
                .with_context(|| format!("cannot read ddns.api_key_file {}", f.display()))?
                .trim()
                .to_string()),
            (None, Some(k)) => Ok(k.clone()),
            (None, None) => bail!("ddns needs api_key or api_key_file"),
        }
    }

    /// Whether there are names to keep pointing here: a `[ddns]` without may only lend its
    /// key to DNS-01 certificates.
    pub fn updates(&self) -> bool {
        !self.domains.is_empty() || !self.edge_domains.is_empty()
    }

    fn check(&self, key_only: bool) -> Result<()> {
        if !self.updates() && !key_only {
            bail!(
                "ddns.domains is empty (a [ddns] with only its key is for acme.challenge = \"dns-01\" or \"auto\")"
            );
        }
        if self.edge_domains.is_empty() != self.edges.is_empty() {
            bail!("ddns.edge_domains and ddns.edges go together: the names, and the edges' addresses they point at");
        }
        if !self.edges.is_empty() && self.mode != DdnsMode::Records {
            bail!("ddns.edges needs mode = \"records\" (a DynDNS update URL can only say this home's address)");
        }
        if let Some(n) = self.edge_domains.iter().find(|n| self.domains.contains(n)) {
            bail!("ddns: \"{n}\" is in both domains (this home) and edge_domains (the edges); the origin keeps a name of its own");
        }
        if let Some(a) = self
            .edges
            .iter()
            .find(|a| a.is_unspecified() || a.is_multicast())
        {
            bail!("ddns.edges: {a} is not an edge's address");
        }
        if !self.ipv4 && !self.ipv6 {
            bail!("ddns: at least one of ipv4 and ipv6 must be on");
        }
        if self.interval.is_zero() {
            bail!("ddns.interval must be longer than 0s");
        }
        check_nameservers("ddns.nameservers", &self.nameservers)?;
        if self.api_key.is_none() && self.api_key_file.is_none() {
            bail!("ddns needs api_key or api_key_file");
        }
        if self.requests_per_minute == 0 {
            bail!("ddns.requests_per_minute must be at least 1");
        }
        Ok(())
    }
}

/// The text of secret file `f` (option `option`), refused when others may read it.
fn read_private_file(option: &str, f: &Path) -> Result<String> {
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("cannot read {option} {}", f.display()))?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(f)?.permissions());
    if mode & 0o077 != 0 {
        bail!(
            "{option} {} may be read by others (mode {:o}): chmod 600 {0}",
            f.display(),
            mode & 0o777
        );
    }
    Ok(text)
}

/// A path nginx.conf names (option `option`): nothing in it may end or begin a directive.
fn check_nginx_path(option: &str, p: &Path) -> Result<()> {
    let unsafe_char = |c: char| c.is_whitespace() || "\";{}'\\$#".contains(c);
    if p.to_str().is_none_or(|t| t.contains(unsafe_char)) {
        bail!(
            "{option} {}: nginx reads this path; it must hold no spaces, quotes, ';', '{{', '}}', '$' or '#'",
            p.display()
        );
    }
    Ok(())
}

/// Where the library's items are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Library {
    /// "local": in `DATA/vod`; "s3": uploaded to an S3-compatible bucket once complete, and
    /// served from there (only each item's `meta.json` stays on this disk).
    pub storage: Storage,
    /// The store's URL: `http://127.0.0.1:3900` (Garage), `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// A file (mode 0600) with the access key, in the AWS credentials form.
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Local,
    S3,
}

impl Default for Library {
    fn default() -> Self {
        Library {
            storage: Storage::Local,
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            credentials_file: None,
        }
    }
}

/// The bucket's address and key, checked.
#[derive(Debug, Clone)]
pub struct BucketAccess {
    pub endpoint: url::Url,
    pub region: String,
    pub bucket: String,
    pub credentials_file: PathBuf,
    pub credentials: streamedge_formats::bucket::Credentials,
}

impl BucketAccess {
    /// `host:port`, for nginx's upstream.
    pub fn address(&self) -> String {
        let host = self.endpoint.host_str().unwrap_or_default();
        let port = self.endpoint.port_or_known_default().unwrap_or(443);
        format!("{host}:{port}")
    }
}

impl Library {
    /// The bucket, when the library is in one.
    pub fn bucket(&self) -> Result<Option<BucketAccess>> {
        if self.storage == Storage::Local {
            return Ok(None);
        }
        let endpoint = url::Url::parse(&self.endpoint).map_err(|_| {
            anyhow::anyhow!(
                "library.endpoint \"{}\" is not a URL such as \"http://127.0.0.1:3900\"",
                self.endpoint
            )
        })?;
        if !matches!(endpoint.scheme(), "http" | "https")
            || endpoint.path() != "/"
            || endpoint.query().is_some()
            || !endpoint.username().is_empty()
            || endpoint.host_str().is_none()
        {
            bail!(
                "library.endpoint \"{}\" must be http:// or https:// and a host and port alone",
                self.endpoint
            );
        }
        // S3's rules for bucket names, so that a path-style URL holds it as it is.
        let b = self.bucket.as_bytes();
        let bucket_ok = (3..=63).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric();
        if !bucket_ok {
            bail!(
                "library.bucket \"{}\" is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)",
                self.bucket
            );
        }
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 64
            && self
                .region
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
        if !region_ok {
            bail!("library.region \"{}\" is not a region name", self.region);
        }
        let Some(f) = &self.credentials_file else {
            bail!("library.credentials_file is not set: a file (mode 0600) with the bucket's key");
        };
        check_nginx_path("library.credentials_file", f)?;
        let text = read_private_file("library.credentials_file", f)?;
        let credentials = streamedge_formats::bucket::Credentials::parse(&text)
            .map_err(|e| anyhow::anyhow!("library.credentials_file {}: {e}", f.display()))?;
        Ok(Some(BucketAccess {
            endpoint,
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            credentials_file: f.clone(),
            credentials,
        }))
    }
}

/// An edge: stock nginx with the module caching HLS in front of the origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Edge {
    /// The home server: `https://home.example.org` (or `http://ADDRESS:PORT` on a LAN).
    pub origin: String,
    /// The most the cache holds, MiB.
    pub cache_max_mb: u64,
    /// Other edges are in front of this one (their `edge.origin` is this server): they are
    /// answered private content when they show their credential, so the home uplink carries
    /// each segment once, to this edge alone.
    pub shield: bool,
    /// A PEM file of the CAs to trust for the origin's HTTPS; unset: the system's.
    pub origin_ca: Option<PathBuf>,
    /// DNS servers asked for the origin's addresses ("1.1.1.1:53"); empty: the system's.
    pub nameservers: Vec<String>,
    /// How often the origin's name is looked up again; nginx is reloaded when the home's
    /// address changes.
    #[serde(with = "humantime_serde")]
    pub resolve_every: Duration,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            origin: String::new(),
            cache_max_mb: 2048,
            shield: false,
            origin_ca: None,
            nameservers: Vec::new(),
            resolve_every: Duration::from_secs(30),
        }
    }
}

impl Edge {
    /// The origin's scheme, `host:port`, host name, and `Host` header.
    pub fn origin_parts(&self) -> Result<(String, String, String, String)> {
        let u = url::Url::parse(&self.origin)
            .with_context(|| format!("edge.origin \"{}\" is not a URL", self.origin))?;
        if !matches!(u.scheme(), "http" | "https") || u.path() != "/" || u.query().is_some() {
            bail!(
                "edge.origin \"{}\" must be http:// or https:// and a host alone (https://home.example.org)",
                self.origin
            );
        }
        if !u.username().is_empty() || u.password().is_some() {
            bail!(
                "edge.origin \"{}\" must not hold a user or password",
                self.origin
            );
        }
        let host = u
            .host_str()
            .with_context(|| format!("edge.origin \"{}\" has no host", self.origin))?;
        // The edge credential opens every private stream: never in clear over the internet.
        let nearby = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| match ip {
                std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
                std::net::IpAddr::V6(v6) => {
                    v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00
                }
            });
        if u.scheme() == "http" && !nearby {
            bail!(
                "edge.origin \"{}\": http:// would send the edge's credential in clear; use https:// (http:// is for a loopback or LAN address)",
                self.origin
            );
        }
        let port = u.port_or_known_default().unwrap_or(443);
        let address = if host.contains(':') || host.starts_with('[') {
            format!(
                "{}:{port}",
                if host.starts_with('[') {
                    host.to_string()
                } else {
                    format!("[{host}]")
                }
            )
        } else {
            format!("{host}:{port}")
        };
        let name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok((u.scheme().to_string(), address, name, authority))
    }

    /// The origin's host name, when it is a name rather than an address: looked up by the
    /// sidecar, again every `resolve_every`.
    pub fn origin_name(&self) -> Option<String> {
        let (_, _, name, _) = self.origin_parts().ok()?;
        name.parse::<std::net::IpAddr>().is_err().then_some(name)
    }

    fn check(&self) -> Result<()> {
        self.origin_parts()?;
        if self.cache_max_mb < 64 {
            bail!("edge.cache_max_mb must be at least 64");
        }
        if self.resolve_every < Duration::from_secs(1) {
            bail!("edge.resolve_every must be at least 1s");
        }
        if let Some(ns) = self.nameservers.iter().find(|ns| {
            ns.parse::<std::net::SocketAddr>().is_err() && ns.parse::<std::net::IpAddr>().is_err()
        }) {
            bail!("edge.nameservers: \"{ns}\" is not a DNS server address (\"1.1.1.1:53\")");
        }
        if let Some(ca) = &self.origin_ca {
            check_nginx_path("edge.origin_ca", ca)?;
            if !ca.is_file() {
                bail!("edge.origin_ca {}: no such file", ca.display());
            }
        }
        Ok(())
    }
}

/// How long a signed link works unless asked otherwise (`streamedge sign --ttl`'s default).
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(3600);

/// The Telegram bot: `/dv URL` and `/da URL` from a phone become fetch jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telegram {
    /// A file (mode 0600) holding the token @BotFather gave.
    pub token_file: Option<PathBuf>,
    /// Telegram user ids that may use the bot; everyone else is refused.
    pub allow: Vec<u64>,
    /// The Bot API's address.
    pub api_base: String,
    /// How long one `getUpdates` waits for a message (long polling).
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// A job's progress message is edited at most this often.
    #[serde(with = "humantime_serde")]
    pub progress_every: Duration,
    /// How long the links the bot hands out for private items and streams work.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
}

impl Default for Telegram {
    fn default() -> Self {
        Telegram {
            token_file: None,
            allow: Vec::new(),
            api_base: "https://api.telegram.org".into(),
            poll_timeout: Duration::from_secs(30),
            progress_every: Duration::from_secs(3),
            link_ttl: DEFAULT_LINK_TTL,
        }
    }
}

impl Telegram {
    /// The bot token, from its file.
    pub fn token(&self) -> Result<String> {
        let Some(f) = &self.token_file else {
            bail!("telegram.token_file is not set");
        };
        let token = read_private_file("telegram.token_file", f)?;
        let token = token.trim();
        // "123456:ABC-DEF…": it becomes part of every request's path.
        let valid = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|c| c.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
        if !valid {
            bail!(
                "telegram.token_file {} does not hold a bot token (\"123456:ABC-DEF…\", as @BotFather gives it)",
                f.display()
            );
        }
        Ok(token.to_string())
    }

    fn check(&self) -> Result<()> {
        if self.token_file.is_none() {
            bail!("telegram.token_file is not set: a file (mode 0600) with the bot's token");
        }
        if self.allow.is_empty() {
            bail!(
                "telegram.allow is empty: add your Telegram user id (the bot tells it to \
                 anyone it refuses)"
            );
        }
        if !self.api_base.starts_with("http://") && !self.api_base.starts_with("https://") {
            bail!(
                "telegram.api_base \"{}\" must be an http:// or https:// URL",
                self.api_base
            );
        }
        if self.poll_timeout.is_zero() || self.poll_timeout > Duration::from_secs(600) {
            bail!("telegram.poll_timeout must be between 1s and 10m");
        }
        if self.progress_every < Duration::from_secs(1) {
            bail!("telegram.progress_every must be at least 1s (the Bot API's pace for a chat)");
        }
        if self.link_ttl.is_zero() {
            bail!("telegram.link_ttl must be longer than 0s");
        }
        Ok(())
    }
}

/// DNS servers as "1.1.1.1:53" or "1.1.1.1".
fn check_nameservers(key: &str, list: &[String]) -> Result<()> {
    for ns in list {
        if ns.parse::<std::net::SocketAddr>().is_err() && ns.parse::<std::net::IpAddr>().is_err() {
            bail!("{key}: \"{ns}\" is not an address");
        }
    }
    Ok(())
}

/// How publishers are checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Publish {
    /// Failed publish attempts from one address that ban it; 0 turns bans off.
    pub ban_attempts: u32,
    /// Within how long those attempts count.
    pub ban_window: NginxTime,
    /// How long a ban lasts.
    pub ban_time: NginxTime,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            ban_attempts: 5,
            ban_window: NginxTime(Duration::from_secs(600)),
            ban_time: NginxTime(Duration::from_secs(900)),
        }
    }
}

impl Publish {
    /// The ban parameters of the publishers' `streamedge_limit_zone`, with a leading space.
    pub fn ban_parameters(&self) -> String {
        match self.ban_attempts {
            0 => String::new(),
            n => format!(
                " ban_after={n} ban_window={} ban_time={}",
                self.ban_window, self.ban_time
            ),
        }
    }
}

/// A path nginx.conf can hold as one plain argument: no space, quote, `;`, brace, `$`
/// (a variable), `#` (a comment), backslash or control character.
fn nginx_path(key: &str, path: &Path) -> Result<()> {
    let text = path
        .to_str()
        .with_context(|| format!("{key} is not UTF-8"))?;
    if let Some(c) = text.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, ';' | '{' | '}' | '"' | '\'' | '$' | '#' | '\\')
    }) {
        bail!(
            "{key} \"{}\" contains {c:?}, which nginx.conf cannot hold in a path",
            text.escape_debug()
        );
    }
    Ok(())
}

/// A time as nginx writes it ("30s", "10m", "1h30m", "500ms"): read from the file as nginx
/// reads it, longer than zero, and written into nginx.conf in the same syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NginxTime(pub Duration);

impl NginxTime {
    /// Digits with a unit, possibly several; nginx's units (a month is 30 days, a year 365).
    pub fn parse(s: &str) -> Option<NginxTime> {
        const UNITS: [(&str, u64); 8] = [
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("M", 2_592_000_000),
            ("y", 31_536_000_000),
        ];
        let mut rest = s;
        let mut ms: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let (number, after) = rest.split_at(digits);
            let (unit, scale) = UNITS.iter().find(|(u, _)| after.starts_with(u))?;
            let n: u64 = number.parse().ok()?;
            ms = ms.checked_add(n.checked_mul(*scale)?)?;
            rest = &after[unit.len()..];
        }
        // nginx keeps times in a signed machine word of milliseconds.
        (ms > 0 && ms <= i64::MAX as u64).then(|| NginxTime(Duration::from_millis(ms)))
    }
}

impl std::fmt::Display for NginxTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let mut secs = ms / 1000;
        let mut any = false;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
                any = true;
            }
        }
        if !any {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl Serialize for NginxTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NginxTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        NginxTime::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "\"{}\" is not a time such as \"30s\", \"10m\" or \"1h30m\"",
                text.escape_debug()
            ))
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ports {
    /// Address nginx listens on for all three ports.
    pub bind: String,
    pub http: u16,
    pub https: u16,
    pub rtmp: u16,
    /// Icecast source clients (Mixxx, butt, liquidsoap, ffmpeg's `icecast://`): audio
    /// published with a stream key as the password; 0: off. The sidecar listens here.
    pub icecast: u16,
    /// The loopback-only port of this machine's own requests to nginx (nginx-rtmp's
    /// callbacks, the sidecar's checks, stub_status), always on 127.0.0.1.
    pub internal: u16,
    /// The HTTPS port as the internet sees it, when the router maps another one to `https`
    /// (443 → 4433): used in redirects and printed links. Default: `https`.
    pub public_https: Option<u16>,
    /// Send plain-HTTP visitors to HTTPS (except ACME challenges) once a domain has a
    /// certificate from a CA (`acme.domains`); without one the certificate is only a
    /// placeholder browsers warn about, so plain HTTP keeps serving.
    pub redirect_to_https: bool,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            bind: "0.0.0.0".into(),
            http: 8080,
            https: 4433,
            rtmp: 1935,
            icecast: 8000,
            internal: 8088,
            public_https: None,
            redirect_to_https: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nginx {
    /// Start nginx from `streamedge run` and keep it running.
    pub supervise: bool,
    pub binary: PathBuf,
    /// nginx's prefix (`-p`): logs, pid file and temporary files live here.
    pub prefix: PathBuf,
    /// The nginx configuration streamedge renders (`-c`).
    pub conf: PathBuf,
    /// The built streamedge module.
    pub module: PathBuf,
    pub rtmp_module: PathBuf,
    /// The web player's files (index.html, app.js, hls.min.js).
    pub web_root: PathBuf,
    /// The user nginx workers run as when nginx is started as root.
    pub user: Option<String>,
    pub worker_processes: String,
}

impl Default for Nginx {
    fn default() -> Self {
        Nginx {
            supervise: true,
            binary: "/usr/sbin/nginx".into(),
            prefix: ".".into(),
            conf: "nginx.conf".into(),
            module: "/usr/lib/nginx/modules/ngx_http_streamedge_module.so".into(),
            rtmp_module: "/usr/lib/nginx/modules/ngx_rtmp_module.so".into(),
            web_root: "/usr/share/streamedge/web".into(),
            user: None,
            worker_processes: "auto".into(),
        }
    }
}

impl Config {
    /// Reads and checks a configuration file, resolving relative paths against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| 1 + text[..s.start].matches('\n').count())
                .map(|l| format!(" line {l}:"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "invalid configuration {}:{line} {}",
                path.display(),
                e.message()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        config.resolve(&base);
        config
            .check()
            .with_context(|| format!("invalid configuration {}", path.display()))?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        for p in [
            &mut self.data_dir,
            &mut self.nginx.prefix,
            &mut self.nginx.conf,
            &mut self.nginx.module,
            &mut self.nginx.rtmp_module,
            &mut self.nginx.web_root,
            &mut self.nginx.binary,
        ]
        .into_iter()
        .chain(self.acme.ca_root.as_mut())
        .chain(self.restream.slate.as_mut())
        .chain(self.restream.ca_file.as_mut())
        .chain(self.fetch.ytdlp.as_mut())
        .chain(self.ddns.as_mut().and_then(|d| d.api_key_file.as_mut()))
        .chain(self.telegram.as_mut().and_then(|t| t.token_file.as_mut()))
        .chain(self.library.credentials_file.as_mut())
        .chain(self.edge.as_mut().and_then(|e| e.origin_ca.as_mut()))
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    fn check(&self) -> Result<()> {
        let p = &self.ports;
        if p.http == 0 || p.https == 0 || p.rtmp == 0 || p.internal == 0 {
            bail!("ports must be between 1 and 65535");
        }
        let all = [p.http, p.https, p.rtmp, p.internal];
        if (1..all.len()).any(|i| all[..i].contains(&all[i])) {
            bail!("the http, https, rtmp and internal ports must differ");
        }
        if p.icecast != 0 && all.contains(&p.icecast) {
            bail!("ports.icecast must differ from the http, https, rtmp and internal ports");
        }
        if p.bind.parse::<std::net::IpAddr>().is_err() {
            bail!("ports.bind \"{}\" is not an IP address", p.bind);
        }
        match self.api.listen.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => {}
            _ => bail!(
                "api.listen \"{}\" must be a loopback address and port, such as \"127.0.0.1:8089\"",
                self.api.listen
            ),
        }
        self.live.check()?;
        self.restream.check()?;
        let feed = self.live.feed.port();
        if all.contains(&feed)
            || self
                .api
                .listen
                .parse::<std::net::SocketAddr>()
                .map(|a| a.port())
                == Ok(feed)
        {
            bail!("live.feed's port {feed} is also a port of nginx's or of api.listen");
        }
        if self.fetch.concurrency == 0 {
            bail!("fetch.concurrency must be at least 1");
        }
        if let Some(w) = &self.fetch.webhook {
            if !w.starts_with("http://") && !w.starts_with("https://") {
                bail!("fetch.webhook \"{w}\" must be an http:// or https:// URL");
            }
        }
        self.acme.check(self.ddns.as_ref())?;
        if let Some(d) = &self.ddns {
            d.check(self.acme.enabled() && self.acme.challenge != ChallengeMode::Http01)?;
        }
        if let Some(t) = &self.telegram {
            t.check()?;
        }
        self.library.bucket()?;
        if let Some(e) = &self.edge {
            e.check()?;
        }
        self.check_nginx_values()?;
        if self.public_host.is_empty() || self.public_host.contains(['/', ' ', '?', '#']) {
            bail!(
                "public_host \"{}\" is not a host name or address",
                self.public_host
            );
        }
        Ok(())
    }

    /// Values that end up in nginx.conf are checked by their type, so none can end a
    /// directive or start another (`worker_processes = "1; error_log /tmp/x debug"`).
    fn check_nginx_values(&self) -> Result<()> {
        let w = &self.nginx.worker_processes;
        let workers_ok = w == "auto"
            || (w.bytes().all(|c| c.is_ascii_digit())
                && !w.starts_with('0')
                && w.parse::<u16>().is_ok_and(|n| (1..=1024).contains(&n)));
        if !workers_ok {
            bail!("nginx.worker_processes \"{w}\" must be \"auto\" or a number from 1 to 1024");
        }
        if let Some(u) = &self.nginx.user {
            let ok = !u.is_empty()
                && u.len() <= 32
                && !u.starts_with('-')
                && u.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
            if !ok {
                bail!("nginx.user \"{u}\" is not a user name");
            }
        }
        let paths = [
            ("data_dir", &self.data_dir),
            ("nginx.prefix", &self.nginx.prefix),
            ("nginx.conf", &self.nginx.conf),
            ("nginx.module", &self.nginx.module),
            ("nginx.rtmp_module", &self.nginx.rtmp_module),
            ("nginx.web_root", &self.nginx.web_root),
        ];
        for (key, path) in paths {
            nginx_path(key, path)?;
        }
        Ok(())
    }

    /// Every path in the data directory.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.data_dir)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.nginx.prefix.join("nginx.pid")
    }

    /// nginx's loopback-only server, for the sidecar's own requests.
    pub fn internal_http(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.internal)
    }

    /// nginx's listening address as this machine reaches it, for URLs.
    fn local_host(&self) -> String {
        match self.ports.bind.as_str() {
            "0.0.0.0" => "127.0.0.1".to_string(),
            "::" => "[::1]".to_string(),
            b if b.contains(':') => format!("[{b}]"),
            b => b.to_string(),
        }
    }

    /// The web player's plain-HTTP address from this machine.
    pub fn local_http(&self) -> String {
        format!("http://{}:{}", self.local_host(), self.ports.http)
    }

    /// Where this machine's own publishers (relays) publish: the RTMP application.
    pub fn local_rtmp(&self) -> String {
        format!("rtmp://{}:{}/live", self.local_host(), self.ports.rtmp)
    }

    /// What OBS calls "Server".
    pub fn rtmp_url(&self) -> String {
        format!(
            "rtmp://{}:{}/live",
            host_for_url(&self.public_host),
            self.ports.rtmp
        )
    }

    /// Where viewers open the player and its links, in the one form every printed link
    /// uses: HTTPS once a domain has a certificate from a CA; before that plain HTTP, which
    /// opens as printed (in a browser, VLC and GStreamer alike) where the self-signed
    /// placeholder would be refused or warned about.
    pub fn watch_url(&self) -> String {
        if self.acme.enabled() {
            self.https_url()
        } else {
            self.http_url()
        }
    }

    /// Where a viewer reaches the web server over HTTPS.
    pub fn https_url(&self) -> String {
        let host = host_for_url(&self.public_host);
        match self.ports.public_https.unwrap_or(self.ports.https) {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }

    pub fn http_url(&self) -> String {
        format!(
            "http://{}:{}",
            host_for_url(&self.public_host),
            self.ports.http
        )
    }
}

/// Brackets an IPv6 address for use in a URL.
fn host_for_url(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The configuration path a command uses: `--config`, then `STREAMEDGE_CONFIG`, then the
/// standard location. A folder means the `streamedge.toml` inside it.
pub fn path(arg: Option<PathBuf>) -> PathBuf {
    let p = arg
        .or_else(|| std::env::var_os("STREAMEDGE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    if p.is_dir() {
        p.join("streamedge.toml")
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("streamedge.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "data_dir = \"data\"\npublic_host = \"example.org\"\n",
        );
        let c = Config::load(&p).unwrap();
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.nginx.conf, dir.path().join("nginx.conf"));
        assert_eq!(c.rtmp_url(), "rtmp://example.org:1935/live");
        assert_eq!(c.layout().keys_file(), dir.path().join("data/keys.toml"));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "data_dir = \"d\"\npublic_host = \"h\"\n[ports]\nhttp = \"x\"\n",
        );
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("streamedge.toml: line 4:"), "{e}");
        let p = write(
            dir.path(),
            "data_dir = \"d\"\npublic_host = \"h\"\n[ports]\nhttp = 5\nrtmp = 5\n",
        );
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("must differ"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(&dir.path().join("missing.toml")).unwrap_err()
        );
        assert!(e.starts_with("cannot read configuration"), "{e}");
    }

    #[test]
    fn nginx_times() {
        for (text, written) in [
            ("10m", "10m"),
            ("1h30m", "1h30m"),
            ("90m", "1h30m"),
            ("500ms", "500ms"),
            ("3s", "3s"),
            ("1d", "1d"),
            ("1w", "7d"),
            ("1s500ms", "1500ms"),
        ] {
            let t = NginxTime::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(t.to_string(), written);
            assert_eq!(NginxTime::parse(written), Some(t));
        }
        for bad in [
            "",
            "10",
            "m",
            "10 m",
            "10x",
            "-1s",
            "1.5h",
            "0s",
            "99999999999999y",
        ] {
            assert_eq!(NginxTime::parse(bad), None, "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("streamedge.toml");
        std::fs::write(
            &p,
            "data_dir = \"d\"\npublic_host = \"h\"\n[publish]\nban_time = \"10 m\"\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(
            e.contains("line 4") && e.contains("\"10 m\" is not a time"),
            "{e}"
        );
    }

    #[test]
    fn values_rendered_into_nginx_conf_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for (extra, want) in [
            (
                "[nginx]\nworker_processes = \"1; error_log /tmp/x debug\"\n",
                "nginx.worker_processes \"1; error_log /tmp/x debug\" must be",
            ),
            (
                "[nginx]\nworker_processes = \"0\"\n",
                "must be \"auto\" or a number",
            ),
            (
                "[nginx]\nworker_processes = \"+2\"\n",
                "must be \"auto\" or a number",
            ),
            ("[nginx]\nuser = \"www-data; daemon on\"\n", "nginx.user"),
            (
                "[nginx]\nprefix = \"/tmp/x;\\nuser root\"\n",
                "nginx.prefix",
            ),
            ("[nginx]\nweb_root = \"/srv/$host\"\n", "contains '$'"),
            ("[nginx]\nmodule = \"/a b.so\"\n", "contains ' '"),
            ("[ports]\ninternal = 8080\n", "ports must differ"),
            (
                "[live]\nfeed = \"0.0.0.0:1936\"\n",
                "must be a loopback address",
            ),
            (
                "[live]\nfeed = \"127.0.0.1:1935\"\n",
                "also a port of nginx's",
            ),
            ("[live]\nfeed = \"1936\"\n", "invalid socket address"),
            (
                "[acme]\ndomains = [\"*.example.org\"]\n",
                "\"*.example.org\" is a wildcard, which needs acme.challenge = \"dns-01\" or \"auto\"",
            ),
            (
                "[acme]\ndomains = [\"a.*.example.org\"]\nchallenge = \"dns-01\"\n",
                "\"a.*.example.org\" is not a domain name",
            ),
            (
                "[acme]\ndomains = [\"example.org\"]\nchallenge = \"dns-01\"\n",
                "acme.challenge \"dns-01\" puts TXT records through the IONOS DNS API: add a [ddns] section",
            ),
            (
                "[acme]\nchallenge = \"dns01\"\n",
                "unknown variant `dns01`, expected one of `http-01`, `dns-01`, `auto`",
            ),
            (
                "[acme]\nnameservers = [\"ns1.example.org\"]\n",
                "acme.nameservers: \"ns1.example.org\" is not an address",
            ),
        ] {
            let p = write(
                dir.path(),
                &format!("data_dir = \"d\"\npublic_host = \"h\"\n{extra}"),
            );
            let e = format!("{:#}", Config::load(&p).unwrap_err());
            assert!(e.contains(want), "{extra}: {e}");
        }
        let p = write(
            dir.path(),
            "data_dir = \"d{x}\"\npublic_host = \"h\"\n"
                .replace("{x}", ";")
                .as_str(),
        );
        assert!(format!("{:#}", Config::load(&p).unwrap_err()).contains("data_dir"));
        let p = write(
            dir.path(),
            "data_dir = \"d\"\npublic_host = \"h\"\n[nginx]\nworker_processes = \"4\"\n",
        );
        assert!(Config::load(&p).is_ok());
        let p = write(
            dir.path(),
            "data_dir = \"d\"\npublic_host = \"h\"\n[acme]\ndomains = [\"*.example.org\", \"example.org\"]\nchallenge = \"auto\"\n[ddns]\napi_key = \"p.s\"\ndomains = [\"example.org\"]\n",
        );
        assert_eq!(
            Config::load(&p).unwrap().acme.challenge,
            ChallengeMode::Auto
        );
        // A [ddns] that only lends its key to DNS-01: fine; for nothing at all: an error.
        let key_only = "data_dir = \"d\"\npublic_host = \"h\"\n[acme]\ndomains = [\"example.org\"]\nchallenge = \"dns-01\"\n[ddns]\napi_key = \"p.s\"\n";
        let c = Config::load(&write(dir.path(), key_only)).unwrap();
        assert!(!c.ddns.unwrap().updates());
        let p = write(
            dir.path(),
            &key_only.replace("challenge = \"dns-01\"\n", ""),
        );
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("ddns.domains is empty"), "{e}");
    }

    #[test]
    fn edge_names_need_records_mode_and_a_name_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let base = "data_dir = \"d\"\npublic_host = \"h\"\n[ddns]\napi_key = \"p.s\"\nmode = \"records\"\ndomains = [\"home.example.org\"]\nedge_domains = [\"tv.example.org\"]\nedges = [\"203.0.113.7\", \"2001:db8::7\"]\n";
        let c = Config::load(&write(dir.path(), base)).unwrap();
        assert_eq!(c.ddns.unwrap().edges.len(), 2);
        for (text, why) in [
            (
                base.replace("mode = \"records\"\n", ""),
                "needs mode = \"records\"",
            ),
            (
                base.replace("home.example", "tv.example"),
                "in both domains",
            ),
            (
                base.replace("203.0.113.7", "no-address"),
                "line 8: invalid IP address",
            ),
            (
                base.replace("edge_domains = [\"tv.example.org\"]\n", ""),
                "go together",
            ),
        ] {
            let e = format!("{:#}", Config::load(&write(dir.path(), &text)).unwrap_err());
            assert!(e.contains(why), "{e}");
        }
        // Only edge names: a home with a fixed address of its own.
        let only = base.replace("domains = [\"home.example.org\"]\n", "");
        assert!(Config::load(&write(dir.path(), &only))
            .unwrap()
            .ddns
            .unwrap()
            .updates());
    }

    #[test]
    fn urls_bracket_ipv6() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "data_dir = \"d\"\npublic_host = \"::1\"\n[ports]\nbind = \"::1\"\nhttp = 81\n",
        );
        let c = Config::load(&p).unwrap();
        assert_eq!(c.rtmp_url(), "rtmp://[::1]:1935/live");
        assert_eq!(c.local_http(), "http://[::1]:81");
    }

    #[test]
    fn a_bucket_is_checked_before_anything_uses_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3.credentials");
        std::fs::write(
            &file,
            "aws_access_key_id = GK1\naws_secret_access_key = s3cr3t\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let good = Library {
            storage: Storage::S3,
            endpoint: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
            bucket: "my-library".into(),
            credentials_file: Some(file.clone()),
        };
        let b = good.bucket().unwrap().unwrap();
        assert_eq!(b.address(), "127.0.0.1:3900");
        assert_eq!(b.credentials.access_key_id, "GK1");
        assert!(Library::default().bucket().unwrap().is_none());
        let error = |l: Library| format!("{:#}", l.bucket().unwrap_err());
        for (l, says) in [
            (
                Library {
                    endpoint: "127.0.0.1:3900".into(),
                    ..good.clone()
                },
                "library.endpoint",
            ),
            (
                Library {
                    endpoint: "http://h/x".into(),
                    ..good.clone()
                },
                "a host and port alone",
            ),
            (
                Library {
                    bucket: "My_Bucket".into(),
                    ..good.clone()
                },
                "library.bucket",
            ),
            (
                Library {
                    bucket: "ab".into(),
                    ..good.clone()
                },
                "library.bucket",
            ),
            (
                Library {
                    region: "a b".into(),
                    ..good.clone()
                },
                "library.region",
            ),
            (
                Library {
                    credentials_file: None,
                    ..good.clone()
                },
                "credentials_file is not set",
            ),
            (
                Library {
                    credentials_file: Some(dir.path().join("none")),
                    ..good.clone()
                },
                "cannot read library.credentials_file",
            ),
        ] {
            let e = error(l);
            assert!(e.contains(says), "{says}: {e}");
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(error(good.clone()).contains("may be read by others (mode 644)"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&file, "aws_access_key_id = GK1\n").unwrap();
        let e = error(good.clone());
        assert!(e.contains("no aws_secret_access_key"), "{e}");
        let spaced = dir.path().join("my s3.credentials");
        std::fs::copy(&file, &spaced).unwrap();
        let e = error(Library {
            credentials_file: Some(spaced),
            ..good
        });
        assert!(e.contains("nginx reads this path"), "{e}");
    }

    #[test]
    fn the_bot_token_is_read_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bot.token");
        let t = Telegram {
            token_file: Some(file.clone()),
            allow: vec![1],
            ..Default::default()
        };
        let write = |text: &str, mode: u32| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("123456:ABC-def_1\n", 0o600);
        assert_eq!(t.token().unwrap(), "123456:ABC-def_1");
        write("123456:ABC-def_1\n", 0o644);
        let e = t.token().unwrap_err().to_string();
        assert!(e.contains("may be read by others (mode 644)"), "{e}");
        // Whatever the file holds, it never becomes a path of its own.
        for bad in ["", "987654", "abc:def", "987654:a/../b", "1:x y"] {
            write(bad, 0o600);
            let e = t.token().unwrap_err().to_string();
            assert!(e.contains("does not hold a bot token"), "{bad:?}: {e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!(t.check().is_ok());
        let nobody = Telegram {
            allow: vec![],
            ..t.clone()
        };
        assert!(nobody
            .check()
            .unwrap_err()
            .to_string()
            .contains("telegram.allow is empty"));
    }

    #[test]
    fn an_edge_looks_up_an_origin_name_not_an_address() {
        let e = |o: &str| Edge {
            origin: o.into(),
            ..Default::default()
        };
        assert_eq!(
            e("https://home.example.org:8443").origin_name().as_deref(),
            Some("home.example.org")
        );
        assert_eq!(e("http://192.168.1.2:8080").origin_name(), None);
        assert_eq!(e("http://[::1]:81").origin_name(), None);
        let base = e("https://home.example.org");
        assert!(base.check().is_ok());
        let error = |edge: Edge| edge.check().unwrap_err().to_string();
        assert!(error(Edge {
            resolve_every: Duration::from_millis(500),
            ..base.clone()
        })
        .contains("edge.resolve_every must be at least 1s"));
        assert!(error(Edge {
            nameservers: vec!["dns.example".into()],
            ..base.clone()
        })
        .contains("edge.nameservers: \"dns.example\""));
        assert!(error(Edge {
            origin_ca: Some("/nonexistent/ca.pem".into()),
            ..base
        })
        .contains("edge.origin_ca /nonexistent/ca.pem: no such file"));
    }

    #[test]
    fn an_edge_names_its_origin_by_scheme_and_host() {
        let e = |o: &str| Edge {
            origin: o.into(),
            ..Default::default()
        };
        assert_eq!(
            e("https://home.example.org").origin_parts().unwrap(),
            (
                "https".into(),
                "home.example.org:443".into(),
                "home.example.org".into(),
                "home.example.org".into()
            )
        );
        assert_eq!(
            e("http://127.0.0.1:8080/").origin_parts().unwrap(),
            (
                "http".into(),
                "127.0.0.1:8080".into(),
                "127.0.0.1".into(),
                "127.0.0.1:8080".into()
            )
        );
        assert_eq!(
            e("http://[::1]:81").origin_parts().unwrap().1,
            "[::1]:81".to_string()
        );
        assert!(e("http://192.168.1.20:8080").check().is_ok());
        for bad in [
            "",
            "home.example.org",
            "http://home.example.org",
            "http://8.8.8.8",
            "https://me:pw@home.example.org",
            "ftp://home.example.org",
            "https://home.example.org/live/",
            "https://home.example.org/?x=1",
        ] {
            assert!(e(bad).check().is_err(), "{bad}");
        }
    }
}
