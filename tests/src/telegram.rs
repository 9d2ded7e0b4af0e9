//! A stand-in for the Telegram Bot API, following its documented contract
//! (<https://core.telegram.org/bots/api>): `POST /bot<TOKEN>/<method>` with a JSON body,
//! answers `{"ok": true, "result": …}` or `{"ok": false, "error_code": N, "description": …,
//! "parameters": {"retry_after": N}}`; `getUpdates` long-polls up to `timeout` seconds and an
//! `offset` confirms the updates before it; a second `getUpdates` ends the one in progress
//! with 409; `editMessageText` with the same text is a 400 "message is not modified"; a
//! message is at most 4096 UTF-16 code units; a chat that gets more than 3 messages within 2
//! seconds is answered 429 (Telegram asks for about one a second, allowing short bursts).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ports::{respond_json, tiny_server};

/// One call the stand-in answered: when, which method, what body, what status.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub method: String,
    pub body: Value,
    pub status: u16,
}

/// A message the bot sent, with every text it has had (the first is what it was sent with).
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat: i64,
    pub id: i64,
    pub texts: Vec<String>,
}

#[derive(Default)]
struct State {
    token: String,
    next_update: i64,
    /// Updates not yet confirmed by an offset.
    updates: VecDeque<Value>,
    /// Incremented by each `getUpdates`: an older poll still waiting answers 409.
    poll: u64,
    sent: Vec<Sent>,
    calls: Vec<Call>,
    /// Methods whose next call answers 429 with this `retry_after`.
    slow_down: HashMap<String, u64>,
    /// The next `getUpdates` answers 409, as when another instance polls.
    conflict_next: bool,
    /// When each chat got its recent messages (sent or edited).
    recent: HashMap<i64, VecDeque<Instant>>,
    /// 429s the stand-in answered of its own accord: the bot went too fast.
    flood: usize,
}

pub struct TelegramStandin {
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl TelegramStandin {
    pub fn start(token: &str) -> TelegramStandin {
        let (port, server) = tiny_server("the Telegram stand-in");
        let state = Arc::new((
            Mutex::new(State {
                token: token.into(),
                next_update: 100,
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let shared = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let shared = shared.clone();
                // Long polls wait: each request has its own thread.
                std::thread::spawn(move || {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    let path = req.url().to_string();
                    let post = *req.method() == tiny_http::Method::Post;
                    let (status, answer) = respond(&shared, &path, post, &body);
                    respond_json(req, status, answer.to_string());
                });
            }
        });
        TelegramStandin { port, state }
    }

    /// What `telegram.api_base` is set to.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A private-chat message from user `user` (the chat id is the user id, as Telegram
    /// does for private chats).
    pub fn say(&self, user: u64, text: &str) {
        let chat = json!({"id": user, "type": "private", "first_name": "Sam"});
        self.message(user, chat, json!(text));
    }

    /// A message from `user` in the group `group` (group ids are negative).
    pub fn say_in_group(&self, user: u64, group: i64, text: &str) {
        let chat = json!({"id": group, "type": "group", "title": "Friends"});
        self.message(user, chat, json!(text));
    }

    /// A message without text (a sticker, say), or with fields as `message` gives them.
    pub fn send_update(&self, message: Value) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        let id = s.next_update;
        s.next_update += 1;
        s.updates
            .push_back(json!({"update_id": id, "message": message}));
        cv.notify_all();
    }

    fn message(&self, user: u64, chat: Value, text: Value) {
        let id = self.state.0.lock().unwrap().next_update;
        self.send_update(json!({
            "message_id": id * 10,
            "date": unix_now(),
            "chat": chat,
            "from": {"id": user, "is_bot": false, "first_name": "Sam", "username": "sam"},
            "text": text,
        }));
    }

    /// 429s the stand-in gave because the bot sent too fast to one chat.
    pub fn floods(&self) -> usize {
        self.state.0.lock().unwrap().flood
    }

    /// The next call of `method` answers 429 Too Many Requests with `retry_after`.
    pub fn slow_down(&self, method: &str, retry_after: u64) {
        let mut s = self.state.0.lock().unwrap();
        s.slow_down.insert(method.into(), retry_after);
    }

    /// The next `getUpdates` answers 409 Conflict.
    pub fn conflict_next(&self) {
        self.state.0.lock().unwrap().conflict_next = true;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.0.lock().unwrap().calls.clone()
    }

    /// Messages sent to `chat`, oldest first.
    pub fn messages(&self, chat: i64) -> Vec<Sent> {
        let s = self.state.0.lock().unwrap();
        s.sent.iter().filter(|m| m.chat == chat).cloned().collect()
    }

    /// Updates the bot has not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.state.0.lock().unwrap().updates.len()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn error(code: u16, description: &str) -> (u16, Value) {
    (
        code,
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

fn respond(shared: &(Mutex<State>, Condvar), path: &str, post: bool, body: &str) -> (u16, Value) {
    let (lock, cv) = shared;
    let mut s = lock.lock().unwrap();
    let Some(rest) = path.strip_prefix("/bot") else {
        return error(404, "Not Found");
    };
    let (token, method) = rest.split_once('/').unwrap_or((rest, ""));
    if token != s.token {
        return error(401, "Unauthorized");
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(_) => return error(400, "Bad Request: invalid JSON"),
        }
    };
    let method = method.to_string();
    let (status, answer) = if !post {
        // The Bot API also takes GET; the bot never uses it, so the stand-in refuses it.
        error(405, "Method Not Allowed")
    } else if let Some(secs) = s.slow_down.remove(&method) {
        too_many(secs)
    } else if matches!(method.as_str(), "sendMessage" | "editMessageText")
        && flooded(&mut s, &params)
    {
        s.flood += 1;
        too_many(2)
    } else {
        match method.as_str() {
            "getUpdates" => {
                return get_updates(s, cv, &params);
            }
            "sendMessage" => send_message(&mut s, &params),
            "editMessageText" => edit_message(&mut s, &params),
            _ => error(404, "Not Found"),
        }
    };
    s.calls.push(Call {
        at: Instant::now(),
        method,
        body: params,
        status,
    });
    (status, answer)
}

fn too_many(secs: u64) -> (u16, Value) {
    let (code, mut v) = error(429, &format!("Too Many Requests: retry after {secs}"));
    v["parameters"] = json!({"retry_after": secs});
    (code, v)
}

/// Whether this message to its chat is one too many: more than 3 within 2 seconds.
fn flooded(s: &mut State, params: &Value) -> bool {
    let Some(chat) = params["chat_id"].as_i64() else {
        return false;
    };
    let now = Instant::now();
    let recent = s.recent.entry(chat).or_default();
    recent.retain(|t| now.duration_since(*t) < Duration::from_secs(2));
    if recent.len() >= 3 {
        return true;
    }
    recent.push_back(now);
    false
}

fn get_updates(
    mut s: std::sync::MutexGuard<'_, State>,
    cv: &Condvar,
    params: &Value,
) -> (u16, Value) {
    let record = |s: &mut State, status: u16| {
        s.calls.push(Call {
            at: Instant::now(),
            method: "getUpdates".into(),
            body: params.clone(),
            status,
        })
    };
    if s.conflict_next {
        s.conflict_next = false;
        record(&mut s, 409);
        return error(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        );
    }
    if let Some(offset) = params["offset"].as_i64() {
        s.updates
            .retain(|u| u["update_id"].as_i64() >= Some(offset));
    }
    s.poll += 1;
    let me = s.poll;
    // A poll still waiting ends with 409.
    cv.notify_all();
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    let deadline = Instant::now() + timeout;
    let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    loop {
        if s.poll != me {
            record(&mut s, 409);
            return error(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
            );
        }
        let now = Instant::now();
        if !s.updates.is_empty() || now >= deadline {
            let result: Vec<Value> = s.updates.iter().take(limit).cloned().collect();
            record(&mut s, 200);
            return (200, json!({"ok": true, "result": result}));
        }
        s = cv.wait_timeout(s, deadline - now).unwrap().0;
    }
}

fn message(chat: i64, id: i64, text: &str) -> Value {
    json!({
        "message_id": id,
        "date": unix_now(),
        "chat": {"id": chat, "type": "private", "first_name": "Sam"},
        "from": {"id": 999, "is_bot": true, "first_name": "streamedge", "username": "streamedge_bot"},
        "text": text,
    })
}

fn send_message(s: &mut State, params: &Value) -> (u16, Value) {
    let Some(chat) = params["chat_id"].as_i64() else {
        return error(400, "Bad Request: chat not found");
    };
    let text = params["text"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return error(400, "Bad Request: message text is empty");
    }
    if text.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: message is too long");
    }
    let id = 1 + s.sent.iter().filter(|m| m.chat == chat).count() as i64;
    s.sent.push(Sent {
        chat,
        id,
        texts: vec![text.to_string()],
    });
    (200, json!({"ok": true, "result": message(chat, id, text)}))
}

fn edit_message(s: &mut State, params: &Value) -> (u16, Value) {
    let (Some(chat), Some(id)) = (params["chat_id"].as_i64(), params["message_id"].as_i64()) else {
        return error(400, "Bad Request: message identifier is not specified");
    };
    let text = params["text"].as_str().unwrap_or_default().to_string();
    if text.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: MESSAGE_TOO_LONG");
    }
    let Some(m) = s.sent.iter_mut().find(|m| m.chat == chat && m.id == id) else {
        return error(400, "Bad Request: message to edit not found");
    };
    if m.texts.last() == Some(&text) {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
    }
    m.texts.push(text.clone());
    let mut v = message(chat, id, &text);
    v["edit_date"] = json!(unix_now());
    (200, json!({"ok": true, "result": v}))
}
