//! What the renewal loop remembers between runs (`DATA/acme/state.json`): the last attempt,
//! its error if it failed, and when to try next. Read by `streamedge cert status`.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The names the certificate should cover; a change forces a new certificate.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default, with = "humantime_serde_opt")]
    pub last_attempt: Option<SystemTime>,
    #[serde(default, with = "humantime_serde_opt")]
    pub last_success: Option<SystemTime>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failures in a row since the last success.
    #[serde(default)]
    pub failures: u32,
    #[serde(default, with = "humantime_serde_opt")]
    pub next_attempt: Option<SystemTime>,
    /// "http-01" or "dns-01": the challenge of the last attempt.
    #[serde(default)]
    pub challenge: Option<String>,
}

impl State {
    pub fn load(path: &Path) -> Result<State, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Saves by replacing the file whole.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("state always serializes") + "\n";
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

/// RFC 3339 text for optional times, readable in the file.
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_seconds(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_rfc3339(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(State::load(&path).unwrap(), State::default());
        let s = State {
            domains: vec!["a.test".into()],
            last_attempt: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            last_error: Some("connection refused".into()),
            failures: 2,
            ..State::default()
        };
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), s);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("2023-11-14T22:13:20Z"));
        std::fs::write(&path, "{").unwrap();
        assert!(State::load(&path).is_err());
    }
}
