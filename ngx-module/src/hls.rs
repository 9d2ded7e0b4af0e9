//! `ngx_http_streamedge_hls_module`: HLS routes for live streams and the library.
//!
//! ```nginx
//! streamedge_hls_secrets /srv/streamedge/data/sign.keys;
//! location /live/ { streamedge_hls live; }
//! location /vod/  { streamedge_hls vod; }
//! location /s/    { streamedge_hls signed; }
//! ```
//!
//! In the access phase the module checks the URL (`streamedge_policy::hls`), decides access
//! (who is live, what is private, signed tokens) and sets the headers; nginx's static module
//! then sends the file from the data directory, with sendfile, ranges, ETag and
//! If-Modified-Since, following no symlink below `DATA/live` or `DATA/vod`. Signed links
//! carry their token in the path (`/s/TOKEN/live/NAME/...`): once it is checked the URI is
//! the public one, so playlists are served as files, untouched, and their relative URIs
//! inherit the token. A private name without a valid token is answered exactly like a name
//! that does not exist (404). The module answers only three things itself: a CORS
//! preflight, "offline" for a known stream that is not live, and a redirect from a link of
//! the older form (`index.m3u8?st=TOKEN`) to the signed path.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::cell::RefCell;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_http_finalize_request, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_request_t, ngx_int_t, ngx_module_t, ngx_str_t,
    ngx_uint_t, NGX_CONF_2MORE, NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_DISABLE_SYMLINKS_ON,
    NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_OPTIONS, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG,
    NGX_LOG_INFO,
};
use ngx::core::{Pool, Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError,
    NgxHttpCoreModule, Request,
};
use ngx::{ngx_conf_log_error, ngx_log_error, ngx_string};
use streamedge_formats::layout::{Layout, LIVE_MASTER, LIVE_PLAYLIST};
use streamedge_formats::token::{self, Secrets, Token};
use streamedge_policy::bucket::Signer;
use streamedge_policy::hls::{self, Kind, Mode, PathError};
use streamedge_policy::library::{AccessCache, Item};
use streamedge_policy::registry::playlist_is_current;

use crate::ffi;

// ---------------------------------------------------------------------------------------
// Types

pub struct HlsModule;

#[derive(Default)]
pub struct HlsMainConf {
    /// Signing secrets, read once by the master when the configuration loads.
    secrets: Option<Vec<Vec<u8>>>,
    /// What an edge shows its origin: the first secret's credential.
    edge_credential: Option<String>,
    /// This worker's view of library items' `meta.json`.
    pub(crate) library: RefCell<AccessCache>,
    /// `streamedge_hls_bucket`: the library's bucket, when it is in one.
    pub(crate) bucket: Option<Signer>,
}

/// What a `streamedge_hls` location serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Plain(Mode),
    /// `/s/TOKEN/live/...` and `/s/TOKEN/vod/...`.
    Signed,
}

impl Route {
    fn prefix(self) -> &'static str {
        match self {
            Route::Plain(m) => m.prefix(),
            Route::Signed => hls::SIGNED_PREFIX,
        }
    }
}

#[derive(Default)]
pub struct HlsLocConf {
    mode: Option<Route>,
    /// `streamedge_hls ... edge`: a cache in front of the origin, with no files of its own.
    pub(crate) edge: bool,
    /// `streamedge_hls ... shield`: an edge that edges are in front of, answered private
    /// content when they show their credential.
    shield: bool,
    /// `DATA/live` and `DATA/vod`: where symlinks stop being followed, per request, in a
    /// signed location (`$streamedge_hls_tree`).
    trees: Option<[String; 2]>,
    /// `None`: not set here; `Some(None)`: `off`.
    cors: Option<Option<String>>,
}

impl HlsLocConf {
    /// Whether this location serves signed paths.
    pub(crate) fn signed(&self) -> bool {
        self.mode == Some(Route::Signed)
    }
}

impl Merge for HlsLocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        if self.cors.is_none() {
            self.cors = Some(prev.cors.clone().unwrap_or(Some("*".into())));
        }
        Ok(())
    }
}

/// An answer this module gives itself, chosen in the access phase.
enum Answer {
    Preflight,
    Offline(String),
    /// A link of the older form, to its signed path.
    Moved(String),
    /// `/live/NAME/`: the playlist that plays the stream now, relative to it; whether the
    /// stream is private.
    Entry(&'static str, bool),
}

// ---------------------------------------------------------------------------------------
// Directives, module context, module definition

static mut NGX_HTTP_STREAMEDGE_HLS_COMMANDS: [ngx_command_t; 5] = [
    ffi::command(
        ngx_string!("streamedge_hls"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12,
        ngx_http_streamedge_hls,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_hls_cors"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_hls_cors,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_hls_secrets"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_hls_secrets,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_hls_bucket"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE,
        crate::bucket::directive,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

static NGX_HTTP_STREAMEDGE_HLS_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(HlsModule::preconfiguration),
    postconfiguration: Some(HlsModule::postconfiguration),
    create_main_conf: Some(HlsModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(HlsModule::create_loc_conf),
    merge_loc_conf: Some(HlsModule::merge_loc_conf),
};

#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_streamedge_hls_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(NGX_HTTP_STREAMEDGE_HLS_MODULE_CTX) as _,
    // SAFETY: only the address is taken; nginx reads the table during configuration.
    commands: unsafe { ptr::addr_of_mut!(NGX_HTTP_STREAMEDGE_HLS_COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

impl HttpModule for HlsModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module definition is a static that nginx only writes during start-up.
        unsafe { &*ptr::addr_of!(ngx_http_streamedge_hls_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        let rc = ffi::add_variable(cf, ngx_string!("streamedge_hls_tree"), tree_variable);
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        let rc = ffi::add_variable(
            cf,
            ngx_string!("streamedge_edge_credential"),
            credential_variable,
        );
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        let rc = ffi::add_variable(cf, ngx_string!("streamedge_cache_scope"), scope_variable);
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        ffi::add_variable(
            cf,
            ngx_string!("streamedge_bucket_uri"),
            crate::bucket::variable,
        )
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        ffi::push_phase_handler(
            cf,
            ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
            hls_access_handler,
        )
    }
}

// SAFETY: `HlsMainConf` is the type `create_main_conf` allocates for this module.
unsafe impl HttpModuleMainConf for HlsModule {
    type MainConf = HlsMainConf;
}

// SAFETY: `HlsLocConf` is the type `create_loc_conf` allocates for this module.
unsafe impl HttpModuleLocationConf for HlsModule {
    type LocationConf = HlsLocConf;
}

// ---------------------------------------------------------------------------------------
// Handlers

extern "C" fn hls_access_handler(raw: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the current request to phase handlers.
    let r = unsafe { Request::from_ngx_http_request(raw) };
    match decide(r) {
        Ok(None) => Status::NGX_DECLINED.into(),
        Ok(Some(answer)) => {
            // Answered here and now: a `try_files` after this phase (the library's route to
            // its bucket) would send the request on to another location's handler.
            let rc = answer_with(r, &answer);
            // SAFETY: the request is finished once, here; the access phase's checker then
            // runs nothing more for it (NGX_DONE).
            unsafe { ngx_http_finalize_request(raw, rc) };
            Status::NGX_DONE.into()
        }
        Err(status) => status as ngx_int_t,
    }
}

/// The access decision: `Ok(None)` lets nginx serve the file, `Ok(Some)` answers here,
/// `Err` refuses with a status.
fn decide(r: &mut Request) -> Result<Option<Answer>, u16> {
    let Some(hlcf) = HlsModule::location_conf(r) else {
        return Ok(None);
    };
    let Some(route) = hlcf.mode else {
        return Ok(None);
    };
    // Once: a named location that error_page sends a request to checks it again.
    let has_cors = r.headers_out_iterator().any(|(k, _)| {
        k.as_bytes()
            .eq_ignore_ascii_case(b"access-control-allow-origin")
    });
    if let (Some(Some(origin)), false) = (&hlcf.cors, has_cors) {
        r.add_header_out("Access-Control-Allow-Origin", origin);
    }
    let raw: *mut ngx_http_request_t = (&mut *r).into();
    // SAFETY: the method, URI and arguments belong to the current request.
    let (method, uri, args) = unsafe { ((*raw).method as u32, (*raw).uri, (*raw).args) };
    if method == NGX_HTTP_OPTIONS {
        return Ok(Some(Answer::Preflight));
    }
    if method != NGX_HTTP_GET && method != NGX_HTTP_HEAD {
        return Err(405);
    }
    let refuse = |e: PathError| match e {
        PathError::BadRequest => 400u16,
        PathError::NotFound => 404,
    };
    let uri_bytes = uri.as_bytes();
    let (mode, inner_start, path_token) = match route {
        // A signed path here was refused on its own route and sent on by an error_page (a
        // bucket's fallback): refused as a name that does not exist.
        Route::Plain(_) if uri_bytes.starts_with(hls::SIGNED_PREFIX.as_bytes()) => return Err(404),
        Route::Plain(mode) => (mode, 0, None),
        Route::Signed => {
            let s = hls::parse_signed(uri_bytes).map_err(refuse)?;
            (s.mode, s.inner_start, Some(s.token))
        }
    };
    let inner = &uri_bytes[inner_start..];
    let target = hls::parse_path(mode, inner).map_err(refuse)?;
    if hlcf.edge {
        return edge(r, raw, &target.scope(mode), path_token, inner_start, args);
    }
    let mut entry = None;
    // The broadcast a live playlist belongs to, for the audience.
    let mut broadcast = None;
    let (private, offline) = match mode {
        Mode::Live => match crate::stream_state(r, target.name) {
            // A playlist the current broadcast has not written yet (none, or the previous
            // broadcast's) is not served: the stream is not playable yet.
            Some(k) if k.live && target.kind == Kind::Playlist => {
                broadcast = Some(k.since);
                let data = crate::data_dir(r).ok_or(500u16)?;
                let dir = Layout::new(data).live().join(target.name);
                let current = |file: &str| playlist_is_current(&dir.join(file), k.since);
                if target.file.is_empty() {
                    // The ladder's master playlist once it runs, else nginx-rtmp's own.
                    entry = [LIVE_MASTER, LIVE_PLAYLIST]
                        .into_iter()
                        .find(|f| current(f));
                    (k.private, entry.is_none())
                } else {
                    (k.private, !current(target.file))
                }
            }
            Some(k) if k.live => (k.private, false),
            // Not live: whether it exists (and is private) is the keys file's to say.
            _ => match crate::stream_key(r, target.name) {
                Some(private) => (private, true),
                None => return Err(404),
            },
        },
        Mode::Vod => {
            let data = crate::data_dir(r).ok_or(500u16)?;
            let hmcf = HlsModule::main_conf(r).ok_or(500u16)?;
            match hmcf
                .library
                .borrow_mut()
                .item(&Layout::new(data).vod(), target.name)
            {
                Item::Missing => return Err(404),
                Item::Public => (false, false),
                Item::Private => (true, false),
            }
        }
    };
    let query_token = hls::token_arg(args.as_bytes());
    // A signed path is checked whatever the content; a query token only where it matters.
    // An edge in front has checked the viewer's token itself and says so with its
    // credential: private content is answered to it, to share among its viewers.
    let edge_asks = private && path_token.is_none() && from_edge(r);
    if path_token.is_some() || (private && !edge_asks) {
        check_token(r, &target.scope(mode), path_token.or(query_token))?;
    }
    if inner_start > 0 {
        // From here on the request is for the public path: the static module maps
        // `/live/NAME/FILE` below the location's root, the data directory, and whatever is
        // answered, the access log records the path without the token.
        // SAFETY: the URI stays within the request's own buffer.
        unsafe {
            (*raw).uri.data = (*raw).uri.data.add(inner_start);
            (*raw).uri.len -= inner_start;
        }
    }
    if offline {
        return Ok(Some(Answer::Offline(target.name.to_string())));
    }
    if let Some(since) = broadcast {
        crate::audience::count_player(r, target.name, since);
    }
    if let (true, false, None, Some(token), Kind::Playlist) =
        (private, edge_asks, path_token, query_token, target.kind)
    {
        // Older links (and `/live/NAME/?st=`): the playlist moves to its signed path, where
        // relative URIs carry the token (segments of the older form keep working as they are).
        let inner = std::str::from_utf8(inner).map_err(|_| 400u16)?;
        return Ok(Some(Answer::Moved(hls::signed_path(token, inner))));
    }
    if let Some(file) = entry {
        // Relative: a signed path stays signed, and the playlist's own relative URIs
        // resolve below the stream's folder.
        return Ok(Some(Answer::Entry(file, private)));
    }
    set_content_type(raw, target.kind.content_type());
    r.add_header_out("Cache-Control", target.kind.cache_control(mode, private));
    Ok(None)
}

/// The signing secrets, for RTMP play callbacks too.
pub fn secrets(r: &Request) -> &[Vec<u8>] {
    HlsModule::main_conf(r)
        .and_then(|c| c.secrets.as_deref())
        .unwrap_or_default()
}

/// At an edge: a signed path's token is checked here, with the secrets the origin shares,
/// and the request goes on to the origin (`proxy_pass`) as the public path, the token out of
/// the URI the cache keys on; the rest is the origin's to decide.
///
/// The query string goes on only as far as it matters: nothing after a checked signed path
/// (a `?st=` of its own would have the origin redirect every viewer sharing the cached
/// answer), and `st=TOKEN` alone on a public path (other arguments would each be a cache
/// miss of their own: a way past the cache to the home uplink).
fn edge(
    r: &Request,
    raw: *mut ngx_http_request_t,
    scope: &str,
    token: Option<&str>,
    inner_start: usize,
    args: ngx_str_t,
) -> Result<Option<Answer>, u16> {
    if token.is_some() {
        check_token(r, scope, token)?;
    }
    let kept = match token {
        Some(_) => None,
        None => hls::token_arg_range(args.as_bytes()),
    };
    // SAFETY: the URI and the arguments stay within the request's own buffers; without a
    // valid unparsed URI the proxy module sends `uri` and `args`, as set here.
    unsafe {
        (*raw).uri.data = (*raw).uri.data.add(inner_start);
        (*raw).uri.len -= inner_start;
        match kept {
            Some(range) => {
                (*raw).args.data = (*raw).args.data.add(range.start);
                (*raw).args.len = range.len();
            }
            None => (*raw).args.len = 0,
        }
        (*raw).set_valid_unparsed_uri(0);
    }
    Ok(None)
}

/// Whether an edge may ask its origin for private content on behalf of this request: a
/// signed path it checked, or, at a shield, an edge in front that showed its credential.
fn edge_may_ask(r: &Request) -> bool {
    let Some(c) = HlsModule::location_conf(r).filter(|c| c.edge) else {
        return false;
    };
    match c.mode {
        // The access phase refused the request unless the token was good.
        Some(Route::Signed) => true,
        Some(Route::Plain(_)) => c.shield && shows_credential(r),
        None => false,
    }
}

/// `$streamedge_edge_credential`: what an edge sends its origin with a request it may ask
/// private content for (`proxy_set_header X-Streamedge-Edge $streamedge_edge_credential;`),
/// else nothing, and nginx sends no such header.
extern "C" fn credential_variable(
    r: *mut ngx_http_request_t,
    v: *mut nginx_sys::ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the current request and a value to fill.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    let credential = HlsModule::main_conf(r)
        .and_then(|c| c.edge_credential.as_deref())
        .filter(|_| edge_may_ask(r));
    ffi::set_variable(v, credential.map(str::as_bytes))
}

/// `$streamedge_cache_scope`: `s` for what an edge asks with its credential (shared by every
/// viewer whose token it checked), `p` for the rest: a cache key begins with it, so that a
/// public answer and a private one never share a copy.
extern "C" fn scope_variable(
    r: *mut ngx_http_request_t,
    v: *mut nginx_sys::ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the current request and a value to fill.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    let scope: &[u8] = if edge_may_ask(r) { b"s" } else { b"p" };
    ffi::set_variable(v, Some(scope))
}

/// Whether the request carries a valid edge credential, quietly (for variables).
fn shows_credential(r: &Request) -> bool {
    ffi::header(r, token::EDGE_HEADER.as_bytes()).is_some_and(|g| token::is_edge(secrets(r), g))
}

/// Whether the request carries an edge's credential (`X-Streamedge-Edge`), derived from the
/// signing secrets this server and its edges share.
fn from_edge(r: &Request) -> bool {
    let given = ffi::header(r, token::EDGE_HEADER.as_bytes());
    let ok = given.is_some_and(|g| token::is_edge(secrets(r), g));
    if given.is_some() && !ok {
        ngx_log_error!(
            NGX_LOG_INFO,
            r.log(),
            "refusing an edge credential that does not match"
        );
    }
    ok
}

/// Refuses, as a name that does not exist (404, no reason given), unless the request
/// carries a valid token for `scope`.
fn check_token(r: &Request, scope: &str, token: Option<&str>) -> Result<(), u16> {
    // SAFETY: `ngx_cached_time` always points at a valid slot of this process.
    let now = unsafe { (*nginx_sys::ngx_cached_time).sec } as u64;
    let verdict = match token.and_then(Token::parse) {
        None => Err("no valid token"),
        Some(t) => t
            .verify(secrets(r), scope, now, ffi::client_ip(r))
            .map_err(|e| match e {
                streamedge_formats::token::Refusal::Expired => "expired token",
                _ => "token does not match",
            }),
    };
    verdict.map_err(|why| {
        ngx_log_error!(NGX_LOG_INFO, r.log(), "refusing \"{scope}\": {why}");
        404
    })
}

/// `$streamedge_hls_tree`: below which folder no symlink is followed for this request of
/// a signed location, by the public path the URI was turned into.
extern "C" fn tree_variable(
    r: *mut ngx_http_request_t,
    v: *mut nginx_sys::ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the current request and a value to fill.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    let raw: *const ngx_http_request_t = (&*r).into();
    // SAFETY: the URI belongs to the current request.
    let uri = unsafe { (*raw).uri };
    let trees = HlsModule::location_conf(r).and_then(|c| c.trees.as_ref());
    let tree = trees.and_then(|[live, vod]| {
        if uri.as_bytes().starts_with(Mode::Live.prefix().as_bytes()) {
            Some(live.as_bytes())
        } else if uri.as_bytes().starts_with(Mode::Vod.prefix().as_bytes()) {
            Some(vod.as_bytes())
        } else {
            None
        }
    });
    // Anything else: every component is checked, from the filesystem's root.
    ffi::set_variable(v, Some(tree.unwrap_or(b"")))
}

fn set_content_type(raw: *mut ngx_http_request_t, content_type: &'static str) {
    // SAFETY: a static string nginx only reads; the static module keeps a type already set.
    unsafe {
        (*raw).headers_out.content_type_len = content_type.len();
        (*raw).headers_out.content_type = ngx_str_t {
            len: content_type.len(),
            data: content_type.as_ptr().cast_mut(),
        };
        (*raw).headers_out.content_type_lowcase = ptr::null_mut();
    }
}

/// Sends one of the module's own answers; what nginx's finalizing needs to know.
fn answer_with(r: &mut Request, answer: &Answer) -> ngx_int_t {
    let raw: *mut ngx_http_request_t = (&mut *r).into();
    // SAFETY: the body, if any, is not wanted.
    let rc = unsafe { nginx_sys::ngx_http_discard_request_body(raw) };
    if rc != Status::NGX_OK.0 {
        return rc;
    }
    let status = match answer {
        Answer::Preflight => {
            r.add_header_out("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
            r.add_header_out("Access-Control-Allow-Headers", "Range");
            r.add_header_out("Access-Control-Max-Age", "86400");
            ffi::send(r, 204, ffi::TEXT, b"")
        }
        Answer::Offline(name) => {
            let body = format!("{{\"name\":\"{name}\",\"live\":false}}\n");
            r.add_header_out("Cache-Control", "no-cache");
            ffi::send(r, 404, ffi::JSON, body.as_bytes())
        }
        Answer::Entry(file, private) => {
            let (file, private) = (*file, *private);
            r.add_header_out("Location", file);
            r.add_header_out(
                "Cache-Control",
                Kind::Playlist.cache_control(Mode::Live, private),
            );
            ffi::send(
                r,
                302,
                ffi::TEXT,
                b"the stream plays from the playlist in Location\n",
            )
        }
        Answer::Moved(path) => {
            let path = path.clone();
            r.add_header_out("Location", &path);
            r.add_header_out("Cache-Control", "private, no-cache");
            ffi::send(r, 302, ffi::TEXT, b"moved to the signed path\n")
        }
    };
    status.0
}

// ---------------------------------------------------------------------------------------
// Directive parsers

extern "C" fn ngx_http_streamedge_hls(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: directive handlers get the parsing state and this module's location conf.
    let (hlcf, args) = unsafe { (&mut *conf.cast::<HlsLocConf>(), ffi::args(cf)) };
    if hlcf.mode.is_some() {
        return ffi::DUPLICATE;
    }
    let (edge, shield) = match args.get(1).map(|a| a.as_bytes()) {
        None => (false, false),
        Some(b"edge") => (true, false),
        Some(b"shield") => (true, true),
        Some(_) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\", it must be \"edge\" or \"shield\"",
                args[1]
            );
            return NGX_CONF_ERROR;
        }
    };
    let mode = match args[0].as_bytes() {
        b"live" => Route::Plain(Mode::Live),
        b"vod" => Route::Plain(Mode::Vod),
        b"signed" => Route::Signed,
        _ => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\", it must be \"live\", \"vod\" or \"signed\"",
                args[0]
            );
            return NGX_CONF_ERROR;
        }
    };
    // SAFETY: `cf` is the configuration being parsed, inside a location.
    let cf_ref = unsafe { &mut *cf };
    if edge {
        // No files here: the location's proxy_pass asks the origin. Any location (a regular
        // expression for segments, say): the URI is checked from its first byte.
        hlcf.mode = Some(mode);
        hlcf.edge = true;
        hlcf.shield = shield;
        return NGX_CONF_OK;
    }
    let data = crate::StreamedgeModule::main_conf(cf_ref).and_then(|m| m.data_dir.as_ref());
    let Some(data) = data.and_then(|d| d.to_str()) else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"streamedge_hls\" requires \"streamedge_data\" before it"
        );
        return NGX_CONF_ERROR;
    };
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf_ref) else {
        return NGX_CONF_ERROR;
    };
    // Signed paths may also take a regular expression (`location ~ ^/s/[^/]+/vod/`, for the
    // library's own route to a bucket): the URI is checked from its first byte either way.
    let regex = mode == Route::Signed && !clcf.regex.is_null();
    if clcf.name.as_bytes() != mode.prefix().as_bytes() && !regex {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"streamedge_hls {}\" must be in \"location {}\"",
            args[0],
            mode.prefix()
        );
        return NGX_CONF_ERROR;
    }
    // The files are the data directory's: /live/alice/0.ts is DATA/live/alice/0.ts.
    // SAFETY: the string is copied into the configuration pool, which outlives the location.
    let Some(root) =
        (unsafe { ngx_str_t::from_bytes((*cf).pool, data.trim_end_matches('/').as_bytes()) })
    else {
        return NGX_CONF_ERROR;
    };
    clcf.root = root;
    clcf.alias = 0;
    clcf.root_lengths = ptr::null_mut();
    clcf.root_values = ptr::null_mut();
    // No symlink below DATA/live or DATA/vod is followed, whatever else the configuration
    // says: a link to /etc inside an item must not serve /etc. (`live` and `vod` themselves
    // may be links, say to a RAM disk: that is the administrator's choice.)
    let data = data.trim_end_matches('/');
    let tree = |m: Mode| format!("{data}{}", m.prefix().trim_end_matches('/'));
    let from_text = match mode {
        Route::Plain(m) => tree(m),
        // Per request: `DATA/live` or `DATA/vod`, by the public path the URI was turned into.
        Route::Signed => {
            hlcf.trees = Some([tree(Mode::Live), tree(Mode::Vod)]);
            "$streamedge_hls_tree".to_string()
        }
    };
    // SAFETY: `cf` is the configuration being parsed; the string is copied into its pool,
    // which outlives the location.
    let Some(from) = (unsafe { ngx_str_t::from_bytes((*cf).pool, from_text.as_bytes()) })
        .and_then(|f| compile_literal(cf, f))
    else {
        return NGX_CONF_ERROR;
    };
    clcf.disable_symlinks = NGX_DISABLE_SYMLINKS_ON as ngx_uint_t;
    clcf.disable_symlinks_from = from;
    hlcf.mode = Some(mode);
    NGX_CONF_OK
}

/// A complex value (here a literal, or one variable of this module).
fn compile_literal(
    cf: *mut ngx_conf_t,
    mut value: ngx_str_t,
) -> Option<*mut ngx_http_complex_value_t> {
    // SAFETY: `cf` is the configuration being parsed; allocations come from its pool.
    let pool = unsafe { Pool::from_ngx_pool((*cf).pool) };
    let cv = pool.calloc_type::<ngx_http_complex_value_t>();
    if cv.is_null() {
        return None;
    }
    // SAFETY: a zeroed compile request with the fields nginx requires filled in.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { core::mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut value;
    ccv.complex_value = cv;
    // SAFETY: compiles a string without variables.
    (unsafe { ngx_http_compile_complex_value(&mut ccv) } == Status::NGX_OK.0).then_some(cv)
}

extern "C" fn ngx_http_streamedge_hls_cors(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // location directives, the `HlsLocConf` it created.
    let (hlcf, args) = unsafe { (&mut *conf.cast::<HlsLocConf>(), ffi::args(cf)) };
    if hlcf.cors.is_some() {
        return ffi::DUPLICATE;
    }
    let value = args[0].to_string();
    if value.is_empty() || value.contains(['\r', '\n']) {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid origin \"{value}\"");
        return NGX_CONF_ERROR;
    }
    hlcf.cors = Some((value != "off").then_some(value));
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_hls_secrets(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // http directives, the `HlsMainConf` it created.
    let (hmcf, args) = unsafe { (&mut *conf.cast::<HlsMainConf>(), ffi::args(cf)) };
    if hmcf.secrets.is_some() {
        return ffi::DUPLICATE;
    }
    let path = args[0].to_string();
    // Read once, here, by the master: workers never open the secrets file.
    let secrets = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| Secrets::parse(&text));
    match secrets {
        Ok(s) => {
            hmcf.edge_credential = s.first().map(|first| token::edge_credential(first));
            hmcf.secrets = Some(s);
            NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "cannot use signing secrets \"{path}\": {e}"
            );
            NGX_CONF_ERROR
        }
    }
}
