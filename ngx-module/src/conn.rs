//! Connections as nginx accepts them, on every listening socket (HTTP and RTMP alike):
//!
//! - `streamedge_conn_limit N;` (http): each worker accepts at most N connections from one
//!   client (an IPv4 address or an IPv6 /64) and closes the rest at once. nginx's own
//!   `limit_conn` counts only requests whose header has arrived, so idle sockets and slowly
//!   sent headers from one address could otherwise take every connection the server has,
//!   and with them nginx-rtmp's callbacks. Unix-socket connections are not counted.
//! - Which worker holds each RTMP connection, in a shared zone, so the live registry knows
//!   a publisher is gone when its connection closes or its worker dies, whether or not
//!   nginx-rtmp managed to send a callback (`streamedge_policy::registry`).
//!
//! Both come from wrapping the listening sockets' accept handlers when a worker starts,
//! after nginx-rtmp's own worker set-up: its `rtmp_auto_push` finds the RTMP socket by its
//! accept handler and clones it, so the handler must still be nginx-rtmp's then.

use core::ffi::c_void;
use core::ptr;
use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use nginx_sys::{
    ngx_close_connection, ngx_connection_handler_pt, ngx_connection_t, ngx_cycle_t,
    ngx_destroy_pool, ngx_http_init_connection, ngx_int_t, ngx_listening_t, ngx_pid,
    ngx_pool_cleanup_add, ngx_stat_active, sockaddr_in, sockaddr_in6, AF_INET, AF_INET6,
    NGX_LOG_INFO, NGX_LOG_NOTICE,
};
use ngx::core::Status;
use ngx::ngx_log_error;
use streamedge_policy::client::ClientKey;
use streamedge_policy::conns::{Owner, OwnerSlot, PerClient};
use streamedge_policy::table::{self, Claim};

use crate::ffi;
use crate::shm::{self, ZoneSpec};

thread_local! {
    /// This worker's connections per client (workers are single-threaded).
    static PER_CLIENT: RefCell<PerClient> = RefCell::new(PerClient::default());
}

// Set by the master in `init_module`, inherited by the workers it then starts; a worker
// of an older configuration keeps the values it was started with.
static LIMIT: AtomicU32 = AtomicU32::new(0);
static mut OWNERS: *const ZoneSpec = ptr::null();
/// The accept handler of the one non-HTTP protocol (nginx-rtmp) whose sockets are wrapped.
static mut OTHER_ACCEPT: ngx_connection_handler_pt = None;

/// What the master sets for a new configuration cycle.
pub struct Setup {
    /// Connections per client and worker; 0: no limit.
    pub limit: u32,
    /// The zone of RTMP connection owners, if the live registry is in use.
    pub owners: *const ZoneSpec,
}

/// Records the cycle's settings, in the master (`init_module`), for the workers it starts.
pub fn configure(setup: Setup) {
    LIMIT.store(setup.limit, Ordering::Relaxed);
    // SAFETY: the master runs `init_module` single-threaded, before any worker of this
    // cycle exists; nobody else reads or writes this static now.
    unsafe { OWNERS = setup.owners };
}

/// Wraps the accept handler of every listening socket of `cycle`, in a new worker
/// (`init_process`), unless this cycle uses neither a limit nor the owners zone.
pub fn install(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: a worker runs `init_process` single-threaded, before its event loop; `OWNERS`
    // was last written by the master before this worker was started.
    let wanted = LIMIT.load(Ordering::Relaxed) > 0 || unsafe { !OWNERS.is_null() };
    if !wanted {
        return Status::NGX_OK.into();
    }
    // SAFETY: single-threaded worker start, before any accept handler can read the static.
    unsafe { OTHER_ACCEPT = None };
    // SAFETY: `cycle` is the cycle being initialized; its `listening` array holds
    // `ngx_listening_t` elements.
    let listening = unsafe {
        let a = &(*cycle).listening;
        core::slice::from_raw_parts_mut(a.elts.cast::<ngx_listening_t>(), a.nelts)
    };
    for ls in listening {
        match ls.handler {
            Some(h) if same(h, ngx_http_init_connection) => {
                ls.handler = Some(accept_http);
            }
            Some(h) if same(h, accept_http) || same(h, accept_other) => {}
            Some(h) => {
                // SAFETY: single-threaded worker start, before any accept handler runs; this
                // is the only reference to the static while it lives.
                let other = unsafe { &mut *ptr::addr_of_mut!(OTHER_ACCEPT) };
                match other {
                    None => *other = Some(h),
                    Some(o) if same(*o, h) => {}
                    // A third protocol (stream, mail): left alone.
                    Some(_) => continue,
                }
                ls.handler = Some(accept_other);
            }
            None => {}
        }
    }
    Status::NGX_OK.into()
}

type Accept = unsafe extern "C" fn(*mut ngx_connection_t);

fn same(a: Accept, b: Accept) -> bool {
    core::ptr::fn_addr_eq(a, b)
}

unsafe extern "C" fn accept_http(c: *mut ngx_connection_t) {
    // SAFETY: nginx passes a freshly accepted connection with its pool.
    if unsafe { admit(c, false) } {
        // SAFETY: the handler nginx itself set for this socket.
        unsafe { ngx_http_init_connection(c) };
    }
}

unsafe extern "C" fn accept_other(c: *mut ngx_connection_t) {
    // SAFETY: nginx passes a freshly accepted connection with its pool.
    if unsafe { admit(c, true) } {
        // SAFETY: written only at worker start, before the event loop calls this handler.
        if let Some(h) = unsafe { OTHER_ACCEPT } {
            // SAFETY: the accept handler nginx set for this socket, which `install` replaced
            // with this one, given the connection it expects.
            unsafe { h(c) };
        }
    }
}

/// What a connection's pool cleanup undoes.
struct Held {
    client: Option<ClientKey>,
    /// The connection number, for an RTMP connection recorded in the owners zone.
    rtmp: Option<u64>,
}

/// Counts a new connection, or closes it when its client holds too many.
///
/// # Safety
/// `c` is a connection nginx just accepted, with its pool, before any protocol handler.
unsafe fn admit(c: *mut ngx_connection_t, rtmp: bool) -> bool {
    // SAFETY: `c` is a connection nginx just accepted (the contract), used only here.
    let conn = unsafe { &mut *c };
    let client = peer(conn).map(ClientKey::of);
    let limit = LIMIT.load(Ordering::Relaxed);
    if let (Some(key), true) = (client, limit > 0) {
        if !PER_CLIENT.with_borrow_mut(|p| p.open(key, limit)) {
            ngx_log_error!(
                NGX_LOG_INFO,
                conn.log,
                "limiting connections by \"{key}\": {limit} open in this worker"
            );
            // SAFETY: the connection was accepted and nothing else references it yet.
            unsafe { close_accepted(c) };
            return false;
        }
    }
    let owners = owners();
    let rtmp = match (rtmp, owners) {
        (true, Some(zone)) => {
            let number: u64 = conn.number;
            let hash = table::hash(zone.seed(), &number.to_le_bytes());
            let how = zone.write(|slots| {
                let (i, how) =
                    table::claim(slots, hash, &number, ffi::now_ms(), |o| !alive(o.pid))?;
                slots[i].value = Owner {
                    // SAFETY: this process's id, set before any worker code runs.
                    pid: unsafe { ngx_pid },
                };
                Some(how)
            });
            if how == Some(Claim::Evicted) && zone.first_alert() {
                ngx_log_error!(
                    NGX_LOG_NOTICE,
                    conn.log,
                    "zone \"streamedge_rtmp\" is full, dropping the oldest entries (logged once)"
                );
            }
            Some(number)
        }
        _ => None,
    };
    if client.is_none() && rtmp.is_none() {
        return true;
    }
    // SAFETY: the pool lives exactly as long as the connection.
    let cln = unsafe { ngx_pool_cleanup_add(conn.pool, core::mem::size_of::<Held>()) };
    // SAFETY: a non-null cleanup has `size` bytes of data for us.
    match unsafe { cln.as_mut() } {
        Some(cln) => {
            // SAFETY: `data` has room for a `Held`, allocated just now and not initialized.
            unsafe { ptr::write(cln.data.cast::<Held>(), Held { client, rtmp }) };
            cln.handler = Some(release);
            true
        }
        None => {
            // Nothing could be recorded: undo the count and refuse.
            if let (Some(key), true) = (client, limit > 0) {
                PER_CLIENT.with_borrow_mut(|p| p.close(key));
            }
            // SAFETY: the connection was accepted and nothing else references it yet.
            unsafe { close_accepted(c) };
            false
        }
    }
}

unsafe extern "C" fn release(data: *mut c_void) {
    // SAFETY: the cleanup's data is the `Held` written in `admit`; it is read once.
    let held = unsafe { ptr::read(data.cast::<Held>()) };
    if let (Some(key), true) = (held.client, LIMIT.load(Ordering::Relaxed) > 0) {
        PER_CLIENT.with_borrow_mut(|p| p.close(key));
    }
    if let Some(number) = held.rtmp {
        if let Some(zone) = owners() {
            let hash = table::hash(zone.seed(), &number.to_le_bytes());
            zone.write(|slots| {
                if let Some(i) = table::find(slots, hash, &number) {
                    slots[i].value.pid = 0;
                }
            });
        }
    }
}

/// The zone of RTMP connection owners, when this cycle uses it.
fn owners() -> Option<&'static shm::Shared<OwnerSlot>> {
    // SAFETY: `OWNERS` is written only by the master before it starts this worker.
    let spec = unsafe { OWNERS.as_ref() }?;
    // SAFETY: the owners spec, when set, was registered with `add_zone::<OwnerSlot>`.
    unsafe { shm::shared::<OwnerSlot>(spec) }
}

/// Whether RTMP connection `clientid` is open in a running worker; `None` if the zone
/// does not know it.
pub fn rtmp_open(clientid: u64) -> Option<bool> {
    let zone = owners()?;
    let hash = table::hash(zone.seed(), &clientid.to_le_bytes());
    let pid = zone.read(|slots| table::find(slots, hash, &clientid).map(|i| slots[i].value.pid))?;
    Some(alive(pid))
}

/// Whether process `pid` exists (0: none).
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; EPERM means it does.
    unsafe {
        nginx_sys::kill(pid, 0) == 0 || *nginx_sys::__errno_location() == nginx_sys::EPERM as i32
    }
}

/// Closes a connection no protocol handler has seen, as nginx does when accept fails.
///
/// # Safety
/// `c` was just accepted and is referenced by nothing else.
unsafe fn close_accepted(c: *mut ngx_connection_t) {
    // SAFETY: per the contract; `ngx_stat_active` was incremented by the accept.
    unsafe {
        let pool = (*c).pool;
        if !ngx_stat_active.is_null() {
            AtomicUsize::from_ptr(ngx_stat_active.cast()).fetch_sub(1, Ordering::Relaxed);
        }
        ngx_close_connection(c);
        ngx_destroy_pool(pool);
    }
}

/// The peer address of a TCP connection; `None` for a Unix socket.
pub(crate) fn peer(c: &ngx_connection_t) -> Option<IpAddr> {
    let sa = c.sockaddr;
    if sa.is_null() {
        return None;
    }
    // SAFETY: an accepted connection's peer address is of its family's size.
    unsafe {
        match u32::from((*sa).sa_family) {
            AF_INET => {
                let sin = &*sa.cast::<sockaddr_in>();
                Some(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ))
            }
            AF_INET6 => {
                let sin6 = &*sa.cast::<sockaddr_in6>();
                Some(IpAddr::from(sin6.sin6_addr.__in6_u.__u6_addr8))
            }
            _ => None,
        }
    }
}
