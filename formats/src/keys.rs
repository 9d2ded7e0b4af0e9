//! The stream-keys file, `DATA/keys.toml`: one entry per public stream name, holding only a
//! SHA-256 hash of the secret. The sidecar writes it; the nginx module reads it.
//!
//! ```toml
//! [[key]]
//! name = "alice"
//! hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! created = "2026-11-21T19:48:00Z"
//! state = "active"
//! ```
//!
//! Secrets carry at least 128 random bits, so a plain SHA-256 is enough: there is nothing to
//! guess, and a slow password hash would only slow down every publish.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::name::{check_name, NameError};

/// Random bytes in a new secret (192 bits), before URL-safe base64 encoding.
pub const SECRET_BYTES: usize = 24;
const _: () = assert!(
    SECRET_BYTES * 8 >= 128,
    "a secret needs at least 128 random bits"
);

/// Longest secret accepted when checking; anything longer cannot be ours.
pub const MAX_SECRET_LEN: usize = 256;

/// Whether a key may publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    #[default]
    Active,
    Revoked,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
        })
    }
}

/// A SHA-256 digest of a secret, written as `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a secret as presented by a publisher.
    pub fn of(secret: &[u8]) -> Self {
        KeyHash(Sha256::digest(secret).into())
    }

    /// Compares in constant time, so the time taken says nothing about how much matched.
    pub fn matches(&self, secret: &[u8]) -> bool {
        KeyHash::of(secret).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::str::FromStr for KeyHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64)
            .ok_or_else(|| {
                format!("invalid hash \"{s}\": expected \"sha256:\" and 64 hex digits")
            })?;
        // Checked first: slicing below needs ASCII, and `from_str_radix` alone takes a `+`.
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("invalid hash \"{s}\": not hexadecimal"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits");
        }
        Ok(KeyHash(out))
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One stream name and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub hash: KeyHash,
    /// When the current secret was made (RFC 3339, UTC).
    pub created: String,
    #[serde(default)]
    pub state: KeyState,
    /// Its live stream plays only through signed links.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// Its live streams are recorded into the library.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
}

/// The whole keys file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyEntry>,
}

/// Why a keys file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{0}")]
    Syntax(String),
    #[error("stream name \"{name}\": {error}")]
    Name { name: String, error: NameError },
    #[error("stream name \"{0}\" appears twice")]
    Duplicate(String),
}

/// The outcome of checking a publisher's name and secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    UnknownName,
    Revoked,
    WrongKey,
}

impl Verdict {
    /// A short reason for logs; never contains the secret.
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::UnknownName => "unknown stream name",
            Verdict::Revoked => "revoked key",
            Verdict::WrongKey => "wrong key",
        }
    }
}

impl KeyFile {
    /// Parses and checks a keys file: valid names, no name twice, well-formed hashes.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let file: KeyFile =
            toml::from_str(text).map_err(|e| KeyFileError::Syntax(one_line(text, &e)))?;
        for (i, k) in file.keys.iter().enumerate() {
            check_name(k.name.as_bytes()).map_err(|error| KeyFileError::Name {
                name: k.name.clone(),
                error,
            })?;
            if file.keys[..i].iter().any(|o| o.name == k.name) {
                return Err(KeyFileError::Duplicate(k.name.clone()));
            }
        }
        Ok(file)
    }

    /// Renders the file as the sidecar writes it.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a key file always serializes");
        format!("# streamedge stream keys: hashes only, managed by `streamedge keys`.\n\n{body}")
    }

    pub fn get(&self, name: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|k| k.name == name)
    }

    /// Decides whether `secret` may publish as `name`.
    pub fn verify(&self, name: &[u8], secret: &[u8]) -> Verdict {
        let Some(entry) = self.keys.iter().find(|k| k.name.as_bytes() == name) else {
            return Verdict::UnknownName;
        };
        // Hash even a revoked key's attempt, so both answers take the same time.
        let matches = secret.len() <= MAX_SECRET_LEN && entry.hash.matches(secret);
        match (entry.state, matches) {
            (KeyState::Revoked, _) => Verdict::Revoked,
            (KeyState::Active, true) => Verdict::Accepted,
            (KeyState::Active, false) => Verdict::WrongKey,
        }
    }
}

/// Encodes fresh random bytes as a secret: URL-safe base64 without padding, so it survives
/// an RTMP URL, a query string and OBS's key field unescaped.
pub fn encode_secret(random: &[u8; SECRET_BYTES]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// TOML's own errors span several lines with a drawing; logs want one line with the line number.
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = message.join(", ");
    match e.span() {
        Some(span) => {
            let line = 1 + text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|&&c| c == b'\n')
                .count();
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(name: &str, secret: &str, state: KeyState) -> KeyFile {
        KeyFile {
            keys: vec![KeyEntry {
                name: name.into(),
                hash: KeyHash::of(secret.as_bytes()),
                created: "2026-11-21T00:00:00Z".into(),
                state,
                private: false,
                record: false,
            }],
        }
    }

    #[test]
    fn hash_round_trips_through_text() {
        let h = KeyHash::of(b"test");
        let text = h.to_string();
        assert_eq!(
            text,
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(text.parse::<KeyHash>().unwrap(), h);
        assert!("sha256:zz".parse::<KeyHash>().is_err());
        assert!("md5:9f86".parse::<KeyHash>().is_err());
        assert!(format!("sha256:{}", "g".repeat(64))
            .parse::<KeyHash>()
            .is_err());
    }

    #[test]
    fn hash_with_a_sign_or_multibyte_character_is_refused_not_a_panic() {
        // Found by props: "+a" parsed as a hex byte, and a character across a byte pair panicked.
        for bad in [
            format!("+a{}", "0".repeat(62)),
            format!("a\u{e9}{}", "0".repeat(61)),
        ] {
            assert_eq!(bad.len(), 64);
            let e = format!("sha256:{bad}").parse::<KeyHash>().unwrap_err();
            assert!(e.ends_with("not hexadecimal"), "{e}");
        }
    }

    #[test]
    fn debug_output_hides_the_hash() {
        assert_eq!(format!("{:?}", KeyHash::of(b"x")), "KeyHash(..)");
    }

    #[test]
    fn verdicts() {
        let f = file_with("alice", "S3CRET", KeyState::Active);
        assert_eq!(f.verify(b"alice", b"S3CRET"), Verdict::Accepted);
        assert_eq!(f.verify(b"alice", b"S3CRET "), Verdict::WrongKey);
        assert_eq!(f.verify(b"alice", b""), Verdict::WrongKey);
        assert_eq!(f.verify(b"bob", b"S3CRET"), Verdict::UnknownName);
        assert_eq!(
            f.verify(b"alice", &[b'a'; MAX_SECRET_LEN + 1]),
            Verdict::WrongKey
        );
        let r = file_with("alice", "S3CRET", KeyState::Revoked);
        assert_eq!(r.verify(b"alice", b"S3CRET"), Verdict::Revoked);
    }

    #[test]
    fn file_round_trips_and_holds_no_secret() {
        let f = file_with("alice", "S3CRET", KeyState::Active);
        let text = f.to_toml();
        assert!(!text.contains("S3CRET"));
        assert!(text.contains("name = \"alice\""));
        assert_eq!(KeyFile::parse(&text).unwrap(), f);
    }

    #[test]
    fn rejects_bad_files_with_a_reason() {
        let h = KeyHash::of(b"x");
        let dup = format!(
            "[[key]]\nname=\"a\"\nhash=\"{h}\"\ncreated=\"\"\n[[key]]\nname=\"a\"\nhash=\"{h}\"\ncreated=\"\"\n"
        );
        assert_eq!(
            KeyFile::parse(&dup).unwrap_err().to_string(),
            "stream name \"a\" appears twice"
        );
        let bad_name = format!("[[key]]\nname=\"../x\"\nhash=\"{h}\"\ncreated=\"\"\n");
        assert!(KeyFile::parse(&bad_name)
            .unwrap_err()
            .to_string()
            .contains("\"../x\""));
        let bad_hash = "[[key]]\nname=\"a\"\nhash=\"plain\"\ncreated=\"\"\n";
        assert_eq!(
            KeyFile::parse(bad_hash).unwrap_err().to_string(),
            "line 3: invalid hash \"plain\": expected \"sha256:\" and 64 hex digits"
        );
        assert_eq!(
            KeyFile::parse("[[key]\n").unwrap_err().to_string(),
            "line 1: invalid table header, expected `.`, `]]`"
        );
        assert!(KeyFile::parse("secret = \"x\"\n").is_err());
        assert_eq!(KeyFile::parse("").unwrap(), KeyFile::default());
    }

    #[test]
    fn secrets_are_url_safe_and_long_enough() {
        let s = encode_secret(&[0xff; SECRET_BYTES]);
        assert_eq!(s.len(), 32);
        assert!(s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
