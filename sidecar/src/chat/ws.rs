//! One viewer's WebSocket: what the room says goes out, what the viewer says comes in.
//!
//! To the viewer, JSON text frames: `{"type":"hello","messages":[…],"audience":{…}}` first,
//! then `message`, `deleted`, `audience` and `refused` (`{"type":"refused","error":…}`)
//! events. From the viewer: `{"nick":"…","text":"…"}`. A ping every 30 s keeps quiet
//! connections open through nginx; a viewer that sends nothing, not even the pong a
//! browser answers pings with, for [`SILENCE`] is gone and let go.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{Chat, Refusal};

/// The largest frame a viewer may send: a message of 500 characters of 4 bytes, with room.
pub const MAX_FRAME: usize = 4096;
/// One message a second, five at once.
const INTERVAL: Duration = Duration::from_secs(1);
const BURST: u32 = 5;
/// Messages refused for speed within a minute before the client is banned.
const STRIKES: usize = 10;
const PING: Duration = Duration::from_secs(30);
/// Nothing from the viewer for this long (two pings unanswered): it is gone.
pub const SILENCE: Duration = Duration::from_secs(75);
/// A viewer that takes longer than this to take a frame is let go.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A token bucket with strikes for refusals: one per client (`Chat::limit`), over all its
/// connections.
pub struct Limiter {
    /// When the bucket is next full, as a time its backlog drains by.
    free_at: Option<Instant>,
    strikes: std::collections::VecDeque<Instant>,
}

/// What the limiter says of one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Refuse,
    /// Refused, and too often: ban the client.
    Ban,
}

impl Limiter {
    pub fn new() -> Self {
        Limiter {
            free_at: None,
            strikes: Default::default(),
        }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        // The backlog is how far `free_at` lies ahead; a message adds one interval to it.
        let free_at = self.free_at.filter(|t| *t > now).unwrap_or(now);
        if free_at.duration_since(now) + INTERVAL <= INTERVAL * BURST {
            self.free_at = Some(free_at + INTERVAL);
            return Verdict::Pass;
        }
        self.strikes.push_back(now);
        while self
            .strikes
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.strikes.pop_front();
        }
        if self.strikes.len() >= STRIKES {
            Verdict::Ban
        } else {
            Verdict::Refuse
        }
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct Said {
    nick: String,
    text: String,
}

fn refused(error: &str) -> Message {
    Message::Text(
        json!({"type": "refused", "error": error})
            .to_string()
            .into(),
    )
}

async fn send(socket: &mut WebSocket, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(m)).await,
        Ok(Ok(()))
    )
}

async fn close(socket: &mut WebSocket, reason: &'static str) {
    let frame = CloseFrame {
        // 1008: policy violation.
        code: 1008,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = send(socket, Message::Close(Some(frame))).await;
}

/// Serves one viewer of room `name` until either side goes away; `seat` is its place
/// among the chats' viewers, given back when it leaves.
pub async fn serve(
    chat: Chat,
    name: String,
    client: String,
    mut socket: WebSocket,
    seat: tokio::sync::OwnedSemaphorePermit,
) {
    let _seat = seat;
    let Ok(super::Joined {
        history,
        mut events,
        audience,
    }) = chat.join(&name)
    else {
        close(&mut socket, "no such chat").await;
        return;
    };
    let shown: Vec<_> = history.iter().map(|m| m.shown()).collect();
    let audience: serde_json::Value = audience
        .and_then(|a| serde_json::from_str(&a).ok())
        .unwrap_or(serde_json::Value::Null);
    let hello = json!({"type": "hello", "messages": shown, "audience": audience});
    if !send(&mut socket, Message::Text(hello.to_string().into())).await {
        return;
    }
    let mut ping = tokio::time::interval(PING);
    ping.tick().await;
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                heard = Instant::now();
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => Some(t),
                    // Counted like a message: binary frames are no way around the limit.
                    Some(Ok(Message::Binary(_))) => None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // Closed, reset, or a frame over the limit.
                    _ => break,
                };
                match chat.limit(&client) {
                    Verdict::Pass => {}
                    Verdict::Refuse => {
                        if !send(&mut socket, refused(&Refusal::TooFast.to_string())).await {
                            break;
                        }
                        continue;
                    }
                    Verdict::Ban => {
                        chat.ban_flooder(&client);
                        let _ = send(&mut socket, refused(&Refusal::Banned.to_string())).await;
                        close(&mut socket, "banned").await;
                        break;
                    }
                }
                let Some(text) = text else {
                    if !send(&mut socket, refused("messages are JSON text")).await {
                        break;
                    }
                    continue;
                };
                let Ok(said) = serde_json::from_str::<Said>(&text) else {
                    if !send(&mut socket, refused("expected {\"nick\": \"…\", \"text\": \"…\"}")).await {
                        break;
                    }
                    continue;
                };
                match chat.post(&name, &client, &said.nick, &said.text) {
                    Ok(Ok(_)) => {}
                    Ok(Err(Refusal::Banned)) => {
                        let _ = send(&mut socket, refused(&Refusal::Banned.to_string())).await;
                        close(&mut socket, "banned").await;
                        break;
                    }
                    Ok(Err(r)) => {
                        if !send(&mut socket, refused(&r.to_string())).await {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("chat {name}: {e:#}");
                        let _ = send(&mut socket, refused("the chat is not available")).await;
                        break;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(text) => {
                    if !send(&mut socket, Message::Text(text.as_ref().into())).await {
                        break;
                    }
                }
                // A viewer that could not keep up misses what it could not take.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if heard.elapsed() >= SILENCE {
                    break;
                }
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_at_once_then_one_a_second_then_a_ban() {
        let mut l = Limiter::new();
        let t0 = Instant::now();
        let verdicts: Vec<_> = (0..7).map(|_| l.check(t0)).collect();
        assert_eq!(
            &verdicts[..5],
            [
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass
            ]
        );
        assert_eq!(verdicts[5], Verdict::Refuse);
        // A second later one more passes.
        assert_eq!(l.check(t0 + Duration::from_millis(1000)), Verdict::Pass);
        assert_eq!(l.check(t0 + Duration::from_millis(1001)), Verdict::Refuse);
        // Steady at one a second: always passes.
        let mut steady = Limiter::new();
        for i in 0..100 {
            assert_eq!(steady.check(t0 + Duration::from_secs(i)), Verdict::Pass);
        }
        // Ten refusals within a minute: banned.
        let mut flood = Limiter::new();
        let v: Vec<_> = (0..15).map(|_| flood.check(t0)).collect();
        assert_eq!(v.iter().filter(|v| **v == Verdict::Pass).count(), 5);
        assert_eq!(v[13], Verdict::Refuse);
        assert_eq!(v[14], Verdict::Ban);
    }
}
