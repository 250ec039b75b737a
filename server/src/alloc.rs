//! A global allocator that refuses any single allocation above a bound.
//!
//! Fuzzing found that `yrs` decoders reserve memory from attacker-chosen length prefixes (an
//! awareness update declaring 4 billion clients asks for 283 GB; an update declaring a huge
//! client count asks for 2.7 GB). They do so with fallible `try_reserve`, which relies on the
//! allocator saying no. With Linux overcommit, "no" only comes for absurd sizes; a few hundred
//! MB are granted, partly touched, and multiplied by concurrent sockets. This allocator says no
//! to any single request above the bound, so those reservations fail fast and the decode returns
//! an error (the socket is closed with 1007). Legitimate allocations stay far below the bound:
//! it is set to four times the largest frame or document the server accepts.
//!
//! Infallible allocations above the bound abort, exactly as an out-of-memory would.
//!
//! In the server binary, mimalloc does the work below the bound, not glibc's malloc. With
//! glibc, memory freed when a room unloads stayed in the process: a heap profile after twenty
//! large documents had unloaded showed 95 MB still allocated (sled's pages, nothing of the
//! rooms) while glibc held 515 MB from the system, spread over a dozen per-thread arenas that it
//! only trims at their top (RSS stayed at 466 MiB, and grew with every new document). mimalloc,
//! configured below to give freed pages back at once, comes back to the live heap (see the
//! README's "Guarantees", "Memory returns after documents unload").
#![allow(unsafe_code)] // implementing `GlobalAlloc` is unsafe by definition; this is the only unsafe code

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Until the server configures it: 1 GiB.
static SINGLE_ALLOCATION_MAX_BYTES: AtomicUsize = AtomicUsize::new(1 << 30);

/// The smallest bound ever set: enough for every buffer the default limits need.
pub const SINGLE_ALLOCATION_FLOOR_BYTES: usize = 256 << 20;

/// Sets the bound: four times the largest legitimate input, never below the floor.
pub fn set_single_allocation_max(frame_size_max_bytes: usize, doc_size_max_bytes: u64) {
    let largest = usize::try_from(doc_size_max_bytes)
        .unwrap_or(usize::MAX)
        .max(frame_size_max_bytes);
    let bound = largest.saturating_mul(4).max(SINGLE_ALLOCATION_FLOOR_BYTES);
    SINGLE_ALLOCATION_MAX_BYTES.store(bound, Relaxed);
}

/// `A` with the bound in front of it.
pub struct Bounded<A>(pub A);

/// The server binary's allocator: the bound in front of mimalloc.
pub type ServerAlloc = Bounded<mimalloc::MiMalloc>;
pub const SERVER_ALLOC: ServerAlloc = Bounded(mimalloc::MiMalloc);

/// The bound in front of the system allocator, for the fuzz targets: under AddressSanitizer
/// every allocation must go through the intercepted `malloc`, or use-after-free goes unseen.
pub type BoundedAlloc = Bounded<System>;
pub const BOUNDED_SYSTEM: BoundedAlloc = Bounded(System);

/// mimalloc's option numbers, from `mi_option_e` in the `mimalloc.h` that
/// `libmimalloc-sys` =0.1.49 vendors (v3; the crate names only a few of them). The version is
/// pinned in Cargo.toml so these cannot move under us; the memory test fails if they do.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Runs [`set_options`] from the ELF initialisers, before Rust's runtime makes its first
/// allocation: mimalloc reserves its first arena then, and reads `arena_eager_commit` for it.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static SET_OPTIONS_BEFORE_MAIN: extern "C" fn() = {
    extern "C" fn run() {
        set_options();
    }
    run
};

/// Makes sure mimalloc is told to give memory back as soon as it is free. Call first thing in
/// `main`: on Linux the options were set before `main` already (this call is what makes the
/// linker keep that initialiser, which nothing else refers to); elsewhere they are set now.
pub fn configure() {
    #[cfg(target_os = "linux")]
    std::hint::black_box(&SET_OPTIONS_BEFORE_MAIN);
    #[cfg(not(target_os = "linux"))]
    set_options();
}

/// - Purge delay 0: a page that empties is returned to the system at once. The default (1 s)
///   purges only on a later call into the allocator, so an idle server after a burst kept
///   150 MiB more (measured).
/// - No eager commit of arenas: otherwise mimalloc counts reserved memory as committed and must
///   zero it itself for `calloc`, touching it (sled's 20 MiB of zeroed metrics made the idle
///   server start at 49 MiB instead of 10).
fn set_options() {
    // SAFETY: plain setters of mimalloc's option table; both options are read when used.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged, or
// returns null, which `GlobalAlloc` allows for any request ("allocation failure").
unsafe impl<A: GlobalAlloc> GlobalAlloc for Bounded<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > SINGLE_ALLOCATION_MAX_BYTES.load(Relaxed) {
            return std::ptr::null_mut();
        }
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > SINGLE_ALLOCATION_MAX_BYTES.load(Relaxed) {
            return std::ptr::null_mut();
        }
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > SINGLE_ALLOCATION_MAX_BYTES.load(Relaxed) {
            return std::ptr::null_mut();
        }
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
