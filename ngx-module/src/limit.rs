//! `ngx_http_streamedge_limit_module`: rate limits with bans, shared by all workers.
//!
//! ```nginx
//! streamedge_limit_zone $binary_remote_addr zone=api:1m rate=10r/s burst=20
//!                       ban_after=30 ban_window=1m ban_time=10m;
//! location /api/ { streamedge_limit zone=api; }
//! ```
//!
//! The arithmetic lives in `streamedge_policy::limit`; this file evaluates keys, takes each
//! zone's lock, answers refused requests and logs. In a `streamedge_publish_auth` location
//! the limits run after the callback body is read (their key is usually
//! `$streamedge_publisher`), only for publish and play calls, and a wrong stream key counts
//! as a refusal towards the ban. Each zone counts, in its shared memory, the requests it
//! checked, refused and banned; `streamedge_limit_stats;` answers them as JSON.

use core::ffi::{c_char, c_void};
use core::ptr::{self, NonNull};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t,
    ngx_http_complex_value_t, ngx_http_discard_request_body, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_PREACCESS_PHASE, ngx_http_request_t, ngx_http_variable_value_t,
    ngx_int_t, ngx_module_t, ngx_parse_size, ngx_str_t, ngx_variable_value_t, NGX_CONF_1MORE,
    NGX_CONF_2MORE, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_HTTP_GET, NGX_HTTP_HEAD,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET,
    NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF, NGX_LOG_ALERT, NGX_LOG_EMERG, NGX_LOG_INFO, NGX_LOG_WARN,
};
use ngx::core::{Pool, Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError, Request,
};
use ngx::{http_request_handler, ngx_conf_log_error, ngx_log_error, ngx_string};
use streamedge_policy::ban::BanPolicy;
use streamedge_policy::limit::{parse_rate, printable_key, Cidr, LimitPolicy, LimitState, Outcome};
use streamedge_policy::table::{self, Claim, Slot};

use streamedge_formats::limits::{self, ZoneStats};

use crate::ffi::{self, args, parse_time_ms};
use crate::shm::{self, ZoneSpec};

// ---------------------------------------------------------------------------------------
// Types

/// A key's state, under the 64-bit keyed hash of the key: 48 bytes a key.
pub type LimitSlot = Slot<u64, LimitState>;

pub struct LimitModule;

/// One `streamedge_limit_zone`.
pub struct LimitZone {
    key: *mut ngx_http_complex_value_t,
    policy: LimitPolicy,
    spec: *mut ZoneSpec,
}

impl LimitZone {
    fn name(&self) -> &str {
        // SAFETY: the spec lives in the configuration pool with the zone.
        unsafe { &(*self.spec).name }
    }
}

#[derive(Default)]
pub struct LimitMainConf {
    zones: Vec<NonNull<LimitZone>>,
}

#[derive(Default)]
pub struct LimitLocConf {
    limits: Option<Vec<(NonNull<LimitZone>, bool)>>,
    status: Option<u16>,
    allow: Option<Vec<Cidr>>,
    /// Set by `streamedge_publish_auth`: limits run after the body is read.
    pub deferred: bool,
}

impl Merge for LimitLocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        // As with limit_req: a level that sets its own limits replaces the inherited ones.
        if self.limits.is_none() {
            self.limits.clone_from(&prev.limits);
        }
        self.status = self.status.or(prev.status);
        if self.allow.is_none() {
            self.allow.clone_from(&prev.allow);
        }
        Ok(())
    }
}

/// Per main request: the outcome, for `$streamedge_limit_result`, and the mark that the
/// request was charged. It is kept in a cleanup of the request's pool, not in the module
/// context, because nginx clears contexts on every internal redirect (`index`, `try_files`,
/// `error_page`, `rewrite ... last`) and runs the preaccess phase again: a request must be
/// charged once, as `limit_req` does by marking the main request.
#[derive(Clone, Copy)]
struct LimitCtx {
    result: &'static str,
}

// ---------------------------------------------------------------------------------------
// Directives, module context, module definition

static mut NGX_HTTP_STREAMEDGE_LIMIT_COMMANDS: [ngx_command_t; 6] = [
    ffi::command(
        ngx_string!("streamedge_limit_zone"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE,
        ngx_http_streamedge_limit_zone,
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_limit"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12,
        ngx_http_streamedge_limit,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_limit_status"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_http_streamedge_limit_status,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_limit_allow"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE,
        ngx_http_streamedge_limit_allow,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ffi::command(
        ngx_string!("streamedge_limit_stats"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        ngx_http_streamedge_limit_stats,
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

static NGX_HTTP_STREAMEDGE_LIMIT_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(LimitModule::preconfiguration),
    postconfiguration: Some(LimitModule::postconfiguration),
    create_main_conf: Some(LimitModule::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(LimitModule::create_loc_conf),
    merge_loc_conf: Some(LimitModule::merge_loc_conf),
};

#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_streamedge_limit_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(NGX_HTTP_STREAMEDGE_LIMIT_MODULE_CTX) as _,
    // SAFETY: only the address is taken; nginx reads the table during configuration.
    commands: unsafe { ptr::addr_of_mut!(NGX_HTTP_STREAMEDGE_LIMIT_COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

impl HttpModule for LimitModule {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module definition is a static that nginx only writes during start-up.
        unsafe { &*ptr::addr_of!(ngx_http_streamedge_limit_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        ffi::add_variable(
            cf,
            ngx_string!("streamedge_limit_result"),
            limit_result_variable,
        )
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        ffi::push_phase_handler(cf, ngx_http_phases_NGX_HTTP_PREACCESS_PHASE, limit_handler)
    }
}

// SAFETY: `LimitMainConf` is the type `create_main_conf` allocates for this module.
unsafe impl HttpModuleMainConf for LimitModule {
    type MainConf = LimitMainConf;
}

// SAFETY: `LimitLocConf` is the type `create_loc_conf` allocates for this module.
unsafe impl HttpModuleLocationConf for LimitModule {
    type LocationConf = LimitLocConf;
}

// ---------------------------------------------------------------------------------------
// Handlers

http_request_handler!(limit_handler, |r: &mut Request| {
    let Some(llcf) = LimitModule::location_conf(r) else {
        return Status::NGX_DECLINED;
    };
    if llcf.deferred || llcf.limits.as_ref().is_none_or(|l| l.is_empty()) || ctx(r).is_some() {
        return Status::NGX_DECLINED;
    }
    match apply(r, llcf, ffi::client_ip(r)) {
        Some(status) => Status(status as ngx_int_t),
        None => Status::NGX_DECLINED,
    }
});

// `streamedge_limit_stats`: every zone's counters, as JSON (`formats::limits`).
http_request_handler!(limit_stats_handler, |r: &mut Request| {
    let raw: *mut ngx_http_request_t = r.into();
    // SAFETY: `raw` is the request nginx passed to this content handler.
    let method = unsafe { (*raw).method } as u32;
    if method != NGX_HTTP_GET && method != NGX_HTTP_HEAD {
        return ffi::send(r, 405, ffi::TEXT, b"method not allowed\n");
    }
    // SAFETY: `raw` is the current request; nginx reads and drops a body nobody wants.
    let rc = unsafe { ngx_http_discard_request_body(raw) };
    if rc != Status::NGX_OK.0 {
        return Status(rc);
    }
    let Some(lmcf) = LimitModule::main_conf(r) else {
        return Status::NGX_ERROR;
    };
    let zones: Vec<ZoneStats> = lmcf
        .zones
        .iter()
        .map(|z| {
            // SAFETY: zones live in the configuration pool as long as this worker's cycle.
            let zone = unsafe { z.as_ref() };
            // SAFETY: the spec was registered with `add_zone::<LimitSlot>`.
            let c = unsafe { shm::shared::<LimitSlot>(zone.spec) }
                .map(|s| s.counters())
                .unwrap_or_default();
            ZoneStats {
                zone: zone.name().to_string(),
                requests: c[Counter::Requests as usize],
                refused: c[Counter::Refused as usize],
                bans: c[Counter::Bans as usize],
                failures: c[Counter::Failures as usize],
            }
        })
        .collect();
    r.add_header_out("Cache-Control", "no-cache");
    ffi::send(r, 200, ffi::JSON, limits::to_json(&zones).as_bytes())
});

/// What a limit zone counts, in its shared memory.
#[derive(Clone, Copy)]
enum Counter {
    Requests = 0,
    Refused = 1,
    Bans = 2,
    Failures = 3,
}

fn count(zone: &LimitZone, c: Counter) {
    // SAFETY: the spec was registered with `add_zone::<LimitSlot>`.
    if let Some(shared) = unsafe { shm::shared::<LimitSlot>(zone.spec) } {
        shared.count(c as usize);
    }
}

/// Runs the limits of a `streamedge_publish_auth` location for a publisher, once its
/// callback body is read. Returns the status to refuse with.
pub fn check_deferred(r: &mut Request, publisher: IpAddr) -> Option<u16> {
    let llcf = LimitModule::location_conf(r)?;
    if llcf.limits.as_ref().is_none_or(|l| l.is_empty()) {
        return None;
    }
    apply(r, llcf, Some(publisher))
}

/// Counts a refusal made by the caller (a wrong stream key) in every zone of the location.
pub fn count_failure(r: &mut Request, publisher: IpAddr) {
    let Some(llcf) = LimitModule::location_conf(r) else {
        return;
    };
    if allowed(llcf, Some(publisher)) {
        return;
    }
    for (zone, dry_run) in llcf.limits.iter().flatten() {
        // SAFETY: zones live in the configuration pool as long as this worker's cycle.
        let zone = unsafe { zone.as_ref() };
        let Some(key) = key_of(r, zone) else { continue };
        count(zone, Counter::Failures);
        let banned = with_slot(r, zone, &key, |state, now| state.refuse(&zone.policy, now));
        if let Some(secs) = banned.flatten() {
            log_ban(r, zone, &key, secs, *dry_run);
        }
    }
}

fn allowed(llcf: &LimitLocConf, addr: Option<IpAddr>) -> bool {
    match (addr, &llcf.allow) {
        (Some(a), Some(list)) => list.iter().any(|c| c.contains(a)),
        _ => false,
    }
}

/// Checks every zone of the location; returns the status to refuse with.
fn apply(r: &mut Request, llcf: &LimitLocConf, addr: Option<IpAddr>) -> Option<u16> {
    if allowed(llcf, addr) {
        set_ctx(r, "passed");
        return None;
    }
    let limits = llcf.limits.as_deref().unwrap_or_default();
    // With one zone, deciding and recording are one step. With several, a pass is recorded
    // only once every zone passed, as limit_req does.
    let single = limits.len() == 1;
    let mut passed = Vec::new();
    let mut worst: Option<Outcome> = None;
    let mut dry_refused = false;
    for &(zone, dry_run) in limits {
        // SAFETY: zones live in the configuration pool as long as this worker's cycle.
        let zone = unsafe { zone.as_ref() };
        // An empty key is not limited.
        let Some(key) = key_of(r, zone) else { continue };
        let decided = with_slot(r, zone, &key, |state, now| match single {
            true => state.check(&zone.policy, now),
            false => state.check_refusal(&zone.policy, now),
        });
        let Some(outcome) = decided else { continue };
        count(zone, Counter::Requests);
        if !note(r, zone, &key, outcome, dry_run) {
            passed.push((zone, key, dry_run));
        } else if dry_run {
            dry_refused = true;
        } else {
            worst = worse(worst, outcome);
        }
    }
    if worst.is_none() && !single {
        for (zone, key, dry_run) in passed {
            // Another worker may have taken the last request in between: then this refuses.
            let outcome = with_slot(r, zone, &key, |state, now| state.check(&zone.policy, now));
            match outcome {
                Some(o) if note(r, zone, &key, o, dry_run) => match dry_run {
                    true => dry_refused = true,
                    false => worst = worse(worst, o),
                },
                _ => {}
            }
        }
    }
    let Some(worst) = worst else {
        set_ctx(r, if dry_refused { "dry_run" } else { "passed" });
        return None;
    };
    set_ctx(
        r,
        if matches!(worst, Outcome::Banned { .. }) {
            "banned"
        } else {
            "limited"
        },
    );
    if let Some(secs) = worst.retry_after() {
        r.add_header_out("Retry-After", &secs.to_string());
    }
    Some(llcf.status.unwrap_or(429))
}

/// The worse of two outcomes: a ban over a limit, then the longer wait.
fn worse(a: Option<Outcome>, b: Outcome) -> Option<Outcome> {
    let rank = |o: &Outcome| (o.severity(), o.retry_after());
    Some(match a {
        Some(a) if rank(&a) >= rank(&b) => a,
        _ => b,
    })
}

/// Logs what a zone decided; returns whether it refused.
fn note(r: &Request, zone: &LimitZone, key: &[u8], outcome: Outcome, dry_run: bool) -> bool {
    if let Outcome::Limited {
        ban_started: Some(secs),
        ..
    } = outcome
    {
        log_ban(r, zone, key, secs, dry_run);
    }
    if !outcome.refused() {
        return false;
    }
    if !dry_run {
        count(zone, Counter::Refused);
    }
    let what = if matches!(outcome, Outcome::Banned { .. }) {
        "banned"
    } else {
        "over the rate"
    };
    ngx_log_error!(
        NGX_LOG_INFO,
        r.log(),
        "{}limiting requests by zone \"{}\", key \"{}\": {what}",
        if dry_run { "dry run, not " } else { "" },
        zone.name(),
        printable_key(key)
    );
    true
}

/// The request's key for a zone; `None` when empty (not limited) or not computable.
fn key_of(r: &Request, zone: &LimitZone) -> Option<Vec<u8>> {
    // SAFETY: the compiled key lives in the configuration pool.
    let key = r.get_complex_value(unsafe { &*zone.key })?;
    (!key.is_empty()).then(|| key.as_bytes().to_vec())
}

/// Finds or makes the key's slot and runs `f` on its state under the zone's lock.
fn with_slot<R>(
    r: &Request,
    zone: &LimitZone,
    key: &[u8],
    f: impl FnOnce(&mut LimitState, u64) -> R,
) -> Option<R> {
    // SAFETY: the spec was registered with `add_zone::<LimitSlot>`.
    let shared = unsafe { shm::shared::<LimitSlot>(zone.spec) }?;
    let now = ffi::now_ms();
    let hash = table::hash(shared.seed(), key);
    let (result, evicted) = shared.write(|slots| {
        let (i, how) = table::claim(slots, hash, &hash, now, |s| s.is_idle(now))?;
        Some((f(&mut slots[i].value, now), how == Claim::Evicted))
    })?;
    if evicted && shared.first_alert() {
        ngx_log_error!(
            NGX_LOG_ALERT,
            r.log(),
            "zone \"{}\" is full, dropping the least recently used keys (logged once)",
            zone.name()
        );
    }
    Some(result)
}

fn log_ban(r: &Request, zone: &LimitZone, key: &[u8], secs: u64, dry_run: bool) {
    if !dry_run {
        count(zone, Counter::Bans);
    }
    ngx_log_error!(
        NGX_LOG_WARN,
        r.log(),
        "{}banning \"{}\" for {secs}s by zone \"{}\"",
        if dry_run { "dry run, not " } else { "" },
        printable_key(key),
        zone.name()
    );
}

/// Marks a pool cleanup as this module's `LimitCtx` (its body makes it a function of its
/// own, never merged with another one the comparison could mistake for it).
unsafe extern "C" fn limit_ctx_mark(data: *mut c_void) {
    // SAFETY: the data of a cleanup with this handler is a `LimitCtx`.
    unsafe { (*data.cast::<LimitCtx>()).result = "" };
}

fn is_mark(handler: nginx_sys::ngx_pool_cleanup_pt) -> bool {
    handler.is_some_and(|h| core::ptr::fn_addr_eq(h, limit_ctx_mark as unsafe extern "C" fn(_)))
}

fn main_pool(r: &Request) -> *mut nginx_sys::ngx_pool_t {
    let raw: *const ngx_http_request_t = r.into();
    // SAFETY: every request has a main request, with its pool (which subrequests share).
    unsafe { (*(*raw).main).pool }
}

fn ctx(r: &Request) -> Option<&LimitCtx> {
    // SAFETY: the cleanup list of a live pool; ours carry a `LimitCtx` as their data.
    unsafe {
        let mut c = (*main_pool(r)).cleanup;
        while let Some(cln) = c.as_ref() {
            if is_mark(cln.handler) {
                return cln.data.cast::<LimitCtx>().as_ref();
            }
            c = cln.next;
        }
    }
    None
}

fn set_ctx(r: &mut Request, result: &'static str) {
    // SAFETY: the cleanup list of the main request's live pool; cleanups with our mark
    // carry a `LimitCtx`, and a new one gets room for one, written before it is marked.
    unsafe {
        let mut c = (*main_pool(r)).cleanup;
        while let Some(cln) = c.as_mut() {
            if is_mark(cln.handler) {
                (*cln.data.cast::<LimitCtx>()).result = result;
                return;
            }
            c = cln.next;
        }
        let cln = nginx_sys::ngx_pool_cleanup_add(main_pool(r), core::mem::size_of::<LimitCtx>());
        if let Some(cln) = cln.as_mut() {
            ptr::write(cln.data.cast::<LimitCtx>(), LimitCtx { result });
            cln.handler = Some(limit_ctx_mark);
        }
    }
}

extern "C" fn limit_result_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the current request and a value to fill.
    let (r, v) = unsafe {
        (
            Request::from_ngx_http_request(r),
            &mut *v.cast::<ngx_http_variable_value_t>(),
        )
    };
    ffi::set_variable(v, ctx(r).map(|c| c.result.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// Directive parsers

/// A stable digest of a zone's key text: compared across reloads.
fn purpose(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

extern "C" fn ngx_http_streamedge_limit_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: directive handlers get the parsing state and this module's main conf.
    let (lmcf, args) = unsafe { (&mut *conf.cast::<LimitMainConf>(), args(cf)) };
    let key_text = args[0].to_string();
    let mut name = None;
    let mut size = 0usize;
    let mut interval = None;
    let mut burst = 0u32;
    let (mut ban_after, mut ban_window, mut ban_time) = (None, None, None);
    for arg in args[1..].iter() {
        let text = arg.to_string();
        let Some((k, v)) = text.split_once('=') else {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid parameter \"{text}\"");
            return NGX_CONF_ERROR;
        };
        let ok = match k {
            "zone" => v.split_once(':').is_some_and(|(n, s)| {
                let mut s = ngx_str_t {
                    len: s.len(),
                    data: s.as_ptr().cast_mut(),
                };
                // SAFETY: parses an nginx size from a string that outlives the call.
                let parsed = unsafe { ngx_parse_size(&mut s) };
                size = if parsed < 0 { 0 } else { parsed as usize };
                name = Some(n.to_string());
                !n.is_empty() && parsed > 0
            }),
            "rate" => parse_rate(v).map(|i| interval = Some(i)).is_some(),
            "burst" => v.parse().map(|b| burst = b).is_ok(),
            "ban_after" => v
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(|n| ban_after = Some(n))
                .is_some(),
            "ban_window" => parse_time_ms(&arg.strip_prefix("ban_window=").unwrap_or(*arg))
                .map(|t| ban_window = Some(t))
                .is_some(),
            "ban_time" => parse_time_ms(&arg.strip_prefix("ban_time=").unwrap_or(*arg))
                .map(|t| ban_time = Some(t))
                .is_some(),
            _ => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid parameter \"{text}\"");
                return NGX_CONF_ERROR;
            }
        };
        if !ok {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid {k} \"{v}\"");
            return NGX_CONF_ERROR;
        }
    }
    let Some(name) = name else {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"zone\" parameter is required");
        return NGX_CONF_ERROR;
    };
    if size < shm::MIN_ZONE_SIZE {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "zone \"{name}\" is too small, the minimum is 64k"
        );
        return NGX_CONF_ERROR;
    }
    let Some(interval_us) = interval else {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"rate\" parameter is required");
        return NGX_CONF_ERROR;
    };
    let ban = match (ban_after, ban_window, ban_time) {
        (Some(attempts), w, t) => Some(BanPolicy {
            attempts,
            window: w.unwrap_or(60_000),
            ban: t.unwrap_or(600_000),
        }),
        (None, None, None) => None,
        (None, _, _) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"ban_window\" and \"ban_time\" require \"ban_after\""
            );
            return NGX_CONF_ERROR;
        }
    };
    // SAFETY: zones live in the configuration pool as long as the cycle being configured.
    if lmcf
        .zones
        .iter()
        .any(|z| unsafe { z.as_ref() }.name() == name)
    {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "zone \"{name}\" is duplicate");
        return NGX_CONF_ERROR;
    }

    // SAFETY: `cf` is valid; allocations come from the configuration pool.
    let pool = unsafe { Pool::from_ngx_pool((*cf).pool) };
    let key = pool.calloc_type::<ngx_http_complex_value_t>();
    if key.is_null() {
        return NGX_CONF_ERROR;
    }
    // SAFETY: a zeroed compile request with the fields nginx requires filled in.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { core::mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut args[0];
    ccv.complex_value = key;
    // SAFETY: compiles the key; nginx logs its own errors with the file and line.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != Status::NGX_OK.0 {
        return NGX_CONF_ERROR;
    }
    let spec = pool.allocate(ZoneSpec::new(
        name.clone(),
        purpose(&key_text),
        format!("key \"{key_text}\""),
    ));
    let zone = pool.allocate(LimitZone {
        key,
        policy: LimitPolicy {
            interval_us,
            burst,
            ban,
        },
        spec,
    });
    let (Some(zone), false) = (NonNull::new(zone), spec.is_null()) else {
        return NGX_CONF_ERROR;
    };
    let tag = ptr::addr_of_mut!(ngx_http_streamedge_limit_module).cast();
    if shm::add_zone::<LimitSlot>(cf, size, tag, spec).is_none() {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "zone \"{name}\" is already in use");
        return NGX_CONF_ERROR;
    }
    lmcf.zones.push(zone);
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_limit(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: directive handlers get the parsing state and this module's location conf.
    let (llcf, args) = unsafe { (&mut *conf.cast::<LimitLocConf>(), args(cf)) };
    // SAFETY: `cf` is the configuration being parsed, as nginx passes it to directives.
    let Some(lmcf) = LimitModule::main_conf(unsafe { &*cf }) else {
        return NGX_CONF_ERROR;
    };
    let zone_arg = args[0].to_string();
    let Some(name) = zone_arg.strip_prefix("zone=") else {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid parameter \"{zone_arg}\"");
        return NGX_CONF_ERROR;
    };
    let dry_run = match args.get(1).map(|a| a.to_string()) {
        None => false,
        Some(a) if a == "dry_run" => true,
        Some(a) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid parameter \"{a}\"");
            return NGX_CONF_ERROR;
        }
    };
    // SAFETY: zones live in the configuration pool as long as the cycle being configured.
    let Some(zone) = lmcf
        .zones
        .iter()
        .find(|z| unsafe { z.as_ref() }.name() == name)
    else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "unknown streamedge_limit_zone \"{name}\""
        );
        return NGX_CONF_ERROR;
    };
    let limits = llcf.limits.get_or_insert_with(Vec::new);
    if limits.iter().any(|(z, _)| z == zone) {
        ngx_conf_log_error!(NGX_LOG_EMERG, cf, "zone \"{name}\" is duplicate");
        return NGX_CONF_ERROR;
    }
    limits.push((*zone, dry_run));
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_limit_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // location directives, the `LimitLocConf` it created.
    let (llcf, args) = unsafe { (&mut *conf.cast::<LimitLocConf>(), args(cf)) };
    if llcf.status.is_some() {
        return ffi::DUPLICATE;
    }
    let text = args[0].to_string();
    match text.parse::<u16>() {
        Ok(code) if (400..=599).contains(&code) => {
            llcf.status = Some(code);
            NGX_CONF_OK
        }
        _ => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid status \"{text}\", it must be between 400 and 599"
            );
            NGX_CONF_ERROR
        }
    }
}

extern "C" fn ngx_http_streamedge_limit_allow(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes directive handlers the parsing state and, for this module's
    // location directives, the `LimitLocConf` it created.
    let (llcf, args) = unsafe { (&mut *conf.cast::<LimitLocConf>(), args(cf)) };
    for arg in args.iter() {
        let text = arg.to_string();
        let Some(cidr) = Cidr::parse(&text) else {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "invalid address range \"{text}\"");
            return NGX_CONF_ERROR;
        };
        llcf.allow.get_or_insert_with(Vec::new).push(cidr);
    }
    NGX_CONF_OK
}

extern "C" fn ngx_http_streamedge_limit_stats(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    crate::set_content_handler(cf, "streamedge_limit_stats", limit_stats_handler)
}
