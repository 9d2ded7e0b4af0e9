//! nginx-rtmp's notify callbacks (`on_publish`, `on_publish_done`, `on_update`, `on_play`…):
//! an `application/x-www-form-urlencoded` body (or query string with `notify_method get`)
//! with nginx-rtmp's own fields first and the publisher's query string appended as-is.
//!
//! The publisher controls what is appended, so a field that nginx-rtmp sets (`name`, `addr`,
//! `call`, `clientid`) appearing twice means someone is trying to override it: refused.

use std::borrow::Cow;
use std::net::IpAddr;

use streamedge_formats::keys::MAX_SECRET_LEN;
use streamedge_formats::name::check_name;

/// Which event nginx-rtmp reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Publish,
    PublishDone,
    UpdatePublish,
    Play,
    PlayDone,
    /// Not nginx-rtmp's: the sidecar asks whether a source that publishes through it (an
    /// Icecast client) has the right key, as for a publish, before it publishes for it.
    CheckPublish,
    /// `on_done`, `update_play` and anything else that needs no decision.
    Other,
}

/// A callback whose fields are well formed. The secret is kept only as long as the request.
#[derive(Debug, PartialEq, Eq)]
pub struct Callback<'a> {
    pub call: Call,
    pub name: Cow<'a, str>,
    pub addr: IpAddr,
    /// nginx-rtmp's own push (`push rtmp://127.0.0.1:1936/feed;`) playing the stream to send
    /// it on. Its connection's address is the push target's URL (`127.0.0.1:1936/feed`),
    /// which no client can choose; only loopback targets count, for plays only.
    pub relay: bool,
    pub clientid: u64,
    pub key: Option<Cow<'a, str>>,
    /// A player's signed token (`rtmp://HOST/live/NAME?st=TOKEN`), as for HLS links.
    pub token: Option<Cow<'a, str>>,
}

/// Why a callback body was refused; the text is safe to log (it never holds the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("missing \"{0}\" field")]
    Missing(&'static str),
    #[error("duplicate \"{0}\" field")]
    Duplicate(&'static str),
    #[error("invalid stream name")]
    Name,
    #[error("invalid \"addr\" field")]
    Addr,
    #[error("invalid \"clientid\" field")]
    ClientId,
    #[error("unknown \"call\" field")]
    Call,
    #[error("oversized \"key\" field")]
    Key,
}

impl<'a> Callback<'a> {
    /// Parses a callback body. Also returns the publisher address when it could be read, so
    /// that a malformed attempt still counts against that address.
    pub fn parse(body: &'a [u8]) -> (Result<Self, CallbackError>, Option<IpAddr>) {
        let mut fields = Fields::default();
        let dup = fields.collect(body);
        let addr = fields
            .addr
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok());
        let parsed = dup.and_then(|()| fields.check(addr));
        (parsed, addr)
    }
}

/// The loopback address of a push target as nginx-rtmp gives it for its relay connections
/// (`127.0.0.1:1936/feed`, `[::1]:1936/feed`); `None` for anything else.
fn relay_target(text: &str) -> Option<IpAddr> {
    let (host, app) = text.split_once('/')?;
    if app.is_empty() {
        return None;
    }
    let ip = host
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| host.parse::<IpAddr>())
        .ok()?;
    ip.is_loopback().then_some(ip)
}

#[derive(Default)]
struct Fields<'a> {
    call: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    addr: Option<Cow<'a, str>>,
    clientid: Option<Cow<'a, str>>,
    key: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    fn collect(&mut self, body: &'a [u8]) -> Result<(), CallbackError> {
        let mut first_dup = Ok(());
        for (k, v) in form_urlencoded::parse(body) {
            let (slot, field) = match k.as_ref() {
                "call" => (&mut self.call, "call"),
                "name" => (&mut self.name, "name"),
                "addr" => (&mut self.addr, "addr"),
                "clientid" => (&mut self.clientid, "clientid"),
                "key" => (&mut self.key, "key"),
                "st" => (&mut self.token, "st"),
                _ => continue,
            };
            if slot.is_some() {
                // Keep the first value (nginx-rtmp's) so the address still counts a failure.
                first_dup = first_dup.and(Err(CallbackError::Duplicate(field)));
                continue;
            }
            *slot = Some(v);
        }
        first_dup
    }

    fn check(self, addr: Option<IpAddr>) -> Result<Callback<'a>, CallbackError> {
        let call = match self.call.as_deref().ok_or(CallbackError::Missing("call"))? {
            "publish" => Call::Publish,
            "publish_done" => Call::PublishDone,
            "update_publish" => Call::UpdatePublish,
            "play" => Call::Play,
            "play_done" => Call::PlayDone,
            "check_publish" => Call::CheckPublish,
            "done" | "update_play" => Call::Other,
            _ => return Err(CallbackError::Call),
        };
        let (addr, relay) = match (&self.addr, addr) {
            (None, _) => return Err(CallbackError::Missing("addr")),
            (Some(_), Some(a)) => (a, false),
            (Some(text), None) => match relay_target(text) {
                Some(a) if matches!(call, Call::Play | Call::PlayDone | Call::Other) => (a, true),
                _ => return Err(CallbackError::Addr),
            },
        };
        let name = self.name.ok_or(CallbackError::Missing("name"))?;
        check_name(name.as_bytes()).map_err(|_| CallbackError::Name)?;
        let clientid = match self.clientid.as_deref() {
            Some(c) => c.parse().map_err(|_| CallbackError::ClientId)?,
            None => 0,
        };
        if self.key.as_ref().is_some_and(|k| k.len() > MAX_SECRET_LEN) {
            return Err(CallbackError::Key);
        }
        Ok(Callback {
            call,
            name,
            addr,
            relay,
            clientid,
            key: self.key,
            // An oversized token is no token: it cannot verify.
            token: self.token.filter(|t| t.len() <= 64),
        })
    }
}

/// Renders untrusted bytes for a log line: printable ASCII kept, the rest escaped, capped.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'"' | b'\\' => out.push_str(&format!("\\x{b:02x}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISH: &[u8] =
        b"app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive\
        &pageurl=&addr=127.0.0.1&clientid=7&call=publish&name=alice&type=live&key=S3CRET";

    #[test]
    fn parses_what_nginx_rtmp_sends() {
        let (cb, addr) = Callback::parse(PUBLISH);
        let cb = cb.unwrap();
        assert_eq!(cb.call, Call::Publish);
        assert_eq!(cb.name, "alice");
        assert_eq!(cb.clientid, 7);
        assert_eq!(cb.key.as_deref(), Some("S3CRET"));
        assert_eq!(addr, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn play_carries_its_token() {
        let body = b"app=live&addr=10.0.0.5&clientid=3&call=play&name=alice&st=1700.abc";
        let cb = Callback::parse(body).0.unwrap();
        assert_eq!(
            (cb.call, cb.token.as_deref()),
            (Call::Play, Some("1700.abc"))
        );
        let twice = b"addr=10.0.0.5&call=play&name=alice&st=1&st=2";
        assert_eq!(
            Callback::parse(twice).0.unwrap_err(),
            CallbackError::Duplicate("st")
        );
    }

    #[test]
    fn nginxs_own_push_plays_as_a_relay() {
        for body in [
            b"app=live&addr=127.0.0.1%3A1936%2Ffeed&clientid=12&call=play&name=alice".as_slice(),
            b"app=live&addr=[::1]:1936/feed&clientid=12&call=play_done&name=alice",
        ] {
            let (cb, addr) = Callback::parse(body);
            let cb = cb.unwrap();
            assert!(cb.relay && cb.addr.is_loopback(), "{cb:?}");
            // Nothing to count against: no client address.
            assert_eq!(addr, None);
        }
        assert!(!Callback::parse(PUBLISH).0.unwrap().relay);
    }

    #[test]
    fn update_and_done_calls() {
        let body = b"app=live&addr=::1&clientid=9&call=update_publish&time=10&timestamp=9000&name=bob&key=x";
        let cb = Callback::parse(body).0.unwrap();
        assert_eq!(cb.call, Call::UpdatePublish);
        assert_eq!(cb.addr, "::1".parse::<IpAddr>().unwrap());
        let done = Callback::parse(b"addr=127.0.0.1&clientid=9&call=publish_done&name=bob").0;
        assert_eq!(done.unwrap().call, Call::PublishDone);
    }

    #[test]
    fn appended_fields_cannot_override_nginx_rtmp() {
        for (extra, field) in [
            ("&name=bob", "name"),
            ("&addr=10.0.0.9", "addr"),
            ("&call=play", "call"),
            ("&key=other", "key"),
        ] {
            let body = [PUBLISH, extra.as_bytes()].concat();
            let (cb, addr) = Callback::parse(&body);
            assert_eq!(cb.unwrap_err(), CallbackError::Duplicate(field));
            // The failure still belongs to the real address, not the appended one.
            assert_eq!(addr, Some("127.0.0.1".parse().unwrap()));
        }
    }

    #[test]
    fn hostile_bodies_are_refused_cleanly() {
        let cases: &[(&[u8], CallbackError)] = &[
            (b"", CallbackError::Missing("call")),
            (b"call=publish&name=a", CallbackError::Missing("addr")),
            (b"call=publish&addr=1.2.3.4", CallbackError::Missing("name")),
            (b"call=publish&addr=nope&name=a", CallbackError::Addr),
            // A push target's URL is nginx's own relay only for plays, only on loopback.
            (
                b"call=publish&addr=127.0.0.1:1936/feed&name=a",
                CallbackError::Addr,
            ),
            (
                b"call=play&addr=10.0.0.1:1936/feed&name=a",
                CallbackError::Addr,
            ),
            (
                b"call=play&addr=127.0.0.1:1936/&name=a",
                CallbackError::Addr,
            ),
            (
                b"call=play&addr=localhost:1936/feed&name=a",
                CallbackError::Addr,
            ),
            (b"call=rm%20-rf&addr=1.2.3.4&name=a", CallbackError::Call),
            (
                b"call=publish&addr=1.2.3.4&name=..%2Fetc",
                CallbackError::Name,
            ),
            (b"call=publish&addr=1.2.3.4&name=a%00b", CallbackError::Name),
            (
                b"call=publish&addr=1.2.3.4&name=%ff%fe",
                CallbackError::Name,
            ),
            (
                b"call=publish&addr=1.2.3.4&name=a&clientid=-1",
                CallbackError::ClientId,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(Callback::parse(body).0.unwrap_err(), *want, "{body:?}");
        }
        let long_name = [
            b"call=publish&addr=1.2.3.4&name=".as_slice(),
            &[b'a'; 10_000],
        ]
        .concat();
        assert_eq!(
            Callback::parse(&long_name).0.unwrap_err(),
            CallbackError::Name
        );
        let long_key = [
            b"call=publish&addr=1.2.3.4&name=a&key=".as_slice(),
            &[b'k'; 300],
        ]
        .concat();
        assert_eq!(
            Callback::parse(&long_key).0.unwrap_err(),
            CallbackError::Key
        );
    }

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable(b"alice", 64), "alice");
        assert_eq!(printable(b"a\"b\n\xff", 64), "a\\x22b\\x0a\\xff");
        assert_eq!(printable(&[b'x'; 10], 4), "xxxx...");
    }
}
