//! `ngx_http_streamedge_hls_module`: HLS routes for live streams and the library.
//!
//! ```nginx
//! streamedge_hls_secrets /srv/streamedge/data/sign.keys;
//! location /live/ { streamedge_hls live; }
//! location /vod/  { streamedge_hls vod; }
//! ```
//!
//! In the access phase the module checks the URL (`streamedge_policy::hls`), decides access
//! (who is live, what is private, signed tokens) and sets the headers; nginx's static module
//! then sends the file from the data directory, with sendfile, ranges, ETag and
//! If-Modified-Since. Only three answers come from this module itself, through the request's
//! content handler (and never follows a symlink below the data directory): a CORS preflight, "offline" for a known stream that is not live, and a
//! private playlist, rewritten so that every URI inside carries the viewer's token.

use core::ffi::{c_char, c_void};
use core::ptr;
use std::cell::RefCell;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_http_module_t, ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
    ngx_http_request_t, ngx_int_t, ngx_module_t, ngx_str_t, ngx_uint_t, NGX_CONF_TAKE1,
    NGX_DISABLE_SYMLINKS_ON, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE,
    NGX_HTTP_OPTIONS, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG, NGX_LOG_INFO,
};
use ngx::core::{Pool, Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError,
    NgxHttpCoreModule, Request,
};
use ngx::{ngx_conf_log_error, ngx_log_error, ngx_string};
use streamedge_formats::token::{Secrets, Token};
use streamedge_policy::hls::{self, Kind, Mode, PathError};
use streamedge_policy::library::{AccessCache, Item};

// ---------------------------------------------------------------------------------------
// Types

pub struct HlsModule;

#[derive(Default)]
pub struct HlsMainConf {
    /// Signing secrets, read once by the master when the configuration loads.
    secrets: Option<Vec<Vec<u8>>>,
    /// This worker's view of library items' `meta.json`.
    library: RefCell<AccessCache>,
}

#[derive(Default)]
pub struct HlsLocConf {
    mode: Option<Mode>,
    /// `None`: not set here; `Some(None)`: `off`.
    cors: Option<Option<String>>,
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
    SignedPlaylist { token: String },
}

// ---------------------------------------------------------------------------------------
// Directives, module context, module definition

static mut NGX_HTTP_STREAMEDGE_HLS_COMMANDS: [ngx_command_t; 4] = [
    crate::command(
        ngx_string!("streamedge_hls"),
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_hls,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    crate::command(
        ngx_string!("streamedge_hls_cors"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_hls_cors,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    crate::command(
        ngx_string!("streamedge_hls_secrets"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_hls_secrets,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

static NGX_HTTP_STREAMEDGE_HLS_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
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

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        crate::push_phase_handler(
            cf,
            ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
            hls_access_handler,
        )
    }
}

// SAFETY: these are the types `create_main_conf` and `create_loc_conf` allocate.
unsafe impl HttpModuleMainConf for HlsModule {
    type MainConf = HlsMainConf;
}

// SAFETY: as above.
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
            let pool: Pool = r.pool();
            let ctx = pool.allocate(answer);
            if ctx.is_null() {
                return Status::NGX_ERROR.into();
            }
            r.set_module_ctx(ctx.cast(), HlsModule::module());
            // SAFETY: the content phase calls this handler instead of the static module's.
            unsafe { (*raw).content_handler = Some(hls_answer_handler) };
            Status::NGX_DECLINED.into()
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
    let Some(mode) = hlcf.mode else {
        return Ok(None);
    };
    if let Some(Some(origin)) = &hlcf.cors {
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
    let target = match hls::parse_path(mode, uri.as_bytes()) {
        Ok(t) => t,
        Err(PathError::BadRequest) => return Err(400),
        Err(PathError::NotFound) => return Err(404),
    };
    let (private, offline) = match mode {
        Mode::Live => match crate::stream_state(r, target.name) {
            Some((true, private)) => (private, false),
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
                .item(&data.join("vod"), target.name)
            {
                Item::Missing => return Err(404),
                Item::Public => (false, false),
                Item::Private => (true, false),
            }
        }
    };
    let token = hls::token_arg(args.as_bytes()).map(str::to_string);
    if private {
        check_token(r, &target.scope(mode), token.as_deref())?;
    }
    if offline {
        return Ok(Some(Answer::Offline(target.name.to_string())));
    }
    set_content_type(raw, target.kind.content_type());
    r.add_header_out("Cache-Control", target.kind.cache_control(mode, private));
    match (private, target.kind, token) {
        (true, Kind::Playlist, Some(token)) => Ok(Some(Answer::SignedPlaylist { token })),
        _ => Ok(None),
    }
}

/// Refuses with 403, and no reason, unless the request carries a valid token for `scope`.
fn check_token(r: &Request, scope: &str, token: Option<&str>) -> Result<(), u16> {
    let secrets = HlsModule::main_conf(r)
        .and_then(|c| c.secrets.as_deref())
        .unwrap_or_default();
    // SAFETY: `ngx_cached_time` always points at a valid slot of this process.
    let now = unsafe { (*nginx_sys::ngx_cached_time).sec } as u64;
    let verdict = match token.and_then(Token::parse) {
        None => Err("no valid token"),
        Some(t) => t
            .verify(secrets, scope, now, crate::client_ip(r))
            .map_err(|e| match e {
                streamedge_formats::token::Refusal::Expired => "expired token",
                _ => "token does not match",
            }),
    };
    verdict.map_err(|why| {
        ngx_log_error!(NGX_LOG_INFO, r.log(), "streamedge: refusing {scope}: {why}");
        403
    })
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

/// Largest playlist rewritten in memory; real ones are a few kilobytes.
const MAX_PLAYLIST: u64 = 1024 * 1024;

extern "C" fn hls_answer_handler(raw: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the current request to its content handler.
    let r = unsafe { Request::from_ngx_http_request(raw) };
    // SAFETY: the body, if any, is not wanted.
    let rc = unsafe { nginx_sys::ngx_http_discard_request_body(raw) };
    if rc != Status::NGX_OK.0 {
        return rc;
    }
    let Some(answer) = r.get_module_ctx::<Answer>(HlsModule::module()) else {
        return Status::NGX_ERROR.into();
    };
    let status = match answer {
        Answer::Preflight => {
            r.add_header_out("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
            r.add_header_out("Access-Control-Allow-Headers", "Range");
            r.add_header_out("Access-Control-Max-Age", "86400");
            crate::send(r, 204, crate::TEXT, b"")
        }
        Answer::Offline(name) => {
            let body = format!("{{\"name\":\"{name}\",\"live\":false}}\n");
            r.add_header_out("Cache-Control", "no-cache");
            crate::send(r, 404, crate::JSON, body.as_bytes())
        }
        Answer::SignedPlaylist { token } => {
            let token = token.clone();
            // SAFETY: the URI belongs to the current request; it was checked in `decide`.
            let uri = unsafe { (*raw).uri }.to_string();
            let Some(data) = crate::data_dir(r) else {
                return Status::NGX_ERROR.into();
            };
            // A playlist is a few kilobytes: reading it here is cheaper than a filter chain.
            let path = data.join(uri.trim_start_matches('/'));
            let text = match std::fs::metadata(&path) {
                Ok(m) if m.len() <= MAX_PLAYLIST => std::fs::read_to_string(&path).ok(),
                _ => None,
            };
            let Some(text) = text else {
                return 404;
            };
            let body = hls::rewrite_playlist(&text, &token);
            crate::send(r, 200, Kind::Playlist.content_type(), body.as_bytes())
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
    let (hlcf, args) = unsafe { (&mut *conf.cast::<HlsLocConf>(), crate::args(cf)) };
    if hlcf.mode.is_some() {
        return crate::DUPLICATE;
    }
    let mode = match args[0].as_bytes() {
        b"live" => Mode::Live,
        b"vod" => Mode::Vod,
        _ => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\", it must be \"live\" or \"vod\"",
                args[0]
            );
            return NGX_CONF_ERROR;
        }
    };
    // SAFETY: `cf` is the configuration being parsed, inside a location.
    let cf_ref = unsafe { &mut *cf };
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
    if clcf.name.as_bytes() != mode.prefix().as_bytes() {
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
    let from_text = format!(
        "{}{}",
        data.trim_end_matches('/'),
        mode.prefix().trim_end_matches('/')
    );
    // SAFETY: copied into the configuration pool, like the root.
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

/// A complex value that is always `value`.
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
    // SAFETY: as above.
    let (hlcf, args) = unsafe { (&mut *conf.cast::<HlsLocConf>(), crate::args(cf)) };
    if hlcf.cors.is_some() {
        return crate::DUPLICATE;
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
    // SAFETY: as above, with this module's main conf.
    let (hmcf, args) = unsafe { (&mut *conf.cast::<HlsMainConf>(), crate::args(cf)) };
    if hmcf.secrets.is_some() {
        return crate::DUPLICATE;
    }
    let path = args[0].to_string();
    // Read once, here, by the master: workers never open the secrets file.
    let secrets = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| Secrets::parse(&text));
    match secrets {
        Ok(s) => {
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
