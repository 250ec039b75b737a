//! One connection's frames into a real room (see `checks::Connection`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks.rs"]
mod checks;
#[path = "common.rs"]
mod common;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem::alloc).
#[global_allocator]
static ALLOCATOR: tandem::alloc::BoundedAlloc = tandem::alloc::BOUNDED_SYSTEM;

fuzz_target!(
    init: common::init(),
    |data: &[u8]| {
        static CONNECTION: std::sync::OnceLock<checks::Connection> = std::sync::OnceLock::new();
        CONNECTION.get_or_init(checks::Connection::new).run(data)
    }
);
