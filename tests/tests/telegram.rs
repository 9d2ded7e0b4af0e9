//! The Telegram bot end to end: real `streamedge run` (nginx, yt-dlp, ffmpeg) polling a
//! loopback stand-in of the Bot API. A `/dv` from an allowed user becomes a library item
//! fetched from a loopback web server, and the user's one progress message ends with the
//! link that plays it; strangers are refused once and their words never logged; a 429
//! slows the bot down as asked; a 409 and a broken connection do not stop it.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use streamedge_tests::*;

const TOKEN: &str = "4242:AAF-secret_token-xyz";
const OWNER: u64 = 1111;
const STRANGER: u64 = 2222;
const LONG: Duration = Duration::from_secs(150);

fn with_bot(s: &Server, bot: &TelegramStandin) {
    let token_file = s.path("telegram-bot.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.edit_config(|c| {
        let mut t = toml::Table::new();
        t.insert("token_file".into(), "telegram-bot.token".into());
        t.insert("allow".into(), vec![toml::Value::from(OWNER as i64)].into());
        t.insert("api_base".into(), bot.base().into());
        t.insert("poll_timeout".into(), "5s".into());
        t.insert("progress_every".into(), "1s".into());
        c.insert("telegram".into(), t.into());
    });
}

/// A media server to fetch from, the Bot API stand-in, and a running server whose bot polls
/// it.
fn server_with_bot() -> (MediaServer, TelegramStandin, Server) {
    let media = MediaServer::start();
    let bot = TelegramStandin::start(TOKEN);
    let mut s = Server::init(Options::default());
    with_bot(&s, &bot);
    s.run();
    (media, bot, s)
}

/// Waits until a message to `chat` satisfies `f`; returns its texts.
fn wait_message(bot: &TelegramStandin, chat: u64, what: &str, f: impl Fn(&str) -> bool) -> Sent {
    wait_for(what, LONG, || {
        bot.messages(chat as i64)
            .into_iter()
            .find(|m| m.texts.last().is_some_and(|t| f(t)))
    })
}

#[test]
fn a_link_sent_to_the_bot_becomes_a_library_item() {
    let (media, bot, s) = server_with_bot();

    // The owner asks for a video: one message, edited until it holds the link.
    let url = media.url("/clip.mp4");
    bot.say(OWNER, &format!("/dv {url}"));
    let done = wait_message(&bot, OWNER, "the item's link", |t| t.contains("#play="));
    let first = &done.texts[0];
    assert!(
        first.starts_with("Video queued") || first.starts_with("Video on its way"),
        "{first}"
    );
    let link = done.texts.last().unwrap();
    assert!(link.starts_with("Video ready:"), "{link}");
    let played = link
        .split("#play=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let id = played
        .strip_prefix("/vod/")
        .and_then(|p| p.strip_suffix("/master.m3u8"))
        .unwrap_or_else(|| panic!("not an item's playlist: {played}"));
    let r = http_get(&s.url(played)).unwrap();
    assert_eq!(r.status, 200, "{played}");
    assert!(r.text().starts_with("#EXTM3U"));
    let (_, job) = s.api("GET", &format!("/api/jobs/{id}"), None, true);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["kind"], "video");
    // One message for the job, edited, not a stream of messages.
    assert_eq!(bot.messages(OWNER as i64).len(), 1);
    assert!(done.texts.len() >= 2, "{:?}", done.texts);

    // A private item: the done message and /link give signed links.
    assert!(s.cli(&["library", "private", id]).status.success());
    bot.say(OWNER, &format!("/link {id}"));
    let signed = wait_message(&bot, OWNER, "a signed link", |t| t.contains("/s/"));
    let path = signed.texts[0]
        .split("#play=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .replace("%25", "%");
    assert_eq!(http_get(&s.url(&path)).unwrap().status, 200, "{path}");
    assert_eq!(
        http_get(&s.url(&format!("/vod/{id}/master.m3u8")))
            .unwrap()
            .status,
        404,
        "the private item without the link"
    );

    // /jobs and /help answer; an unknown command gets the list.
    bot.say(OWNER, "/jobs");
    wait_message(&bot, OWNER, "the job list", |t| {
        t.contains(id) && t.contains("done")
    });
    bot.say(OWNER, "/whatever");
    wait_message(&bot, OWNER, "the help", |t| {
        t.starts_with("I do not know that one.") && t.contains("/dv URL")
    });

    // A stranger: refused once, told their id, nothing fetched, their words not logged.
    let secret_url = media.url("/clip.mp4?stranger-was-here");
    let jobs_before = s
        .api("GET", "/api/jobs", None, true)
        .1
        .as_array()
        .unwrap()
        .len();
    bot.say(STRANGER, &format!("/dv {secret_url}"));
    bot.say(STRANGER, &format!("/da {secret_url}"));
    wait_for("both stranger updates taken", LONG, || {
        (bot.unconfirmed() == 0 && !bot.messages(STRANGER as i64).is_empty()).then_some(())
    });
    // One line for the stranger, however often they write (the log is not theirs to fill).
    assert_eq!(s.read("run.log").matches("refused user 2222").count(), 1);
    let refusals = bot.messages(STRANGER as i64);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].texts[0].contains("private"));
    assert!(refusals[0].texts[0].contains("2222"));
    let jobs_after = s
        .api("GET", "/api/jobs", None, true)
        .1
        .as_array()
        .unwrap()
        .len();
    assert_eq!(jobs_before, jobs_after);
    let logs = s.all_logs();
    assert!(
        !logs.contains("stranger-was-here"),
        "a stranger's message was logged"
    );
    assert!(
        !logs.contains(TOKEN) && !logs.contains("AAF-secret"),
        "the token was logged"
    );

    // Groups are not served (links to private items would reach everyone in them), a
    // message without text (a location) gets a hint, an update this version cannot read is skipped.
    const GROUP: i64 = -100_777;
    bot.say_in_group(OWNER, GROUP, &format!("/dv {url}"));
    bot.say_in_group(STRANGER + 1, GROUP, "/help");
    bot.send_update(serde_json::json!({
        "message_id": "not a number", "date": 0, "chat": {"id": OWNER, "type": "private"},
    }));
    bot.send_update(serde_json::json!({
        "message_id": 7, "date": 0,
        "chat": {"id": OWNER, "type": "private", "first_name": "Sam"},
        "from": {"id": OWNER, "is_bot": false, "first_name": "Sam"},
        "location": {"latitude": 52.5, "longitude": 13.4},
    }));
    wait_message(&bot, OWNER, "the hint for a location", |t| {
        t.starts_with("Send a link with /dv")
    });
    wait_for("the group's updates taken", LONG, || {
        (bot.unconfirmed() == 0).then_some(())
    });
    assert!(
        bot.messages(GROUP).is_empty(),
        "the bot answered in a group"
    );
    assert!(s.read("run.log").contains("unreadable"));

    // A 429 on sendMessage: the bot waits the retry_after it was given, then delivers.
    bot.slow_down("sendMessage", 3);
    bot.say(OWNER, "/help");
    wait_message(&bot, OWNER, "help after the 429", |t| {
        t.starts_with("/dv URL")
    });
    let calls = bot.calls();
    let limited = calls
        .iter()
        .position(|c| c.method == "sendMessage" && c.status == 429)
        .expect("the 429 was answered");
    let retry = calls[limited + 1..]
        .iter()
        .find(|c| c.method == "sendMessage")
        .expect("the bot tried again");
    assert!(
        retry.at.duration_since(calls[limited].at) >= Duration::from_millis(2900),
        "the bot came back {:?} after a 429 asking for 3 s",
        retry.at.duration_since(calls[limited].at)
    );
    assert!(s.read("run.log").contains("waiting 3 s as asked"));

    // A 409 (another instance polling): logged, and the bot goes on.
    bot.conflict_next();
    wait_for("the 409 answered", LONG, || {
        bot.calls()
            .iter()
            .any(|c| c.method == "getUpdates" && c.status == 409)
            .then_some(())
    });
    bot.say(OWNER, "/live");
    wait_message(&bot, OWNER, "who is live", |t| t == "Nobody is live.");
    assert!(s
        .read("run.log")
        .contains("Conflict: terminated by other getUpdates"));
    // Never faster than a chat may get messages.
    assert_eq!(bot.floods(), 0, "the bot sent faster than Telegram allows");
}

#[test]
fn the_bot_survives_restarts_and_an_unreachable_api() {
    let (media, bot, mut s) = server_with_bot();

    // A stream goes live: /live names it with a link that plays.
    let key = s.key("add", "alice");
    let publisher = Publisher::start(&key.url(), 300);
    s.wait_live("alice", true);
    bot.say(OWNER, "/live");
    let live = wait_message(&bot, OWNER, "alice live", |t| t.starts_with("alice"));
    let path = live.texts[0]
        .split("#play=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(path, "/live/alice/");
    assert_eq!(http_get(&s.url(&path)).unwrap().status, 200);
    drop(publisher);

    // A job asked for, then the sidecar killed: after the restart the same message is
    // edited to the end, and the command is not taken twice.
    bot.say(OWNER, &format!("/da {}", media.url("/song.m4a")));
    wait_message(&bot, OWNER, "the job's message", |t| t.contains("Audio"));
    wait_for("the job's message saved", LONG, || {
        s.read("data/telegram/state.json")
            .contains("following\": {\n")
            .then_some(())
    });
    s.kill_run();
    s.run();
    let done = wait_message(&bot, OWNER, "the audio's link", |t| {
        t.starts_with("Audio ready:")
    });
    assert!(done.texts.last().unwrap().contains("/master.m3u8"));
    assert!(done.texts[0].starts_with("Audio"), "{:?}", done.texts);
    // Two messages in all (the /live answer and the job's): the /da was not taken twice.
    let all = bot.messages(OWNER as i64);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(!all
        .iter()
        .any(|m| m.texts.iter().any(|t| t.contains("Cannot fetch"))));
    assert_eq!(bot.floods(), 0);
    let (_, jobs) = s.api("GET", "/api/jobs", None, true);
    let audio: Vec<_> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "audio")
        .collect();
    assert_eq!(audio.len(), 1, "{jobs}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.data("telegram/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        std::fs::metadata(s.data("telegram/state.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(state["offset"].as_i64().is_some(), "{state}");

    // The Bot API away (a wrong base): the bot backs off and the server goes on serving.
    s.stop();
    let port = free_port();
    s.edit_config(|c| {
        let t = c
            .get_mut("telegram")
            .and_then(|t| t.as_table_mut())
            .unwrap();
        t.insert("api_base".into(), format!("http://127.0.0.1:{port}").into());
    });
    s.run();
    wait_for("the bot backing off", LONG, || {
        s.read("run.log")
            .contains("cannot reach the Bot API")
            .then_some(())
    });
    assert_eq!(http_get(&s.url("/")).unwrap().status, 200);
    assert!(!s.all_logs().contains(TOKEN), "the token was logged");

    // A token file others may read: the bot is off, and says why; the server runs.
    s.stop();
    std::fs::set_permissions(
        s.path("telegram-bot.token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    s.run();
    wait_for("the refusal of the token file", LONG, || {
        s.read("run.log")
            .contains("may be read by others")
            .then_some(())
    });
    assert_eq!(http_get(&s.url("/")).unwrap().status, 200);
}
