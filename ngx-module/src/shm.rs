//! Shared memory zones holding one fixed table of plain slots (see `streamedge_policy::table`)
//! behind a reader-writer spinlock: the live registry, and one per limit zone.
//!
//! A reload that keeps a zone's name and size keeps the zone, and with it its state; nginx
//! hands `init` the previous cycle's data, which is checked before it is trusted.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::hash::BuildHasher;

use nginx_sys::{
    ngx_conf_t, ngx_int_t, ngx_pagesize, ngx_shared_memory_add, ngx_shm_zone_t,
    ngx_slab_calloc_locked, ngx_slab_pool_t, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::core::Status;
use ngx::ngx_log_error;
use ngx::sync::RwLock;

/// Smallest zone accepted.
pub const MIN_ZONE_SIZE: usize = 64 * 1024;

struct Table<T> {
    slots: *mut T,
    len: usize,
}

/// The header at the start of a zone's data.
pub struct Shared<T> {
    /// Identifies the slot layout, so a zone written by another build is never misread.
    magic: u64,
    /// What the zone is for (a limit zone's key), so a reload cannot silently repurpose it.
    purpose: u64,
    seed: [u64; 2],
    /// Set once the zone had to drop an entry that still mattered, to log that only once.
    alerted: AtomicBool,
    /// Counters any worker adds to without the lock (a limit zone's requests, refusals...).
    counters: [AtomicU64; COUNTERS],
    table: RwLock<Table<T>>,
}

/// Counters in a zone's header.
pub const COUNTERS: usize = 4;

/// The layout of the header itself: changed whenever `Shared` changes, so a zone a reload
/// hands over from another build of the module is laid out afresh, not misread.
const HEADER_VERSION: u64 = 2;

fn magic<T>() -> u64 {
    0x7374_7265_616d_6564
        ^ (size_of::<T>() as u64) << 32
        ^ core::mem::align_of::<T>() as u64
        ^ HEADER_VERSION << 56
}

/// What `init` needs to lay out or adopt a zone; lives in the configuration's pool.
pub struct ZoneSpec {
    pub name: String,
    pub purpose: u64,
    /// Describes the purpose for the error when a reload changes it.
    pub purpose_text: String,
    /// Filled by `init`: the zone's header.
    shared: *mut c_void,
    /// Set by `add_zone` for the zone's slot type.
    init: Option<unsafe fn(*mut ngx_slab_pool_t, u64) -> *mut c_void>,
    check: Option<unsafe fn(*mut c_void) -> Option<u64>>,
}

impl ZoneSpec {
    pub fn new(name: String, purpose: u64, purpose_text: String) -> Self {
        ZoneSpec {
            name,
            purpose,
            purpose_text,
            shared: ptr::null_mut(),
            init: None,
            check: None,
        }
    }
}

/// Registers a zone of `T` slots; nginx maps it and calls `init` once the configuration is
/// read. `spec` must outlive the configuration cycle (allocate it in the cycle's pool).
pub fn add_zone<T: Default>(
    cf: *mut ngx_conf_t,
    size: usize,
    tag: *mut c_void,
    spec: *mut ZoneSpec,
) -> Option<*mut ngx_shm_zone_t> {
    // SAFETY: `spec` was just allocated by the caller and is valid.
    let name_text = unsafe { &(*spec).name };
    let mut name = ngx_str_t {
        len: name_text.len(),
        data: name_text.as_ptr().cast_mut(),
    };
    // SAFETY: `cf` is the configuration being parsed; nginx copies the name.
    let zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
    // SAFETY: a non-null zone returned by nginx is ours to fill in.
    let z = unsafe { zone.as_mut()? };
    if !z.data.is_null() {
        // The same name twice in one configuration.
        return None;
    }
    // SAFETY: `spec` is valid (see above) and not yet shared: nginx reads it only when it
    // maps the zone, after configuration.
    unsafe {
        (*spec).init = Some(carve::<T>);
        (*spec).check = Some(check::<T>);
    }
    z.init = Some(zone_init);
    z.data = spec.cast();
    Some(zone)
}

extern "C" fn zone_init(zone: *mut ngx_shm_zone_t, old: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls init with the zone it mapped, in the master, before any worker
    // exists; `data` is the spec `add_zone` stored, `old` the previous cycle's spec.
    let zone = unsafe { &mut *zone };
    // SAFETY: `data` is the spec `add_zone` stored, in the configuration pool of this cycle.
    let spec = unsafe { &mut *zone.data.cast::<ZoneSpec>() };
    let (Some(init), Some(check)) = (spec.init, spec.check) else {
        return Status::NGX_ERROR.into();
    };
    // SAFETY: `old` is null or the previous cycle's spec, still alive during the reload.
    if let Some(old) = unsafe { old.cast::<ZoneSpec>().as_ref() } {
        // Same name, size and tag as before the reload: nginx kept the mapping.
        // SAFETY: the old spec's header lives in this very mapping.
        if let Some(purpose) = unsafe { check(old.shared) } {
            if purpose != spec.purpose {
                ngx_log_error!(
                    NGX_LOG_EMERG,
                    zone.shm.log,
                    "zone \"{}\" is used for {} while previously it was used for {}",
                    spec.name,
                    spec.purpose_text,
                    old.purpose_text
                );
                return Status::NGX_ERROR.into();
            }
            spec.shared = old.shared;
            return Status::NGX_OK.into();
        }
    }
    // SAFETY: nginx initialized a slab pool at the start of every zone it maps, and this
    // is a new zone no worker uses yet.
    let shared = unsafe { init(zone.shm.addr.cast(), spec.purpose) };
    if shared.is_null() {
        ngx_log_error!(
            NGX_LOG_EMERG,
            zone.shm.log,
            "zone \"{}\" is too small",
            spec.name
        );
        return Status::NGX_ERROR.into();
    }
    spec.shared = shared;
    Status::NGX_OK.into()
}

/// # Safety
/// `shared` is null or a header laid out by `carve` for some slot type.
unsafe fn check<T>(shared: *mut c_void) -> Option<u64> {
    // SAFETY: per the contract, null or a header `carve` laid out in this mapping; only
    // `magic` and `purpose` are read, and the caller trusts the rest only if `magic` matches.
    let s = unsafe { shared.cast::<Shared<T>>().as_ref()? };
    (s.magic == magic::<T>()).then_some(s.purpose)
}

/// Lays out the header and one table filling the rest of a fresh zone.
///
/// # Safety
/// `shpool` is a freshly initialized slab pool that no other process uses yet.
unsafe fn carve<T: Default>(shpool: *mut ngx_slab_pool_t, purpose: u64) -> *mut c_void {
    // SAFETY: per the contract no other process uses the pool, so the locked variant is
    // sound without taking the lock.
    let header =
        unsafe { ngx_slab_calloc_locked(shpool, size_of::<Shared<T>>()) }.cast::<Shared<T>>();
    if header.is_null() {
        return ptr::null_mut();
    }
    // Every whole page left, in one allocation.
    // SAFETY: `shpool` is valid per the contract; `ngx_pagesize` is set before any config.
    let bytes = unsafe { (*shpool).pfree * ngx_pagesize };
    let len = bytes / size_of::<T>();
    // SAFETY: as for the header, no other process uses the pool yet.
    let slots = unsafe { ngx_slab_calloc_locked(shpool, len * size_of::<T>()) }.cast::<T>();
    if len == 0 || slots.is_null() {
        return ptr::null_mut();
    }
    for i in 0..len {
        // SAFETY: slot `i` is within the `len` slots just allocated, and not yet initialized.
        unsafe { ptr::write(slots.add(i), T::default()) };
    }
    let state = std::collections::hash_map::RandomState::new();
    // SAFETY: `header` was allocated above with room for a `Shared<T>`; the pool's `data`
    // is ours to set while no other process uses it.
    unsafe {
        ptr::write(
            header,
            Shared {
                magic: magic::<T>(),
                purpose,
                seed: [state.hash_one(1u8), state.hash_one(2u8)],
                alerted: AtomicBool::new(false),
                counters: Default::default(),
                table: RwLock::new(Table { slots, len }),
            },
        );
        (*shpool).data = header.cast();
    }
    header.cast()
}

/// A zone's header, once `init` has run.
///
/// # Safety
/// `spec` is a spec registered with `add_zone::<T>`.
pub unsafe fn shared<'a, T>(spec: *const ZoneSpec) -> Option<&'a Shared<T>> {
    // SAFETY: `spec` is registered with `add_zone::<T>` (the contract), so `shared` is null
    // or a `Shared<T>` header that lives as long as the mapping, that is, this worker.
    unsafe { (*spec).shared.cast::<Shared<T>>().as_ref() }
}

impl<T> Shared<T> {
    pub fn seed(&self) -> [u64; 2] {
        self.seed
    }

    /// Runs `f` with the table locked for writing.
    pub fn write<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> R {
        let t = self.table.write();
        // SAFETY: the table was allocated in `carve` with this length, and the write lock
        // makes this the only reference to it in any process until it is released.
        let slots = unsafe { core::slice::from_raw_parts_mut(t.slots, t.len) };
        f(slots)
    }

    /// Runs `f` with the table locked for reading.
    pub fn read<R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        let t = self.table.read();
        // SAFETY: the table was allocated in `carve` with this length; the read lock keeps
        // writers in every process out until it is released.
        let slots = unsafe { core::slice::from_raw_parts(t.slots, t.len) };
        f(slots)
    }

    /// Adds one to counter `i` (below `COUNTERS`).
    pub fn count(&self, i: usize) {
        self.counters[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> [u64; COUNTERS] {
        core::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed))
    }

    /// True the first time it is called for this zone: for alerts logged once.
    pub fn first_alert(&self) -> bool {
        !self.alerted.swap(true, Ordering::Relaxed)
    }
}
