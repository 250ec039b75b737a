//! The server binary's global allocator: the decoders' allocation bound
//! (`tandem_crdt_model::bounded_alloc`) in front of mimalloc.
//!
//! mimalloc does the work below the bound, not glibc's malloc. With glibc, memory freed when a room unloads stayed in the process: a heap profile after twenty
//! large documents had unloaded showed 95 MB still allocated (sled's pages, nothing of the
//! rooms) while glibc held 515 MB from the system, spread over a dozen per-thread arenas that it
//! only trims at their top (RSS stayed at 466 MiB, and grew with every new document). mimalloc,
//! configured below to give freed pages back at once, comes back to the live heap (see the
//! README's "Guarantees", "Memory returns after documents unload").
#![allow(unsafe_code)] // setting mimalloc's options goes through its C API

pub use tandem_crdt_model::bounded_alloc::{set_single_allocation_max, Bounded};

/// The server binary's allocator: the bound in front of mimalloc.
pub type ServerAlloc = Bounded<mimalloc::MiMalloc>;
pub const SERVER_ALLOC: ServerAlloc = Bounded(mimalloc::MiMalloc);

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
