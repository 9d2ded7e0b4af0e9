//! Scheduled broadcasts: the owner announces a title, a description, a stream and when it
//! starts and ends. The page lists what is coming with a countdown and plays the stream
//! once it is live; a recording made in a broadcast's time takes its title and description.
//!
//! Kept in `DATA/schedule.toml` (one `[[broadcast]]` each; public facts, so 0644), changed
//! under the same kind of lock as the keys file. Broadcasts that ended a day ago are dropped
//! at the next change.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use streamedge_formats::name::check_name;

use crate::config::Config;
use crate::error::Error;

/// The longest title and description, as for library items.
pub const MAX_TITLE: usize = crate::library::MAX_TITLE;
pub const MAX_DESCRIPTION: usize = crate::library::MAX_DESCRIPTION;
/// The longest broadcast.
const MAX_LENGTH: Duration = Duration::from_secs(48 * 3600);
/// A broadcast is kept this long after its end (so a late recording still finds it).
const KEEP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A recording that starts this much before a broadcast (an early test) is still its.
const EARLY: Duration = Duration::from_secs(30 * 60);

/// One scheduled broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    pub id: String,
    pub stream: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "broadcast")]
    broadcasts: Vec<Broadcast>,
}

/// What the owner asks for.
pub struct NewBroadcast<'a> {
    pub stream: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub start: &'a str,
    pub end: &'a str,
}

fn path(config: &Config) -> std::path::PathBuf {
    config.layout().root().join("schedule.toml")
}

fn lock_path(config: &Config) -> std::path::PathBuf {
    config.layout().root().join(".schedule.lock")
}

fn read(path: &Path) -> Result<File> {
    match std::fs::read_to_string(path) {
        Ok(t) => toml::from_str(&t).with_context(|| format!("invalid schedule {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A time as RFC 3339 (`2026-12-05T20:00:00Z`) or without the zone, as UTC
/// (`2026-12-05 20:00`).
pub fn parse_time(what: &str, text: &str) -> Result<SystemTime, Error> {
    let t = text.trim();
    let with_seconds = if t.len() == 16 {
        format!("{t}:00")
    } else {
        t.to_string()
    };
    humantime::parse_rfc3339_weak(&with_seconds).map_err(|_| {
        Error::Invalid(format!(
            "{what}: \"{}\" is not a time such as 2026-12-05T20:00:00Z",
            t.escape_debug()
        ))
    })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn check_text(what: &str, text: &str, max: usize, empty_ok: bool) -> Result<String, Error> {
    let t = text.trim();
    if t.is_empty() && !empty_ok {
        return Err(Error::Invalid(format!("{what}: empty")));
    }
    if t.chars().count() > max {
        return Err(Error::Invalid(format!(
            "{what}: longer than {max} characters"
        )));
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' || streamedge_formats::streams::is_format(c))
    {
        return Err(Error::Invalid(format!(
            "{what}: a control or invisible formatting character"
        )));
    }
    Ok(t.to_string())
}

/// Adds a broadcast; `now` decides what is already over.
pub fn add(config: &Config, new: &NewBroadcast<'_>, now: SystemTime) -> Result<Broadcast, Error> {
    check_name(new.stream.as_bytes()).map_err(|e| Error::Invalid(format!("stream: {e}")))?;
    let keys = crate::keys::load(&config.layout().keys_file())?;
    if keys.get(new.stream).is_none() {
        return Err(Error::Invalid(format!(
            "stream: \"{}\" has no key (`streamedge keys add {}` makes one)",
            new.stream, new.stream
        )));
    }
    let title = check_text("title", new.title, MAX_TITLE, false)?;
    let description = check_text(
        "description",
        new.description.unwrap_or(""),
        MAX_DESCRIPTION,
        true,
    )?;
    let start = parse_time("start", new.start)?;
    let end = parse_time("end", new.end)?;
    if end <= start {
        return Err(Error::Invalid("end: not after the start".into()));
    }
    if end.duration_since(start).unwrap_or_default() > MAX_LENGTH {
        return Err(Error::Invalid(
            "end: more than 48 hours after the start".into(),
        ));
    }
    if end <= now {
        return Err(Error::Invalid("end: already past".into()));
    }
    let _lock = crate::fsutil::lock(&lock_path(config))?;
    let mut file = read(&path(config))?;
    file.broadcasts
        .retain(|b| parse_time("end", &b.end).is_ok_and(|e| e + KEEP_AFTER > now));
    let b = Broadcast {
        id: crate::clock::random_bytes::<4>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        stream: new.stream.to_string(),
        title,
        description,
        start: crate::clock::rfc3339_secs(secs(start)),
        end: crate::clock::rfc3339_secs(secs(end)),
    };
    file.broadcasts.push(b.clone());
    file.broadcasts.sort_by(|a, b| a.start.cmp(&b.start));
    save(config, &file)?;
    Ok(b)
}

fn save(config: &Config, file: &File) -> Result<()> {
    let text = toml::to_string(file).context("cannot write the schedule")?;
    crate::fsutil::write_atomic(&path(config), text.as_bytes(), 0o644, None)
}

pub fn remove(config: &Config, id: &str) -> Result<Broadcast, Error> {
    let _lock = crate::fsutil::lock(&lock_path(config))?;
    let mut file = read(&path(config))?;
    let i = file
        .broadcasts
        .iter()
        .position(|b| b.id == id)
        .ok_or_else(|| Error::NotFound(format!("no scheduled broadcast {}", id.escape_debug())))?;
    let b = file.broadcasts.remove(i);
    save(config, &file)?;
    Ok(b)
}

/// The broadcasts that have not ended at `now`, soonest first; with `public_only`, only
/// those of public streams.
pub fn upcoming(config: &Config, now: SystemTime, public_only: bool) -> Result<Vec<Broadcast>> {
    let keys = crate::keys::load(&config.layout().keys_file())?;
    let file = read(&path(config))?;
    Ok(file
        .broadcasts
        .into_iter()
        .filter(|b| parse_time("end", &b.end).is_ok_and(|e| e > now))
        .filter(|b| !public_only || keys.get(&b.stream).is_some_and(|k| !k.private))
        .collect())
}

/// The broadcast of `stream` that a recording starting at `at` belongs to: the one whose
/// time holds it (from half an hour before its start to its end).
pub fn during(config: &Config, stream: &str, at: SystemTime) -> Option<Broadcast> {
    let file = read(&path(config)).ok()?;
    file.broadcasts.into_iter().find(|b| {
        b.stream == stream
            && parse_time("start", &b.start).is_ok_and(|s| at + EARLY >= s)
            && parse_time("end", &b.end).is_ok_and(|e| at < e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("data_dir = {:?}\npublic_host = \"x\"\n", dir.path());
        let config: Config = toml::from_str(&text).unwrap();
        crate::keys::add(&config, "alice", false, false).unwrap();
        crate::keys::add(&config, "secret", true, false).unwrap();
        (dir, config)
    }

    fn at(text: &str) -> SystemTime {
        parse_time("t", text).unwrap()
    }

    fn new<'a>(stream: &'a str, title: &'a str, start: &'a str, end: &'a str) -> NewBroadcast<'a> {
        NewBroadcast {
            stream,
            title,
            description: Some("Deep house, two hours."),
            start,
            end,
        }
    }

    #[test]
    fn broadcasts_are_kept_listed_and_found_by_recordings() {
        let (_d, c) = config();
        let now = at("2026-12-04T12:00:00Z");
        let b = add(
            &c,
            &new(
                "alice",
                "Friday Mix",
                "2026-12-05 20:00",
                "2026-12-05T22:00:00Z",
            ),
            now,
        )
        .unwrap();
        assert_eq!(
            (b.start.as_str(), b.end.as_str()),
            ("2026-12-05T20:00:00Z", "2026-12-05T22:00:00Z")
        );
        add(
            &c,
            &new(
                "secret",
                "Private",
                "2026-12-05T18:00:00Z",
                "2026-12-05T19:00:00Z",
            ),
            now,
        )
        .unwrap();
        let all = upcoming(&c, now, false).unwrap();
        assert_eq!(
            all.iter().map(|b| b.title.as_str()).collect::<Vec<_>>(),
            ["Private", "Friday Mix"]
        );
        let public = upcoming(&c, now, true).unwrap();
        assert_eq!(public.len(), 1);
        // A recording that starts a little early, or during, takes it; one after does not.
        assert_eq!(
            during(&c, "alice", at("2026-12-05T19:45:00Z")).unwrap().id,
            b.id
        );
        assert!(during(&c, "alice", at("2026-12-05T21:59:00Z")).is_some());
        assert!(during(&c, "alice", at("2026-12-05T22:00:00Z")).is_none());
        assert!(during(&c, "alice", at("2026-12-05T19:00:00Z")).is_none());
        // Once it ended it is not upcoming any more.
        assert!(upcoming(&c, at("2026-12-05T22:00:01Z"), true)
            .unwrap()
            .is_empty());
        assert_eq!(remove(&c, &b.id).unwrap().title, "Friday Mix");
        assert!(matches!(remove(&c, &b.id), Err(Error::NotFound(_))));
    }

    #[test]
    fn bad_broadcasts_are_refused_with_the_reason() {
        let (_d, c) = config();
        let now = at("2026-12-04T12:00:00Z");
        let refused = |n: NewBroadcast<'_>| match add(&c, &n, now) {
            Err(Error::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(refused(new(
            "nobody",
            "x",
            "2026-12-05T20:00:00Z",
            "2026-12-05T21:00:00Z"
        ))
        .contains("has no key"));
        assert!(refused(new(
            "../x",
            "x",
            "2026-12-05T20:00:00Z",
            "2026-12-05T21:00:00Z"
        ))
        .starts_with("stream"));
        assert!(refused(new(
            "alice",
            " ",
            "2026-12-05T20:00:00Z",
            "2026-12-05T21:00:00Z"
        ))
        .starts_with("title"));
        assert!(refused(new(
            "alice",
            "a\u{202E}b",
            "2026-12-05T20:00:00Z",
            "2026-12-05T21:00:00Z"
        ))
        .contains("invisible"));
        assert!(
            refused(new("alice", "x", "tomorrow", "2026-12-05T21:00:00Z")).starts_with("start")
        );
        assert!(refused(new(
            "alice",
            "x",
            "2026-12-05T20:00:00Z",
            "2026-12-05T19:00:00Z"
        ))
        .contains("not after"));
        assert!(refused(new(
            "alice",
            "x",
            "2026-12-05T20:00:00Z",
            "2026-12-08T20:00:00Z"
        ))
        .contains("48 hours"));
        assert!(refused(new(
            "alice",
            "x",
            "2026-12-01T20:00:00Z",
            "2026-12-01T21:00:00Z"
        ))
        .contains("past"));
    }
}
