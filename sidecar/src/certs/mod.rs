//! Certificates for the HTTPS port: the renewal loop of `streamedge run` and the
//! `streamedge cert` commands. Issuance itself is the `streamedge-acme` crate's.
//!
//! Boring and self-healing, as Caddy does it: renew with a third of the lifetime left,
//! retry a failure on a widening schedule with the reason kept, keep serving the certificate
//! in service, never stop because a CA is unreachable.
//!
//! The names are proved by HTTP-01 (files nginx serves) or DNS-01 (TXT records at IONOS,
//! [`dns01`]); [`probe`] says which for an order.

mod dns01;
mod probe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use streamedge_acme::schedule::{renew_at, retry_delay};
use streamedge_acme::state::State;
use streamedge_acme::{CertInfo, Challenge, Settings};

use crate::config::{ChallengeMode, Config};
use probe::Choice;

/// The acme crate's settings, when ACME is on.
pub fn settings(config: &Config) -> Option<Settings> {
    let a = &config.acme;
    if !a.enabled() {
        return None;
    }
    Some(Settings {
        domains: a.domains.clone(),
        email: a.email.clone(),
        directory: a.directory_url(),
        ca_root: a.ca_root.clone(),
        eab: a.eab_kid.clone().zip(a.eab_hmac_key_bytes()),
        acme_dir: config.layout().acme(),
        certs_dir: config.layout().certs(),
    })
}

/// Until the first certificate, the domain's folder points at the placeholder, so nginx
/// always has a pair to load.
pub fn ensure_placeholder(config: &Config) -> Result<()> {
    let Some(s) = settings(config) else {
        return Ok(());
    };
    let placeholder = config.layout().placeholder_cert();
    s.store().ensure_placeholder(&s.domains[0], &placeholder)?;
    Ok(())
}

/// `cert status --json`.
#[derive(Debug, Serialize)]
pub struct CertStatus {
    pub domains: Vec<String>,
    /// False while the self-signed placeholder is in service.
    pub issued: bool,
    pub serial: Option<String>,
    pub not_after: Option<String>,
    pub next_renewal: Option<String>,
    pub last_attempt: Option<String>,
    pub last_error: Option<String>,
    pub failures: u32,
    pub next_attempt: Option<String>,
    /// "http-01" or "dns-01": what the last attempt proved the names by.
    pub challenge: Option<String>,
}

use crate::clock::rfc3339;

/// Whether the certificate in service is a real one for all the configured names.
fn real(s: &Settings, cert: Option<&CertInfo>) -> Option<CertInfo> {
    cert.filter(|c| s.domains.iter().all(|d| c.names.contains(d)))
        .cloned()
}

pub fn status(config: &Config) -> Result<Option<CertStatus>> {
    let Some(s) = settings(config) else {
        return Ok(None);
    };
    let state = State::load(&s.state_path())?;
    let cert = real(&s, s.store().current(&s.domains[0])?.as_ref());
    Ok(Some(CertStatus {
        domains: s.domains.clone(),
        issued: cert.is_some(),
        serial: cert.as_ref().map(|c| c.serial.clone()),
        not_after: cert.as_ref().map(|c| rfc3339(c.not_after)),
        next_renewal: cert
            .as_ref()
            .map(|c| rfc3339(renew_at(c.not_before, c.not_after, None))),
        last_attempt: state.last_attempt.map(rfc3339),
        last_error: state.last_error.clone(),
        failures: state.failures,
        next_attempt: state.next_attempt.map(rfc3339),
        challenge: state.challenge.clone(),
    }))
}

/// What one look at the certificate did.
#[derive(Debug)]
pub enum Outcome {
    /// A valid certificate is in service and not due; next look at `renew_at`.
    NotDue {
        not_after: SystemTime,
        renew_at: SystemTime,
    },
    Renewed(CertInfo),
}

/// Renews if due (or `force`): records the attempt and installs the new pair, which nginx
/// serves once it is reloaded ([`serve`]). A failure leaves the certificate in service alone.
pub async fn renew(config: &Config, force: bool) -> Result<Outcome> {
    let s = settings(config).context("ACME is off: set acme.domains in streamedge.toml")?;
    let _lock = lock(&s)?;
    let state_path = s.state_path();
    let mut state = State::load(&state_path)?;
    let now = SystemTime::now();
    let current = real(&s, s.store().current(&s.domains[0])?.as_ref());
    if let (Some(c), false, true) = (&current, force, state.domains == s.domains) {
        let mut due = renew_at(c.not_before, c.not_after, None);
        if now < due {
            // The CA may ask for an earlier renewal (say, before revoking): ask, best effort.
            match streamedge_acme::suggested_renewal(&s, &c.der).await {
                Ok(ari) => due = renew_at(c.not_before, c.not_after, ari),
                Err(e) => tracing::debug!("no renewal information from the CA: {e}"),
            }
        }
        if now < due {
            return Ok(Outcome::NotDue {
                not_after: c.not_after,
                renew_at: due,
            });
        }
    }
    state.last_attempt = Some(now);
    let (used, result) = issue(config, &s).await;
    state.challenge = Some(used.into());
    match result {
        Ok(info) => {
            state.domains = s.domains.clone();
            state.last_success = Some(SystemTime::now());
            state.last_error = None;
            state.failures = 0;
            state.next_attempt = Some(renew_at(info.not_before, info.not_after, None));
            state.save(&state_path)?;
            tracing::info!(
                "new certificate for {} by {used} (serial {}), valid until {}",
                s.domains.join(", "),
                info.serial,
                rfc3339(info.not_after)
            );
            Ok(Outcome::Renewed(info))
        }
        Err(e) => {
            state.failures += 1;
            let e = explain(&e, &s);
            state.last_error = Some(e.clone());
            let retry = SystemTime::now() + retry_delay(state.failures);
            state.next_attempt = Some(retry);
            state.save(&state_path)?;
            let kept = if current.is_some() {
                "the current certificate stays in service"
            } else {
                "HTTPS keeps its placeholder"
            };
            Err(anyhow::anyhow!(
                "cannot get a certificate for {}: {e}; {kept}, next try {}",
                s.domains.join(", "),
                rfc3339(retry)
            ))
        }
    }
}

/// Issues with the configured challenge; `auto` checks HTTP-01 first, and tries DNS-01 once
/// more when the CA refuses HTTP-01. Says which challenge the last try used.
async fn issue(
    config: &Config,
    s: &Settings,
) -> (&'static str, Result<CertInfo, streamedge_acme::Error>) {
    let mode = config.acme.challenge;
    if mode == ChallengeMode::Http01 {
        return (
            "http-01",
            streamedge_acme::issue(s, Challenge::Http01).await,
        );
    }
    let ionos = match dns01::Ionos::new(config) {
        Ok(i) => i,
        Err(e) => return ("dns-01", Err(streamedge_acme::Error::Dns(format!("{e:#}")))),
    };
    if let Err(e) = ionos.remove_leftovers().await {
        tracing::warn!("{e}");
    }
    let choice = match probe::plan(mode, &s.domains) {
        Some(c) => c,
        None => probe::check(config, s).await,
    };
    let dns = Challenge::Dns01(&ionos);
    match choice {
        Choice::Dns01(why) => {
            tracing::info!("proving {} by DNS-01: {why}", s.domains.join(", "));
            ("dns-01", streamedge_acme::issue(s, dns).await)
        }
        Choice::Http01 => match streamedge_acme::issue(s, Challenge::Http01).await {
            Err(e) if probe::retry_with_dns(mode, &e) => {
                tracing::warn!("{e}; trying DNS-01");
                ("dns-01", streamedge_acme::issue(s, dns).await)
            }
            r => ("http-01", r),
        },
    }
}

/// An issuance error in words, with the setting that fixes it when there is one.
fn explain(e: &streamedge_acme::Error, s: &Settings) -> String {
    match (e, &s.ca_root) {
        (streamedge_acme::Error::Tls(_), None) => {
            format!("{e}: if the CA has its own root certificate, set acme.ca_root to its PEM file")
        }
        (streamedge_acme::Error::Tls(_), Some(root)) => format!(
            "{e}: check acme.ca_root ({}): it must be the root that signed the CA's certificate",
            root.display()
        ),
        _ => e.to_string(),
    }
}

/// One renewal at a time per data directory, whether from the daemon or the command line.
fn lock(s: &Settings) -> Result<nix::fcntl::Flock<std::fs::File>> {
    crate::fsutil::lock(&s.acme_dir.join(".lock"))
}

/// Puts a renewed certificate in service: `reload` asks a running nginx to reload (false if
/// none runs), then this waits until nginx answers TLS on the HTTPS port with it.
pub async fn serve(
    config: &Config,
    info: &CertInfo,
    reload: impl Fn(&Config) -> Result<bool>,
) -> Result<()> {
    if let (true, Some(domain)) = (reload(config)?, config.acme.domains.first()) {
        // A wildcard is no server name to ask for: its base name gets the same certificate.
        confirm_served(config, domain.strip_prefix("*.").unwrap_or(domain), info).await;
    }
    Ok(())
}

async fn confirm_served(config: &Config, domain: &str, info: &CertInfo) {
    let host = match config.ports.bind.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        b => b,
    };
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return;
    };
    let addr = SocketAddr::new(ip, config.ports.https);
    for _ in 0..50 {
        if let Ok(der) = served_certificate(addr, domain).await {
            if der == info.der {
                tracing::info!("nginx serves the new certificate");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!("nginx does not serve the new certificate yet on {addr}");
}

/// Accepts any certificate: this only looks at which one is served.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf certificate a TLS server presents for `sni`.
pub async fn served_certificate(addr: SocketAddr, sni: &str) -> Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await??;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())?;
    let stream =
        tokio::time::timeout(Duration::from_secs(3), connector.connect(name, tcp)).await??;
    let (_, conn) = stream.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate presented")?;
    Ok(leaf.to_vec())
}

/// The renewal loop of `streamedge run`: looks when due, and at least every `renew_check`;
/// after a failure, when the retry schedule says. `reload` as for [`serve`].
pub async fn run_loop(config: Config, reload: impl Fn(&Config) -> Result<bool>) {
    let check = config.acme.renew_check;
    loop {
        let next = match renew(&config, false).await {
            Ok(Outcome::NotDue { renew_at, .. }) => renew_at,
            Ok(Outcome::Renewed(info)) => {
                if let Err(e) = serve(&config, &info, &reload).await {
                    tracing::error!("{e:#}");
                }
                renew_at(info.not_before, info.not_after, None)
            }
            Err(e) => {
                tracing::error!("{e:#}");
                settings(&config)
                    .and_then(|s| State::load(&s.state_path()).ok())
                    .and_then(|st| st.next_attempt)
                    .unwrap_or_else(|| SystemTime::now() + retry_delay(1))
            }
        };
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(check);
        tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
    }
}

/// For `streamedge status`: a warning when the certificate in service expires within 7 days.
pub fn expiry_warning(config: &Config) -> Option<String> {
    let s = settings(config)?;
    let cert = s.store().current(&s.domains[0]).ok()??;
    let left = cert
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    (left < Duration::from_secs(7 * 86_400)).then(|| {
        format!(
            "the certificate for {} expires in {} (at {})",
            s.domains[0],
            humantime::format_duration(Duration::from_secs(left.as_secs())),
            rfc3339(cert.not_after)
        )
    })
}
