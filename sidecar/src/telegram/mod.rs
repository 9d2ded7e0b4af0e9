//! The Telegram bot: the owner sends `/dv URL` from a phone and the video lands in the
//! library. Long polling (`getUpdates` with a timeout: no inbound port, any router), only the
//! user ids in `telegram.allow`, one progress message per job edited as it goes and ending
//! with a link to play the item (signed when private). Files never travel through Telegram.
//!
//! Within the Bot API's limits: a chat gets at most one message a second, a `429` pauses
//! every call for its `retry_after`, network failures back off, and nothing here can stop
//! the daemon. The last update taken and the messages being edited are kept in
//! `DATA/telegram/state.json`, so a restart neither repeats a command nor forgets a job.

pub mod commands;
pub mod transport;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frankenstein::methods::{EditMessageTextParams, GetUpdatesParams, SendMessageParams};
use frankenstein::types::{AllowedUpdate, LinkPreviewOptions};
use frankenstein::updates::UpdateContent;
use frankenstein::AsyncTelegramApi;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Telegram};
use crate::fetch::{Job, Manager, NewJob, State};
use commands::Command;
use transport::{Failure, Transport};

/// Between two messages to one chat, as the Bot API asks.
const PER_CHAT: Duration = Duration::from_secs(1);

/// Longest wait after failures to reach the Bot API.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The next update to ask for: those before it were taken.
    offset: Option<i64>,
    /// Progress messages of unfinished jobs: job id → (chat, message id).
    following: BTreeMap<String, (i64, i32)>,
}

struct Bot {
    config: Config,
    settings: Telegram,
    api: Transport,
    jobs: Manager,
    /// When each chat may get its next message.
    next: Mutex<HashMap<i64, Instant>>,
    /// Until when every call waits (a 429's `retry_after`).
    paused: Mutex<Instant>,
    /// Users refused once: they are not answered again.
    refused: Mutex<HashSet<u64>>,
    saved: Mutex<Saved>,
    stop: CancellationToken,
}

/// Runs the bot until `stop`. A bot that cannot start says why in the log; the rest of the
/// server runs on.
pub async fn run(config: Config, jobs: Manager, stop: CancellationToken) {
    let Some(settings) = config.telegram.clone() else {
        return;
    };
    let token = match settings.token() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("telegram: {e:#}; the bot is off");
            return;
        }
    };
    let saved = std::fs::read_to_string(config.layout().telegram_state())
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let bot = Arc::new(Bot {
        api: Transport::new(&settings.api_base, &token, settings.poll_timeout),
        config,
        settings,
        jobs,
        next: Mutex::new(HashMap::new()),
        paused: Mutex::new(Instant::now()),
        refused: Mutex::new(HashSet::new()),
        saved: Mutex::new(saved),
        stop,
    });
    let following = bot.saved.lock().expect("not poisoned").following.clone();
    for (job, (chat, message)) in following {
        tokio::spawn(bot.clone().follow(chat, message, job));
    }
    tracing::info!(
        "telegram: bot polling {} for {} allowed user(s)",
        bot.settings.api_base,
        bot.settings.allow.len()
    );
    bot.poll().await;
}

impl Bot {
    /// Long polling, for ever: each answer's updates handled, then confirmed by the next
    /// call's offset.
    async fn poll(self: &Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let offset = self.saved.lock().expect("not poisoned").offset;
            let params = GetUpdatesParams::builder()
                .maybe_offset(offset)
                .timeout(self.settings.poll_timeout.as_secs().max(1) as u32)
                .allowed_updates(vec![AllowedUpdate::Message])
                .build();
            self.wait_turn(None).await;
            let asked = Instant::now();
            let answer = tokio::select! {
                _ = self.stop.cancelled() => return,
                a = self.api.get_updates(&params) => a,
            };
            let wait = match answer {
                Ok(updates) => {
                    if failures > 0 {
                        tracing::info!("telegram: the Bot API answers again");
                    }
                    failures = 0;
                    if updates.result.is_empty() && asked.elapsed() < Duration::from_secs(1) {
                        // A server that does not hold the poll open is not asked in a loop.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    for u in updates.result {
                        self.take(i64::from(u.update_id) + 1);
                        if let UpdateContent::Message(m) = u.content {
                            let me = self.clone();
                            tokio::spawn(async move { me.handle(*m).await });
                        }
                    }
                    continue;
                }
                Err(Failure::Api {
                    code: 429,
                    retry_after,
                    ..
                }) => {
                    let secs = retry_after.unwrap_or(5).max(1);
                    tracing::info!("telegram: too many requests; waiting {secs} s as asked");
                    self.pause(Duration::from_secs(secs));
                    continue;
                }
                Err(Failure::Decode(e)) => {
                    // One update this version cannot read must not stop all that follow.
                    tracing::warn!("telegram: cannot read the updates ({e}); skipping them");
                    self.skip_unreadable(&params).await;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    let why = match &e {
                        Failure::Api {
                            code: 401 | 404, ..
                        } => {
                            format!(
                                "the Bot API refused the token ({e}): check telegram.token_file"
                            )
                        }
                        Failure::Api { code: 409, .. } => format!(
                            "{e} (another program polls with this bot's token, or it has a webhook)"
                        ),
                        _ => format!("cannot reach the Bot API: {e}"),
                    };
                    let wait = backoff(failures);
                    tracing::warn!("telegram: {why}; trying again in {} s", wait.as_secs());
                    wait
                }
            };
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Confirms updates up to `offset` (exclusive), on disk.
    fn take(&self, offset: i64) {
        let mut saved = self.saved.lock().expect("not poisoned");
        if saved.offset.is_some_and(|o| o >= offset) {
            return;
        }
        saved.offset = Some(offset);
        self.save(&saved);
    }

    fn save(&self, saved: &Saved) {
        let path = self.config.layout().telegram_state();
        let text = serde_json::to_string_pretty(saved).expect("state serializes");
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(anyhow::Error::from)
            .and_then(|()| crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600, None));
        if let Err(e) = result {
            tracing::warn!("telegram: cannot write {}: {e:#}", path.display());
        }
    }

    /// Moves past updates that do not decode, reading only their ids.
    async fn skip_unreadable(&self, params: &GetUpdatesParams) {
        let Ok(v) = self.api.call("getUpdates", Some(params)).await else {
            return;
        };
        let last = v["result"]
            .as_array()
            .and_then(|list| list.iter().filter_map(|u| u["update_id"].as_i64()).max());
        if let Some(id) = last {
            self.take(id + 1);
        }
    }

    /// Every call waits here: a 429 pauses all, and a chat gets one message a second.
    async fn wait_turn(&self, chat: Option<i64>) {
        loop {
            let now = Instant::now();
            let mut until = *self.paused.lock().expect("not poisoned");
            if let Some(chat) = chat {
                let mut next = self.next.lock().expect("not poisoned");
                let slot = next.entry(chat).or_insert(now);
                if until <= now && *slot <= now {
                    *slot = now + PER_CHAT;
                    return;
                }
                until = until.max(*slot);
            } else if until <= now {
                return;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    fn pause(&self, d: Duration) {
        let mut paused = self.paused.lock().expect("not poisoned");
        *paused = (*paused).max(Instant::now() + d);
    }

    /// One message-sending call, within the limits: a 429 waits as asked and tries again,
    /// a network failure backs off; `None` if it could not be done.
    async fn deliver<T, F, Fut>(&self, chat: i64, what: &str, call: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        for attempt in 1..=5 {
            self.wait_turn(Some(chat)).await;
            if self.stop.is_cancelled() {
                return None;
            }
            match call().await {
                Ok(v) => return Some(v),
                Err(Failure::Api {
                    code: 429,
                    retry_after,
                    ..
                }) => {
                    let secs = retry_after.unwrap_or(5).max(1);
                    tracing::info!(
                        "telegram: {what}: too many requests; waiting {secs} s as asked"
                    );
                    self.pause(Duration::from_secs(secs));
                }
                Err(Failure::Network(e)) => {
                    tracing::warn!("telegram: {what}: {e}");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) if e.is_not_modified() => return None,
                Err(e) => {
                    tracing::warn!("telegram: {what} refused: {e}");
                    return None;
                }
            }
        }
        tracing::warn!("telegram: {what}: giving up after 5 attempts");
        None
    }

    /// Sends a message; its id when it went out.
    async fn send(&self, chat: i64, text: &str) -> Option<i32> {
        let params = SendMessageParams::builder()
            .chat_id(chat)
            .text(commands::fit(text))
            .link_preview_options(LinkPreviewOptions::DISABLED)
            .build();
        self.deliver(chat, "sendMessage", || self.api.send_message(&params))
            .await
            .map(|m| m.result.message_id)
    }

    /// Edits a message; whether it now says `text`.
    async fn edit(&self, chat: i64, message: i32, text: &str) -> bool {
        let params = EditMessageTextParams::builder()
            .chat_id(chat)
            .message_id(message)
            .text(commands::fit(text))
            .link_preview_options(LinkPreviewOptions::DISABLED)
            .build();
        self.deliver(chat, "editMessageText", || {
            self.api.edit_message_text(&params)
        })
        .await
        .is_some()
    }

    async fn handle(self: Arc<Self>, m: frankenstein::types::Message) {
        let chat = m.chat.id;
        let Some(user) = m.from.as_ref().map(|u| u.id) else {
            return;
        };
        if !self.settings.allow.contains(&user) {
            // The id, never what they wrote.
            let first = self.refused.lock().expect("not poisoned").insert(user);
            tracing::info!(
                "telegram: refused user {user} (not in telegram.allow){}",
                if first { "" } else { "; not answered again" }
            );
            if first {
                self.send(chat, &commands::refusal(user)).await;
            }
            return;
        }
        let Some(text) = m.text.as_deref() else {
            self.send(chat, "Send a link with /dv or /da; /help lists what I do.")
                .await;
            return;
        };
        match commands::parse(text) {
            Command::Fetch { kind, url } => self.fetch(chat, user, kind, url).await,
            Command::Jobs => {
                let list = self.jobs.list();
                self.send(chat, &commands::jobs(&list)).await;
            }
            Command::Cancel(id) => {
                let answer = match self.jobs.cancel(&id).await {
                    Ok(j) => format!("Job {} {}.", j.id, j.state.as_str()),
                    Err(e) => format!("Cannot cancel: {e}"),
                };
                self.send(chat, &answer).await;
            }
            Command::Live => {
                let answer = self.live().await;
                self.send(chat, &answer).await;
            }
            Command::Link(id) => {
                let answer = self.link(&id);
                self.send(chat, &answer).await;
            }
            Command::Help => {
                self.send(chat, commands::HELP).await;
            }
            Command::Unknown(why) => {
                self.send(chat, &format!("{why}\n\n{}", commands::HELP))
                    .await;
            }
        }
    }

    async fn fetch(self: Arc<Self>, chat: i64, user: u64, kind: crate::fetch::Kind, url: String) {
        let new = NewJob {
            url,
            kind,
            ..Default::default()
        };
        match self.jobs.submit(new).await {
            Ok(job) => {
                tracing::info!("telegram: user {user} queued job {}", job.id);
                let Some(message) = self.send(chat, &commands::progress(&job, None)).await else {
                    return;
                };
                {
                    let mut saved = self.saved.lock().expect("not poisoned");
                    saved.following.insert(job.id.clone(), (chat, message));
                    self.save(&saved);
                }
                self.follow(chat, message, job.id).await;
            }
            Err(e) => {
                self.send(chat, &format!("Cannot fetch that: {e}")).await;
            }
        }
    }

    /// Edits the job's message as it advances, at most every `progress_every`, until it
    /// ends with the link (or the reason it failed).
    async fn follow(self: Arc<Self>, chat: i64, message: i32, id: String) {
        let mut shown = String::new();
        while let Some(job) = self.jobs.get(&id) {
            let text = self.progress_text(&job);
            if text != shown && self.edit(chat, message, &text).await {
                shown = text;
            }
            if job.state.is_final() && shown == self.progress_text(&job) {
                break;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.progress_every) => {}
            }
        }
        let mut saved = self.saved.lock().expect("not poisoned");
        saved.following.remove(&id);
        self.save(&saved);
    }

    fn progress_text(&self, job: &Job) -> String {
        let link = (job.state == State::Done)
            .then(|| self.item_link(&job.id))
            .flatten();
        commands::progress(job, link.as_deref())
    }

    /// Where the web page plays a library item: signed when it is private.
    fn item_link(&self, id: &str) -> Option<String> {
        let meta = crate::library::read_meta(&self.config, id).ok()?;
        if meta.private {
            let signed = crate::sign::sign(
                &self.config,
                &format!("/vod/{id}"),
                self.settings.link_ttl,
                None,
            );
            return signed
                .ok()
                .map(|s| format!("{} (until {})", s.player, s.expires));
        }
        Some(format!(
            "{}/#play=/vod/{id}/{}",
            self.config.watch_url(),
            streamedge_formats::layout::VOD_PLAYLIST
        ))
    }

    /// `/link ID`: a signed link to an item, or to a stream by its name.
    fn link(&self, id: &str) -> String {
        let path = if crate::library::read_meta(&self.config, id).is_ok() {
            format!("/vod/{id}")
        } else {
            let keys = crate::keys::load(&self.config.layout().keys_file()).unwrap_or_default();
            if keys.get(id).is_none() {
                return format!("No library item or stream \"{id}\".");
            }
            format!("/live/{id}/")
        };
        match crate::sign::sign(&self.config, &path, self.settings.link_ttl, None) {
            Ok(s) => format!("{}\n(works until {})", s.player, s.expires),
            Err(e) => format!("Cannot sign a link: {e:#}"),
        }
    }

    /// `/live`: who is live, with a link to each.
    async fn live(&self) -> String {
        let streams = match crate::nginx::streams_all(&self.config).await {
            Ok(s) => s,
            Err(e) => return format!("Cannot ask nginx who is live: {e:#}"),
        };
        let keys = crate::keys::load(&self.config.layout().keys_file()).unwrap_or_default();
        let lines: Vec<String> = streams
            .iter()
            .filter(|s| s.live)
            .map(|s| {
                let link = if crate::keys::is_public(&keys, &s.name) {
                    format!("{}/#play=/live/{}/", self.config.watch_url(), s.name)
                } else {
                    crate::sign::sign(
                        &self.config,
                        &format!("/live/{}/", s.name),
                        self.settings.link_ttl,
                        None,
                    )
                    .map(|l| format!("{} (private)", l.player))
                    .unwrap_or_else(|e| format!("(cannot sign: {e:#})"))
                };
                let title = s
                    .title
                    .as_deref()
                    .map(|t| format!(" - {t}"))
                    .unwrap_or_default();
                let viewers = s
                    .audience
                    .map(|a| format!(", {} watching", a.viewers))
                    .unwrap_or_default();
                format!("{}{title}{viewers}\n{link}", s.name)
            })
            .collect();
        if lines.is_empty() {
            "Nobody is live.".into()
        } else {
            lines.join("\n\n")
        }
    }
}

/// 1 s, 2 s, 4 s … up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn state_round_trips() {
        let mut s = Saved {
            offset: Some(42),
            ..Default::default()
        };
        s.following.insert("j1".into(), (-100, 7));
        let back: Saved = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.offset, Some(42));
        assert_eq!(back.following["j1"], (-100, 7));
    }
}
