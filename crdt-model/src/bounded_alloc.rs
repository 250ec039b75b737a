//! A global allocator bound: refuse any single allocation above a limit.
//!
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
//! It lives beside the decoders it protects, so that everything decoding untrusted bytes (the
//! server, the fuzz targets) installs the same bound in front of whatever allocator it uses.
#![allow(unsafe_code)] // implementing `GlobalAlloc` is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Until the program configures it: 1 GiB.
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

/// The bound in front of the system allocator (the fuzz targets: under AddressSanitizer every
/// allocation must go through the intercepted `malloc`, or use-after-free goes unseen).
pub type BoundedSystem = Bounded<System>;
pub const BOUNDED_SYSTEM: BoundedSystem = Bounded(System);

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
