//! Signed viewing links: `/s/TOKEN/live/alice/index.m3u8` (or, in links made before tokens
//! moved into the path, `?st=TOKEN`) for any URL under a path prefix (`/live/alice`,
//! `/vod/<id>`), valid until an expiry and, optionally, for one client address.
//!
//! `TOKEN` is `EXPIRY.MAC` or `EXPIRY.i.MAC` (address-bound): EXPIRY in Unix seconds, MAC the
//! first 16 bytes of HMAC-SHA256(secret, "streamedge-v1\n" PREFIX "\n" EXPIRY "\n" ADDRESS),
//! URL-safe base64. Only characters that need no escaping in a query string, and nothing an
//! edge needs to share: any server with the secret verifies it.
//!
//! The secrets file (`DATA/sign.keys`, mode 0600) holds the signing secret first and, after a
//! rotation, the previous one, so links signed just before a rotation keep working.

use std::net::IpAddr;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Bytes of MAC kept in a token.
const MAC_LEN: usize = 16;

/// Random bytes in a new secret.
pub const SECRET_LEN: usize = 32;

/// The query argument that carries a token.
pub const ARG: &str = "st";

/// Where signed links put their token: `/s/TOKEN/live/NAME/FILE`, `/s/TOKEN/vod/ID/PATH`.
/// Relative URIs in a playlist then inherit the token with no rewriting, nginx serves the
/// files as it serves public ones, and a cache in front can key on the path after the token.
pub const SIGNED_PREFIX: &str = "/s/";

/// The path of a signed link: `/s/TOKEN` before `path` (`/live/NAME/...`).
pub fn signed_path(token: &str, path: &str) -> String {
    format!("{SIGNED_PREFIX}{token}{path}")
}

/// The secrets file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// URL-safe base64; the first signs, all verify.
    pub secrets: Vec<String>,
}

impl Secrets {
    /// Parses and decodes; at least one secret, at most two, each at least 16 bytes.
    pub fn parse(text: &str) -> Result<Vec<Vec<u8>>, String> {
        let s: Secrets = toml::from_str(text)
            .map_err(|e| e.message().lines().next().unwrap_or("invalid").to_string())?;
        if s.secrets.is_empty() || s.secrets.len() > 2 {
            return Err("expected one or two secrets".into());
        }
        s.secrets
            .iter()
            .map(|x| {
                B64.decode(x)
                    .ok()
                    .filter(|k| k.len() >= 16)
                    .ok_or_else(|| "a secret is not base64 of 16 bytes or more".to_string())
            })
            .collect()
    }

    /// Encodes raw secrets, newest first.
    pub fn render(secrets: &[&[u8]]) -> String {
        let s = Secrets {
            secrets: secrets.iter().map(|k| B64.encode(k)).collect(),
        };
        let body = toml::to_string(&s).expect("secrets always serialize");
        format!("# streamedge signing secrets: the first signs, all verify. Keep private.\n{body}")
    }
}

fn mac(secret: &[u8], prefix: &str, expiry: u64, addr: Option<IpAddr>) -> [u8; MAC_LEN] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"streamedge-v1\n");
    m.update(prefix.as_bytes());
    m.update(b"\n");
    m.update(expiry.to_string().as_bytes());
    m.update(b"\n");
    if let Some(a) = addr {
        m.update(a.to_string().as_bytes());
    }
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// Makes a token for `prefix` (no trailing slash), valid until `expiry`.
pub fn sign(secret: &[u8], prefix: &str, expiry: u64, addr: Option<IpAddr>) -> String {
    let m = B64.encode(mac(secret, prefix, expiry, addr));
    match addr {
        Some(_) => format!("{expiry}.i.{m}"),
        None => format!("{expiry}.{m}"),
    }
}

/// Why a token was refused. Never shown to the client, which only sees "forbidden".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Expired,
    /// Wrong MAC: tampered, another prefix, another address, or an unknown secret.
    Mismatch,
}

/// A decimal number in its one canonical form: digits only (no sign, no space), no
/// leading zero. `u64::from_str` alone also takes "+9" and "009", which would give one
/// token several spellings.
fn canonical_number(text: &str) -> Option<u64> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !digits || text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// A token parsed but not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub expiry: u64,
    pub bound: bool,
    mac: &'a str,
}

impl<'a> Token<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        if text.len() > 64 {
            return None;
        }
        let mut parts = text.split('.');
        let expiry = canonical_number(parts.next()?)?;
        let (bound, mac) = match (parts.next()?, parts.next(), parts.next()) {
            ("i", Some(mac), None) => (true, mac),
            (mac, None, None) => (false, mac),
            _ => return None,
        };
        Some(Token { expiry, bound, mac })
    }

    /// Checks the token for `prefix` at `now` from `client`, against every secret. The MAC is
    /// compared in constant time.
    pub fn verify(
        &self,
        secrets: &[Vec<u8>],
        prefix: &str,
        now: u64,
        client: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        if now >= self.expiry {
            return Err(Refusal::Expired);
        }
        let Ok(given) = B64.decode(self.mac) else {
            return Err(Refusal::Malformed);
        };
        if given.len() != MAC_LEN {
            return Err(Refusal::Malformed);
        }
        let addr = match (self.bound, client) {
            (true, Some(c)) => Some(c),
            (true, None) => return Err(Refusal::Mismatch),
            (false, _) => None,
        };
        let ok = secrets.iter().fold(0u8, |acc, s| {
            acc | mac(s, prefix, self.expiry, addr).ct_eq(&given).unwrap_u8()
        });
        if ok == 1 {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        }
    }
}

/// The header an edge sends the origin with a request it has checked the token of.
pub const EDGE_HEADER: &str = "X-Streamedge-Edge";

/// What an edge shows the origin (in [`EDGE_HEADER`]) to be answered private content: derived
/// from the signing secret, so an edge holds the origin's secrets file and nothing else, and a
/// rotation changes it too. URL-safe base64 of HMAC-SHA256(secret, "streamedge-edge-v1").
pub fn edge_credential(secret: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"streamedge-edge-v1");
    B64.encode(m.finalize().into_bytes())
}

/// Whether `given` is the edge credential of one of `secrets`, compared in constant time.
pub fn is_edge(secrets: &[Vec<u8>], given: &[u8]) -> bool {
    let ok = secrets.iter().fold(0u8, |acc, s| {
        acc | edge_credential(s).as_bytes().ct_eq(given).unwrap_u8()
    });
    ok == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const B: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn check(
        token: &str,
        secrets: &[&[u8]],
        prefix: &str,
        now: u64,
        client: Option<&str>,
    ) -> Result<(), Refusal> {
        let secrets: Vec<Vec<u8>> = secrets.iter().map(|s| s.to_vec()).collect();
        let client = client.map(|c| c.parse().unwrap());
        Token::parse(token)
            .ok_or(Refusal::Malformed)?
            .verify(&secrets, prefix, now, client)
    }

    #[test]
    fn valid_until_expiry() {
        let t = sign(A, "/live/alice", 1000, None);
        assert!(
            t.starts_with("1000.") && !t.contains(['+', '/', '=']),
            "{t}"
        );
        assert_eq!(check(&t, &[A], "/live/alice", 999, None), Ok(()));
        assert_eq!(
            check(&t, &[A], "/live/alice", 1000, None),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn prefix_address_and_tampering_matter() {
        let t = sign(A, "/live/alice", 1000, None);
        assert_eq!(
            check(&t, &[A], "/live/bob", 1, None),
            Err(Refusal::Mismatch)
        );
        let longer = t.replacen("1000.", "2000.", 1);
        assert_eq!(
            check(&longer, &[A], "/live/alice", 1, None),
            Err(Refusal::Mismatch)
        );
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            check(
                std::str::from_utf8(&flipped).unwrap(),
                &[A],
                "/live/alice",
                1,
                None
            ),
            Err(Refusal::Mismatch)
        );

        let bound = sign(A, "/vod/x1", 1000, Some("192.0.2.1".parse().unwrap()));
        assert!(bound.starts_with("1000.i."));
        assert_eq!(check(&bound, &[A], "/vod/x1", 1, Some("192.0.2.1")), Ok(()));
        assert_eq!(
            check(&bound, &[A], "/vod/x1", 1, Some("192.0.2.2")),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(&bound, &[A], "/vod/x1", 1, None),
            Err(Refusal::Mismatch)
        );
        // Dropping the binding does not help.
        let unbound = bound.replacen(".i.", ".", 1);
        assert_eq!(
            check(&unbound, &[A], "/vod/x1", 1, Some("192.0.2.1")),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn rotation_keeps_the_previous_secret_working() {
        let old = sign(A, "/live/alice", 1000, None);
        let new = sign(B, "/live/alice", 1000, None);
        assert_eq!(check(&old, &[B, A], "/live/alice", 1, None), Ok(()));
        assert_eq!(check(&new, &[B, A], "/live/alice", 1, None), Ok(()));
        assert_eq!(
            check(&old, &[B], "/live/alice", 1, None),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            "",
            "x",
            "1000",
            "1000.",
            "abc.def",
            "1000.i",
            "1000.x.y",
            "1000.i.a.b",
            &"9".repeat(80),
            "99999999999999999999999.AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(check(bad, &[A], "/p", 1, None).is_err(), "{bad}");
        }
        assert_eq!(
            check("1000.!!!!", &[A], "/p", 1, None),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn expiry_has_one_spelling() {
        let t = sign(A, "/live/alice", 1000, None);
        let mac = t.strip_prefix("1000.").unwrap();
        assert_eq!(check(&t, &[A], "/live/alice", 1, None), Ok(()));
        for other in [
            "01000", "+1000", " 1000", "1000 ", "-1000", "1_000", "0x3e8",
        ] {
            let forged = format!("{other}.{mac}");
            assert_eq!(Token::parse(&forged), None, "{forged}");
        }
        assert!(Token::parse(&format!("0.{mac}")).is_some());
    }

    #[test]
    fn secrets_file_round_trips() {
        let text = Secrets::render(&[B, A]);
        assert_eq!(Secrets::parse(&text).unwrap(), vec![B.to_vec(), A.to_vec()]);
        assert!(Secrets::parse("secrets = []").is_err());
        assert!(Secrets::parse("secrets = [\"c2hvcnQ\"]").is_err());
        assert!(Secrets::parse("nope").is_err());
    }

    #[test]
    fn edges_are_known_by_a_credential_of_the_secret() {
        let b: &[u8] = b"fedcba9876543210fedcba9876543210";
        let c = edge_credential(A);
        assert_eq!(c.len(), 43);
        assert!(c
            .bytes()
            .all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'_'));
        assert_ne!(c, edge_credential(b));
        // After a rotation both the new and the previous secret's credential pass.
        let both = vec![b.to_vec(), A.to_vec()];
        assert!(is_edge(&both, c.as_bytes()));
        assert!(is_edge(&both, edge_credential(b).as_bytes()));
        assert!(!is_edge(&[b.to_vec()], c.as_bytes()));
        assert!(!is_edge(&both, &c.as_bytes()[..42]));
        assert!(!is_edge(&both, b""));
        // Not a token: a token's MAC for any prefix is something else.
        assert_ne!(c, sign(A, "/live/a", 1, None));
    }
}
