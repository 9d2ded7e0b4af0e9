//! The library in an S3-compatible bucket: `$streamedge_bucket_uri` is the path and query of
//! a signed GET of the library file a request asks for, so a location proxies it there.
//!
//! ```nginx
//! streamedge_hls_bucket http://127.0.0.1:3900 library region=garage credentials=/etc/streamedge/s3.credentials;
//! location @bucket { proxy_pass http://streamedge_bucket$streamedge_bucket_uri; }
//! ```
//!
//! The object is the item's file below `public/` or `private/`: at the origin by the item's
//! `meta.json`, at an edge (`streamedge_hls ... edge`) by the route: `private/` only once a
//! signed path was checked.

use core::ffi::{c_char, c_void};

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Request};
use ngx::ngx_conf_log_error;
use streamedge_formats::bucket::Credentials;
use streamedge_formats::layout::Layout;
use streamedge_policy::bucket::Signer;
use streamedge_policy::hls::{self, Mode};
use streamedge_policy::library::Item;

use crate::ffi;
use crate::hls::{HlsMainConf, HlsModule};

/// `streamedge_hls_bucket ENDPOINT BUCKET [region=REGION] credentials=FILE;` (http).
pub(crate) extern "C" fn directive(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // http directives, the `HlsMainConf` it created.
    let (hmcf, args) = unsafe { (&mut *conf.cast::<HlsMainConf>(), ffi::args(cf)) };
    if hmcf.bucket.is_some() {
        return ffi::DUPLICATE;
    }
    let text: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match signer(&text) {
        Ok(s) => {
            hmcf.bucket = Some(s);
            NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{e}");
            NGX_CONF_ERROR
        }
    }
}

/// The directive's arguments, checked; the credentials file is read here, once, by the
/// master (workers never open it).
fn signer(args: &[String]) -> Result<Signer, String> {
    let [endpoint, bucket, rest @ ..] = args else {
        return Err("\"streamedge_hls_bucket\" takes an endpoint and a bucket".into());
    };
    let (mut region, mut credentials) = ("us-east-1", None);
    for a in rest {
        match a.split_once('=') {
            Some(("region", r)) if !r.is_empty() => region = r,
            Some(("credentials", f)) if !f.is_empty() => credentials = Some(f),
            _ => return Err(format!("invalid parameter \"{a}\"")),
        }
    }
    let file = credentials.ok_or("\"streamedge_hls_bucket\" needs credentials=FILE")?;
    let keys = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| Credentials::parse(&t))
        .map_err(|e| format!("cannot use bucket credentials \"{file}\": {e}"))?;
    Signer::new(endpoint, bucket, region, &keys)
}

/// `$streamedge_bucket_uri`: for a library path (`/vod/ID/FILE`, a signed path once it is
/// checked), `/BUCKET/public/ID/FILE?X-Amz-...`; nothing for anything else.
pub(crate) extern "C" fn variable(
    r: *mut ngx_http_request_t,
    v: *mut nginx_sys::ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the current request and a value to fill.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    let uri = signed_uri(r);
    let raw: *mut ngx_http_request_t = (&mut *r).into();
    // SAFETY: the copy lives in the request's pool, as long as the request.
    let copy = uri.and_then(|u| unsafe { ngx_str_t::from_bytes((*raw).pool, u.as_bytes()) });
    ffi::set_variable(v, copy.as_ref().map(|s| s.as_bytes()))
}

fn signed_uri(r: &Request) -> Option<String> {
    let signer = HlsModule::main_conf(r)?.bucket.as_ref()?;
    let raw: *const ngx_http_request_t = r.into();
    // SAFETY: the URI belongs to the current request.
    let uri = unsafe { (*raw).uri };
    let target = hls::parse_path(Mode::Vod, uri.as_bytes()).ok()?;
    let private = match HlsModule::location_conf(r) {
        Some(c) if c.edge => c.signed(),
        _ => {
            let data = crate::data_dir(r)?;
            let hmcf = HlsModule::main_conf(r)?;
            let item = hmcf
                .library
                .borrow_mut()
                .item(&Layout::new(data).vod(), target.name);
            item != Item::Public
        }
    };
    // SAFETY: `ngx_cached_time` always points at a valid slot of this process.
    let now = unsafe { (*nginx_sys::ngx_cached_time).sec } as u64;
    Some(signer.uri(private, target.name, target.file, now))
}
