//! The wire decoder on arbitrary bytes: it must return, never panic, never allocate what a
//! length prefix claims.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem::alloc).
#[global_allocator]
static ALLOCATOR: tandem::alloc::BoundedAlloc = tandem::alloc::BoundedAlloc;

fuzz_target!(
    init: {
        // The bound a server with default limits runs with (16 MiB frames, 64 MiB documents).
        tandem::alloc::set_single_allocation_max(16 << 20, 64 << 20);
        // libfuzzer-sys aborts on any panic, even one the server catches. The server guards
        // every yrs call with catch_unwind, so model that: a panic the code under test catches
        // is not a crash; one that escapes still aborts in libfuzzer-sys' own catch_unwind.
        let verbose = std::env::var_os("TANDEM_FUZZ_VERBOSE").is_some();
        std::panic::set_hook(Box::new(move |info| {
            if verbose {
                eprintln!("panic (caught or not): {info}");
            }
        }));
    },
    |data: &[u8]| {
    let _ = tandem_crdt_model::protocol::decode_frame(data, 1 << 20);
    }
);
