//! ACME issuance for streamedge, on instant-acme: an account stored once, an order for all
//! the configured names, proved by HTTP-01 challenge files that nginx serves from the data
//! directory or by DNS-01 TXT records that the caller publishes ([`TxtRecords`]), both removed
//! whatever the outcome, a fresh ECDSA P-256 key, and the chain installed atomically beside it
//! (see [`store`]).

pub mod schedule;
pub mod state;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

pub use store::{CertInfo, Store};

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ACME server: {0}")]
    Acme(String),
    /// The CA's HTTPS certificate failed verification: `rustls`'s words.
    #[error("cannot verify the ACME server's TLS certificate ({0})")]
    Tls(String),
    #[error("the CA refused the order: {0}")]
    Order(String),
    /// The CA tried the challenges and found them wrong: its own words, per name.
    #[error("the CA refused the order: {0}")]
    Refused(String),
    /// Publishing or removing DNS-01 records: the publisher's words.
    #[error("{0}")]
    Dns(String),
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("invalid state: {0}")]
    State(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<instant_acme::Error> for Error {
    fn from(e: instant_acme::Error) -> Self {
        match tls_failure(&e) {
            Some(tls) => Error::Tls(tls.to_string()),
            None => Error::Acme(chain(&e)),
        }
    }
}

/// The TLS error among `e` and its sources. An `io::Error` reports the source of the error
/// it wraps, not that error itself (hyper-rustls wraps rustls's in two), so it is opened.
fn tls_failure<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return tls_failure(inner);
        }
        next = err.source();
    }
    None
}

/// `e` and what caused it, as "client error (Connect): tcp connect error: Connection
/// refused": hyper's own words alone do not say what failed.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        next = cause.source();
    }
    text
}

/// What an issuance needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// All names go into one certificate, stored under the first.
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// Trust this root (PEM) for the CA's own HTTPS instead of the system's: private CAs.
    pub ca_root: Option<PathBuf>,
    /// External account binding: key id and HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// `DATA/acme`: account, state, challenge files.
    pub acme_dir: PathBuf,
    /// `DATA/certs`.
    pub certs_dir: PathBuf,
}

impl Settings {
    /// The folder nginx serves as `/.well-known/acme-challenge/` on the HTTP port.
    pub fn challenge_root(&self) -> PathBuf {
        self.acme_dir.join("challenge")
    }

    /// Where HTTP-01 challenge files go (a token per file).
    pub fn challenge_dir(&self) -> PathBuf {
        self.challenge_root().join(".well-known/acme-challenge")
    }

    pub fn state_path(&self) -> PathBuf {
        self.acme_dir.join("state.json")
    }

    fn account_path(&self) -> PathBuf {
        self.acme_dir.join("account.json")
    }

    pub fn store(&self) -> Store {
        Store::new(&self.certs_dir)
    }
}

/// The account file: credentials for one directory.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

async fn account(s: &Settings) -> Result<Account, Error> {
    let builder = match &s.ca_root {
        Some(root) => Account::builder_with_root(root)?,
        None => Account::builder()?,
    };
    let path = s.account_path();
    if let Ok(text) = std::fs::read_to_string(&path) {
        let stored: StoredAccount = serde_json::from_str(&text)
            .map_err(|e| Error::State(format!("{}: {e}", path.display())))?;
        if stored.directory == s.directory {
            return Ok(builder.from_credentials(stored.credentials).await?);
        }
    }
    let contact = s.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let eab = s
        .eab
        .as_ref()
        .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            s.directory.clone(),
            eab.as_ref(),
        )
        .await?;
    let stored = StoredAccount {
        directory: s.directory.clone(),
        credentials,
    };
    let text = serde_json::to_string_pretty(&stored).expect("credentials serialize");
    write_private(&path, text.as_bytes())?;
    Ok(account)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Challenge files written for one order, removed when it is dropped: whatever happens to
/// the order, none stays behind.
struct Challenges {
    dir: PathBuf,
    tokens: Vec<String>,
}

impl Challenges {
    fn write(&mut self, token: &str, key_authorization: &str) -> Result<(), Error> {
        // A token is base64url by the RFC; anything else must not become a path.
        if token.is_empty()
            || !token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(Error::Order(format!("invalid challenge token {token:?}")));
        }
        let path = self.dir.join(token);
        std::fs::write(&path, key_authorization).map_err(|e| Error::io(&path, e))?;
        self.tokens.push(token.to_string());
        Ok(())
    }
}

impl Drop for Challenges {
    fn drop(&mut self) {
        for t in &self.tokens {
            let _ = std::fs::remove_file(self.dir.join(t));
        }
    }
}

/// How the CA is shown that the names are ours.
#[derive(Clone, Copy)]
pub enum Challenge<'a> {
    /// Files nginx serves on the HTTP port (the CA connects to port 80).
    Http01,
    /// `_acme-challenge` TXT records, published and removed by the caller: no port needed,
    /// and the only way to a wildcard.
    Dns01(&'a dyn TxtRecords),
}

impl Challenge<'_> {
    fn kind(&self) -> ChallengeType {
        match self {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::Dns01(_) => ChallengeType::Dns01,
        }
    }

    /// "http-01", "dns-01": as configured and as the CA names them.
    pub fn name(&self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::Dns01(_) => "dns-01",
        }
    }
}

/// One DNS-01 TXT record: `_acme-challenge.<name>` and the value the CA expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    pub name: String,
    pub value: String,
}

/// The record a name is proved by: `*.example.org` and `example.org` both by
/// `_acme-challenge.example.org` (RFC 8555, 8.4), with a value each.
pub fn txt_name(domain: &str) -> String {
    let domain = domain.trim_end_matches('.');
    format!(
        "_acme-challenge.{}",
        domain.strip_prefix("*.").unwrap_or(domain)
    )
}

/// A future of a [`TxtRecords`] call.
pub type DnsFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// What DNS-01 needs from a DNS provider. The errors are messages for the user.
pub trait TxtRecords: Send + Sync {
    /// Creates the records and returns once the zone's name servers answer with them: the CA
    /// is told to look right after.
    fn publish<'a>(&'a self, records: &'a [TxtRecord]) -> DnsFuture<'a>;
    /// Removes the records `publish` created (all, or those it got to).
    fn remove<'a>(&'a self, records: &'a [TxtRecord]) -> DnsFuture<'a>;
}

/// Orders a certificate for all the names and installs it. Fails without touching the
/// certificate in service; challenge files and DNS-01 records are removed whatever happens.
/// One order at a time per data directory: the caller holds a lock.
pub async fn issue(s: &Settings, challenge: Challenge<'_>) -> Result<CertInfo, Error> {
    let first = s
        .domains
        .first()
        .ok_or_else(|| Error::State("no domains".into()))?;
    let dir = s.challenge_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // Files a killed process could not remove: one order runs at a time (the caller locks),
    // so anything here is stale.
    if let Ok(stale) = std::fs::read_dir(&dir) {
        stale
            .flatten()
            .for_each(|f| drop(std::fs::remove_file(f.path())));
    }
    let mut files = Challenges {
        dir,
        tokens: Vec::new(),
    };

    let account = account(s).await?;
    let identifiers: Vec<Identifier> = s
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;

    // First the answers: files are ready at once, records once published.
    let kind = challenge.kind();
    let mut records = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(Error::Order(format!("authorization is {other:?}"))),
        }
        let name = authz.identifier().to_string();
        let mut ch = authz.challenge(kind.clone()).ok_or_else(|| {
            Error::Order(format!(
                "the CA offers no {} challenge for \"{name}\"",
                challenge.name()
            ))
        })?;
        let key_authorization = ch.key_authorization();
        match challenge {
            Challenge::Http01 => {
                files.write(&ch.token, key_authorization.as_str())?;
                ch.set_ready().await?;
            }
            Challenge::Dns01(_) => records.push(TxtRecord {
                name: txt_name(&name),
                value: key_authorization.dns_value(),
            }),
        }
    }
    let result = match (challenge, records.is_empty()) {
        (Challenge::Dns01(dns), false) => {
            let result = async {
                dns.publish(&records).await.map_err(Error::Dns)?;
                ready(&mut order, kind.clone()).await?;
                finish(&mut order, kind).await
            }
            .await;
            if let Err(e) = dns.remove(&records).await {
                tracing::warn!("{e}");
            }
            result
        }
        _ => finish(&mut order, kind).await,
    };
    drop(files);
    let (key_pem, chain_pem) = result?;
    let info = store::parse_leaf(chain_pem.as_bytes())?;
    if let Some(missing) = s.domains.iter().find(|d| !info.names.contains(d)) {
        return Err(Error::Certificate(format!(
            "the certificate does not cover \"{missing}\""
        )));
    }
    s.store().install(first, &chain_pem, &key_pem)
}

/// Tells the CA that every pending challenge of `kind` can be checked now.
async fn ready(order: &mut instant_acme::Order, kind: ChallengeType) -> Result<(), Error> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut ch) = authz.challenge(kind.clone()) {
            ch.set_ready().await?;
        }
    }
    Ok(())
}

/// Waits for the CA's verdict, then finalizes: the key and the chain (PEM).
async fn finish(
    order: &mut instant_acme::Order,
    kind: ChallengeType,
) -> Result<(String, String), Error> {
    let retry = RetryPolicy::new().timeout(Duration::from_secs(90));
    // An invalid order comes back as its status or, with pebble, as the order's error.
    let fallback = match order.poll_ready(&retry).await {
        Ok(OrderStatus::Ready) => None,
        Ok(status) => Some(format!("order is {status:?}")),
        Err(instant_acme::Error::Api(problem)) => Some(
            problem
                .detail
                .unwrap_or_else(|| "the order is invalid".into()),
        ),
        Err(e) => return Err(e.into()),
    };
    if let Some(fallback) = fallback {
        return Err(Error::Refused(why_invalid(order, fallback, kind).await));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retry).await?;
    Ok((key_pem, chain_pem))
}

/// When the CA's renewal information (ARI, RFC 9773) suggests renewing `cert_der`: the start
/// of its window, or `None` when the CA does not offer ARI.
pub async fn suggested_renewal(
    s: &Settings,
    cert_der: &[u8],
) -> Result<Option<std::time::SystemTime>, Error> {
    let account = account(s).await?;
    let der = rustls_pki_types::CertificateDer::from(cert_der.to_vec());
    let id = instant_acme::CertificateIdentifier::try_from(&der).map_err(Error::Certificate)?;
    match account.renewal_info(&id).await {
        Ok((info, _)) => {
            let start = info.suggested_window.start.unix_timestamp().max(0) as u64;
            Ok(Some(std::time::UNIX_EPOCH + Duration::from_secs(start)))
        }
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The CA's own words on a failed order: the challenges' errors.
async fn why_invalid(
    order: &mut instant_acme::Order,
    fallback: String,
    kind: ChallengeType,
) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        if let Some(c) = authz.challenge(kind.clone()) {
            if let Some(e) = &c.error {
                reasons.push(format!(
                    "{name}: {}",
                    e.detail.as_deref().unwrap_or("challenge failed")
                ));
            }
        }
    }
    if reasons.is_empty() {
        fallback
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_and_its_base_share_one_record_name() {
        assert_eq!(txt_name("example.org"), "_acme-challenge.example.org");
        assert_eq!(txt_name("*.example.org"), "_acme-challenge.example.org");
        assert_eq!(
            txt_name("cam.home.example.org."),
            "_acme-challenge.cam.home.example.org"
        );
    }
}
