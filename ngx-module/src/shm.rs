//! The module's shared memory zone: the live registry and the publisher failure counters,
//! laid out once as two fixed arrays of plain slots behind one reader-writer spinlock.
//!
//! A reload that keeps the zone's size keeps the zone, and with it who is live and who is
//! banned. A new size starts empty (heartbeats from live publishers refill the registry).

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use std::hash::BuildHasher;

use nginx_sys::{
    ngx_conf_t, ngx_int_t, ngx_pagesize, ngx_shared_memory_add, ngx_shm_zone_t,
    ngx_slab_calloc_locked, ngx_slab_pool_t, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::core::Status;
use ngx::sync::RwLock;
use ngx::{ngx_log_error, ngx_string};

use streamedge_policy::auth::{BanSlot, Zone};
use streamedge_policy::registry::{Registry, StreamSlot};

/// Identifies the layout, so a zone written by another build is never misread.
const MAGIC: u64 =
    0x7374_7265_616d_6564 ^ ((size_of::<StreamSlot>() as u64) << 32) ^ size_of::<BanSlot>() as u64;

/// Smallest zone accepted: room for the header and both tables.
pub const MIN_ZONE_SIZE: usize = 64 * 1024;

/// Default zone size: about 1,000 stream names and 18,000 publisher addresses.
pub const DEFAULT_ZONE_SIZE: usize = 1024 * 1024;

struct Tables {
    seed: [u64; 2],
    streams: *mut StreamSlot,
    n_streams: usize,
    bans: *mut BanSlot,
    n_bans: usize,
}

struct Shared {
    magic: u64,
    tables: RwLock<Tables>,
}

/// Registers the zone; nginx maps it and calls [`zone_init`] once the configuration is read.
pub fn add_zone(cf: *mut ngx_conf_t, size: usize, tag: *mut c_void) -> Option<*mut ngx_shm_zone_t> {
    let mut name: ngx_str_t = ngx_string!("streamedge");
    // SAFETY: `cf` is the configuration being parsed; nginx copies the name.
    let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
    // SAFETY: a non-null zone returned by nginx is ours to fill in.
    let z = unsafe { zone.as_mut()? };
    z.init = Some(zone_init);
    Some(zone)
}

extern "C" fn zone_init(zone: *mut ngx_shm_zone_t, old: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls init with the zone it mapped, in the master, before any worker exists.
    let zone = unsafe { &mut *zone };
    if !old.is_null() {
        // Same name, size and tag as before the reload: nginx kept the mapping, keep the data.
        // SAFETY: `old` is the `data` this function set on the previous cycle's zone.
        if unsafe { (*old.cast::<Shared>()).magic } == MAGIC {
            zone.data = old;
            return Status::NGX_OK.into();
        }
    }
    let shpool = zone.shm.addr.cast::<ngx_slab_pool_t>();
    // SAFETY: nginx initialized a slab pool at the start of every zone it maps.
    let shared = unsafe { carve(shpool) };
    let Some(shared) = shared else {
        // SAFETY: the cycle log is valid during configuration.
        ngx_log_error!(NGX_LOG_EMERG, zone.shm.log, "streamedge zone is too small");
        return Status::NGX_ERROR.into();
    };
    zone.data = shared.cast();
    Status::NGX_OK.into()
}

/// Lays out the header and both tables in a fresh zone.
///
/// # Safety
/// `shpool` is a freshly initialized slab pool that no other process uses yet.
unsafe fn carve(shpool: *mut ngx_slab_pool_t) -> Option<*mut Shared> {
    let page = unsafe { ngx_pagesize };
    let header = unsafe { ngx_slab_calloc_locked(shpool, size_of::<Shared>()) }.cast::<Shared>();
    if header.is_null() {
        return None;
    }
    // Whole pages left: an eighth for stream names, the rest for publisher addresses.
    let pages = unsafe { (*shpool).pfree };
    let stream_pages = (pages / 8).max(1);
    let ban_pages = pages.checked_sub(stream_pages).filter(|&p| p > 0)?;
    let (streams, n_streams) = unsafe { table::<StreamSlot>(shpool, stream_pages * page) }?;
    let (bans, n_bans) = unsafe { table::<BanSlot>(shpool, ban_pages * page) }?;
    let state = std::collections::hash_map::RandomState::new();
    let tables = Tables {
        seed: [state.hash_one(1u8), state.hash_one(2u8)],
        streams,
        n_streams,
        bans,
        n_bans,
    };
    unsafe {
        ptr::write(
            header,
            Shared {
                magic: MAGIC,
                tables: RwLock::new(tables),
            },
        );
        (*shpool).data = header.cast();
    }
    Some(header)
}

/// Allocates `bytes` worth of default slots.
///
/// # Safety
/// As for [`carve`].
unsafe fn table<T: Default>(shpool: *mut ngx_slab_pool_t, bytes: usize) -> Option<(*mut T, usize)> {
    let n = bytes / size_of::<T>();
    let p = unsafe { ngx_slab_calloc_locked(shpool, n * size_of::<T>()) }.cast::<T>();
    if n == 0 || p.is_null() {
        return None;
    }
    for i in 0..n {
        unsafe { ptr::write(p.add(i), T::default()) };
    }
    Some((p, n))
}

fn shared<'a>(zone: *mut ngx_shm_zone_t) -> Option<&'a Shared> {
    // SAFETY: `zone` comes from `add_zone`; `data` is null or the `Shared` set by `zone_init`,
    // which lives as long as the mapping, that is, as long as this worker.
    unsafe { zone.as_ref()?.data.cast::<Shared>().as_ref() }
}

/// Runs `f` with the zone's tables locked for writing.
pub fn write<R>(zone: *mut ngx_shm_zone_t, f: impl FnOnce(&mut Zone<'_>) -> R) -> Option<R> {
    let shared = shared(zone)?;
    let t = shared.tables.write();
    let seed = t.seed;
    // SAFETY: the arrays were allocated in `carve` with these lengths, and the write lock
    // makes this the only reference to them in any process until it is released.
    let (streams, bans) = unsafe {
        (
            core::slice::from_raw_parts_mut(t.streams, t.n_streams),
            core::slice::from_raw_parts_mut(t.bans, t.n_bans),
        )
    };
    let mut zone = Zone {
        registry: Registry {
            slots: streams,
            seed,
        },
        bans,
    };
    Some(f(&mut zone))
}

/// Runs `f` over the registry's slots, locked for reading.
pub fn read_streams<R>(zone: *mut ngx_shm_zone_t, f: impl FnOnce(&[StreamSlot]) -> R) -> Option<R> {
    let shared = shared(zone)?;
    let t = shared.tables.read();
    // SAFETY: as in `write`; the read lock keeps writers out while the slice is in use.
    let streams = unsafe { core::slice::from_raw_parts(t.streams, t.n_streams) };
    Some(f(streams))
}
