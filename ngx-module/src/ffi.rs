//! The FFI edge shared by the three modules: directive tables and arguments, variables,
//! phase handlers, the clock, the client's address and complete in-memory responses. Each
//! helper converts raw nginx pointers once, so handlers stay plain Rust.

use core::ffi::{c_char, c_void};
use core::ptr;

use nginx_sys::{
    ngx_chain_t, ngx_command_t, ngx_conf_t, ngx_current_msec, ngx_http_add_variable,
    ngx_http_request_t, ngx_int_t, ngx_parse_time, ngx_str_t, ngx_uint_t, ngx_variable_value_t,
    NGX_ERROR, NGX_HTTP_VAR_NOCACHEABLE,
};
use ngx::core::{Pool, Status};
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule, Request};

use crate::conn;

/// A directive table entry whose handler `set` parses the arguments itself.
pub(crate) const fn command(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// The directive's arguments after its name.
///
/// # Safety
/// `cf` is the configuration being parsed, as nginx passes it to directive handlers.
pub(crate) unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a mut [ngx_str_t] {
    // SAFETY: nginx fills `args` with the directive name and its arguments.
    let all = unsafe { (*(*cf).args).as_slice_mut() };
    &mut all[1..]
}

/// What a directive handler returns for a directive given twice; nginx prints
/// `"NAME" directive is duplicate` with the file and line.
pub(crate) const DUPLICATE: *mut c_char = c"is duplicate".as_ptr().cast_mut();

/// Parses an nginx time ("10m", "1h30m") into milliseconds.
pub(crate) fn parse_time_ms(value: &ngx_str_t) -> Option<u64> {
    let mut v = *value;
    // SAFETY: `ngx_parse_time` only reads the string, a copy of the caller's; 0 asks for
    // milliseconds.
    let ms = unsafe { ngx_parse_time(&mut v, 0) };
    (ms != NGX_ERROR as ngx_int_t && ms > 0).then_some(ms as u64)
}

/// Registers a variable whose value `get` computes, as nginx's own modules do in their
/// preconfiguration.
pub(crate) fn add_variable(
    cf: *mut ngx_conf_t,
    mut name: ngx_str_t,
    get: unsafe extern "C" fn(
        *mut ngx_http_request_t,
        *mut ngx_variable_value_t,
        usize,
    ) -> ngx_int_t,
) -> ngx_int_t {
    // SAFETY: adding a variable during configuration; nginx copies the name.
    let var =
        unsafe { ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as ngx_uint_t) };
    // SAFETY: a non-null variable returned by nginx is ours to fill in.
    match unsafe { var.as_mut() } {
        Some(v) => {
            v.get_handler = Some(get);
            Status::NGX_OK.into()
        }
        None => Status::NGX_ERROR.into(),
    }
}

/// Fills a variable's value with bytes that live as long as the request, or "not found".
pub(crate) fn set_variable(v: &mut ngx_variable_value_t, value: Option<&[u8]>) -> ngx_int_t {
    match value {
        Some(bytes) => {
            v.data = bytes.as_ptr().cast_mut();
            v.set_len(bytes.len() as u32);
            v.set_valid(1);
            v.set_no_cacheable(0);
            v.set_not_found(0);
        }
        None => v.set_not_found(1),
    }
    Status::NGX_OK.into()
}

/// Adds `handler` to one of the request phases (as limit_req and access do), in
/// postconfiguration.
pub(crate) fn push_phase_handler(
    cf: *mut ngx_conf_t,
    phase: u32,
    handler: extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t,
) -> ngx_int_t {
    // SAFETY: `cf` is the configuration being finished.
    let cf = unsafe { &mut *cf };
    let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(cf) else {
        return Status::NGX_ERROR.into();
    };
    let handlers = &mut cmcf.phases[phase as usize].handlers;
    // SAFETY: a phase's handler array holds `ngx_http_handler_pt` elements.
    let h = unsafe { nginx_sys::ngx_array_push(handlers) }.cast::<nginx_sys::ngx_http_handler_pt>();
    // SAFETY: a non-null element just pushed is ours to write.
    match unsafe { h.as_mut() } {
        Some(h) => {
            *h = Some(handler);
            Status::NGX_OK.into()
        }
        None => Status::NGX_ERROR.into(),
    }
}

/// Content types of the module's own answers.
pub(crate) const TEXT: &str = "text/plain";

pub(crate) const JSON: &str = "application/json";

/// Sends a complete response with an in-memory body.
pub(crate) fn send(
    r: &mut Request,
    status: u16,
    content_type: &'static str,
    body: &[u8],
) -> Status {
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: `raw` is the current request; the content type is a static string, which
    // nginx only reads.
    unsafe {
        (*raw).headers_out.status = status as ngx_uint_t;
        (*raw).headers_out.content_length_n = body.len() as _;
        (*raw).headers_out.content_type_len = content_type.len();
        (*raw).headers_out.content_type = ngx_str_t {
            len: content_type.len(),
            data: content_type.as_ptr().cast_mut(),
        };
        (*raw).headers_out.content_type_lowcase = ptr::null_mut();
    }
    let rc = r.send_header();
    if rc == Status::NGX_ERROR || rc.0 > Status::NGX_OK.0 || r.header_only() || body.is_empty() {
        return rc;
    }
    let pool: Pool = r.pool();
    let Some(mut buf) = pool.create_buffer(body.len()) else {
        return Status::NGX_ERROR;
    };
    // SAFETY: the buffer was just allocated with room for `body`.
    let b = unsafe {
        use ngx::core::Buffer;
        let b = buf.as_ngx_buf_mut();
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(if r.is_main() { 1 } else { 0 });
        (*b).set_last_in_chain(1);
        b
    };
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    r.output_filter(&mut out)
}

/// A request header's value (the first of that name, case-insensitively).
pub(crate) fn header<'a>(r: &'a Request, name: &[u8]) -> Option<&'a [u8]> {
    r.headers_in_iterator()
        .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_bytes())
}

/// The client's address, from the connection.
pub(crate) fn client_ip(r: &Request) -> Option<std::net::IpAddr> {
    // SAFETY: every request has its connection.
    conn::peer(unsafe { &*r.connection() })
}

/// Monotonic milliseconds, the same clock in every worker, as nginx last cached it.
pub(crate) fn now_ms() -> u64 {
    // SAFETY: written only by this process's event loop, never concurrently with a handler.
    unsafe { ngx_current_msec as u64 }
}
