//! What the bot understands, and the words it answers with: plain logic, no network.

use crate::fetch::{Job, Kind, State};

/// A message from an allowed user, understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Fetch {
        kind: Kind,
        url: String,
    },
    Jobs,
    Cancel(String),
    Live,
    Link(String),
    Help,
    /// Something else: the answer says what went wrong.
    Unknown(String),
}

/// The answer to `/help`, and to what the bot does not understand.
pub const HELP: &str = "\
/dv URL - fetch a video into the library
/da URL - fetch audio only
/jobs - what is being fetched
/cancel ID - stop a job
/live - who is live now
/link ID - a link to a private item or stream
/help - this list

A link alone works as /dv.";

/// A message's text as a command. `/cmd@BotName` is how Telegram writes commands in groups.
pub fn parse(text: &str) -> Command {
    let text = text.trim();
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    let word = word
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let arg = || rest.split_whitespace().next().map(str::to_string);
    match word.as_str() {
        "/dv" | "/da" => match arg() {
            Some(url) => Command::Fetch {
                kind: if word == "/da" {
                    Kind::Audio
                } else {
                    Kind::Video
                },
                url,
            },
            None => Command::Unknown(format!("{word} needs a link: {word} https://…")),
        },
        "/jobs" => Command::Jobs,
        "/cancel" => match arg() {
            Some(id) => Command::Cancel(id),
            None => Command::Unknown("/cancel needs a job id (see /jobs)".into()),
        },
        "/live" => Command::Live,
        "/link" => match arg() {
            Some(id) => Command::Link(id),
            None => Command::Unknown("/link needs an item id or a stream name".into()),
        },
        "/help" | "/start" => Command::Help,
        _ if word.starts_with("http://") || word.starts_with("https://") => Command::Fetch {
            kind: Kind::Video,
            url: text.split_whitespace().next().unwrap_or_default().into(),
        },
        _ => Command::Unknown("I do not know that one.".into()),
    }
}

/// The refusal an unknown user gets, once.
pub fn refusal(user: u64) -> String {
    format!(
        "Sorry, this bot is private. If it is yours, add your Telegram user id {user} to \
         telegram.allow in streamedge.toml."
    )
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Video => "Video",
        Kind::Audio => "Audio",
    }
}

fn eta(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// A job's line: "downloading 45% (about 2 min left)".
pub fn state_line(job: &Job) -> String {
    let mut line = job.state.as_str().to_string();
    if let Some(p) = job.percent {
        line += &format!(" {p:.0}%");
    }
    if let Some(s) = job.eta.filter(|_| !job.state.is_final()) {
        line += &format!(" (about {} left)", eta(s));
    }
    line
}

/// The text of a job's progress message; `link` once the item can be played.
pub fn progress(job: &Job, link: Option<&str>) -> String {
    // Short, so the link after it always fits.
    let title = shorten(job.title.as_deref().unwrap_or(&job.url), 200);
    match (job.state, link) {
        (State::Done, Some(link)) => format!("{} ready: {title}\n{link}", what(job.kind)),
        (State::Done, None) => format!("{} ready: {title}", what(job.kind)),
        (State::Failed, _) => format!(
            "{} failed: {title}\n{}",
            what(job.kind),
            job.error.as_deref().unwrap_or("no reason given")
        ),
        (State::Cancelled, _) => format!("{} cancelled: {title}", what(job.kind)),
        _ => format!(
            "{} {}: {title}\njob {}: {}",
            what(job.kind),
            if job.state == State::Queued {
                "queued"
            } else {
                "on its way"
            },
            job.id,
            state_line(job)
        ),
    }
}

/// `/jobs`: the latest jobs, one line each.
pub fn jobs(list: &[Job]) -> String {
    if list.is_empty() {
        return "No jobs yet. Send /dv URL.".into();
    }
    list.iter()
        .take(10)
        .map(|j| {
            format!(
                "{} {} - {}",
                j.id,
                j.title.as_deref().unwrap_or(&j.url),
                state_line(j)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most `max` UTF-16 code units of `text`, as Telegram counts a message's length.
fn shorten(text: &str, max: usize) -> String {
    if text.encode_utf16().count() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut units = 0;
    for c in text.chars() {
        units += c.len_utf16();
        if units > max - 1 {
            break;
        }
        out.push(c);
    }
    out + "…"
}

/// What a message may hold: the Bot API's limit is 4096 UTF-16 code units.
pub fn fit(text: &str) -> String {
    shorten(text, 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commands() {
        assert_eq!(
            parse("/dv https://example.org/v"),
            Command::Fetch {
                kind: Kind::Video,
                url: "https://example.org/v".into()
            }
        );
        assert_eq!(
            parse("/da@HomeBot   https://example.org/a  "),
            Command::Fetch {
                kind: Kind::Audio,
                url: "https://example.org/a".into()
            }
        );
        assert_eq!(
            parse("https://example.org/v look"),
            Command::Fetch {
                kind: Kind::Video,
                url: "https://example.org/v".into()
            }
        );
        assert_eq!(parse("/JOBS"), Command::Jobs);
        assert_eq!(parse("/cancel 123"), Command::Cancel("123".into()));
        assert_eq!(parse("/link abc"), Command::Link("abc".into()));
        assert_eq!(parse("/start"), Command::Help);
        assert_eq!(parse("/live"), Command::Live);
        assert!(matches!(parse("/dv"), Command::Unknown(w) if w.contains("needs a link")));
        assert!(matches!(parse("/cancel"), Command::Unknown(_)));
        assert!(matches!(parse("hello"), Command::Unknown(_)));
        assert!(matches!(parse(""), Command::Unknown(_)));
    }

    fn job(state: State) -> Job {
        serde_json::from_value(serde_json::json!({
            "id": "j1", "url": "https://example.org/v", "kind": "video", "preset": "fmp4",
            "title": null, "state": state, "percent": 45.2, "eta": 130, "error": null,
            "item": null, "created": "", "updated": ""
        }))
        .unwrap()
    }

    #[test]
    fn tells_how_a_job_goes() {
        assert_eq!(
            progress(&job(State::Downloading), None),
            "Video on its way: https://example.org/v\njob j1: downloading 45% (about 3 min left)"
        );
        assert_eq!(
            progress(
                &job(State::Done),
                Some("https://h/#play=/vod/j1/master.m3u8")
            ),
            "Video ready: https://example.org/v\nhttps://h/#play=/vod/j1/master.m3u8"
        );
        let mut failed = job(State::Failed);
        failed.error = Some("HTTP Error 404".into());
        assert!(progress(&failed, None).ends_with("HTTP Error 404"));
        assert_eq!(jobs(&[]), "No jobs yet. Send /dv URL.");
        assert!(jobs(&[job(State::Queued)]).starts_with("j1 https://example.org/v - queued"));
        assert_eq!(eta(3700), "1 h 1 min");
    }

    #[test]
    fn keeps_messages_within_the_limit() {
        let long = "é".repeat(5000);
        assert_eq!(fit(&long).encode_utf16().count(), 4096);
        // An emoji is two code units: 4000 of them are 8000.
        let emoji = "🎵".repeat(4000);
        assert_eq!(fit(&emoji).encode_utf16().count(), 4095);
        assert_eq!(fit("short"), "short");
        // A long title leaves room for the link.
        let mut j = job(State::Done);
        j.title = Some("🎵".repeat(3000));
        let text = progress(&j, Some("https://h/#play=/vod/j1/master.m3u8"));
        assert!(text.ends_with("/vod/j1/master.m3u8"), "{text}");
        assert!(text.encode_utf16().count() < 300);
    }
}
