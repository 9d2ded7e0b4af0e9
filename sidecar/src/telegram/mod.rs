//! The Telegram bot: the owner sends `/dv URL` from a phone and the video lands in the
//! library. Long polling (`getUpdates` with a timeout: no inbound port, any router), only the
//! user ids in `telegram.allow`, one progress message per job edited as it goes and ending
//! with a link to play the item (signed when private). Files never travel through Telegram.
//!
//! Within the Bot API's limits: a chat gets at most one message a second, a `429` on a
//! message pauses all sending for its `retry_after` (on a poll, the polling), network
//! failures back off, and nothing here can stop the daemon. The last update taken and the messages being edited are kept in
//! `DATA/telegram/state.json`, so a restart neither repeats a command nor forgets a job.

pub mod commands;
pub mod transport;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frankenstein::methods::{EditMessageTextParams, GetUpdatesParams, SendMessageParams};
use frankenstein::response::MethodResponse;
use frankenstein::types::{AllowedUpdate, ChatType, LinkPreviewOptions, Message};
use frankenstein::updates::{Update, UpdateContent};
use frankenstein::AsyncTelegramApi;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Telegram};
use crate::error::Error;
use crate::fetch::{Job, Kind, Manager, NewJob, State};
use commands::Command;
use transport::{Failure, Transport};

/// Between two messages to one chat, as the Bot API asks.
const PER_CHAT: Duration = Duration::from_secs(1);

/// Longest wait after failures to reach the Bot API.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Strangers remembered as refused; past this the memory starts again.
const MAX_REFUSED: usize = 10_000;

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The next update to ask for: those before it were taken.
    offset: Option<i64>,
    /// Progress messages of unfinished jobs: job id → (chat, message id).
    following: BTreeMap<String, (i64, i32)>,
}

/// What became of a call that sends or edits a message.
enum Sent<T> {
    Done(T),
    /// The message already says that (an edit whose answer was lost, a restart).
    Unchanged,
    /// The chat or the message is gone: blocked bot, deleted message. Never retried.
    Gone,
    /// Not done now (too many attempts, shutting down, another refusal).
    Failed,
}

/// `sendMessage`'s answer, as far as the bot reads it: one field, so a new kind of content
/// in the echoed message cannot lose the job's message.
#[derive(Deserialize)]
struct SentMessage {
    message_id: i32,
}

struct Bot {
    config: Config,
    settings: Telegram,
    api: Transport,
    jobs: Manager,
    /// When each chat may get its next message.
    next: Mutex<HashMap<i64, Instant>>,
    /// Until when sending waits (a 429's `retry_after`).
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
    let bot = Arc::new(Bot {
        api: Transport::new(&settings.api_base, &token, settings.poll_timeout),
        saved: Mutex::new(load(&config)),
        config,
        settings,
        jobs,
        next: Mutex::new(HashMap::new()),
        paused: Mutex::new(Instant::now()),
        refused: Mutex::new(HashSet::new()),
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

/// The saved state; a damaged file is said, set aside, and started afresh.
fn load(config: &Config) -> Saved {
    let path = config.layout().telegram_state();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Saved::default();
    };
    serde_json::from_str(&text).unwrap_or_else(|e| {
        let aside = path.with_extension("damaged");
        tracing::warn!(
            "telegram: {} is damaged ({e}); moved to {} and starting afresh: messages since \
             the last update taken may be answered again",
            path.display(),
            aside.display()
        );
        let _ = std::fs::rename(&path, aside);
        Saved::default()
    })
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
            let asked = Instant::now();
            // Each update is read on its own: one this version cannot read is skipped, not
            // the batch.
            let answer = tokio::select! {
                _ = self.stop.cancelled() => return,
                a = self.api.request::<_, MethodResponse<Vec<serde_json::Value>>>(
                    "getUpdates",
                    Some(&params),
                ) => a,
            };
            let wait = match answer {
                Ok(updates) => {
                    if failures > 0 {
                        tracing::info!("telegram: the Bot API answers again");
                    }
                    failures = 0;
                    let taken = self.take(updates.result).await;
                    if !taken && asked.elapsed() < Duration::from_secs(1) {
                        // A server that does not hold the poll open is not asked in a loop.
                        Duration::from_secs(1)
                    } else {
                        continue;
                    }
                }
                Err(Failure::Api {
                    code: 429,
                    retry_after,
                    ..
                }) => slowed("getUpdates", retry_after),
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
            if !self.sleep(wait).await {
                return;
            }
        }
    }

    /// Waits `d`; false if the bot is stopping meanwhile.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Handles one answer's updates and confirms them (on disk, once): fetches are queued
    /// and their message saved before, the rest answered in the background. False if there
    /// were none.
    async fn take(self: &Arc<Self>, updates: Vec<serde_json::Value>) -> bool {
        let mut last = None;
        for raw in updates {
            let Some(id) = raw["update_id"].as_i64() else {
                tracing::warn!("telegram: skipping an update without an id");
                continue;
            };
            // After a week without updates the Bot API may start ids anywhere: the batch's
            // last one is what to confirm, whatever came before.
            last = Some(id);
            match serde_json::from_value::<Update>(raw) {
                Ok(Update {
                    content: UpdateContent::Message(m),
                    ..
                }) => self.clone().handle(*m, id + 1).await,
                Ok(_) => {}
                Err(e) => tracing::warn!("telegram: skipping update {id}, unreadable: {e}"),
            }
        }
        let Some(last) = last else {
            return false;
        };
        self.confirm(last + 1, None);
        true
    }

    /// Confirms the updates before `next`, and with them the progress message a fetch
    /// started, in one write: a restart finds both or neither.
    fn confirm(&self, next: i64, following: Option<(String, i64, i32)>) {
        let mut saved = self.saved.lock().expect("not poisoned");
        saved.offset = Some(next);
        if let Some((job, chat, message)) = following {
            saved.following.insert(job, (chat, message));
        }
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

    /// Every message waits here: a 429 pauses all sending, and a chat gets one message a
    /// second. False if the bot is stopping.
    async fn wait_turn(&self, chat: i64) -> bool {
        loop {
            let now = Instant::now();
            let until = {
                let paused = *self.paused.lock().expect("not poisoned");
                let mut next = self.next.lock().expect("not poisoned");
                let slot = next.entry(chat).or_insert(now);
                if paused <= now && *slot <= now {
                    *slot = now + PER_CHAT;
                    return true;
                }
                paused.max(*slot)
            };
            if !self.sleep(until - now).await {
                return false;
            }
        }
    }

    /// One message-sending call, within the limits: a 429 waits as asked and tries again,
    /// a network failure backs off.
    async fn deliver<T, F, Fut>(&self, chat: i64, what: &str, call: F) -> Sent<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        for attempt in 1..=5 {
            if !self.wait_turn(chat).await {
                return Sent::Failed;
            }
            match call().await {
                Ok(v) => return Sent::Done(v),
                Err(Failure::Api {
                    code: 429,
                    retry_after,
                    ..
                }) => {
                    let wait = slowed(what, retry_after);
                    let mut paused = self.paused.lock().expect("not poisoned");
                    *paused = (*paused).max(Instant::now() + wait);
                }
                Err(Failure::Network(e)) => {
                    tracing::warn!("telegram: {what}: {e}");
                    if !self.sleep(backoff(attempt)).await {
                        return Sent::Failed;
                    }
                }
                Err(e) if e.is_not_modified() => return Sent::Unchanged,
                Err(
                    e @ Failure::Api {
                        code: 400 | 403, ..
                    },
                ) => {
                    tracing::warn!("telegram: {what} refused: {e}; not trying again");
                    return Sent::Gone;
                }
                Err(e) => {
                    tracing::warn!("telegram: {what} refused: {e}");
                    return Sent::Failed;
                }
            }
        }
        tracing::warn!("telegram: {what}: giving up after 5 attempts");
        Sent::Failed
    }

    /// Sends a message; its id when it went out.
    async fn send(&self, chat: i64, text: &str) -> Option<i32> {
        let params = SendMessageParams::builder()
            .chat_id(chat)
            .text(commands::fit(text))
            .link_preview_options(LinkPreviewOptions::DISABLED)
            .build();
        let sent = self
            .deliver(chat, "sendMessage", || {
                self.api
                    .request::<_, MethodResponse<SentMessage>>("sendMessage", Some(&params))
            })
            .await;
        match sent {
            Sent::Done(m) => Some(m.result.message_id),
            _ => None,
        }
    }

    /// Edits a message to say `text`.
    async fn edit(&self, chat: i64, message: i32, text: &str) -> Sent<MethodResponse<SentMessage>> {
        let params = EditMessageTextParams::builder()
            .chat_id(chat)
            .message_id(message)
            .text(commands::fit(text))
            .link_preview_options(LinkPreviewOptions::DISABLED)
            .build();
        self.deliver(chat, "editMessageText", || {
            self.api
                .request::<_, MethodResponse<SentMessage>>("editMessageText", Some(&params))
        })
        .await
    }

    /// One message. Only private chats: in a group, links to private items would reach
    /// everyone in it.
    /// `next` is the update to ask for once this one is taken: a fetch confirms it together
    /// with its progress message, the rest at once.
    async fn handle(self: Arc<Self>, m: Message, next: i64) {
        let command = m.text.as_deref().map(commands::parse);
        if !matches!(command, Some(Command::Fetch { .. })) {
            self.confirm(next, None);
        }
        let chat = m.chat.id;
        let Some(user) = m.from.as_ref().map(|u| u.id) else {
            return;
        };
        if m.chat.type_field != ChatType::Private {
            tracing::debug!("telegram: ignoring a message in group {chat}");
            return;
        }
        if !self.settings.allow.contains(&user) {
            self.refuse(chat, user).await;
            return;
        }
        let Some(command) = command else {
            self.spawn_answer(
                chat,
                "Send a link with /dv or /da; /help lists what I do.".into(),
            );
            return;
        };
        match command {
            // Queued before the update is confirmed: a restart cannot lose it.
            Command::Fetch { kind, url } => self.fetch(chat, user, kind, url, next).await,
            Command::Jobs => self.spawn_answer(chat, commands::jobs(&self.jobs.list())),
            Command::Cancel(id) => {
                let me = self.clone();
                tokio::spawn(async move {
                    let answer = match me.jobs.cancel(&id).await {
                        Ok(j) => format!("Job {} {}.", j.id, j.state.as_str()),
                        Err(e) => format!("Cannot cancel: {e}"),
                    };
                    me.send(chat, &answer).await;
                });
            }
            Command::Live => {
                let me = self.clone();
                tokio::spawn(async move {
                    let answer = me.live().await;
                    me.send(chat, &answer).await;
                });
            }
            Command::Link(id) => self.spawn_answer(chat, self.link(&id)),
            Command::Help => self.spawn_answer(chat, commands::HELP.into()),
            Command::Unknown(why) => {
                self.spawn_answer(chat, format!("{why}\n\n{}", commands::HELP))
            }
        }
    }

    fn spawn_answer(self: &Arc<Self>, chat: i64, text: String) {
        let me = self.clone();
        tokio::spawn(async move { me.send(chat, &text).await });
    }

    /// A stranger: one polite answer, and their id in the log (never what they wrote).
    async fn refuse(self: &Arc<Self>, chat: i64, user: u64) {
        let first = {
            let mut refused = self.refused.lock().expect("not poisoned");
            if refused.len() >= MAX_REFUSED {
                refused.clear();
            }
            refused.insert(user)
        };
        if first {
            tracing::info!("telegram: refused user {user} (not in telegram.allow)");
            self.spawn_answer(chat, commands::refusal(user));
        } else {
            tracing::debug!("telegram: refused user {user} again");
        }
    }

    async fn fetch(self: &Arc<Self>, chat: i64, user: u64, kind: Kind, url: String, next: i64) {
        let new = NewJob {
            url: url.clone(),
            kind,
            ..Default::default()
        };
        let job = match self.jobs.submit(new).await {
            Ok(job) => {
                tracing::info!("telegram: user {user} queued job {}", job.id);
                job
            }
            // Asked again (or taken again after a restart): the running job is followed.
            Err(Error::Conflict(_)) if self.running(&url, kind).is_some() => {
                self.running(&url, kind).expect("just found")
            }
            Err(e) => {
                self.confirm(next, None);
                self.spawn_answer(chat, format!("Cannot fetch that: {e}"));
                return;
            }
        };
        let Some(message) = self.send(chat, &self.progress_text(&job)).await else {
            self.confirm(next, None);
            return;
        };
        self.confirm(next, Some((job.id.clone(), chat, message)));
        tokio::spawn(self.clone().follow(chat, message, job.id));
    }

    /// The unfinished job fetching `url`.
    fn running(&self, url: &str, kind: Kind) -> Option<Job> {
        let url = crate::fetch::url::check(url.trim()).ok()?.to_string();
        self.jobs
            .list()
            .into_iter()
            .find(|j| !j.state.is_final() && j.kind == kind && j.url == url)
    }

    /// Edits the job's message as it advances, at most every `progress_every`, until it
    /// ends with the link (or the reason it failed), or the message is gone.
    async fn follow(self: Arc<Self>, chat: i64, message: i32, id: String) {
        let mut shown = String::new();
        while let Some(job) = self.jobs.get(&id) {
            let text = self.progress_text(&job);
            if text != shown {
                match self.edit(chat, message, &text).await {
                    Sent::Done(_) | Sent::Unchanged => shown = text,
                    Sent::Gone => break,
                    Sent::Failed => {}
                }
            }
            if job.state.is_final() && shown == self.progress_text(&job) {
                break;
            }
            if !self.sleep(self.settings.progress_every).await {
                return;
            }
        }
        let mut saved = self.saved.lock().expect("not poisoned");
        saved.following.remove(&id);
        self.save(&saved);
    }

    fn progress_text(&self, job: &Job) -> String {
        let link = (job.state == State::Done)
            .then(|| self.item_link(job))
            .flatten();
        commands::progress(job, link.as_deref())
    }

    /// Where the web page plays a finished job's item: signed when it is private.
    fn item_link(&self, job: &Job) -> Option<String> {
        let id = job.item.as_deref()?;
        let meta = crate::library::read_meta(&self.config, id).ok()?;
        if !meta.private {
            let path = format!("/vod/{id}/{}", streamedge_formats::layout::VOD_PLAYLIST);
            return Some(crate::sign::player(&self.config, &path));
        }
        let path = format!("/vod/{id}");
        let signed = crate::sign::sign(&self.config, &path, self.settings.link_ttl, None).ok()?;
        Some(format!("{} (until {})", signed.player, signed.expires))
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
                let path = format!("/live/{}/", s.name);
                let link = if crate::keys::is_public(&keys, &s.name) {
                    crate::sign::player(&self.config, &path)
                } else {
                    crate::sign::sign(&self.config, &path, self.settings.link_ttl, None)
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

/// The wait a 429 asks for, said in the log. `retry_after` is seconds.
fn slowed(what: &str, retry_after: Option<u64>) -> Duration {
    let secs = retry_after.unwrap_or(5).max(1);
    tracing::info!("telegram: {what}: too many requests; waiting {secs} s as asked");
    Duration::from_secs(secs)
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
