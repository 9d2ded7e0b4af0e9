//! The audience of live streams (`streamedge_policy::audience`): players counted as they ask
//! for playlists, likes, and the sidecar's own listeners.
//!
//! ```nginx
//! location ~ ^/api/streams/[^/]+/like$ { streamedge_limit zone=likes; streamedge_like; }
//! # This machine's own server: the sidecar reports the listeners it serves itself.
//! location = /api/listeners { streamedge_listeners; }
//! ```
//!
//! - `streamedge_like;` (location): `POST .../streams/NAME/like` adds a like to the live
//!   broadcast of a public stream and answers `{"likes":N}`; a name that is not live (or
//!   private) is a 404. Limits come from the location's `streamedge_limit` zones.
//! - `streamedge_listeners;` (location): `POST ?name=NAME&now=N&joined=J`: the sidecar has
//!   N listeners of NAME now, J of them new since its last report; counted for 30 s.

use core::ffi::{c_char, c_void};
use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_discard_request_body, ngx_http_request_t, NGX_HTTP_POST,
    NGX_LOG_ALERT,
};
use ngx::core::Status;
use ngx::http::{HttpModuleMainConf, Request};
use ngx::ngx_log_error;
use streamedge_formats::name::check_name;
use streamedge_policy::audience::{self, Figures, PlayerSlot};
use streamedge_policy::client::ClientKey;
use streamedge_policy::registry::{Registry, StreamSlot};

use crate::ffi::{self, send, JSON, TEXT};
use crate::{shm, StreamedgeModule};

/// The players zone: about 87,000 players at once (48 bytes each).
pub(crate) const ZONE_SIZE: usize = 4 * 1024 * 1024;

/// The longest session id or user agent that identifies a player (longer ones are cut).
const MAX_ID: usize = 256;

/// Runs `f` on the registry, write-locked.
fn with_registry<R>(
    r: &Request,
    f: impl FnOnce(&mut Registry<'_>, &streamedge_policy::registry::Now) -> R,
) -> Option<R> {
    let mcf = StreamedgeModule::main_conf(r)?;
    // SAFETY: the registry zone was registered with `add_zone::<StreamSlot>`.
    let shared = unsafe { shm::shared::<StreamSlot>(mcf.zone) }?;
    let now = crate::now(mcf);
    Some(shared.write(|slots| {
        let mut registry = Registry {
            slots,
            seed: shared.seed(),
        };
        f(&mut registry, &now)
    }))
}

/// Counts the player behind a request for a playlist of `name`'s broadcast that went live
/// at `broadcast` (wall-clock milliseconds).
pub(crate) fn count_player(r: &Request, name: &str, broadcast: i64) {
    let Some(mcf) = StreamedgeModule::main_conf(r) else {
        return;
    };
    let Some(addr) = ffi::client_ip(r) else {
        return;
    };
    // SAFETY: the players zone was registered with `add_zone::<PlayerSlot>`.
    let Some(players) = (unsafe { shm::shared::<PlayerSlot>(mcf.audience) }) else {
        return;
    };
    let session = ffi::header(r, b"x-playback-session-id").filter(|v| !v.is_empty());
    let id = session
        .or_else(|| r.user_agent().map(|ua| ua.as_bytes()))
        .unwrap_or_default();
    let id = &id[..id.len().min(MAX_ID)];
    let key = audience::player_key(players.seed(), name, ClientKey::of(addr).as_bytes(), id);
    let mono = ffi::now_ms();
    // The two zones are locked one after the other, never one inside the other.
    let step = players.write(|slots| audience::touch(slots, key, broadcast, mono));
    if let Some(step) = step {
        with_registry(r, |reg, now| reg.player(name, broadcast, step, now));
    }
}

/// A request's method, and its body dropped.
fn post_only(r: &mut Request) -> Result<(), Status> {
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: `raw` is the request nginx passed to this content handler.
    let method = unsafe { (*raw).method } as u32;
    if method != NGX_HTTP_POST {
        r.add_header_out("Allow", "POST");
        return Err(send(
            r,
            405,
            JSON,
            b"{\"error\":\"method not allowed: use POST\"}\n",
        ));
    }
    // SAFETY: the body is not wanted; nginx reads and drops it.
    let rc = unsafe { ngx_http_discard_request_body(raw) };
    if rc != Status::NGX_OK.0 {
        return Err(Status(rc));
    }
    Ok(())
}

ngx::http_request_handler!(like_handler, |r: &mut Request| {
    if let Err(status) = post_only(r) {
        return status;
    }
    // Another site's page does not like streams in its visitors' names. The host is the one
    // nginx settled on, from `Host` or HTTP/2's `:authority`.
    let raw: *mut ngx_http_request_t = (&mut *r).into();
    // SAFETY: the request's `headers_in.server` is set by nginx while reading the request.
    let server = unsafe { (*raw).headers_in.server };
    let host = (server.len > 0).then(|| server.as_bytes());
    if !streamedge_policy::origin::same_origin(ffi::header(r, b"origin"), host) {
        return send(
            r,
            403,
            JSON,
            b"{\"error\":\"likes come from this server's own page\"}\n",
        );
    }
    let path = r.path().as_bytes().to_vec();
    let name = path
        .strip_suffix(b"/like")
        .and_then(|p| p.rsplit(|b| *b == b'/').next())
        .filter(|n| check_name(n).is_ok())
        .and_then(|n| std::str::from_utf8(n).ok());
    let Some(name) = name else {
        return send(r, 404, JSON, b"{\"error\":\"no such stream\"}\n");
    };
    // Private streams are not listed, so nobody likes them by name either.
    let public = crate::stream_state(r, name).is_some_and(|k| k.live && !k.private);
    let figures = public
        .then(|| {
            with_registry(r, |reg, now| {
                reg.audience(name, None, now, |a| {
                    a.like();
                })
            })
        })
        .flatten()
        .flatten();
    r.add_header_out("Cache-Control", "no-store");
    match figures {
        Some(Figures { likes, .. }) => {
            let body = format!("{{\"likes\":{likes}}}\n");
            send(r, 200, JSON, body.as_bytes())
        }
        None => send(r, 404, JSON, b"{\"error\":\"the stream is not live\"}\n"),
    }
});

ngx::http_request_handler!(listeners_handler, |r: &mut Request| {
    if let Err(status) = post_only(r) {
        return status;
    }
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: the arguments belong to the current request.
    let args = unsafe { (*raw).args };
    let Some((name, now_count, total)) = audience::parse_report(args.as_bytes()) else {
        return send(r, 400, TEXT, b"expected name=NAME&now=N&joined=J\n");
    };
    let Some(found) = with_registry(r, |reg, now| {
        reg.audience(name, None, now, |a| a.direct(now_count, total, now.mono))
    }) else {
        ngx_log_error!(
            NGX_LOG_ALERT,
            r.log(),
            "zone \"streamedge\" is not available"
        );
        return send(r, 500, TEXT, b"internal error\n");
    };
    match found {
        Some(_) => send(r, 204, TEXT, b""),
        None => send(r, 404, TEXT, b"the stream is not live\n"),
    }
});

pub(crate) extern "C" fn ngx_http_streamedge_like(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    crate::set_content_handler(cf, "streamedge_like", like_handler)
}

pub(crate) extern "C" fn ngx_http_streamedge_listeners(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    crate::set_content_handler(cf, "streamedge_listeners", listeners_handler)
}
