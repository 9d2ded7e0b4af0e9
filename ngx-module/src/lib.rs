//! The streamedge nginx modules, in one shared object:
//!
//! - `ngx_http_streamedge_module` (this file): stream-key authentication for nginx-rtmp's
//!   callbacks and a registry of who is live, shared by all workers;
//! - `ngx_http_streamedge_limit_module` (`limit.rs`): rate limits with bans;
//! - `ngx_http_streamedge_hls_module` (`hls.rs`): HLS routes, signed links.
//!
//! Beside them: `conn.rs` (connections as nginx accepts them: per-client caps, which worker
//! holds each RTMP connection), `shm.rs` (shared zones), `ffi.rs` (the helpers every module
//! uses at the nginx edge).
//!
//! ```nginx
//! http {
//!     streamedge_data /srv/streamedge/data;
//!     server {
//!         listen 127.0.0.1:8080;
//!         location = /rtmp/auth { streamedge_publish_auth; }
//!         location = /api/streams { streamedge_streams; }
//!     }
//! }
//! rtmp { server { application live { on_publish http://127.0.0.1:8080/rtmp/auth; ... } } }
//! ```
//!
//! Directives (the full reference is docs/directives.md):
//!
//! - `streamedge_data PATH;` (http): the data directory; stream keys are read from
//!   `PATH/keys.toml`, re-read by each worker when the file changes.
//! - `streamedge_zone SIZE;` (http, default `1m`): the shared zone of the live registry.
//! - `streamedge_publish_auth;` (location): answers nginx-rtmp's `on_publish`, `on_update`,
//!   `on_publish_done` (and `on_play`, `on_done`) callbacks. Publisher bans come from the
//!   location's `streamedge_limit` zones, keyed by `$streamedge_publisher`.
//! - `streamedge_live_timeout off | TIME;` (http, default `off`): a stream whose RTMP
//!   connection the module does not know, with no publish or update callback for this long,
//!   is offline.
//! - `streamedge_conn_limit NUMBER;` (http): connections each worker accepts from one client
//!   on any listening socket (`conn.rs`).
//! - Variables: `$streamedge_client` (binary: the client's IPv4 address or IPv6 /64, for
//!   limit zones), `$streamedge_publisher` (the publisher of a callback, as text).
//! - `streamedge_streams;` (location): `GET` answers who is live, as JSON.
//! - `streamedge_json_errors PREFIX;` (location, for `error_page`): an error of a request
//!   whose URI starts with PREFIX is answered in JSON, others get nginx's own page. nginx
//!   answers some errors (a bad request line, `TRACE`) before any location is chosen, so
//!   this is what an API's clients can rely on.

mod audience;
mod bucket;
mod conn;
mod ffi;
mod hls;
mod limit;
mod shm;

use core::ffi::{c_char, c_void};
use core::ptr;
use std::cell::RefCell;
use std::path::PathBuf;

use nginx_sys::{
    ngx_buf_t, ngx_cached_time, ngx_chain_t, ngx_command_t, ngx_conf_full_name, ngx_conf_t,
    ngx_cycle_t, ngx_http_discard_request_body, ngx_http_finalize_request, ngx_http_module_t,
    ngx_http_read_client_request_body, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_module_t,
    ngx_parse_size, ngx_variable_value_t, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_ERROR, NGX_HTTP_GET,
    NGX_HTTP_HEAD, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_POST, NGX_HTTP_SPECIAL_RESPONSE,
    NGX_LOG_ALERT, NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN,
};
use ngx::core::{Pool, Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule, Request,
};
use ngx::{http_request_handler, ngx_conf_log_error, ngx_log_error, ngx_string};

use streamedge_policy::auth::{self, Level, Settings};
use streamedge_policy::callback::Callback;
use streamedge_policy::client::ClientKey;

use crate::ffi::{
    add_variable, args, command, now_ms, parse_time_ms, send, set_variable, DUPLICATE, JSON, TEXT,
};
use crate::shm::ZoneSpec;
use streamedge_formats::layout::{Layout, LIVE_PLAYLIST, LIVE_THUMBNAIL, LIVE_TITLE};
use streamedge_formats::streams::{self, Stream};
use streamedge_formats::time::rfc3339_secs;
use streamedge_policy::conns::OwnerSlot;
use streamedge_policy::keycache::{KeyCache, Refresh};
use streamedge_policy::registry::{playlist_is_current, Known, Now};
use streamedge_policy::registry::{Registry, StreamSlot};

// ---------------------------------------------------------------------------------------
// Types

struct StreamedgeModule;

/// `http`-level configuration, one per configuration cycle.
pub struct MainConf {
    data_dir: Option<PathBuf>,
    zone_size: Option<usize>,
    /// `None`: not set; `Some(None)`: `off`.
    live_timeout: Option<Option<u64>>,
    /// `streamedge_conn_limit`.
    conn_limit: Option<u32>,
    /// `streamedge_json_errors`.
    json_errors: Option<String>,
    /// The first directive that needs the zone and the keys, for error messages.
    used_by: Option<&'static str>,
    zone: *mut ZoneSpec,
    /// Which worker holds each RTMP connection (`conn.rs`).
    owners: *mut ZoneSpec,
    /// The players of live streams (`audience.rs`).
    audience: *mut ZoneSpec,
    /// This worker's view of the keys file (workers are single-threaded).
    keys: RefCell<Option<KeyCache>>,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            data_dir: None,
            zone_size: None,
            live_timeout: None,
            conn_limit: None,
            json_errors: None,
            used_by: None,
            zone: ptr::null_mut(),
            owners: ptr::null_mut(),
            audience: ptr::null_mut(),
            keys: RefCell::new(None),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Directives, module context, module definition

static mut NGX_HTTP_STREAMEDGE_COMMANDS: [ngx_command_t; 10] = [
    command(
        ngx_string!("streamedge_data"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_set_data,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_zone"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_set_zone,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_live_timeout"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_set_live_timeout,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_conn_limit"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_set_conn_limit,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_publish_auth"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        ngx_http_streamedge_publish_auth,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_streams"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        ngx_http_streamedge_streams,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_like"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        audience::ngx_http_streamedge_like,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_listeners"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        audience::ngx_http_streamedge_listeners,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("streamedge_json_errors"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_json_errors,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

static NGX_HTTP_STREAMEDGE_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(StreamedgeModule::preconfiguration),
    postconfiguration: None,
    create_main_conf: Some(StreamedgeModule::create_main_conf),
    init_main_conf: Some(ngx_http_streamedge_init_main_conf),
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: None,
    merge_loc_conf: None,
};

// The tables nginx reads from a dynamic module to find its modules. `ngx::ngx_modules!` of
// ngx 0.5.1 emits exactly these, but its argument counting fails for more than one module.

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_modules: [*const ngx_module_t; 4] = [
    ptr::addr_of!(ngx_http_streamedge_module),
    ptr::addr_of!(limit::ngx_http_streamedge_limit_module),
    ptr::addr_of!(hls::ngx_http_streamedge_hls_module),
    ptr::null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_names: [*const c_char; 4] = [
    c"ngx_http_streamedge_module".as_ptr(),
    c"ngx_http_streamedge_limit_module".as_ptr(),
    c"ngx_http_streamedge_hls_module".as_ptr(),
    ptr::null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_order: [*const c_char; 1] = [ptr::null()];

#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_streamedge_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(NGX_HTTP_STREAMEDGE_MODULE_CTX) as _,
    // SAFETY: only the address is taken; nginx reads the table during configuration.
    commands: unsafe { ptr::addr_of_mut!(NGX_HTTP_STREAMEDGE_COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as _,
    init_module: Some(ngx_http_streamedge_init_module),
    init_process: Some(ngx_http_streamedge_init_process),
    ..ngx_module_t::default()
};

impl HttpModule for StreamedgeModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module definition is a static that nginx only writes during start-up.
        unsafe { &*ptr::addr_of!(ngx_http_streamedge_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        let rc = add_variable(cf, ngx_string!("streamedge_publisher"), publisher_variable);
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        add_variable(cf, ngx_string!("streamedge_client"), client_variable)
    }
}

// SAFETY: `MainConf` is what `create_main_conf` allocates for this module.
unsafe impl HttpModuleMainConf for StreamedgeModule {
    type MainConf = MainConf;
}

// ---------------------------------------------------------------------------------------
// Handlers

/// The data directory, when `streamedge_data` is set.
pub(crate) fn data_dir(r: &Request) -> Option<&'static std::path::Path> {
    StreamedgeModule::main_conf(r)?.data_dir.as_deref()
}

/// Whether a stream is live and private, from the registry; `None` if it was never seen.
pub(crate) fn stream_state(r: &Request, name: &str) -> Option<Known> {
    let mcf = StreamedgeModule::main_conf(r)?;
    // SAFETY: the registry zone was registered with `add_zone::<StreamSlot>`.
    let shared = unsafe { shm::shared::<StreamSlot>(mcf.zone) }?;
    let now = now(mcf);
    shared.read(|slots| streamedge_policy::registry::lookup(slots, shared.seed(), name, &now))
}

/// Whether `name` has an active key, and whether it is private; `None` for unknown names.
pub(crate) fn stream_key(r: &Request, name: &str) -> Option<bool> {
    let mcf = StreamedgeModule::main_conf(r)?;
    refresh_keys(mcf, r.log());
    let keys = mcf.keys.borrow();
    let entry = keys.as_ref()?.keys()?.get(name)?;
    (entry.state == streamedge_formats::keys::KeyState::Active).then_some(entry.private)
}

/// The registry's clocks: monotonic and wall-clock milliseconds.
pub(crate) fn now(mcf: &MainConf) -> Now {
    // SAFETY: `ngx_cached_time` always points at a valid slot of this process.
    let wall_ms = unsafe { (*ngx_cached_time).sec * 1000 + (*ngx_cached_time).msec as i64 };
    Now {
        mono: now_ms(),
        wall_ms,
        live_timeout: mcf.live_timeout.flatten(),
        conn_open: conn::rtmp_open,
    }
}

fn nginx_level(level: Level) -> u32 {
    match level {
        Level::Alert => NGX_LOG_ALERT,
        Level::Warn => NGX_LOG_WARN,
        Level::Notice => NGX_LOG_NOTICE,
        Level::Info => NGX_LOG_INFO,
    }
}

/// Brings this worker's view of the keys file up to date, logging a change for the worse.
fn refresh_keys(mcf: &MainConf, log: *mut ngx_log_t) {
    let mut cache = mcf.keys.borrow_mut();
    let Some(cache) = cache.as_mut() else { return };
    match cache.refresh() {
        Refresh::Failed(e) => {
            ngx_log_error!(
                NGX_LOG_ERR,
                log,
                "cannot use keys file {e}, refusing new publishers until it is fixed"
            );
        }
        Refresh::Loaded(n) => {
            ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "read {n} stream keys from \"{}\"",
                cache.path().display()
            );
        }
        Refresh::Unchanged => {}
    }
}

http_request_handler!(publish_auth_handler, |r: &mut Request| {
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: `raw` is the request nginx passed to this content handler.
    let method = unsafe { (*raw).method } as u32;
    if method == NGX_HTTP_POST {
        // SAFETY: reading the body of the current request; nginx calls the handler when done.
        let rc = unsafe { ngx_http_read_client_request_body(raw, Some(publish_auth_body_handler)) };
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return Status(rc);
        }
        return Status::NGX_DONE;
    }
    // Not `notify_method get`: it puts the stream key in the request line, which nginx adds
    // to every error log line about the request. Refused without a log line, for that reason.
    send(
        r,
        405,
        TEXT,
        b"method not allowed: use notify_method post\n",
    )
});

extern "C" fn publish_auth_body_handler(raw: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the body handler with the request whose body it read.
    let r = unsafe { Request::from_ngx_http_request(raw) };
    let rc = match request_body(r) {
        Some(body) => answer_callback(r, &body),
        None => send(r, 413, TEXT, b"callback body too large\n"),
    };
    // SAFETY: the request is ours to finalize once the body handler has answered.
    unsafe { ngx_http_finalize_request(raw, rc.0) };
}

/// The request body, if it is all in memory (the callback location keeps bodies small).
fn request_body(r: &Request) -> Option<Vec<u8>> {
    let raw: *const ngx_http_request_t = r.into();
    let mut body = Vec::new();
    // SAFETY: `request_body` and its chain were filled in by nginx for this request; every
    // buffer that is not in a file spans `pos..last` of valid memory.
    unsafe {
        let rb = (*raw).request_body;
        if rb.is_null() {
            return Some(body);
        }
        let mut cl: *mut ngx_chain_t = (*rb).bufs;
        while !cl.is_null() {
            let b: *mut ngx_buf_t = (*cl).buf;
            if (*b).in_file() != 0 {
                return None;
            }
            let len = (*b).last.offset_from((*b).pos) as usize;
            body.extend_from_slice(core::slice::from_raw_parts((*b).pos, len));
            cl = (*cl).next;
        }
    }
    Some(body)
}

/// The publisher of the callback being answered, for `$streamedge_publisher`: its address,
/// or for IPv6 its /64 (`streamedge_policy::client`), as text.
#[derive(Clone, Copy)]
struct AuthCtx {
    /// The text and its length, in a fixed buffer (no allocation per request).
    text: [u8; 48],
    len: usize,
}

fn set_publisher(r: &mut Request, addr: std::net::IpAddr) {
    use std::io::Write;
    let mut text = [0u8; 48];
    let mut w = &mut text[..];
    let _ = write!(w, "{}", ClientKey::of(addr));
    let len = 48 - w.len();
    let pool: Pool = r.pool();
    let p = pool.allocate(AuthCtx { text, len });
    if !p.is_null() {
        r.set_module_ctx(p.cast(), StreamedgeModule::module());
    }
}

/// `$streamedge_client`: the connection's client as a limit key, in binary like
/// `$binary_remote_addr`, but an IPv6 client's /64 rather than its full address.
extern "C" fn client_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    use nginx_sys::{sockaddr_in, sockaddr_in6, AF_INET, AF_INET6};
    // SAFETY: nginx passes the current request and a value to fill; the bytes pointed at
    // are the connection's peer address, which lives as long as the request.
    unsafe {
        let (r, v) = (Request::from_ngx_http_request(r), &mut *v);
        let sa = (*r.connection()).sockaddr;
        let bytes: Option<&[u8]> = match u32::from((*sa).sa_family) {
            AF_INET => {
                let sin = &*sa.cast::<sockaddr_in>();
                Some(core::slice::from_raw_parts(
                    ptr::addr_of!(sin.sin_addr.s_addr).cast::<u8>(),
                    4,
                ))
            }
            AF_INET6 => {
                let a = &(*sa.cast::<sockaddr_in6>()).sin6_addr.__in6_u.__u6_addr8;
                let mapped = std::net::Ipv6Addr::from(*a).to_ipv4_mapped().is_some();
                Some(if mapped { &a[12..] } else { &a[..8] })
            }
            _ => None,
        };
        set_variable(v, bytes)
    }
}

extern "C" fn publisher_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the current request and a value to fill.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    let ctx = r.get_module_ctx::<AuthCtx>(StreamedgeModule::module());
    set_variable(v, ctx.map(|c| &c.text[..c.len]))
}

fn answer_callback(r: &mut Request, body: &[u8]) -> Status {
    let Some(mcf) = StreamedgeModule::main_conf(r) else {
        return Status::NGX_ERROR;
    };
    let (parsed, addr) = Callback::parse(body);
    if let Some(a) = addr {
        set_publisher(r, a);
    }
    let decision = match parsed {
        Err(e) => auth::malformed(&e, addr),
        Ok(cb) => {
            // The location's limits (and bans) for a publisher come first: a banned address
            // is refused even with the right key.
            if auth::is_limited(&cb) {
                if let Some(status) = limit::check_deferred(r, cb.addr) {
                    return send(r, status, TEXT, b"too many requests\n");
                }
            }
            refresh_keys(mcf, r.log());
            let keys = mcf.keys.borrow();
            let settings = Settings {
                keys: keys.as_ref().and_then(|c| c.keys()),
                secrets: hls::secrets(r),
                now: now(mcf),
            };
            // SAFETY: the registry zone was registered with `add_zone::<StreamSlot>`.
            let Some(shared) = (unsafe { shm::shared::<StreamSlot>(mcf.zone) }) else {
                ngx_log_error!(
                    NGX_LOG_ALERT,
                    r.log(),
                    "zone \"streamedge\" is not available"
                );
                return send(r, 500, TEXT, b"internal error\n");
            };
            shared.write(|slots| {
                let mut registry = Registry {
                    slots,
                    seed: shared.seed(),
                };
                auth::decide(&cb, &mut registry, &settings)
            })
        }
    };
    for (level, line) in &decision.log {
        ngx_log_error!(nginx_level(*level), r.log(), "{line}");
    }
    if let (true, Some(a)) = (decision.failure, addr) {
        limit::count_failure(r, a);
    }
    let body: &[u8] = match decision.status {
        200 => b"ok\n",
        400 => b"bad request\n",
        403 => b"forbidden\n",
        409 => b"already publishing\n",
        _ => b"error\n",
    };
    send(r, decision.status, TEXT, body)
}

http_request_handler!(streams_handler, |r: &mut Request| streams(r, false));
http_request_handler!(streams_all_handler, |r: &mut Request| streams(r, true));

/// The streams list; `all` adds private names (for this machine's own requests only).
fn streams(r: &mut Request, all: bool) -> Status {
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: `raw` is the request nginx passed to this content handler.
    let method = unsafe { (*raw).method } as u32;
    if method != NGX_HTTP_GET && method != NGX_HTTP_HEAD {
        return send(r, 405, TEXT, b"method not allowed\n");
    }
    // SAFETY: `raw` is the current request; a GET may still carry a body, which is not
    // wanted here, and nginx reads and drops it.
    let rc = unsafe { ngx_http_discard_request_body(raw) };
    if rc != Status::NGX_OK.0 {
        return Status(rc);
    }
    let Some(mcf) = StreamedgeModule::main_conf(r) else {
        return Status::NGX_ERROR;
    };
    refresh_keys(mcf, r.log());
    let now = now(mcf);
    // SAFETY: the registry zone was registered with `add_zone::<StreamSlot>`.
    let known = unsafe { shm::shared::<StreamSlot>(mcf.zone) }
        .map(|shared| shared.read(|slots| streamedge_policy::registry::list(slots, &now)));
    let Some(known) = known else {
        return send(r, 500, TEXT, b"internal error\n");
    };
    let keys = mcf.keys.borrow();
    let live_dir = mcf.data_dir.as_ref().map(|d| Layout::new(d).live());
    // Live means playable: the broadcast has written its playlist. Until then a viewer
    // would get a 404 (or the previous broadcast's playlist) for it.
    let current = |name: &str, file: &str, since: i64| {
        live_dir
            .as_ref()
            .is_some_and(|live| playlist_is_current(&live.join(name).join(file), since))
    };
    // Private streams are nobody's business: they are not listed (but to this machine).
    let mut list: Vec<Stream> = known
        .iter()
        .filter(|s| all || !s.private)
        .map(|s| {
            let (name, live, since) = (s.name.as_str(), &s.live, &s.since);
            let playable = *live && current(name, LIVE_PLAYLIST, *since);
            Stream {
                name: name.to_owned(),
                live: playable,
                publishing: all && *live,
                since: Some(rfc3339_secs(since / 1000)),
                thumbnail: (playable && current(name, LIVE_THUMBNAIL, *since))
                    .then(|| format!("/live/{name}/{LIVE_THUMBNAIL}")),
                title: (playable && current(name, LIVE_TITLE, *since))
                    .then(|| read_title(&live_dir.as_ref()?.join(name).join(LIVE_TITLE)))
                    .flatten(),
                audience: (playable || all).then_some(streams::Audience {
                    viewers: s.audience.now,
                    peak: s.audience.peak,
                    total: s.audience.total,
                    likes: s.audience.likes,
                }),
            }
        })
        .collect();
    // Names with an active key are known even before their first stream.
    for k in keys
        .as_ref()
        .and_then(|c| c.keys())
        .map(|f| f.keys.as_slice())
        .unwrap_or_default()
    {
        let active = k.state == streamedge_formats::keys::KeyState::Active;
        let listed = list.iter().any(|s| s.name == k.name);
        let shown = all || !k.private;
        if active && shown && !listed && !known.iter().any(|s| s.name.as_str() == k.name) {
            list.push(Stream {
                name: k.name.clone(),
                live: false,
                publishing: false,
                since: None,
                thumbnail: None,
                title: None,
                audience: None,
            });
        }
    }
    let json = streams::to_json(&mut list);
    r.add_header_out("Cache-Control", "no-cache");
    send(r, 200, JSON, json.as_bytes())
}

/// A live stream's title file: its first line, cleaned (a small file, read whole from the
/// page cache like the playlist's metadata).
fn read_title(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .ok()?
        .take(1024)
        .read_to_end(&mut bytes)
        .ok()?;
    streams::clean_title(&String::from_utf8_lossy(&bytes))
}

http_request_handler!(json_error_handler, |r: &mut Request| {
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: the status and the request line belong to the current request. A URI nginx
    // could not parse has no `unparsed_uri`, but the parser's pointers into the request
    // line are set.
    let (status, uri) = unsafe {
        let r = &*raw;
        let uri: &[u8] = if r.unparsed_uri.len > 0 {
            r.unparsed_uri.as_bytes()
        } else if !r.uri_start.is_null() && r.uri_end > r.uri_start {
            core::slice::from_raw_parts(r.uri_start, r.uri_end.offset_from(r.uri_start) as usize)
        } else {
            &[]
        };
        (r.err_status, uri)
    };
    let prefix = StreamedgeModule::main_conf(r).and_then(|m| m.json_errors.as_deref());
    let api = prefix.is_some_and(|p| uri.starts_with(p.as_bytes()));
    if !api || !(400..600).contains(&status) {
        // nginx's own page: this location is reached once per error, so it is not
        // redirected here again.
        return Status(status as ngx_int_t);
    }
    let reason = match status {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        405 => "method not allowed",
        408 => "request timeout",
        413 => "the request is too large",
        414 => "the URI is too long",
        429 => "too many requests",
        500 => "internal error",
        502 | 504 => "the streamedge sidecar does not answer: is `streamedge run` running?",
        503 => "unavailable",
        _ => "error",
    };
    let body = format!("{{\"error\":\"{reason}\"}}\n");
    r.add_header_out("Cache-Control", "no-store");
    // The status stays the error's: nginx keeps `err_status` over the one given here.
    send(r, status as u16, JSON, body.as_bytes())
});

// ---------------------------------------------------------------------------------------
// Configuration

extern "C" fn ngx_http_streamedge_init_main_conf(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the main configuration this module created.
    let mcf = unsafe { &mut *conf.cast::<MainConf>() };
    mcf.live_timeout.get_or_insert(None);
    let Some(used_by) = mcf.used_by else {
        return NGX_CONF_OK;
    };
    let Some(data) = mcf.data_dir.as_ref() else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"{used_by}\" requires \"streamedge_data\" in the http block"
        );
        return NGX_CONF_ERROR;
    };
    *mcf.keys.get_mut() = Some(KeyCache::new(Layout::new(data).keys_file()));
    let size = mcf.zone_size.unwrap_or(DEFAULT_ZONE_SIZE);
    // SAFETY: `cf` is valid; the spec lives in the configuration pool with this cycle.
    let pool = unsafe { Pool::from_ngx_pool((*cf).pool) };
    let spec = pool.allocate(ZoneSpec::new(
        "streamedge".into(),
        0,
        "the live registry".into(),
    ));
    let tag = ptr::addr_of_mut!(ngx_http_streamedge_module).cast();
    if spec.is_null() || shm::add_zone::<StreamSlot>(cf, size, tag, spec).is_none() {
        return NGX_CONF_ERROR;
    }
    mcf.zone = spec;
    let owners = pool.allocate(ZoneSpec::new(
        "streamedge_rtmp".into(),
        0,
        "RTMP connections".into(),
    ));
    if owners.is_null() || shm::add_zone::<OwnerSlot>(cf, OWNERS_ZONE_SIZE, tag, owners).is_none() {
        return NGX_CONF_ERROR;
    }
    mcf.owners = owners;
    let players = pool.allocate(ZoneSpec::new(
        "streamedge_audience".into(),
        0,
        "the players of live streams".into(),
    ));
    if players.is_null()
        || shm::add_zone::<streamedge_policy::audience::PlayerSlot>(
            cf,
            audience::ZONE_SIZE,
            tag,
            players,
        )
        .is_none()
    {
        return NGX_CONF_ERROR;
    }
    mcf.audience = players;
    NGX_CONF_OK
}

/// The RTMP connection owners zone: about 8,000 open RTMP connections.
const OWNERS_ZONE_SIZE: usize = 256 * 1024;

/// In each worker as it starts: wraps the listening sockets (`conn.rs`).
extern "C" fn ngx_http_streamedge_init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    conn::install(cycle)
}

/// Once the configuration is read, in the master: the settings of `conn.rs`.
extern "C" fn ngx_http_streamedge_init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: `cycle` is the cycle being initialized. Without an http block its http
    // configuration context is null.
    let mcf = unsafe {
        let ctx = *(*cycle)
            .conf_ctx
            .add(nginx_sys::ngx_http_module.index)
            .cast::<*mut nginx_sys::ngx_http_conf_ctx_t>();
        match ctx.as_ref() {
            Some(ctx) => (*ctx.main_conf.add(ngx_http_streamedge_module.ctx_index))
                .cast::<MainConf>()
                .as_ref(),
            None => None,
        }
    };
    let setup = match mcf {
        Some(mcf) => conn::Setup {
            limit: mcf.conn_limit.unwrap_or(0),
            owners: mcf.owners,
        },
        None => conn::Setup {
            limit: 0,
            owners: ptr::null(),
        },
    };
    conn::configure(setup);
    Status::NGX_OK.into()
}

/// Default registry zone: about 9,000 stream names.
const DEFAULT_ZONE_SIZE: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Directive parsers

/// # Safety
/// `conf` is this module's main configuration.
unsafe fn main_conf<'a>(conf: *mut c_void) -> &'a mut MainConf {
    // SAFETY: per the contract `conf` points at the `MainConf` nginx allocated for this
    // module, alive for the configuration cycle.
    unsafe { &mut *conf.cast::<MainConf>() }
}

extern "C" fn ngx_http_streamedge_set_data(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: directive handlers get the parsing state and this module's main conf.
    let (mcf, args) = unsafe { (main_conf(conf), args(cf)) };
    if mcf.data_dir.is_some() {
        return DUPLICATE;
    }
    let mut path = args[0];
    // SAFETY: resolves a relative path against the prefix, allocating from the cycle pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 0) } != Status::NGX_OK.0 {
        return NGX_CONF_ERROR;
    }
    let Ok(path) = path.to_str() else {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid data directory \"{}\"", args[0]);
        return NGX_CONF_ERROR;
    };
    mcf.data_dir = Some(PathBuf::from(path));
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_set_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // http directives, the `MainConf` it created.
    let (mcf, args) = unsafe { (main_conf(conf), args(cf)) };
    if mcf.zone_size.is_some() {
        return DUPLICATE;
    }
    // SAFETY: parses an nginx size ("64k", "1m") from the argument.
    let size = unsafe { ngx_parse_size(&mut args[0]) };
    if size == NGX_ERROR as isize {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid zone size \"{}\"", args[0]);
        return NGX_CONF_ERROR;
    }
    if (size as usize) < shm::MIN_ZONE_SIZE {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "zone size \"{}\" is too small, the minimum is 64k",
            args[0]
        );
        return NGX_CONF_ERROR;
    }
    mcf.zone_size = Some(size as usize);
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_set_conn_limit(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // http directives, the `MainConf` it created.
    let (mcf, args) = unsafe { (main_conf(conf), args(cf)) };
    if mcf.conn_limit.is_some() {
        return DUPLICATE;
    }
    let text = args[0].to_string();
    match text.parse::<u32>() {
        Ok(n) if n > 0 && !text.starts_with(['+', '0']) => {
            mcf.conn_limit = Some(n);
            NGX_CONF_OK
        }
        _ => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid connection limit \"{text}\"");
            NGX_CONF_ERROR
        }
    }
}

extern "C" fn ngx_http_streamedge_set_live_timeout(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // http directives, the `MainConf` it created.
    let (mcf, args) = unsafe { (main_conf(conf), args(cf)) };
    if mcf.live_timeout.is_some() {
        return DUPLICATE;
    }
    if args[0].as_bytes() == b"off" {
        mcf.live_timeout = Some(None);
        return NGX_CONF_OK;
    }
    let whole = args[0];
    match parse_time_ms(&args[0]) {
        Some(ms) => {
            mcf.live_timeout = Some(Some(ms));
            NGX_CONF_OK
        }
        None => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid live timeout \"{whole}\"");
            NGX_CONF_ERROR
        }
    }
}

/// Makes the current location answer with `handler`, as `stub_status` does.
pub(crate) fn set_content_handler(
    cf: *mut ngx_conf_t,
    directive: &'static str,
    handler: extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t,
) -> *mut c_char {
    // SAFETY: `cf` is the configuration being parsed, inside a location.
    let cf_ref = unsafe { &mut *cf };
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf_ref) else {
        return NGX_CONF_ERROR;
    };
    clcf.handler = Some(handler);
    if let Some(mcf) = StreamedgeModule::main_conf_mut(cf_ref) {
        mcf.used_by.get_or_insert(directive);
    }
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_publish_auth(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // Limits in this location run once the callback body names the publisher.
    // SAFETY: `cf` is the configuration being parsed, inside a location.
    if let Some(llcf) = limit::LimitModule::location_conf_mut(unsafe { &*cf }) {
        llcf.deferred = true;
    }
    set_content_handler(cf, "streamedge_publish_auth", publish_auth_handler)
}

extern "C" fn ngx_http_streamedge_json_errors(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: `cf` is the configuration being parsed, inside a location.
    let (cf_ref, args) = unsafe { (&mut *cf, args(cf)) };
    let prefix = args[0].to_string();
    if !prefix.starts_with('/') {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid prefix \"{prefix}\", it must start with \"/\""
        );
        return NGX_CONF_ERROR;
    }
    let Some(mcf) = StreamedgeModule::main_conf_mut(cf_ref) else {
        return NGX_CONF_ERROR;
    };
    match &mcf.json_errors {
        Some(p) if *p != prefix => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"streamedge_json_errors\" is already \"{p}\""
            );
            return NGX_CONF_ERROR;
        }
        _ => mcf.json_errors = Some(prefix),
    }
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf_ref) else {
        return NGX_CONF_ERROR;
    };
    clcf.handler = Some(json_error_handler);
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_streams(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes the directive's arguments in `cf->args` while parsing it.
    let args = unsafe { ffi::args(cf) };
    let handler = match args.first().map(|a| a.as_bytes()) {
        None => streams_handler,
        Some(b"all") => streams_all_handler,
        Some(_) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid parameter \"{}\": \"streamedge_streams\" takes none or \"all\"",
                args[0]
            );
            return NGX_CONF_ERROR;
        }
    };
    set_content_handler(cf, "streamedge_streams", handler)
}
